//! The bids workload generator of bench/WORKLOADS.md: deterministic bid records at full speed or at a rate.
//!
//! Every field of bid `id` is a function of `(seed, id)` alone, so a job sees the same records at
//! any parallelism; subtask `i` of `p` generates ids `i+1, i+1+p, ...` so event time advances evenly
//! across subtasks. Strings are generated as inline ASCII (`InlineStr`): a new string per record,
//! with no heap allocation.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ReaderStatus, Source, SourceReader};
use crate::base::{SubtaskContext, UserError};
use crate::record::InlineStr;

/// One bid of the bids workload.
///
/// Its fields are laid out without padding (`repr(C)`, 80 bytes), so frames of bids travel between
/// processes as their bytes (`frame::plain`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    bytemuck::NoUninit,
    bytemuck::CheckedBitPattern,
)]
#[repr(C)]
pub struct Bid {
    /// Auction bid on, uniform in `[0, 10000]`.
    pub auction: i64,
    /// Bidder, uniform in `[0, 100000]`.
    pub bidder: i64,
    /// Price, uniform in `[1, 100000]`.
    pub price: i64,
    /// 8 random characters.
    pub channel: InlineStr<8>,
    /// 24 random characters (room for 30, which fills the record without padding).
    pub url: InlineStr<30>,
    /// Sequence number, `1..=N`.
    pub id: i64,
    /// Event time in milliseconds: equal to `id`.
    pub ts: i64,
}

const _: () = assert!(std::mem::size_of::<Bid>() == 80, "a bid is 80 bytes with no padding");

/// Out-of-orderness bound of the workload's watermark: `watermark = ts - 1 s`.
pub const BIDS_WATERMARK_DELAY_MS: i64 = 1000;

/// Settings of the bids generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BidsSource {
    /// Total bids over all subtasks; `None` generates forever.
    pub events: Option<u64>,
    /// Seed of the generated values.
    pub seed: u64,
    /// Total rate over all subtasks in events per second; `None` runs at full speed.
    pub events_per_second: Option<u64>,
}

impl BidsSource {
    /// A generator of `events` bids at full speed.
    pub fn new(events: u64, seed: u64) -> Self {
        BidsSource { events: Some(events), seed, events_per_second: None }
    }

    /// Limits the total rate over all subtasks.
    pub fn with_rate(mut self, events_per_second: u64) -> Self {
        self.events_per_second = Some(events_per_second);
        self
    }

    /// The bid with sequence number `id` (ids start at 1).
    pub fn bid(&self, id: u64) -> Bid {
        generate_bid(self.seed, id)
    }
}

/// Spreads consecutive ids over the seed space before they seed the random generator.
fn mix_seed(seed: u64, id: u64) -> u64 {
    let mut h = seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 29)
}

/// Eight lowercase letters from the bytes of one random word.
#[inline]
fn letters(word: u64) -> [u8; 8] {
    let mut out = word.to_le_bytes();
    for byte in &mut out {
        *byte = b'a' + ((*byte as u32 * 26) >> 8) as u8;
    }
    out
}

#[inline]
fn generate_bid(seed: u64, id: u64) -> Bid {
    let mut rng = fastrand::Rng::with_seed(mix_seed(seed, id));
    let auction = rng.i64(0..=10_000);
    let bidder = rng.i64(0..=100_000);
    let price = rng.i64(1..=100_000);
    let channel = InlineStr::from_ascii(letters(rng.u64(..)));
    let mut url = [0u8; 24];
    for chunk in url.chunks_exact_mut(8) {
        chunk.copy_from_slice(&letters(rng.u64(..)));
    }
    Bid { auction, bidder, price, channel, url: InlineStr::from_ascii_slice(&url), id: id as i64, ts: id as i64 }
}

impl Source<Bid> for BidsSource {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<Bid>>, UserError> {
        let parallelism = context.parallelism as u64;
        Ok(Box::new(BidsReader {
            seed: self.seed,
            first_id: context.subtask_index as u64 + 1,
            next_id: context.subtask_index as u64 + 1,
            stride: parallelism,
            last_id: self.events.unwrap_or(u64::MAX),
            rate: self.events_per_second.map(|total| RateLimit::new(total as f64 / parallelism as f64)),
        }))
    }
}

