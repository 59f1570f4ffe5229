-- sorted
-- A left outer interval join: every order, with its payment if one came within 5 seconds after
-- it; an order without one is emitted padded once the watermark has passed its 5 seconds.
SELECT o.id, p.paid, p.pay_ts
FROM orders o LEFT JOIN payments p ON o.id = p.order_id AND p.pay_ts BETWEEN o.ts AND o.ts + INTERVAL '5' SECOND;
