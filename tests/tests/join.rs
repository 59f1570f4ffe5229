//! Joins of two keyed streams: window join and interval join against brute-force pairings.

use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment, TumblingEventTimeWindows};

const EVENTS: u64 = 20_000;

fn sides() -> (Vec<Bid>, Vec<Bid>) {
    let source = BidsSource::new(EVENTS, 21);
    (1..=EVENTS).map(|id| source.bid(id)).partition(|b| b.id % 2 == 0)
}

fn sorted(mut pairs: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    pairs.sort();
    pairs
}

#[test]
fn window_join_pairs_records_of_a_key_in_the_same_window() {
    let (lefts, rights) = sides();
    let windows = TumblingEventTimeWindows::of(Duration::from_secs(2));
    let mut expected = Vec::new();
    for l in &lefts {
        for r in rights.iter().filter(|r| r.auction % 50 == l.auction % 50 && windows.assign(r.ts) == windows.assign(l.ts)) {
            expected.push((l.id, r.id));
        }
    }
    for parallelism in [1, 2] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
        let out = CollectSink::new();
        let bids = || env.source("bids", BidsSource::new(EVENTS, 21));
        bids()
            .filter(|b: &Bid| b.id % 2 == 0)
            .join(bids().filter(|b: &Bid| b.id % 2 == 1))
            .on(|l: &Bid| l.auction % 50, |r: &Bid| r.auction % 50)
            .window(windows, |l: &Bid| l.ts, |r: &Bid| r.ts, |l: &Bid, r: &Bid| (l.id, r.id))
            .sink("out", out.clone());
        env.execute("window-join").unwrap();
        assert_eq!(sorted(out.records()), sorted(expected.clone()), "p={parallelism}");
    }
}

#[test]
fn interval_join_pairs_records_within_the_bounds() {
    let (lefts, rights) = sides();
    let (lower, upper) = (-300i64, 700i64);
    let mut expected = Vec::new();
    for l in &lefts {
        for r in rights.iter().filter(|r| r.auction % 50 == l.auction % 50 && l.ts + lower <= r.ts && r.ts <= l.ts + upper) {
            expected.push((l.id, r.id));
        }
    }
    assert!(expected.len() > 1_000, "the case exercises many pairs");
    for parallelism in [1, 2] {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
        let out = CollectSink::new();
        let bids = || env.source("bids", BidsSource::new(EVENTS, 21));
        bids()
            .filter(|b: &Bid| b.id % 2 == 0)
            .join(bids().filter(|b: &Bid| b.id % 2 == 1))
            .on(|l: &Bid| l.auction % 50, |r: &Bid| r.auction % 50)
            .interval(lower, upper, |l: &Bid| l.ts, |r: &Bid| r.ts, |l: &Bid, r: &Bid| (l.id, r.id))
            .sink("out", out.clone());
        let result = env.execute("interval-join").unwrap();
        assert_eq!(sorted(out.records()), sorted(expected.clone()), "p={parallelism}");
        let metrics = &result.operator("IntervalJoin").unwrap().extra;
        assert_eq!(metrics["late_records_dropped"], 0);
        assert_eq!((metrics["state_keys"], metrics["event_timers"]), (0, 0), "the final watermark cleans up every buffer and timer");
    }
}
