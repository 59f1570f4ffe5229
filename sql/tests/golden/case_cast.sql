-- CASE branches, a cast that truncates, NULL logic.
SELECT id,
  CASE WHEN amount >= 10 THEN 'big' WHEN amount >= 5 THEN 'medium' ELSE 'small' END AS size,
  CAST(amount AS INT) AS whole,
  NULLIF(customer, 'bob') IS NULL AS is_bob
FROM orders;
