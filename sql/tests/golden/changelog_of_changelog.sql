-- An aggregate over an updating input retracts what the update takes back.
SELECT n, COUNT(*) AS customers
FROM (SELECT customer, COUNT(*) AS n FROM orders GROUP BY customer)
GROUP BY n;
