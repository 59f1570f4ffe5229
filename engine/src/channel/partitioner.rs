//! Partitioners: which output channel each record of a task goes to.
//!
//! - forward: the one channel to the downstream subtask with the same index;
//! - rebalance: whole frames round-robin over the channels;
//! - broadcast: every frame to every channel (a copy each, the last one moved);
//! - hash: each record to the subtask owning its key's key group (see `key_group`).
//!
//! Partitioners keep one frame builder per channel. Frames at least half full go on as they are,
//! moved, never copied; smaller ones (after a selective filter, or the per-channel slices of a
//! hash split) are gathered into full frames, which keeps the per-frame costs (a message, a
//! credit) per record low. What is left in a builder goes on when the task's linger time passes or
//! its input ends. Record order per channel is kept.

use std::marker::PhantomData;

use crate::base::key::key_hash;
use crate::frame::{AnyFrame, Record};
use crate::key_group::{key_group_of_hash, subtask_for_key_group};

/// Receives the frames a partitioner routes, by output channel index.
pub trait FrameDispatch {
    /// Takes a frame for `channel`.
    fn dispatch(&mut self, channel: usize, frame: AnyFrame);
}

/// A partitioner whose record type the runtime does not know.
pub trait ErasedPartitioner: Send {
    /// Routes one frame.
    fn route(&mut self, frame: AnyFrame, out: &mut dyn FrameDispatch);
    /// Sends every partly filled frame.
    fn flush(&mut self, out: &mut dyn FrameDispatch);
    /// Whether a partly filled frame waits.
    fn has_pending(&self) -> bool;
}

/// How records are distributed over the subtasks of the next operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Partitioning {
    /// Forward if both sides have the same parallelism, otherwise rebalance (Flink's default).
    Default,
    /// Subtask `i` sends to subtask `i`; requires equal parallelism; chained when possible.
    Forward,
    /// Round-robin over all downstream subtasks.
    Rebalance,
    /// Every record to every downstream subtask.
    Broadcast,
    /// By key group of the record's key.
    Hash,
}

/// One frame builder per output channel.
struct FrameBuilders<T> {
    builders: Vec<Vec<T>>,
    frame_records_max: usize,
}

impl<T: Record> FrameBuilders<T> {
    fn new(channels: usize, frame_records_max: usize) -> Self {
        assert!(channels >= 1, "a partitioner needs at least one channel");
        FrameBuilders { builders: (0..channels).map(|_| Vec::new()).collect(), frame_records_max }
    }

    /// Sends a frame on `channel`: as it is if it is at least half full, else gathered.
    fn append_frame(&mut self, channel: usize, frame: Vec<T>, out: &mut dyn FrameDispatch) {
        if frame.len() * 2 >= self.frame_records_max {
            self.flush_channel(channel, out);
            out.dispatch(channel, AnyFrame::new(frame));
            return;
        }
        if self.builders[channel].len() + frame.len() > self.frame_records_max {
            self.flush_channel(channel, out);
        }
        let builder = &mut self.builders[channel];
        if builder.capacity() == 0 {
            builder.reserve_exact(self.frame_records_max);
        }
        builder.extend(frame);
        if builder.len() >= self.frame_records_max {
            self.flush_channel(channel, out);
        }
    }

    #[inline]
    fn push(&mut self, channel: usize, record: T, out: &mut dyn FrameDispatch) {
        let builder = &mut self.builders[channel];
        if builder.capacity() == 0 {
            builder.reserve_exact(self.frame_records_max);
        }
        builder.push(record);
        if builder.len() >= self.frame_records_max {
            self.flush_channel(channel, out);
        }
    }

    fn flush_channel(&mut self, channel: usize, out: &mut dyn FrameDispatch) {
        if !self.builders[channel].is_empty() {
            out.dispatch(channel, AnyFrame::new(std::mem::take(&mut self.builders[channel])));
        }
    }

