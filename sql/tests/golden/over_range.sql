-- sorted
-- Orders of the customer in the 10 seconds up to each order (bounds included).
SELECT id,
  COUNT(*) OVER (PARTITION BY customer ORDER BY ts RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW) AS recent
FROM orders;
