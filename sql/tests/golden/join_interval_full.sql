-- sorted
-- A full outer interval join with a condition beyond the keys and times: a payment pairs with its
-- order only if it paid the whole amount within 5 seconds; the order of 2 is paid 26 seconds late,
-- so both it and its payment stand alone.
SELECT o.id, o.amount, p.order_id, p.paid
FROM orders o FULL OUTER JOIN payments p
  ON o.id = p.order_id AND p.paid >= o.amount AND p.pay_ts BETWEEN o.ts AND o.ts + INTERVAL '5' SECOND;
