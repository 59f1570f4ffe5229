//! Nexmark queries (BENCH.md section 2) as DataStream jobs over the Nexmark generator, as the
//! nexmark project defines them for Flink. Throughput counts every generated event (persons,
//! auctions and bids), as Nexmark reports it.
//!
//! - q0, pass-through: `SELECT auction, bidder, price, dateTime, extra FROM bid`.
//! - q1, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
//!   FROM bid`.
//! - q2, selection: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.

use std::fmt;
use std::str::FromStr;

use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::nexmark::{ExtraStr, NexmarkBid, NexmarkEvent, NexmarkSource};
use tethys_engine::StreamEnvironment;

/// A Nexmark query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexmarkQuery {
    /// Pass-through of bids.
    Q0,
    /// Currency conversion of bid prices.
    Q1,
    /// Selection of bids on every 123rd auction.
    Q2,
}

impl NexmarkQuery {
    /// All implemented queries.
    pub const ALL: [NexmarkQuery; 3] = [NexmarkQuery::Q0, NexmarkQuery::Q1, NexmarkQuery::Q2];
}

impl fmt::Display for NexmarkQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NexmarkQuery::Q0 => "q0",
            NexmarkQuery::Q1 => "q1",
            NexmarkQuery::Q2 => "q2",
        })
    }
}

impl FromStr for NexmarkQuery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NexmarkQuery::ALL.into_iter().find(|q| q.to_string() == s).ok_or_else(|| format!("unknown Nexmark query '{s}' (q0, q1, q2)"))
    }
}

/// A bid with its price converted to euros: the output of q1.
#[derive(Debug, Clone, Copy, PartialEq)]
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

/// The bid of an event, if it is one.
fn bid(event: NexmarkEvent) -> Option<NexmarkBid> {
    match event {
        NexmarkEvent::Bid(bid) => Some(bid),
        _ => None,
    }
}

/// Adds `query` over `source` to `env`, ending in `sink`.
pub fn define(env: &StreamEnvironment, query: NexmarkQuery, source: NexmarkSource, sink: DiscardSink) {
    let bids = env.source("nexmark", source).flat_map(bid).name("bids");
    match query {
        NexmarkQuery::Q0 => {
            bids.sink("discard", sink);
        }
        NexmarkQuery::Q1 => {
            bids.map(|b: NexmarkBid| EuroBid { auction: b.auction, bidder: b.bidder, price: b.price as f64 * 0.908, date_time: b.date_time, extra: b.extra })
                .sink("discard", sink);
        }
        NexmarkQuery::Q2 => {
            bids.filter(|b: &NexmarkBid| b.auction % 123 == 0).map(|b: NexmarkBid| (b.auction, b.price)).sink("discard", sink);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tethys_engine::EngineConfig;

    #[test]
    fn queries_emit_the_hand_counted_bids() {
        let events = 50_000;
        let source = NexmarkSource::new(events, 11);
        let generator = source.generator().unwrap();
        let bids: Vec<NexmarkBid> = (0..events).filter_map(|n| bid(generator.event(n))).collect();
        assert_eq!(bids.len() as u64, events * 46 / 50);
        for query in NexmarkQuery::ALL {
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
