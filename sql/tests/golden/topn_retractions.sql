-- Top-N over a changelog whose rows are also retracted for good: HAVING drops a customer's
-- updated count once it reaches 2, leaving only the retraction of the old one, so the top
-- shrinks and the next customer moves up. Ties on n are ordered by the second key.
SELECT customer, n, rn FROM (
  SELECT *, ROW_NUMBER() OVER (ORDER BY n DESC, customer) AS rn FROM (
    SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer HAVING COUNT(*) < 2
  )
) WHERE rn <= 2;
