//! Nexmark queries (bench/WORKLOADS.md section 2) as DataStream jobs over the Nexmark generator, as the
//! nexmark project defines them for Flink. Throughput counts every generated event (persons,
//! auctions and bids), as Nexmark reports it.
//!
//! - q0, pass-through: `SELECT auction, bidder, price, dateTime, extra FROM bid`.
//! - q1, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
//!   FROM bid`.
//! - q2, selection: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
//! - q5, hot items: per 10 s sliding window (slide 2 s), the auctions with the most bids.
//! - q7, highest bid: per 10 s tumbling window, the bids with the highest price.
//! - q8, monitor new users: persons who created an auction in the 10 s tumbling window in which
//!   they registered (a window join of persons and auctions on person id = seller).
//!
//! Event time is the events' `date_time`; the watermark is the generator's (4 s behind).

use std::fmt;
use std::str::FromStr;

use crate::end::{EndWith, QueryEnd};
use std::time::Duration;
use tethys_engine::sink::discard::DiscardSink;

use tethys_engine::operator::join::JoinSide;
use tethys_engine::source::nexmark::{Auction, ExtraStr, NexmarkBid, NexmarkEvent, NexmarkSource, Person};
use tethys_engine::{
    AggregateFunction, DataStream, InlineStr, SlidingEventTimeWindows, StreamEnvironment, TimeWindow, TumblingEventTimeWindows,
    WindowResult,
};

/// A Nexmark query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkQuery {
    /// Pass-through of bids.
    Q0,
    /// Currency conversion of bid prices.
    Q1,
    /// Selection of bids on every 123rd auction.
    Q2,
    /// Hot items: sliding-window counts, then the maximum per window.
    Q5,
    /// Highest bid per tumbling window.
    Q7,
    /// New users who opened an auction in their first window: a window join.
    Q8,
}

impl NexmarkQuery {
    /// All implemented queries.
    pub const ALL: [NexmarkQuery; 6] =
        [NexmarkQuery::Q0, NexmarkQuery::Q1, NexmarkQuery::Q2, NexmarkQuery::Q5, NexmarkQuery::Q7, NexmarkQuery::Q8];
}

impl fmt::Display for NexmarkQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NexmarkQuery::Q0 => "q0",
            NexmarkQuery::Q1 => "q1",
            NexmarkQuery::Q2 => "q2",
            NexmarkQuery::Q5 => "q5",
            NexmarkQuery::Q7 => "q7",
            NexmarkQuery::Q8 => "q8",
        })
    }
}

impl FromStr for NexmarkQuery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NexmarkQuery::ALL
            .into_iter()
            .find(|q| q.to_string() == s)
            .ok_or_else(|| format!("unknown Nexmark query '{s}' (q0, q1, q2, q5, q7, q8)"))
    }
}

/// A bid with its price converted to euros: the output of q1.
#[derive(Debug, Clone, Copy, PartialEq, tethys_engine::rkyv::Archive, tethys_engine::rkyv::Serialize, tethys_engine::rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
pub struct EuroBid {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price in euros.
    pub price: f64,
    /// Event time.
    pub date_time: i64,
    /// Padding.
    pub extra: ExtraStr,
}

/// An auction with its bid count in a window: the output of q5.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    tethys_engine::rkyv::Archive,
    tethys_engine::rkyv::Serialize,
    tethys_engine::rkyv::Deserialize,
)]
#[rkyv(crate = tethys_engine::rkyv)]
pub struct HotItem {
    /// Auction id.
    pub auction: i64,
    /// Bids on it in the window.
    pub bids: u64,
    /// The window.
    pub window: TimeWindow,
}

/// A person who opened an auction in their registration window: the output of q8.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    tethys_engine::rkyv::Archive,
    tethys_engine::rkyv::Serialize,
    tethys_engine::rkyv::Deserialize,
)]
#[rkyv(crate = tethys_engine::rkyv)]
pub struct NewSeller {
    /// Person id.
    pub id: i64,
    /// Person name.
    pub name: InlineStr<16>,
    /// Start of the window.
    pub window_start: i64,
}

/// Length of q5's sliding windows.
pub const Q5_WINDOW: Duration = Duration::from_secs(10);
/// Slide of q5's windows.
pub const Q5_SLIDE: Duration = Duration::from_secs(2);
/// Length of q7's and q8's tumbling windows.
pub const Q7_Q8_WINDOW: Duration = Duration::from_secs(10);

/// The highest price of a window and every bid at that price (ties kept).
pub struct HighestBids;

