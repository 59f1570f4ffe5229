//! Event time end to end: watermarks flow from the sources through shuffles (minimum over
//! channels), and tumbling windows emit exactly the hand-computed counts, once per key and window.

use std::collections::BTreeMap;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment, TumblingEventTimeWindows, WindowResult};

#[test]
fn tumbling_window_counts_match_hand_computed_counts_at_every_parallelism() {
    let events = 60_000u64;
    let source = BidsSource::new(events, 9);
    let windows = TumblingEventTimeWindows::of(Duration::from_secs(10));
    let mut expected = BTreeMap::new();
    for id in 1..=events {
        let bid = source.bid(id);
        *expected.entry((bid.auction % 50, windows.assign(bid.ts).start)).or_insert(0u64) += 1;
    }
    for parallelism in [1, 2, 3] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
        let out = CollectSink::new();
        env.source("bids", source).key_by(|b: &Bid| b.auction % 50).window(windows, |b: &Bid| b.ts).count().sink("out", out.clone());
        env.execute("windows").unwrap();
        let mut actual = BTreeMap::new();
        for WindowResult { key, window, value } in out.records() {
            assert_eq!(window.end - window.start, 10_000);
            assert!(actual.insert((key, window.start), value).is_none(), "window ({key}, {window:?}) fired twice");
        }
        assert_eq!(actual, expected, "p={parallelism}");
    }
}

#[test]
fn windows_fire_on_the_watermark_before_the_input_ends() {
    // With a rate-limited source, results must appear while it still runs: the source's watermark
    // (ts - 1 s), not the end of input, fires the windows. The source counts what it has emitted;
    // each result records that count when it fires.
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let events = 100_000u64;
    let emitted = Arc::new(AtomicU64::new(0));
    let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, ..EngineConfig::default() });
    let fired = CollectSink::new();
    let counter = Arc::clone(&emitted);
    let reader = Arc::clone(&emitted);
    env.source("bids", BidsSource::new(events, 1).with_rate(200_000))
        .map(move |b: Bid| {
            counter.fetch_add(1, Ordering::Relaxed);
            b
        })
        .key_by(|_b: &Bid| 0u8)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |b: &Bid| b.ts)
        .count()
        .map(move |r: WindowResult<u8, u64>| (r, reader.load(Ordering::Relaxed)))
        .sink("out", fired.clone());
    env.execute("early-firing").unwrap();
    let fired = fired.records();
    assert_eq!(fired.iter().map(|(r, _)| r.value).sum::<u64>(), events);
    assert_eq!(fired.len(), 11, "windows [0,10s) .. [100s,110s) for ids 1..=100000");
    // Window [0, 10 s) closes at watermark 9 999, i.e. once bid 10 999 is out: it fires long before
    // the source has emitted everything (the source needs 0.5 s for the rest).
    let (_, emitted_when_first_fired) = fired.iter().find(|(r, _)| r.window.start == 0).unwrap();
    assert!(*emitted_when_first_fired < events, "the first window waited for the end of input");
}