/// Paces a reader to a fixed rate: it may have emitted `rate * elapsed` records at any moment.
struct RateLimit {
    per_second: f64,
    started: Option<Instant>,
    emitted: u64,
}

impl RateLimit {
    fn new(per_second: f64) -> Self {
        RateLimit { per_second, started: None, emitted: 0 }
    }

    /// How many records may be emitted now.
    fn allowance(&mut self) -> u64 {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * self.per_second) as u64;
        due.saturating_sub(self.emitted)
    }
}

struct BidsReader {
    seed: u64,
    first_id: u64,
    next_id: u64,
    stride: u64,
    last_id: u64,
    rate: Option<RateLimit>,
}

impl SourceReader<Bid> for BidsReader {
    fn poll_frame(&mut self, frame: &mut Vec<Bid>, records_max: usize) -> Result<ReaderStatus, UserError> {
        let mut budget = records_max as u64;
        if let Some(rate) = &mut self.rate {
            budget = budget.min(rate.allowance());
            if budget == 0 {
                return Ok(ReaderStatus::Idle);
            }
        }
        let remaining = if self.next_id > self.last_id { 0 } else { (self.last_id - self.next_id) / self.stride + 1 };
        let count = budget.min(remaining);
        frame.extend((0..count).map(|i| generate_bid(self.seed, self.next_id + i * self.stride)));
        self.next_id += count * self.stride;
        if let Some(rate) = &mut self.rate {
            rate.emitted += count;
        }
        Ok(if count == remaining { ReaderStatus::Finished } else { ReaderStatus::Ready })
    }

    fn watermark(&self) -> Option<i64> {
        // The last id emitted is `next_id - stride`; its event time is its id. Other subtasks are
        // at most one stride behind, well within the workload's 1 s bound.
        let last_ts = self.next_id.checked_sub(self.stride)? as i64;
        (last_ts > 0).then(|| last_ts - BIDS_WATERMARK_DELAY_MS)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next_id)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        super::check_strided_position(position, self.first_id, self.stride)?;
        self.next_id = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext {
            operator_name: "bids".into(),
            subtask_index,
            parallelism,
            max_parallelism: 128,
            frame_records_max: 1024,
            frame_bytes_max: crate::config::FRAME_BYTES_MAX_DEFAULT,
            watermark_interval: std::time::Duration::from_millis(10),
            side_outputs: Vec::new(),
            state_dir: None,
            state_cache_bytes: None,
            output_tap: None,
        }
    }

    fn read_all(source: &BidsSource, parallelism: usize) -> Vec<Bid> {
        let mut all = Vec::new();
        for subtask in 0..parallelism {
            let mut reader = source.create_reader(&context(subtask, parallelism)).unwrap();
            loop {
                let status = reader.poll_frame(&mut all, 100).unwrap();
                if status == ReaderStatus::Finished {
                    break;
                }
            }
        }
        all.sort_by_key(|b| b.id);
        all
    }

    #[test]
    fn fields_follow_the_workload_definition() {
        let bids = read_all(&BidsSource::new(5000, 7), 1);
        assert_eq!(bids.len(), 5000);
        for (i, bid) in bids.iter().enumerate() {
            assert_eq!(bid.id, i as i64 + 1);
            assert_eq!(bid.ts, bid.id);
            assert!((0..=10_000).contains(&bid.auction));
            assert!((0..=100_000).contains(&bid.bidder));
            assert!((1..=100_000).contains(&bid.price));
            assert_eq!(bid.channel.len(), 8);
            assert_eq!(bid.url.len(), 24);
            assert!(bid.url.as_str().bytes().all(|c| c.is_ascii_lowercase()));
        }
        // A new string per record, not a constant.
        assert_ne!(bids[0].channel, bids[1].channel);
    }

    #[test]
    fn same_records_at_any_parallelism() {
        let source = BidsSource::new(1001, 42);
        let one = read_all(&source, 1);
        assert_eq!(one, read_all(&source, 2));
        assert_eq!(one, read_all(&source, 3));
        assert_ne!(one, read_all(&BidsSource::new(1001, 43), 1));
    }
}
