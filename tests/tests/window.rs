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
        for WindowResult { key, window, value, .. } in out.records() {
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

mod kinds_and_lateness {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tethys_engine::sink::collect::CollectSink;
    use tethys_engine::source::bids::{Bid, BidsSource};
    use tethys_engine::{
        CumulateEventTimeWindows, EngineConfig, LatePolicy, LateRecord, OutputTag, SlidingEventTimeWindows, StreamEnvironment, TimeWindow,
        WatermarkStrategy, WindowResult,
    };

    fn expected_counts(source: BidsSource, events: u64, assign: impl Fn(i64) -> Vec<TimeWindow>) -> BTreeMap<(i64, TimeWindow), u64> {
        let mut expected = BTreeMap::new();
        for id in 1..=events {
            let bid = source.bid(id);
            for window in assign(bid.ts) {
                *expected.entry((bid.auction % 7, window)).or_insert(0) += 1;
            }
        }
        expected
    }

    fn collect_counts(out: &CollectSink<WindowResult<i64, u64>>) -> BTreeMap<(i64, TimeWindow), u64> {
        let mut actual = BTreeMap::new();
        for r in out.records() {
            assert!(!r.is_update);
            assert!(actual.insert((r.key, r.window), r.value).is_none(), "({}, {:?}) fired twice", r.key, r.window);
        }
        actual
    }

    #[test]
    fn sliding_and_cumulate_windows_match_brute_force_counts() {
        let events = 40_000u64;
        let source = BidsSource::new(events, 4);
        let sliding = SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(3));
        let cumulate = CumulateEventTimeWindows::of(Duration::from_secs(2), Duration::from_secs(10));
        let expected_sliding = expected_counts(source, events, |ts| sliding.assign(ts).collect());
        let expected_cumulate = expected_counts(source, events, |ts| cumulate.assign(ts).collect());
        for parallelism in [1, 2] {
            let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
            let (sliding_out, cumulate_out) = (CollectSink::new(), CollectSink::new());
            env.source("bids", source)
                .key_by(|b: &Bid| b.auction % 7)
                .window(sliding, |b: &Bid| b.ts)
                .count()
                .sink("sliding", sliding_out.clone());
            env.source("bids", source)
                .key_by(|b: &Bid| b.auction % 7)
                .window(cumulate, |b: &Bid| b.ts)
                .count()
                .sink("cumulate", cumulate_out.clone());
            env.execute("sliding-cumulate").unwrap();
            assert_eq!(collect_counts(&sliding_out), expected_sliding, "sliding p={parallelism}");
            assert_eq!(collect_counts(&cumulate_out), expected_cumulate, "cumulate p={parallelism}");
        }
    }

    /// Sums prices, and counts, per window (a result function reads both).
    struct PriceSum;
    impl tethys_engine::AggregateFunction<Bid, (i64, u64), i64> for PriceSum {
        fn create_accumulator(&self) -> (i64, u64) {
            (0, 0)
        }
        fn add(&self, accumulator: &mut (i64, u64), bid: Bid) {
            *accumulator = (accumulator.0 + bid.price, accumulator.1 + 1);
        }
        fn get_result(&self, accumulator: &(i64, u64)) -> i64 {
            accumulator.0
        }
    }
    impl tethys_engine::MergingAggregateFunction<Bid, (i64, u64), i64> for PriceSum {
        fn merge(&self, a: (i64, u64), b: (i64, u64)) -> (i64, u64) {
            (a.0 + b.0, a.1 + b.1)
        }
    }

    #[test]
    fn a_result_function_makes_each_window_s_output_from_its_key_window_and_accumulator() {
        let events = 30_000u64;
        let source = BidsSource::new(events, 6);
        let sliding = SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(4));
        let sessions = tethys_engine::EventTimeSessionWindows::with_gap(Duration::from_millis(2_500));
        for parallelism in [1, 2] {
            let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
            let (outputs, results_out) = ([CollectSink::new(), CollectSink::new()], [CollectSink::new(), CollectSink::new()]);
            // Seven busy keys for the sliding windows; sessions of 3,000 sparse ones.
            let keyed = |keys: i64| env.source("bids", source).key_by(move |b: &Bid| b.auction % keys);
            let row = |key: &i64, window: TimeWindow, sums: &(i64, u64), is_update: bool| (*key, window, sums.0, sums.1, is_update);
            keyed(7).window(sliding, |b: &Bid| b.ts).aggregate_with(PriceSum, row).sink("sliding", outputs[0].clone());
            keyed(7).window(sliding, |b: &Bid| b.ts).aggregate(PriceSum).sink("sliding-results", results_out[0].clone());
            keyed(3_000).window(sessions, |b: &Bid| b.ts).aggregate_with(PriceSum, row).sink("sessions", outputs[1].clone());
            keyed(3_000).window(sessions, |b: &Bid| b.ts).aggregate(PriceSum).sink("session-results", results_out[1].clone());
            env.execute("result-functions").unwrap();
            let rows = |out: &CollectSink<(i64, TimeWindow, i64, u64, bool)>| {
                let mut rows = out.records();
                assert!(rows.iter().all(|row| !row.4), "no late records, no updates");
                rows.sort();
                rows
            };
            let results = |out: &CollectSink<WindowResult<i64, i64>>| {
                let mut results: Vec<_> = out.records().into_iter().map(|r| (r.key, r.window, r.value)).collect();
                results.sort();
                results
            };
            let (sliding_rows, session_rows) = (rows(&outputs[0]), rows(&outputs[1]));
            let counts: BTreeMap<(i64, TimeWindow), u64> = sliding_rows.iter().map(|row| ((row.0, row.1), row.3)).collect();
            assert_eq!(counts, expected_counts(source, events, |ts| sliding.assign(ts).collect()), "p={parallelism}");
            let sums = |rows: &[(i64, TimeWindow, i64, u64, bool)]| rows.iter().map(|row| (row.0, row.1, row.2)).collect::<Vec<_>>();
            assert_eq!(sums(&sliding_rows), results(&results_out[0]), "p={parallelism}");
            assert!(session_rows.len() > 100);
            assert_eq!(sums(&session_rows), results(&results_out[1]), "merged sessions, p={parallelism}");
        }
    }

    /// Runs the lateness scenario: timestamps 1000, 2000, 11000 (fires [0,10s) with 2), 3000 (late
    /// within 5 s of lateness: re-fires [0,10s) with 3, as an update), 16000 (retires [0,10s)),
    /// 4000 (beyond lateness: the policy), then the end fires [10s,20s).
    fn lateness_job(
        policy: LatePolicy<i64>,
        late_tag: Option<OutputTag<LateRecord<i64>>>,
    ) -> (Vec<(i64, u64, bool)>, Vec<LateRecord<i64>>, tethys_engine::JobResult) {
        let config = EngineConfig { slots: 2, parallelism: 1, frame_records_max: 1, ..EngineConfig::default() };
        let env = StreamEnvironment::new(config);
        let (out, late) = (CollectSink::new(), CollectSink::new());
        let windows = env
            .from_collection(vec![1_000i64, 2_000, 11_000, 3_000, 16_000, 4_000])
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness_per_record(Duration::ZERO, |ts: &i64| *ts))
            .key_by(|_ts: &i64| 0u8)
            .window(tethys_engine::TumblingEventTimeWindows::of(Duration::from_secs(10)), |ts: &i64| *ts)
            .allowed_lateness(Duration::from_secs(5))
            .late_records(policy)
            .count();
        if let Some(tag) = &late_tag {
            windows.side_output(tag).sink("late", late.clone());
        }
        windows.sink("out", out.clone());
        let result = env.execute("lateness").unwrap();
        let results = out.records().into_iter().map(|r: WindowResult<u8, u64>| (r.window.start, r.value, r.is_update)).collect();
        (results, late.records(), result)
    }

    #[test]
    fn late_record_within_lateness_refires_window_and_later_ones_are_dropped_and_counted() {
        let (results, _, job) = lateness_job(LatePolicy::Drop, None);
        assert_eq!(results, vec![(0, 2, false), (0, 3, true), (10_000, 2, false)]);
        assert_eq!(job.operator("Window").unwrap().extra["late_records_dropped"], 1);
    }

    #[test]
    fn record_beyond_lateness_goes_to_the_side_output_with_the_window_it_missed() {
        let tag = OutputTag::new("late");
        let (results, late, _) = lateness_job(LatePolicy::SideOutput(tag.clone()), Some(tag));
        assert_eq!(results, vec![(0, 2, false), (0, 3, true), (10_000, 2, false)]);
        assert_eq!(late, vec![LateRecord { record: 4_000, window: TimeWindow { start: 0, end: 10_000 }, watermark: 15_999 }]);
    }

    #[test]
    fn record_beyond_lateness_joins_the_earliest_open_window() {
        let (results, _, job) = lateness_job(LatePolicy::EarliestOpenWindow, None);
        assert_eq!(results, vec![(0, 2, false), (0, 3, true), (10_000, 3, false)]);
        assert_eq!(job.operator("Window").unwrap().extra["late_records_reassigned"], 1);
    }

    #[test]
    fn process_and_reduce_window_functions_see_the_whole_window() {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 2, ..EngineConfig::default() });
        let (processed, reduced) = (CollectSink::new(), CollectSink::new());
        let input: Vec<(char, i64)> = vec![('a', 1_000), ('b', 2_000), ('a', 4_000), ('a', 12_000), ('b', 3_000)];
        let tumbling = tethys_engine::TumblingEventTimeWindows::of(Duration::from_secs(10));
        env.from_collection(input.clone())
            .parallelism(1)
            .key_by(|r: &(char, i64)| r.0)
            .window(tumbling, |r: &(char, i64)| r.1)
            .process(|ctx, records: &[(char, i64)], out| {
                let mut times: Vec<i64> = records.iter().map(|r| r.1).collect();
                times.sort();
                out.emit((*ctx.key, ctx.window.start, times));
                Ok(())
            })
            .sink("processed", processed.clone());
        env.from_collection(input)
            .parallelism(1)
            .key_by(|r: &(char, i64)| r.0)
            .window(tumbling, |r: &(char, i64)| r.1)
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
            .sink("reduced", reduced.clone());
        env.execute("functions").unwrap();
        let mut processed = processed.records();
        processed.sort();
        assert_eq!(processed, vec![('a', 0, vec![1_000, 4_000]), ('a', 10_000, vec![12_000]), ('b', 0, vec![2_000, 3_000])]);
        let mut reduced: Vec<(char, i64, i64)> =
            reduced.records().into_iter().map(|r: WindowResult<char, (char, i64)>| (r.key, r.window.start, r.value.1)).collect();
        reduced.sort();
        assert_eq!(reduced, vec![('a', 0, 4_000), ('a', 10_000, 12_000), ('b', 0, 3_000)]);
    }
}

