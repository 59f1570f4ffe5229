-- Bids per auction bucket in 10-second windows, and a running count per channel initial.
-- Run: cargo run --release -p tethys -- sql run examples/sql/bids_per_window.sql
CREATE TABLE bids (
  auction BIGINT,
  price BIGINT,
  channel STRING,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'bids', 'number-of-events' = '50000');

SET 'parallelism.default' = '2';

EXPLAIN SELECT window_start, auction % 10 AS bucket, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECONDS))
GROUP BY window_start, window_end, auction % 10;

SELECT window_start, auction % 10 AS bucket, COUNT(*) AS bids, MAX(price) AS top
FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECONDS))
GROUP BY window_start, window_end, auction % 10
HAVING COUNT(*) > 990;
