-- The two customers who spent most, ranked over a GROUP BY's changelog (Flink's retractable
-- Top-N): a customer's new total is its old row retracted and the new one added, so a customer
-- leaving the top lets the next one in, and each rank whose row changed is updated.
SELECT customer, total, rn FROM (
  SELECT *, ROW_NUMBER() OVER (ORDER BY total DESC) AS rn FROM (
    SELECT customer, SUM(amount) AS total FROM orders GROUP BY customer
  )
) WHERE rn <= 2;
