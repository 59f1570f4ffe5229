-- final
SELECT o.id, c.name FROM orders o FULL JOIN customers c ON o.customer = c.name AND o.amount > 5;