impl AggregateFunction<NexmarkBid, (i64, Vec<NexmarkBid>), Vec<NexmarkBid>> for HighestBids {
    fn create_accumulator(&self) -> (i64, Vec<NexmarkBid>) {
        (i64::MIN, Vec::new())
    }

    fn add(&self, (max, bids): &mut (i64, Vec<NexmarkBid>), bid: NexmarkBid) {
        if bid.price > *max {
            *max = bid.price;
            bids.clear();
        }
        if bid.price == *max {
            bids.push(bid);
        }
    }

    fn get_result(&self, (_, bids): &(i64, Vec<NexmarkBid>)) -> Vec<NexmarkBid> {
        bids.clone()
    }
}

/// The person or auction of an event, tagged for q8's window join.
fn person_or_auction(event: NexmarkEvent) -> Option<JoinSide<Person, Auction>> {
    match event {
        NexmarkEvent::Person(person) => Some(JoinSide::Left(person)),
        NexmarkEvent::Auction(auction) => Some(JoinSide::Right(auction)),
        NexmarkEvent::Bid(_) => None,
    }
}

/// The bid of an event, if it is one.
pub(crate) fn bid(event: NexmarkEvent) -> Option<NexmarkBid> {
    match event {
        NexmarkEvent::Bid(bid) => Some(bid),
        _ => None,
    }
}

/// Adds `query` over `source` to `env`, ending in `sink`.
pub fn define(env: &StreamEnvironment, query: NexmarkQuery, source: NexmarkSource, sink: DiscardSink) {
    define_into(env, query, source, sink);
}

/// `define`, ending wherever `end` puts the results.
pub fn define_into(env: &StreamEnvironment, query: NexmarkQuery, source: NexmarkSource, end: impl QueryEnd) {
    let events = env.source("nexmark", source);
    let bids = |events: DataStream<NexmarkEvent>| events.flat_map(bid).name("bids");
    match query {
        NexmarkQuery::Q0 => {
            bids(events).end_with(end);
        }
        NexmarkQuery::Q1 => {
            bids(events)
                .map(|b: NexmarkBid| EuroBid {
                    auction: b.auction,
                    bidder: b.bidder,
                    price: b.price as f64 * 0.908,
                    date_time: b.date_time,
                    extra: b.extra,
                })
                .end_with(end);
        }
        NexmarkQuery::Q2 => {
            bids(events).filter(|b: &NexmarkBid| b.auction % 123 == 0).map(|b: NexmarkBid| (b.auction, b.price)).end_with(end);
        }
        NexmarkQuery::Q5 => {
            bids(events)
                .key_by(|b: &NexmarkBid| b.auction)
                .window(SlidingEventTimeWindows::of(Q5_WINDOW, Q5_SLIDE), |b: &NexmarkBid| b.date_time)
                .count()
                // Each window's counts meet in one place; a count carries its window's max
                // timestamp as event time, so the slide-long window around it holds exactly the
                // counts of that window and fires when they are all in.
                .key_by(|count: &WindowResult<i64, u64>| count.window.start)
                .window(TumblingEventTimeWindows::of(Q5_SLIDE), |count: &WindowResult<i64, u64>| count.window.max_timestamp())
                .process(|_ctx, counts: &[WindowResult<i64, u64>], out| {
                    let most = counts.iter().map(|c| c.value).max().unwrap_or(0);
                    for count in counts.iter().filter(|c| c.value == most) {
                        out.emit(HotItem { auction: count.key, bids: count.value, window: count.window });
                    }
                    Ok(())
                })
                .end_with(end);
        }
        NexmarkQuery::Q7 => {
            bids(events)
                .key_by(|_b: &NexmarkBid| ())
                .window(TumblingEventTimeWindows::of(Q7_Q8_WINDOW), |b: &NexmarkBid| b.date_time)
                .aggregate(HighestBids)
                .flat_map(|highest: WindowResult<(), Vec<NexmarkBid>>| highest.value)
                .end_with(end);
        }
        NexmarkQuery::Q8 => {
            events
                .flat_map(person_or_auction)
                .name("persons-auctions")
                .key_by(|side: &JoinSide<Person, Auction>| match side {
                    JoinSide::Left(person) => person.id,
                    JoinSide::Right(auction) => auction.seller,
                })
                .window(TumblingEventTimeWindows::of(Q7_Q8_WINDOW), |side: &JoinSide<Person, Auction>| match side {
                    JoinSide::Left(person) => person.date_time,
                    JoinSide::Right(auction) => auction.date_time,
                })
                .process(|ctx, sides: &[JoinSide<Person, Auction>], out| {
                    if sides.iter().any(|s| matches!(s, JoinSide::Right(_))) {
                        for side in sides {
                            if let JoinSide::Left(person) = side {
                                out.emit(NewSeller { id: person.id, name: person.name, window_start: ctx.window.start });
                            }
                        }
                    }
                    Ok(())
                })
                .end_with(end);
        }
    }
}

