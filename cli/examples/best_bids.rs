//! A Tethys program of one's own: the `tethys` command line with one more job, written with the
//! DataStream API. `best-bids <output dir> <events> <seed>` finds, every 10 seconds of event time,
//! the highest bid of each of a hundred auction groups, and writes one line per group and window
//! (`<window start> <group> <bidder> <price> <bid id>`) into part files of the output directory,
//! exactly once.
//!
//! Build it with `cargo build --release --example best_bids`, then run the job in one process
//! with `target/release/examples/best_bids run best-bids out 1000000 7`, or upload the program to
//! a cluster (`tethys programs upload target/release/examples/best_bids`, or the console's Deploy
//! page) and submit `best-bids` there.

use std::time::Duration;

use tethys_engine::sink::file::FileSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{StreamEnvironment, TumblingEventTimeWindows, WindowResult};

/// Auction groups: an auction's group is its id modulo this.
const GROUPS: i64 = 100;

fn define_best_bids(args: &[String], env: &StreamEnvironment) -> Result<(), String> {
    let [dir, events, seed] = args else {
        return Err(format!("takes <output dir> <events> <seed>, not {} arguments", args.len()));
    };
    let events: u64 = events.parse().map_err(|_| format!("'{events}' is not a number of events"))?;
    let seed: u64 = seed.parse().map_err(|_| format!("'{seed}' is not a seed"))?;
    env.source("bids", BidsSource::new(events, seed))
        .key_by(|bid: &Bid| bid.auction % GROUPS)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |bid: &Bid| bid.ts)
        // The higher price wins, the lower id among equal prices: the same best bid however the
        // bids arrive.
        .reduce(|a: Bid, b: Bid| if (b.price, -b.id) > (a.price, -a.id) { b } else { a })
        .map(|best: WindowResult<i64, Bid>| {
            format!("{} {} {} {} {}", best.window.start, best.key, best.value.bidder, best.value.price, best.value.id)
        })
        .name("format")
        .sink("best bids", FileSink::lines(dir.as_str()));
    Ok(())
}

fn main() {
    tethys::Program::new("best-bids")
        .job("best-bids", "the highest bid per auction group every 10 s of event time: <output dir> <events> <seed>", define_best_bids)
        .main()
}
