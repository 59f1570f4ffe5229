-- The two largest orders so far (a Top-N without partition keys): a new row that ranks in
-- moves the ones below it down; the row number is not selected, so each change is shown as the
-- row leaving its place and the one taking it.
SELECT id, customer, amount FROM orders ORDER BY amount DESC LIMIT 2;