/// Counts of q5, q7 and q8 results computed directly from the generated events.
#[cfg(test)]
pub(crate) fn windowed_expectations(events: u64, seed: u64) -> (u64, u64, u64) {
    let generator = NexmarkSource::new(events, seed).generator().unwrap();
    let all: Vec<NexmarkEvent> = (0..events).map(|n| generator.event(n)).collect();
    let sliding = SlidingEventTimeWindows::of(Q5_WINDOW, Q5_SLIDE);
    let tumbling = TumblingEventTimeWindows::of(Q7_Q8_WINDOW);
    let mut counts: std::collections::HashMap<(TimeWindow, i64), u64> = Default::default();
    let mut highest: std::collections::HashMap<TimeWindow, (i64, u64)> = Default::default();
    let mut persons: std::collections::HashMap<(i64, TimeWindow), ()> = Default::default();
    let mut sellers: std::collections::HashSet<(i64, TimeWindow)> = Default::default();
    for event in &all {
        match event {
            NexmarkEvent::Bid(b) => {
                for window in sliding.assign(b.date_time) {
                    *counts.entry((window, b.auction)).or_default() += 1;
                }
                let entry = highest.entry(tumbling.assign(b.date_time)).or_insert((i64::MIN, 0));
                if b.price > entry.0 {
                    *entry = (b.price, 0);
                }
                if b.price == entry.0 {
                    entry.1 += 1;
                }
            }
            NexmarkEvent::Person(p) => {
                persons.insert((p.id, tumbling.assign(p.date_time)), ());
            }
            NexmarkEvent::Auction(a) => {
                sellers.insert((a.seller, tumbling.assign(a.date_time)));
            }
        }
    }
    let mut most: std::collections::HashMap<TimeWindow, u64> = Default::default();
    for (&(window, _), &count) in &counts {
        let m = most.entry(window).or_default();
        *m = (*m).max(count);
    }
    let q5 = counts.iter().filter(|((window, _), count)| most[window] == **count).count() as u64;
    let q7 = highest.values().map(|(_, ties)| ties).sum();
    let q8 = persons.keys().filter(|key| sellers.contains(key)).count() as u64;
    (q5, q7, q8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tethys_engine::EngineConfig;

    #[test]
    fn windowed_queries_match_results_computed_from_the_events() {
        let (events, seed) = (250_000, 3);
        let (q5, q7, q8) = windowed_expectations(events, seed);
        assert!(q5 > 0 && q7 > 0 && q8 > 0, "the case exercises every query: {q5} {q7} {q8}");
        for (query, expected) in [(NexmarkQuery::Q5, q5), (NexmarkQuery::Q7, q7), (NexmarkQuery::Q8, q8)] {
            for parallelism in [1, 2] {
                let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
                let sink = DiscardSink::new();
                define(&env, query, NexmarkSource::new(events, seed), sink.clone());
                let result = env.execute(&query.to_string()).unwrap();
                assert_eq!(sink.records(), expected, "{query} p={parallelism}");
                for operator in &result.operators {
                    assert_eq!(
                        operator.extra.get("late_records_dropped").copied().unwrap_or(0),
                        0,
                        "{query}: {} dropped records",
                        operator.name
                    );
                }
            }
        }
    }

    #[test]
    fn queries_emit_the_hand_counted_bids() {
        let events = 50_000;
        let source = NexmarkSource::new(events, 11);
        let generator = source.generator().unwrap();
        let bids: Vec<NexmarkBid> = (0..events).filter_map(|n| bid(generator.event(n))).collect();
        assert_eq!(bids.len() as u64, events * 46 / 50);
        for query in [NexmarkQuery::Q0, NexmarkQuery::Q1, NexmarkQuery::Q2] {
            for parallelism in [1, 2] {
                let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() });
                let sink = DiscardSink::new();
                define(&env, query, source, sink.clone());
                env.execute(&query.to_string()).unwrap();
                let expected = match query {
                    NexmarkQuery::Q2 => bids.iter().filter(|b| b.auction % 123 == 0).count() as u64,
                    _ => bids.len() as u64,
                };
                assert_eq!(sink.records(), expected, "{query} p={parallelism}");
            }
        }
    }
}
