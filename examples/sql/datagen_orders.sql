-- Generated orders, summed per product as a changelog, printed as Flink's print sink does.
-- Run: cargo run --release -p tethys -- sql run examples/sql/datagen_orders.sql
CREATE TABLE orders (
  id BIGINT,
  product INT,
  amount DECIMAL(10, 2)
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '20',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '40',
  'fields.product.min' = '1', 'fields.product.max' = '3',
  'fields.amount.min' = '1', 'fields.amount.max' = '100'
);

CREATE TABLE totals (product INT, orders BIGINT, total DECIMAL(38, 2))
WITH ('connector' = 'print', 'print-identifier' = 'totals');

DESCRIBE orders;

INSERT INTO totals SELECT product, COUNT(*), SUM(amount) FROM orders GROUP BY product;
