//! Jobs that emit far more in one step than the credits allow, behind a slow consumer: they
//! measure that memory stays within the credit bound (`tethys bench --queries burst,timers`).
//!
//! - **burst**: the bids source, each bid exploded by a `flat_map` into `BURST_FAN_OUT` records;
//! - **timers**: bids keyed by bidder; each bid registers a processing-time timer due at once, so
//!   timers come due by the thousand; each timer emits one record.
//!
//! Both end in a slow stage (`SLOW_STAGE_DELAY` per frame) in its own task behind a rebalance, so
//! the producing task is at the credit limit nearly all the time. The report's
//! `backlog_frames_peak` is the most frames that ever waited for credit on one channel, to compare
//! with the engine's overdraft (`OUTPUT_OVERDRAFT_FRAMES_MAX`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::state::TimeDomain;
use tethys_engine::{FrameOperator, KeyedProcessFunction, Output, ProcessContext, StreamEnvironment, UserError};

/// Records each bid becomes in the `burst` query.
pub const BURST_FAN_OUT: u64 = 1_000;

/// Time the slow stage spends on each frame.
pub const SLOW_STAGE_DELAY: Duration = Duration::from_micros(20);

/// A job whose steps emit bursts behind a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurstQuery {
    /// A flat_map that explodes each record.
    Burst,
    /// Processing-time timers that come due together.
    Timers,
}

impl BurstQuery {
    /// All burst queries.
    pub const ALL: [BurstQuery; 2] = [BurstQuery::Burst, BurstQuery::Timers];
}

impl fmt::Display for BurstQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BurstQuery::Burst => "burst",
            BurstQuery::Timers => "timers",
        })
    }
}

impl FromStr for BurstQuery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BurstQuery::ALL.into_iter().find(|q| q.to_string() == s).ok_or_else(|| format!("unknown burst query '{s}' (burst, timers)"))
    }
}

/// Passes frames on after `SLOW_STAGE_DELAY`: the slow consumer.
struct SlowStage;

impl FrameOperator<u64, u64> for SlowStage {
    fn process(&mut self, frame: Vec<u64>, out: &mut Output<'_, u64>) -> Result<(), UserError> {
        std::thread::sleep(SLOW_STAGE_DELAY);
        out.emit_frame(frame);
        Ok(())
    }
}

/// Registers a processing-time timer due at once for each bid; the timer emits the bidder.
struct TimerPerBid;

impl KeyedProcessFunction<i64, Bid, u64> for TimerPerBid {
    fn process_element(&mut self, _bid: Bid, ctx: &mut ProcessContext<'_, '_, i64, u64>) -> Result<(), UserError> {
        let now = ctx.current_processing_time();
        ctx.register_processing_time_timer(now);
        Ok(())
    }

    fn on_timer(&mut self, _timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, i64, u64>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::ProcessingTime);
        let bidder = *ctx.key() as u64;
        ctx.emit(bidder);
        Ok(())
    }
}

/// Adds `query` over `source` to `env`, ending in `sink`.
pub fn define(env: &StreamEnvironment, query: BurstQuery, source: BidsSource, sink: DiscardSink) {
    let bids = env.source("bids", source);
    let produced = match query {
        BurstQuery::Burst => bids.flat_map(|b: Bid| (0..BURST_FAN_OUT).map(move |k| b.id as u64 * BURST_FAN_OUT + k)),
        BurstQuery::Timers => bids.key_by(|b: &Bid| b.bidder).process("timer-per-bid", || TimerPerBid),
    };
    produced.rebalance().process("slow", |_| SlowStage).sink("discard", sink);
}
