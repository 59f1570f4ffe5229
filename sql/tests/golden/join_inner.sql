-- sorted
-- A regular join of two append-only inputs: inserts only.
SELECT o.id, o.customer, c.tier FROM orders AS o JOIN customers AS c ON o.customer = c.name;
