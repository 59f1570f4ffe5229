-- sorted
SELECT window_start, window_end, customer, COUNT(*) AS n, SUM(amount) AS total
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECONDS))
GROUP BY window_start, window_end, customer;
