-- Bids per bidder in processing-time windows of 10 seconds: counted by the wall clock of the
-- aggregating operator, so a window fires only if its 10 seconds end while the run lasts.
SELECT B.bidder, COUNT(*) AS bid_count,
  TUMBLE_START(B.p_time, INTERVAL '10' SECOND) AS starttime,
  TUMBLE_END(B.p_time, INTERVAL '10' SECOND) AS endtime
FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
GROUP BY B.bidder, TUMBLE(B.p_time, INTERVAL '10' SECOND);
