-- HAVING filters each change of the aggregate's changelog.
SELECT customer FROM orders GROUP BY customer HAVING SUM(amount) > 10;
