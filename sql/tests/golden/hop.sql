-- sorted
-- Named arguments, as Flink allows them.
SELECT window_start, window_end, COUNT(*) AS n
FROM TABLE(HOP(DATA => TABLE orders, TIMECOL => DESCRIPTOR(ts), SLIDE => INTERVAL '5' SECOND, SIZE => INTERVAL '10' SECOND))
GROUP BY window_start, window_end;
