-- LIMIT without ORDER BY: the first rows, inserted once and never changed.
SELECT id, customer FROM orders LIMIT 2;