mod sessions {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use tethys_engine::sink::collect::CollectSink;
    use tethys_engine::source::bids::{Bid, BidsSource};
    use tethys_engine::{EngineConfig, EventTimeSessionWindows, StreamEnvironment, TimeWindow, WatermarkStrategy, WindowResult};

    #[test]
    fn out_of_order_records_merge_sessions() {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, frame_records_max: 1, ..EngineConfig::default() });
        let out = CollectSink::new();
        // a: 1000 and 3000 make [1000, 8000); 7000 extends it to [1000, 12000); 20000 is alone.
        let input: Vec<(char, i64)> = vec![('a', 1_000), ('a', 3_000), ('b', 2_000), ('a', 20_000), ('a', 7_000)];
        env.from_collection(input)
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness(
                Duration::from_secs(20),
                |r: &(char, i64)| r.1,
            ))
            .key_by(|r: &(char, i64)| r.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_secs(5)), |r: &(char, i64)| r.1)
            .count()
            .sink("out", out.clone());
        env.execute("sessions").unwrap();
        let mut sessions: Vec<(char, i64, i64, u64)> =
            out.records().into_iter().map(|r: WindowResult<char, u64>| (r.key, r.window.start, r.window.end, r.value)).collect();
        sessions.sort();
        assert_eq!(sessions, vec![('a', 1_000, 12_000, 3), ('a', 20_000, 25_000, 1), ('b', 2_000, 7_000, 1)]);
    }

    #[test]
    fn session_counts_match_brute_force_at_every_parallelism() {
        let (events, gap) = (30_000u64, 2_500i64);
        let source = BidsSource::new(events, 8);
        let mut per_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for id in 1..=events {
            let bid = source.bid(id);
            per_key.entry(bid.auction % 3_000).or_default().push(bid.ts);
        }
        let mut expected = BTreeMap::new();
        for (key, mut times) in per_key {
            times.sort();
            let mut start = 0;
            for i in 1..=times.len() {
                // Windows [t, t + gap) merge when they touch: split only where the next record is
                // more than a gap after the previous one.
                if i == times.len() || times[i] - times[i - 1] > gap {
                    expected.insert((key, TimeWindow { start: times[start], end: times[i - 1] + gap }), (i - start) as u64);
                    start = i;
                }
            }
        }
        for parallelism in [1, 2] {
            let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
            let out = CollectSink::new();
            env.source("bids", source)
                .key_by(|b: &Bid| b.auction % 3_000)
                .window(EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64)), |b: &Bid| b.ts)
                .count()
                .sink("out", out.clone());
            let result = env.execute("sessions").unwrap();
            let mut actual = BTreeMap::new();
            for r in out.records() {
                assert!(actual.insert((r.key, r.window), r.value).is_none(), "session fired twice");
            }
            assert_eq!(actual, expected, "p={parallelism}");
            assert_eq!(result.operator("Window").unwrap().extra["late_records_dropped"], 0);
        }
    }
}

