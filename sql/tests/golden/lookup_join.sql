-- A lookup join: each order with its customer's tier, looked up in a file read when the job
-- starts; carol is not in it (left join: NULL), and an order stays one row per match.
CREATE VIEW timed_orders AS SELECT *, PROCTIME() AS proc FROM orders;
SELECT o.id, o.customer, c.tier
FROM timed_orders o LEFT JOIN customers FOR SYSTEM_TIME AS OF o.proc AS c ON o.customer = c.name;
