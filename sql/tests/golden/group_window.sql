-- sorted
-- Flink's group window syntax: the same windows as the window table function's.
SELECT TUMBLE_START(ts, INTERVAL '10' SECOND) AS wstart, TUMBLE_END(ts, INTERVAL '10' SECOND) AS wend,
  customer, COUNT(*) AS n, SUM(amount) AS total
FROM orders
GROUP BY TUMBLE(ts, INTERVAL '10' SECOND), customer;
