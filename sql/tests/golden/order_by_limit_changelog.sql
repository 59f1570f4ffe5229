-- ORDER BY ... LIMIT over a GROUP BY's changelog, the row number not read: a row leaving the top
-- is deleted, then the one taking its place inserted; changes below the top emit nothing.
SELECT customer, total FROM (
  SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer
) ORDER BY total DESC LIMIT 2;
