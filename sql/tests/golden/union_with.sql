-- sorted
WITH big AS (SELECT customer FROM orders WHERE amount >= 10),
     small AS (SELECT customer FROM orders WHERE amount < 3)
SELECT customer FROM big UNION ALL SELECT customer FROM small;
