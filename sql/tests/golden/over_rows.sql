-- sorted
-- A running total per customer, in event-time order.
SELECT id, customer,
  SUM(amount) OVER (PARTITION BY customer ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
FROM orders;
