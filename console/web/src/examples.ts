// Example tables the pages start from.

/** The orders table the examples of the workbench and the canvas read: a generator with event time. */
export const ORDERS_TABLE = `CREATE TABLE orders (
  id BIGINT,
  customer STRING,
  amount DECIMAL(10, 2),
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'rows-per-second' = '100');
`;
