-- sorted
-- Sessions per customer; a row at a session's end joins it, as Flink's windows intersect.
SELECT window_start, window_end, customer, COUNT(*) AS n
FROM TABLE(SESSION(TABLE orders PARTITION BY customer, DESCRIPTOR(ts), INTERVAL '8' SECOND))
GROUP BY window_start, window_end, customer;
