-- The two latest orders per customer: a new first row moves the others down a rank.
SELECT customer, id, rn FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY ts DESC) AS rn FROM orders
) WHERE rn <= 2;