mod global {
    use tethys_engine::sink::collect::CollectSink;
    use tethys_engine::{CountTrigger, EngineConfig, GlobalWindows, StreamEnvironment, WindowResult};

    #[test]
    fn count_windows_fire_every_n_records_per_key() {
        for parallelism in [1, 2] {
            let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
            let (tumbling, sliding) = (CollectSink::new(), CollectSink::new());
            let input: Vec<(char, i64)> = (0..10).map(|i| ('a', i)).chain((0..7).map(|i| ('b', 100 + i))).collect();
            // Purging count windows of 3: sums of consecutive groups of three; the rest never fires.
            env.from_collection(input.clone())
                .parallelism(1)
                .key_by(|r: &(char, i64)| r.0)
                .window(GlobalWindows::create().with_trigger(CountTrigger::of(3).purging()), |r: &(char, i64)| r.1)
                .reduce(|a, b| (a.0, a.1 + b.1))
                .sink("tumbling", tumbling.clone());
            // Without purging, each firing covers everything so far (and is an update after the first).
            env.from_collection(input)
                .parallelism(1)
                .key_by(|r: &(char, i64)| r.0)
                .window(GlobalWindows::create().with_trigger(CountTrigger::of(3)), |r: &(char, i64)| r.1)
                .count()
                .sink("accumulating", sliding.clone());
            env.execute("count-windows").unwrap();
            let mut sums: Vec<(char, i64)> = tumbling.records().into_iter().map(|r: WindowResult<char, (char, i64)>| r.value).collect();
            sums.sort();
            assert_eq!(sums, vec![('a', 3), ('a', 12), ('a', 21), ('b', 303), ('b', 312)], "p={parallelism}");
            let mut counts: Vec<(char, u64, bool)> =
                sliding.records().into_iter().map(|r: WindowResult<char, u64>| (r.key, r.value, r.is_update)).collect();
            counts.sort();
            assert_eq!(counts, vec![('a', 3, false), ('a', 6, true), ('a', 9, true), ('b', 3, false), ('b', 6, true)]);
        }
    }
}
