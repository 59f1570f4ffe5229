//! Counts bids per auction in 10-second event-time windows and prints the busiest auctions.
//!
//! Run with `cargo run --release -p tethys-engine --example auction_counts`.

use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, StreamEnvironment, TumblingEventTimeWindows, WindowResult};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = StreamEnvironment::new(EngineConfig::default());
    let results = CollectSink::new();
    env.source("bids", BidsSource::new(1_000_000, 7))
        .filter(|bid: &Bid| bid.price > 90_000)
        .key_by(|bid: &Bid| bid.auction)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |bid: &Bid| bid.ts)
        .count()
        .filter(|result: &WindowResult<i64, u64>| result.value >= 3)
        .sink("busy auctions", results.clone());
    println!("{}", env.explain()?);
    let outcome = env.execute("auction counts")?;
    let mut busy = results.records();
    busy.sort_by_key(|r| std::cmp::Reverse(r.value));
    for result in busy.iter().take(10) {
        println!(
            "auction {:>5} had {} bids over 90000 in [{} ms, {} ms)",
            result.key, result.value, result.window.start, result.window.end
        );
    }
    println!("{} windows with 3 or more such bids; job took {:?}", busy.len(), outcome.elapsed);
    Ok(())
}
