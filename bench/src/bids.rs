//! The four queries of the bids workload (bench/WORKLOADS.md section 1) as DataStream jobs.
//!
//! Every query ends in a discarding sink that reads each output record. `window` counts bids per
//! auction in 10-second tumbling event-time windows, emitting each count once, when the watermark
//! (the generator's `ts - 1 s`) passes the window's end.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::end::{EndWith, QueryEnd};
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{StreamEnvironment, TumblingEventTimeWindows, WindowResult};

/// Length of the `window` query's tumbling windows.
pub const WINDOW_SIZE: Duration = Duration::from_secs(10);

/// Largest lead of one source subtask's watermark over the others in the `window` query.
pub const WINDOW_ALIGNMENT_MAX_DRIFT: Duration = Duration::from_secs(2);

/// A query of the bids workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BidsQuery {
    /// Every field of every record.
    Passthrough,
    /// `auction, bidder, price * 0.908, ts` where `auction % 123 = 0 OR price > 50000`.
    Filter,
    /// Count per auction in 10-second tumbling event-time windows.
    Window,
    /// Running count and maximum price per bidder, updated per record.
    Agg,
}

impl BidsQuery {
    /// All queries, in WORKLOADS.md order.
    pub const ALL: [BidsQuery; 4] = [BidsQuery::Passthrough, BidsQuery::Filter, BidsQuery::Window, BidsQuery::Agg];
}

impl fmt::Display for BidsQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BidsQuery::Passthrough => "passthrough",
            BidsQuery::Filter => "filter",
            BidsQuery::Window => "window",
            BidsQuery::Agg => "agg",
        })
    }
}

impl FromStr for BidsQuery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BidsQuery::ALL
            .into_iter()
            .find(|q| q.to_string() == s)
            .ok_or_else(|| format!("unknown bids query '{s}' (passthrough, filter, window, agg)"))
    }
}

/// A filtered bid in euros: the output of the `filter` query.
#[derive(Debug, Clone, Copy, PartialEq, tethys_engine::rkyv::Archive, tethys_engine::rkyv::Serialize, tethys_engine::rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
pub struct EuroBid {
    /// Auction.
    pub auction: i64,
    /// Bidder.
    pub bidder: i64,
    /// Price in euros.
    pub euro: f64,
    /// Event time.
    pub ts: i64,
}

/// Count of one auction in one window: the output of the `window` query.
pub type AuctionCount = WindowResult<i64, u64>;

/// Running figures of one bidder: the output of the `agg` query.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, tethys_engine::rkyv::Archive, tethys_engine::rkyv::Serialize, tethys_engine::rkyv::Deserialize,
)]
#[rkyv(crate = tethys_engine::rkyv)]
pub struct BidderStats {
    /// Bidder.
    pub bidder: i64,
    /// Bids so far.
    pub count: u64,
    /// Highest price so far.
    pub max_price: i64,
}

/// Whether a bid passes the `filter` query's predicate.
pub fn filter_predicate(bid: &Bid) -> bool {
    bid.auction % 123 == 0 || bid.price > 50_000
}

/// Adds `query` over `source` to `env`, ending in `sink`.
pub fn define(env: &StreamEnvironment, query: BidsQuery, source: BidsSource, sink: DiscardSink) {
    define_split(env, query, source, sink, false);
}

/// `define`, ending wherever `end` puts the results; with `split`, the end of the passthrough
/// and filter queries is a task of its own (behind a rebalance instead of chained), so source
/// and sink can run in different processes.
pub fn define_split(env: &StreamEnvironment, query: BidsQuery, source: BidsSource, end: impl QueryEnd, split: bool) {
    define_with_sources(env, query, source, end, split, None)
}

/// As [`define_split`], with the source's parallelism fixed at `sources` (default: the job's).
pub fn define_with_sources(
    env: &StreamEnvironment,
    query: BidsQuery,
    source: BidsSource,
    end: impl QueryEnd,
    split: bool,
    sources: Option<usize>,
) {
    let bids = env.source("bids", source);
    let bids = match sources {
        Some(parallelism) => bids.parallelism(parallelism),
        None => bids,
    };
    match query {
        BidsQuery::Passthrough if split => {
            bids.rebalance().end_with(end);
        }
        BidsQuery::Passthrough => {
            bids.end_with(end);
        }
        BidsQuery::Filter => {
            let euro = bids.filter(filter_predicate).map(|b: Bid| EuroBid {
                auction: b.auction,
                bidder: b.bidder,
                euro: b.price as f64 * 0.908,
                ts: b.ts,
            });
            if split {
                euro.rebalance().end_with(end);
            } else {
                euro.end_with(end);
            }
        }
        BidsQuery::Window => {
            // Source subtasks that drift apart hold windows open downstream; as a Flink job would,
            // the query aligns them (2 s, the generator's out-of-orderness being 1 s).
            bids.watermark_alignment("bids", WINDOW_ALIGNMENT_MAX_DRIFT)
                .key_by(|b: &Bid| b.auction)
                .window(TumblingEventTimeWindows::of(WINDOW_SIZE), |b: &Bid| b.ts)
                .count()
                .end_with(end);
        }
        BidsQuery::Agg => {
            bids.key_by(|b: &Bid| b.bidder)
                .rolling(
                    "BidderStats",
                    || (0u64, i64::MIN),
                    |&bidder: &i64, state: &mut (u64, i64), bid: Bid| {
                        state.0 += 1;
                        state.1 = state.1.max(bid.price);
                        BidderStats { bidder, count: state.0, max_price: state.1 }
                    },
                )
                .end_with(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tethys_engine::EngineConfig;

    #[test]
    fn every_query_consumes_all_input_and_emits_the_expected_count() {
        let events = 20_000;
        let source = BidsSource::new(events, 5);
        let passing = (1..=events).filter(|&id| filter_predicate(&source.bid(id))).count() as u64;
        let windows = TumblingEventTimeWindows::of(WINDOW_SIZE);
        let window_results = (1..=events)
            .map(|id| source.bid(id))
            .map(|b| (b.auction, windows.assign(b.ts)))
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        for query in BidsQuery::ALL {
            for parallelism in [1, 2] {
                let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
                let sink = DiscardSink::new();
                define(&env, query, source, sink.clone());
                env.execute(&query.to_string()).unwrap();
                let expected = match query {
                    BidsQuery::Filter => passing,
                    BidsQuery::Window => window_results,
                    _ => events,
                };
                assert_eq!(sink.records(), expected, "{query} p={parallelism}");
            }
        }
    }

    #[test]
    fn query_names_parse_back() {
        for query in BidsQuery::ALL {
            assert_eq!(query.to_string().parse::<BidsQuery>().unwrap(), query);
        }
        assert!("nope".parse::<BidsQuery>().is_err());
    }
}
