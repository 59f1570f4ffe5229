-- The two largest orders so far (a Top-N without partition keys, its row number not read): a
-- row that ranks in is inserted, and the row it pushes out of the top is deleted.
SELECT id, customer, amount FROM orders ORDER BY amount DESC LIMIT 2;