    fn flush(&mut self, out: &mut dyn FrameDispatch) {
        for channel in 0..self.builders.len() {
            self.flush_channel(channel, out);
        }
    }

    fn has_pending(&self) -> bool {
        self.builders.iter().any(|b| !b.is_empty())
    }
}

/// Forward (one channel) and rebalance (round-robin by frame).
pub struct RoundRobinPartitioner<T> {
    builders: FrameBuilders<T>,
    next_channel: usize,
}

impl<T: Record> RoundRobinPartitioner<T> {
    /// `first_channel` staggers subtasks so they do not all start on channel 0.
    pub fn new(channels: usize, first_channel: usize, frame_records_max: usize) -> Self {
        RoundRobinPartitioner { builders: FrameBuilders::new(channels, frame_records_max), next_channel: first_channel % channels }
    }
}

impl<T: Record> ErasedPartitioner for RoundRobinPartitioner<T> {
    fn route(&mut self, frame: AnyFrame, out: &mut dyn FrameDispatch) {
        let channels = self.builders.builders.len();
        let channel = self.next_channel;
        self.next_channel = (self.next_channel + 1) % channels;
        self.builders.append_frame(channel, frame.into_typed::<T>(), out);
    }

    fn flush(&mut self, out: &mut dyn FrameDispatch) {
        self.builders.flush(out);
    }

    fn has_pending(&self) -> bool {
        self.builders.has_pending()
    }
}

/// Every frame to every channel.
pub struct BroadcastPartitioner<T> {
    builders: FrameBuilders<T>,
}

impl<T: Record + Clone> BroadcastPartitioner<T> {
    /// A partitioner over `channels` channels.
    pub fn new(channels: usize, frame_records_max: usize) -> Self {
        BroadcastPartitioner { builders: FrameBuilders::new(channels, frame_records_max) }
    }
}

impl<T: Record + Clone> ErasedPartitioner for BroadcastPartitioner<T> {
    fn route(&mut self, frame: AnyFrame, out: &mut dyn FrameDispatch) {
        let frame = frame.into_typed::<T>();
        let last = self.builders.builders.len() - 1;
        for channel in 0..last {
            self.builders.append_frame(channel, frame.clone(), out);
        }
        self.builders.append_frame(last, frame, out);
    }

    fn flush(&mut self, out: &mut dyn FrameDispatch) {
        self.builders.flush(out);
    }

    fn has_pending(&self) -> bool {
        self.builders.has_pending()
    }
}

/// Each record to the subtask that owns its key group.
pub struct HashPartitioner<T, K, KeyFn> {
    builders: FrameBuilders<T>,
    key_fn: KeyFn,
    max_parallelism: usize,
    /// Channel of each key group, computed once (no division per record).
    channel_of_group: Vec<u32>,
    _key: PhantomData<fn() -> K>,
}

impl<T, K, KeyFn> HashPartitioner<T, K, KeyFn>
where
    T: Record,
    K: crate::base::key::KeyBytes,
    KeyFn: Fn(&T) -> K + Send + 'static,
{
    /// A partitioner over `channels` consumer subtasks of a job with `max_parallelism` key groups.
    pub fn new(channels: usize, max_parallelism: usize, frame_records_max: usize, key_fn: KeyFn) -> Self {
        assert!(channels <= max_parallelism, "parallelism {channels} exceeds max parallelism {max_parallelism}");
        let channel_of_group = (0..max_parallelism).map(|group| subtask_for_key_group(group, max_parallelism, channels) as u32).collect();
        HashPartitioner {
            builders: FrameBuilders::new(channels, frame_records_max),
            key_fn,
            max_parallelism,
            channel_of_group,
            _key: PhantomData,
        }
    }
}

