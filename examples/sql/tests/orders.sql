-- Orders per customer in windows of five seconds, and a running total per customer. The orders
-- come from a generator in production; a test run gives them other rows.
CREATE TABLE orders (
  id BIGINT,
  customer STRING,
  amount DECIMAL(10, 2),
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');

CREATE TABLE per_window (
  window_start TIMESTAMP(3),
  customer STRING,
  orders BIGINT,
  amount DECIMAL(38, 2)
) WITH ('connector' = 'print');

CREATE TABLE running (
  customer STRING,
  orders BIGINT,
  amount DECIMAL(38, 2)
) WITH ('connector' = 'blackhole');

EXECUTE STATEMENT SET BEGIN
INSERT INTO per_window
SELECT window_start, customer, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, customer;
INSERT INTO running
SELECT customer, COUNT(*), SUM(amount) FROM orders GROUP BY customer;
END;
