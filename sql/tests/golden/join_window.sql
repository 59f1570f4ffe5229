-- sorted
-- A window join: an order and its payment in the same 10-second window.
SELECT o.id, o.window_start, p.paid
FROM (SELECT * FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))) o
JOIN (SELECT * FROM TABLE(TUMBLE(TABLE payments, DESCRIPTOR(pay_ts), INTERVAL '10' SECOND))) p
ON o.id = p.order_id AND o.window_start = p.window_start AND o.window_end = p.window_end;
