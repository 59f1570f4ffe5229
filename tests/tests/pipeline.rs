//! End-to-end jobs through the public DataStream API: results of each operator and partitioning
//! against hand-computed expectations, at several parallelisms.

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment};

fn environment(parallelism: usize) -> StreamEnvironment {
    StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() })
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn map_filter_flat_map_match_hand_computed_results() {
    for parallelism in [1, 2, 3] {
        let env = environment(parallelism);
        let out = CollectSink::new();
        env.from_collection((1..=10i64).collect::<Vec<_>>())
            .map(|x| x * 10)
            .filter(|x| x % 20 == 0)
            .flat_map(|x| vec![x, x + 1])
            .sink("out", out.clone());
        let result = env.execute("stateless").unwrap();
        assert_eq!(sorted(out.records()), vec![20, 21, 40, 41, 60, 61, 80, 81, 100, 101], "p={parallelism}");
        assert_eq!(result.operator("Filter").unwrap().records_in, 10);
        assert_eq!(result.operator("Filter").unwrap().records_out, 5);
        assert_eq!(result.operator("FlatMap").unwrap().records_out, 10);
    }
}

#[test]
fn keyed_sum_count_reduce_emit_rolling_results() {
    for parallelism in [1, 2, 4] {
        let env = environment(parallelism);
        let sums = CollectSink::new();
        let input: Vec<(char, i64)> = vec![('a', 1), ('b', 10), ('a', 2), ('c', 100), ('b', 20), ('a', 3)];
        env.from_collection(input.clone()).parallelism(1).key_by(|r: &(char, i64)| r.0).sum(|r| r.1).sink("sums", sums.clone());
        let counts = CollectSink::new();
        env.from_collection(input.clone()).parallelism(1).key_by(|r: &(char, i64)| r.0).count().sink("counts", counts.clone());
        let maxima = CollectSink::new();
        env.from_collection(input)
            .parallelism(1)
            .key_by(|r: &(char, i64)| r.0)
            .reduce(|a, b| if b.1 > a.1 { b } else { a })
            .sink("max", maxima.clone());
        env.execute("keyed").unwrap();
        // One source subtask keeps input order, so each key's updates arrive in order.
        assert_eq!(sorted(sums.records()), vec![('a', 1), ('a', 3), ('a', 6), ('b', 10), ('b', 30), ('c', 100)], "p={parallelism}");
        assert_eq!(sorted(counts.records()), vec![('a', 1), ('a', 2), ('a', 3), ('b', 1), ('b', 2), ('c', 1)]);
        assert_eq!(sorted(maxima.records()), vec![('a', 1), ('a', 2), ('a', 3), ('b', 10), ('b', 20), ('c', 100)]);
    }
}

#[test]
fn keyed_final_counts_are_exact_at_every_parallelism() {
    // Each key's last update equals its number of records: nothing lost, duplicated or split.
    let n = 50_000u64;
    let expected = {
        let source = BidsSource::new(n, 3);
        let mut counts = std::collections::BTreeMap::new();
        for id in 1..=n {
            *counts.entry(source.bid(id).auction).or_insert(0u64) += 1;
        }
        counts
    };
    for parallelism in [1, 2, 3] {
        let env = environment(parallelism);
        let out = CollectSink::new();
        env.source("bids", BidsSource::new(n, 3)).key_by(|b: &Bid| b.auction).count().sink("out", out.clone());
        env.execute("counts").unwrap();
        let mut last = std::collections::BTreeMap::new();
        for (auction, count) in out.records() {
            let entry = last.entry(auction).or_insert(0u64);
            *entry = (*entry).max(count);
        }
        assert_eq!(last, expected, "p={parallelism}");
    }
}

#[test]
fn union_rebalance_and_broadcast_deliver_every_record() {
    let env = environment(2);
    let out = CollectSink::new();
    let left = env.from_collection((0..100i64).collect::<Vec<_>>());
    let right = env.from_collection((100..150i64).collect::<Vec<_>>()).parallelism(1);
    left.union([right.rebalance().map(|x| x).parallelism(2)]).rebalance().map(|x| x + 1).parallelism(3).sink("out", out.clone());
    env.execute("union").unwrap();
    assert_eq!(sorted(out.records()), (1..151).collect::<Vec<i64>>());

    let env = environment(1);
    let out = CollectSink::new();
    env.from_collection(vec![1i64, 2, 3]).broadcast().map(|x| x).parallelism(3).sink("out", out.clone()).parallelism(3);
    env.execute("broadcast").unwrap();
    assert_eq!(sorted(out.records()), vec![1, 1, 1, 2, 2, 2, 3, 3, 3]);
}