impl<T, K, KeyFn> ErasedPartitioner for HashPartitioner<T, K, KeyFn>
where
    T: Record,
    K: crate::base::key::KeyBytes,
    KeyFn: Fn(&T) -> K + Send + 'static,
{
    fn route(&mut self, frame: AnyFrame, out: &mut dyn FrameDispatch) {
        let channels = self.builders.builders.len();
        let frame = frame.into_typed::<T>();
        if channels == 1 {
            self.builders.append_frame(0, frame, out);
            return;
        }
        for record in frame {
            let group = key_group_of_hash(key_hash(&(self.key_fn)(&record)), self.max_parallelism);
            let channel = self.channel_of_group[group] as usize;
            self.builders.push(channel, record, out);
        }
    }

    fn flush(&mut self, out: &mut dyn FrameDispatch) {
        self.builders.flush(out);
    }

    fn has_pending(&self) -> bool {
        self.builders.has_pending()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key_group::{assign_key_group, KeyGroupRange};

    /// Collects dispatched frames per channel.
    #[derive(Default)]
    pub(crate) struct Channels(pub Vec<Vec<Vec<i64>>>);

    impl FrameDispatch for Channels {
        fn dispatch(&mut self, channel: usize, frame: AnyFrame) {
            if self.0.len() <= channel {
                self.0.resize_with(channel + 1, Vec::new);
            }
            self.0[channel].push(frame.into_typed::<i64>());
        }
    }

    impl Channels {
        fn records(&self, channel: usize) -> Vec<i64> {
            self.0.get(channel).map(|frames| frames.concat()).unwrap_or_default()
        }
    }

    #[test]
    fn rebalance_sends_whole_frames_round_robin() {
        let mut partitioner = RoundRobinPartitioner::<i64>::new(3, 1, 4);
        let mut out = Channels::default();
        for start in [0i64, 10, 20, 30] {
            partitioner.route(AnyFrame::new((start..start + 4).collect::<Vec<_>>()), &mut out);
        }
        assert_eq!(out.records(1), vec![0, 1, 2, 3, 30, 31, 32, 33]);
        assert_eq!(out.records(2), vec![10, 11, 12, 13]);
        assert_eq!(out.records(0), vec![20, 21, 22, 23]);
        assert!(!partitioner.has_pending());
    }

    #[test]
    fn small_frames_are_gathered_in_order_until_flushed() {
        let mut partitioner = RoundRobinPartitioner::<i64>::new(1, 0, 8);
        let mut out = Channels::default();
        for r in 0..10i64 {
            partitioner.route(AnyFrame::new(vec![r]), &mut out);
        }
        assert_eq!(out.0[0].len(), 1, "one full frame of 8");
        assert!(partitioner.has_pending());
        partitioner.flush(&mut out);
        assert_eq!(out.records(0), (0..10).collect::<Vec<_>>());
        assert_eq!(out.0[0].len(), 2);
    }

    #[test]
    fn broadcast_copies_every_record_to_every_channel() {
        let mut partitioner = BroadcastPartitioner::<i64>::new(3, 2);
        let mut out = Channels::default();
        partitioner.route(AnyFrame::new(vec![5i64, 6]), &mut out);
        for channel in 0..3 {
            assert_eq!(out.records(channel), vec![5, 6]);
        }
    }

    #[test]
    fn hash_sends_each_key_to_the_subtask_owning_its_key_group() {
        for channels in [1usize, 2, 3, 7] {
            let mut partitioner = HashPartitioner::new(channels, 128, 16, |r: &i64| *r % 50);
            let mut out = Channels::default();
            let input: Vec<i64> = (0..1000).collect();
            partitioner.route(AnyFrame::new(input.clone()), &mut out);
            partitioner.flush(&mut out);
            let mut seen = Vec::new();
            for channel in 0..channels {
                let range = KeyGroupRange::for_subtask(channel, channels, 128);
                for record in out.records(channel) {
                    assert!(range.contains(assign_key_group(&(record % 50), 128)));
                    seen.push(record);
                }
                // Order within a channel is the input order.
                assert!(out.records(channel).windows(2).all(|w| w[0] < w[1]));
            }
            seen.sort();
            assert_eq!(seen, input, "every record exactly once (channels={channels})");
        }
    }
}
