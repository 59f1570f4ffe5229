-- sorted
-- An interval join: a payment within 5 seconds after its order.
SELECT o.id, p.paid, p.pay_ts
FROM orders o JOIN payments p ON o.id = p.order_id AND p.pay_ts BETWEEN o.ts AND o.ts + INTERVAL '5' SECOND;
