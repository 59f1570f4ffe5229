-- User sessions: bids per bidder in sessions with gaps under 10 seconds.
SELECT B.bidder, COUNT(*) AS bid_count, B.window_start AS starttime, B.window_end AS endtime
FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) B
GROUP BY B.bidder, B.window_start, B.window_end;
