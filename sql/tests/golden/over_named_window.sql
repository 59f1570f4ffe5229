-- sorted
-- Two aggregates over one window named in a WINDOW clause: a running total and count per customer.
SELECT id, customer, SUM(amount) OVER w AS running, COUNT(*) OVER w AS orders_so_far
FROM orders
WINDOW w AS (PARTITION BY customer ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
