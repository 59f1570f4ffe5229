-- A GROUP BY over a stream: each row updates its key's result.
SELECT customer, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY customer;
