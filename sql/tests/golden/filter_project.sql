-- Projection with decimal arithmetic and a filter.
SELECT id, customer, amount * 2 AS doubled FROM orders WHERE amount > 5;
