//! Event time from watermark strategies: out-of-order input within the bound is counted, records
//! behind the watermark are late, and an idle source does not hold event time back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, WindowResult};
use tethys_tests::IdleUntilReleased;

#[test]
fn bounded_out_of_orderness_counts_disordered_records_and_drops_late_ones() {
    // A watermark after each record (a punctuated generator), so lateness is decided record by
    // record.
    let config = EngineConfig { slots: 2, parallelism: 1, frame_records_max: 1, ..EngineConfig::default() };
    let env = StreamEnvironment::new(config);
    let out = CollectSink::new();
    // Watermark = max - 2000 - 1. After 12 000 it is 9 999: window [0, 10 s) fires with 1000, 500
    // and 2500 (500 was out of order but within the bound); 3000 then comes too late.
    let timestamps: Vec<i64> = vec![1_000, 500, 2_500, 12_000, 3_000, 25_000];
    env.from_collection(timestamps)
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness_per_record(Duration::from_secs(2), |ts: &i64| {
            *ts
        }))
        .key_by(|_ts: &i64| 0u8)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |ts: &i64| *ts)
        .count()
        .sink("out", out.clone());
    env.execute("out-of-order").unwrap();
    let counts: Vec<(i64, u64)> = out.records().into_iter().map(|r: WindowResult<u8, u64>| (r.window.start, r.value)).collect();
    assert_eq!(counts, vec![(0, 3), (10_000, 1), (20_000, 1)]);
}

#[test]
fn an_idle_source_does_not_hold_back_the_watermark() {
    // The quiet source only ends once a window has fired. Without idleness its missing watermark
    // would hold every window back forever and the job would never end.
    for parallelism in [1, 2] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
        let release = Arc::new(AtomicBool::new(false));
        let out = CollectSink::new();
        let busy = env.source("bids", BidsSource::new(50_000, 3));
        let quiet = env.source("quiet", IdleUntilReleased::<Bid>::new(Vec::new(), &release)).idle_timeout(Duration::from_millis(20));
        let released = Arc::clone(&release);
        busy.union([quiet])
            .key_by(|b: &Bid| b.auction % 10)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |b: &Bid| b.ts)
            .count()
            .map(move |r: WindowResult<i64, u64>| {
                released.store(true, Ordering::Relaxed);
                r
            })
            .sink("out", out.clone());
        env.execute("idle").unwrap();
        assert_eq!(out.records().iter().map(|r| r.value).sum::<u64>(), 50_000, "p={parallelism}");
    }
}