#[test]
fn bids_job_runs_to_the_end_of_input() {
    for parallelism in [1, 2] {
        let env = environment(parallelism);
        let sink = DiscardSink::new();
        env.source("bids", BidsSource::new(100_000, 1))
            .filter(|b: &Bid| b.auction % 123 == 0 || b.price > 50_000)
            .map(|b: Bid| (b.auction, b.bidder, b.price as f64 * 0.908, b.ts))
            .sink("discard", sink.clone());
        let result = env.execute("filter").unwrap();
        let expected = (1..=100_000).map(|id| BidsSource::new(0, 1).bid(id)).filter(|b| b.auction % 123 == 0 || b.price > 50_000).count();
        assert_eq!(sink.records(), expected as u64);
        assert_eq!(result.operator("Source: bids").unwrap().records_out, 100_000);
    }
}

#[test]
fn a_stream_fanned_out_reaches_each_consumer_whole() {
    for parallelism in [1, 2] {
        let env = environment(parallelism);
        let (tens, odds, windows) = (CollectSink::new(), CollectSink::new(), CollectSink::new());
        let mut streams = env.from_collection((0..1000i64).collect::<Vec<_>>()).fan_out(3).into_iter();
        let (first, second, third) = (streams.next().unwrap(), streams.next().unwrap(), streams.next().unwrap());
        assert!(streams.next().is_none());
        first.map(|x| x * 10).sink("tens", tens.clone());
        second.filter(|x| x % 2 == 1).sink("odds", odds.clone());
        // Event time and the end of input's watermark reach a copy: its windows fire.
        third
            .key_by(|x: &i64| x % 3)
            .window(tethys_engine::TumblingEventTimeWindows::of(std::time::Duration::from_millis(100)), |x: &i64| *x)
            .count()
            .map(|count: tethys_engine::WindowResult<i64, u64>| (count.window.start, count.key, count.value))
            .sink("windows", windows.clone());
        let result = env.execute("fan-out").unwrap();
        assert_eq!(sorted(tens.records()), (0..1000).map(|x| x * 10).collect::<Vec<i64>>(), "p={parallelism}");
        assert_eq!(sorted(odds.records()), (0..1000).filter(|x| x % 2 == 1).collect::<Vec<i64>>());
        let expected: Vec<(i64, i64, u64)> = (0..10)
            .flat_map(|window| {
                (0..3).map(move |key| (window * 100, key, (window * 100..window * 100 + 100).filter(|x| x % 3 == key).count() as u64))
            })
            .collect();
        assert_eq!(sorted(windows.records()), sorted(expected));
        assert_eq!(result.operator("FanOut").unwrap().records_in, 1000);
    }
}

/// Sends even numbers on and odd ones to a side output.
struct SplitOdd {
    odd: tethys_engine::OutputTag<String>,
}

impl tethys_engine::FrameOperator<i64, i64> for SplitOdd {
    fn process(&mut self, frame: Vec<i64>, out: &mut tethys_engine::Output<'_, i64>) -> Result<(), tethys_engine::UserError> {
        for x in frame {
            if x % 2 == 0 {
                out.emit(x);
            } else {
                out.emit_side(&self.odd, format!("odd {x}"));
            }
        }
        Ok(())
    }
}

#[test]
fn side_outputs_carry_their_own_type_to_their_own_consumer() {
    for parallelism in [1, 2] {
        let env = environment(parallelism);
        let odd = tethys_engine::OutputTag::<String>::new("odd");
        let (evens, odds) = (CollectSink::new(), CollectSink::new());
        let tag = odd.clone();
        let split = env.from_collection((0..20i64).collect::<Vec<_>>()).process("split", move |_| SplitOdd { odd: tag.clone() });
        split.side_output(&odd).rebalance().map(|s: String| s.to_uppercase()).parallelism(3).sink("odds", odds.clone());
        split.map(|x| x * 10).sink("evens", evens.clone());
        let result = env.execute("side").unwrap();
        assert_eq!(sorted(evens.records()), (0..20).filter(|x| x % 2 == 0).map(|x| x * 10).collect::<Vec<i64>>());
        assert_eq!(sorted(odds.records()), sorted((0..20).filter(|x| x % 2 == 1).map(|x| format!("ODD {x}")).collect::<Vec<_>>()));
        assert_eq!(result.operator("split").unwrap().records_in, 20);
    }
}
