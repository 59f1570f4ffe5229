//! The timer service of a keyed subtask: event-time and processing-time timers per key, as
//! Flink's `InternalTimerService`.
//!
//! A timer is a (key, timestamp) pair in one time domain; registering it again changes nothing,
//! so it fires once. An event-time timer fires when the watermark reaches its timestamp, a
//! processing-time one when processing time does; timers fire in timestamp order (ties by key
//! group, then by registration). Timers are keyed state: they are stored per key group, and a key
//! group's timers snapshot and restore with it.
//!
//! Each domain keeps a min-heap of (timestamp, key group, sequence, key) for firing order and, per
//! key group, a map (key, timestamp) -> sequence that says which timers are live. Deleting removes
//! the map entry only; the heap entry becomes a tombstone, recognised by its sequence when it
//! surfaces (a timer deleted and registered again has a new sequence, so the old entry cannot fire
//! it twice). Tombstones are bounded: when they outnumber live timers the heap is rebuilt.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use super::context::ScopedKey;
use super::StateError;
use crate::base::Key;
use crate::key_group::{assign_key_group, KeyGroupRange};

/// A timer's time domain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timestamp.
    EventTime,
    /// Fires when processing time (milliseconds) reaches the timestamp.
    ProcessingTime,
}

/// A timer that fired: its key and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timer<K> {
    /// The key it was registered for.
    pub key: K,
    /// The time it was registered for (milliseconds).
    pub timestamp: i64,
}

/// Tombstones allowed beyond the number of live timers before the heap is rebuilt.
const TOMBSTONES_SLACK: usize = 64;

/// A heap entry, ordered so that `BinaryHeap` (a max-heap) pops the earliest first.
struct QueuedTimer<K> {
    timestamp: i64,
    key_group: usize,
    sequence: u64,
    key: K,
}

impl<K> QueuedTimer<K> {
    fn rank(&self) -> (i64, usize, u64) {
        (self.timestamp, self.key_group, self.sequence)
    }
}

impl<K> PartialEq for QueuedTimer<K> {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl<K> Eq for QueuedTimer<K> {}

impl<K> PartialOrd for QueuedTimer<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for QueuedTimer<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank().cmp(&self.rank())
    }
}

/// The timers of one time domain.
struct TimerQueue<K> {
    start: usize,
    heap: BinaryHeap<QueuedTimer<K>>,
    /// Per key group: live timer -> the sequence of its heap entry.
    groups: Vec<FxHashMap<(K, i64), u64>>,
    live: usize,
}

impl<K: Key> TimerQueue<K> {
    fn new(range: KeyGroupRange) -> TimerQueue<K> {
        TimerQueue {
            start: range.start,
            heap: BinaryHeap::new(),
            groups: (0..range.len()).map(|_| FxHashMap::default()).collect(),
            live: 0,
        }
    }

    fn register(&mut self, key: ScopedKey<'_, K>, timestamp: i64, sequence: u64) -> bool {
        let group = &mut self.groups[key.key_group() - self.start];
        let id = (key.key().clone(), timestamp);
        if group.contains_key(&id) {
            return false;
        }
        group.insert(id, sequence);
        self.heap.push(QueuedTimer { timestamp, key_group: key.key_group(), sequence, key: key.key().clone() });
        self.live += 1;
        true
    }

    fn delete(&mut self, key: ScopedKey<'_, K>, timestamp: i64) -> bool {
        let group = &mut self.groups[key.key_group() - self.start];
        if group.remove(&(key.key().clone(), timestamp)).is_none() {
            return false;
        }
        self.live -= 1;
        self.compact_if_sparse();
        true
    }

    /// Removes and returns the earliest live timer due at `time`.
    fn pop_due(&mut self, time: i64) -> Option<Timer<K>> {
        while self.heap.peek().is_some_and(|top| top.timestamp <= time) {
            let queued = self.heap.pop().expect("peeked");
            let group = &mut self.groups[queued.key_group - self.start];
            let id = (queued.key, queued.timestamp);
            if group.get(&id) == Some(&queued.sequence) {
                group.remove(&id);
                self.live -= 1;
                return Some(Timer { key: id.0, timestamp: id.1 });
            }
        }
        None
    }

    /// Timestamp of the earliest live timer; drops tombstones on top.
    fn next_time(&mut self) -> Option<i64> {
        while let Some(top) = self.heap.peek() {
            let id = (top.key.clone(), top.timestamp);
            if self.groups[top.key_group - self.start].get(&id) == Some(&top.sequence) {
                return Some(top.timestamp);
            }
            self.heap.pop();
        }
        None
    }

    fn snapshot_group(&self, key_group: usize) -> Vec<(K, i64)> {
        let mut timers: Vec<(K, i64)> = self.groups[key_group - self.start].keys().cloned().collect();
        timers.sort_by_key(|(_, timestamp)| *timestamp);
        timers
    }

    fn clear_group(&mut self, key_group: usize) {
        let group = &mut self.groups[key_group - self.start];
        self.live -= group.len();
        group.clear();
        self.compact_if_sparse();
    }

    /// Rebuilds the heap from the live timers once tombstones outnumber them.
    fn compact_if_sparse(&mut self) {
        if self.heap.len() <= 2 * self.live + TOMBSTONES_SLACK {
            return;
        }
        let start = self.start;
        let live: Vec<QueuedTimer<K>> = self
            .groups
            .iter()
            .enumerate()
            .flat_map(|(index, group)| {
                group.iter().map(move |((key, timestamp), &sequence)| QueuedTimer {
                    timestamp: *timestamp,
                    key_group: start + index,
                    sequence,
                    key: key.clone(),
                })
            })
            .collect();
        self.heap = BinaryHeap::from(live);
        debug_assert_eq!(self.heap.len(), self.live);
    }
}

/// The timers of one keyed subtask, over the key groups it owns.
pub struct TimerService<K> {
    range: KeyGroupRange,
    max_parallelism: usize,
    event_time: TimerQueue<K>,
    processing_time: TimerQueue<K>,
    watermark: i64,
    next_sequence: u64,
}

impl<K: Key> TimerService<K> {
    /// No timers, for the subtask owning `range`; the watermark starts at `i64::MIN`.
    pub fn new(range: KeyGroupRange, max_parallelism: usize) -> TimerService<K> {
        assert!(range.end <= max_parallelism, "key group range {range:?} outside 0..{max_parallelism}");
        TimerService {
            range,
            max_parallelism,
            event_time: TimerQueue::new(range),
            processing_time: TimerQueue::new(range),
            watermark: i64::MIN,
            next_sequence: 0,
        }
    }

    /// The key groups whose timers this service keeps.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// `key` with its key group. Panics if the group is not owned here.
    pub fn scope<'k>(&self, key: &'k K) -> ScopedKey<'k, K> {
        let key = ScopedKey::new(key, self.max_parallelism);
        assert!(self.range.contains(key.key_group()), "key group {} routed to subtask owning {:?}", key.key_group(), self.range);
        key
    }

    /// Registers a timer; returns whether it is new (registering a registered timer does nothing).
    pub fn register_timer(&mut self, domain: TimeDomain, key: ScopedKey<'_, K>, timestamp: i64) -> bool {
        debug_assert!(self.range.contains(key.key_group()), "timer for a key group this subtask does not own");
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.queue(domain).register(key, timestamp, sequence)
    }

    /// Deletes a timer; returns whether it was registered.
    pub fn delete_timer(&mut self, domain: TimeDomain, key: ScopedKey<'_, K>, timestamp: i64) -> bool {
        self.queue(domain).delete(key, timestamp)
    }

    /// The current watermark: the largest passed to `poll_event_time` or `advance_watermark`.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Moves the watermark to `watermark` and removes and returns the earliest event-time timer
    /// due (timestamp at most the watermark), if any. Firing one at a time lets a timer callback
    /// register timers that fire in the same pass, as in Flink.
    ///
    /// Panics if the watermark goes backwards.
    pub fn poll_event_time(&mut self, watermark: i64) -> Option<Timer<K>> {
        assert!(watermark >= self.watermark, "watermark went backwards: {watermark} after {}", self.watermark);
        self.watermark = watermark;
        self.event_time.pop_due(watermark)
    }

    /// Moves the watermark and returns every event-time timer due, earliest first.
    pub fn advance_watermark(&mut self, watermark: i64) -> Vec<Timer<K>> {
        std::iter::from_fn(|| self.poll_event_time(watermark)).collect()
    }

    /// Removes and returns the earliest processing-time timer due at `now_ms`, if any.
    pub fn poll_processing_time(&mut self, now_ms: i64) -> Option<Timer<K>> {
        self.processing_time.pop_due(now_ms)
    }

    /// Returns every processing-time timer due at `now_ms`, earliest first.
    pub fn advance_processing_time(&mut self, now_ms: i64) -> Vec<Timer<K>> {
        std::iter::from_fn(|| self.poll_processing_time(now_ms)).collect()
    }

    /// Timestamp of the earliest event-time timer.
    pub fn next_event_time(&mut self) -> Option<i64> {
        self.event_time.next_time()
    }

    /// Timestamp of the earliest processing-time timer: when the runtime should call back.
    pub fn next_processing_time(&mut self) -> Option<i64> {
        self.processing_time.next_time()
    }

    /// Number of registered timers in `domain`.
    pub fn len(&self, domain: TimeDomain) -> usize {
        match domain {
            TimeDomain::EventTime => self.event_time.live,
            TimeDomain::ProcessingTime => self.processing_time.live,
        }
    }

    /// Whether no timer is registered in either domain.
    pub fn is_empty(&self) -> bool {
        self.event_time.live == 0 && self.processing_time.live == 0
    }

    /// A copy of `key_group`'s timers. Panics if the group is not owned here.
    pub fn snapshot_key_group(&self, key_group: usize) -> KeyGroupTimers<K> {
        assert!(self.range.contains(key_group), "key group {key_group} is not in this subtask's range {:?}", self.range);
        KeyGroupTimers {
            key_group,
            max_parallelism: self.max_parallelism,
            event_time: self.event_time.snapshot_group(key_group),
            processing_time: self.processing_time.snapshot_group(key_group),
        }
    }

    /// Replaces `timers.key_group()`'s timers with the snapshot's.
    pub fn restore_key_group(&mut self, timers: KeyGroupTimers<K>) -> Result<(), StateError> {
        if timers.max_parallelism != self.max_parallelism {
            return Err(StateError::MaxParallelismMismatch { snapshot: timers.max_parallelism, subtask: self.max_parallelism });
        }
        let key_group = timers.key_group;
        if !self.range.contains(key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group, range: self.range });
        }
        self.event_time.clear_group(key_group);
        self.processing_time.clear_group(key_group);
        for (domain, entries) in [(TimeDomain::EventTime, timers.event_time), (TimeDomain::ProcessingTime, timers.processing_time)] {
            for (key, timestamp) in entries {
                debug_assert_eq!(assign_key_group(&key, self.max_parallelism), key_group, "a snapshot holds a timer of another key group");
                let scoped = ScopedKey::new(&key, self.max_parallelism);
                self.register_timer(domain, scoped, timestamp);
            }
        }
        Ok(())
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut TimerQueue<K> {
        match domain {
            TimeDomain::EventTime => &mut self.event_time,
            TimeDomain::ProcessingTime => &mut self.processing_time,
        }
    }
}

/// The timers of one key group, owned and detached from any service.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct KeyGroupTimers<K> {
    key_group: usize,
    max_parallelism: usize,
    event_time: Vec<(K, i64)>,
    processing_time: Vec<(K, i64)>,
}

impl<K> KeyGroupTimers<K> {
    /// The key group.
    pub fn key_group(&self) -> usize {
        self.key_group
    }

    /// Event-time timers as (key, timestamp), earliest first.
    pub fn event_time(&self) -> &[(K, i64)] {
        &self.event_time
    }

    /// Processing-time timers as (key, timestamp), earliest first.
    pub fn processing_time(&self) -> &[(K, i64)] {
        &self.processing_time
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    const MAX_PARALLELISM: usize = 16;

    fn service() -> TimerService<u64> {
        TimerService::new(KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM), MAX_PARALLELISM)
    }

    fn register(timers: &mut TimerService<u64>, domain: TimeDomain, key: u64, timestamp: i64) -> bool {
        let scoped = timers.scope(&key);
        timers.register_timer(domain, scoped, timestamp)
    }

    fn delete(timers: &mut TimerService<u64>, domain: TimeDomain, key: u64, timestamp: i64) -> bool {
        let scoped = timers.scope(&key);
        timers.delete_timer(domain, scoped, timestamp)
    }

    fn fired(timers: Vec<Timer<u64>>) -> Vec<(u64, i64)> {
        timers.into_iter().map(|timer| (timer.key, timer.timestamp)).collect()
    }

    #[test]
    fn event_timers_fire_in_timestamp_order_when_the_watermark_passes_them() {
        let mut timers = service();
        for (key, timestamp) in [(1, 30), (2, 10), (3, 20), (4, 40)] {
            assert!(register(&mut timers, TimeDomain::EventTime, key, timestamp));
        }
        assert_eq!(fired(timers.advance_watermark(9)), []);
        assert_eq!(fired(timers.advance_watermark(30)), [(2, 10), (3, 20), (1, 30)]);
        assert_eq!(timers.current_watermark(), 30);
        assert_eq!(timers.next_event_time(), Some(40));
        assert_eq!(fired(timers.advance_watermark(i64::MAX)), [(4, 40)]);
        assert!(timers.is_empty());
    }

    #[test]
    fn a_timer_registered_twice_fires_once() {
        let mut timers = service();
        assert!(register(&mut timers, TimeDomain::EventTime, 7, 100));
        assert!(!register(&mut timers, TimeDomain::EventTime, 7, 100));
        assert!(register(&mut timers, TimeDomain::EventTime, 8, 100), "another key at the same time is another timer");
        assert_eq!(timers.len(TimeDomain::EventTime), 2);
        let mut due = fired(timers.advance_watermark(100));
        due.sort();
        assert_eq!(due, [(7, 100), (8, 100)]);
    }

    #[test]
    fn a_deleted_timer_never_fires_and_can_be_registered_again() {
        let mut timers = service();
        register(&mut timers, TimeDomain::EventTime, 1, 10);
        register(&mut timers, TimeDomain::EventTime, 2, 10);
        assert!(delete(&mut timers, TimeDomain::EventTime, 1, 10));
        assert!(!delete(&mut timers, TimeDomain::EventTime, 1, 10));
        assert_eq!(fired(timers.advance_watermark(10)), [(2, 10)]);
        // Deleted, then registered again: the old heap entry must not fire it a second time.
        register(&mut timers, TimeDomain::EventTime, 3, 20);
        delete(&mut timers, TimeDomain::EventTime, 3, 20);
        register(&mut timers, TimeDomain::EventTime, 3, 20);
        assert_eq!(fired(timers.advance_watermark(25)), [(3, 20)]);
    }

    #[test]
    fn processing_time_timers_are_apart_from_event_time_ones() {
        let mut timers = service();
        register(&mut timers, TimeDomain::ProcessingTime, 1, 1_000);
        register(&mut timers, TimeDomain::EventTime, 1, 1_000);
        assert_eq!(timers.next_processing_time(), Some(1_000));
        assert_eq!(fired(timers.advance_processing_time(999)), []);
        assert_eq!(fired(timers.advance_processing_time(1_000)), [(1, 1_000)]);
        assert_eq!(timers.len(TimeDomain::EventTime), 1);
        assert_eq!(timers.next_processing_time(), None);
    }

    #[test]
    fn a_timer_registered_while_firing_fires_in_the_same_pass_if_due() {
        let mut timers = service();
        register(&mut timers, TimeDomain::EventTime, 1, 10);
        let mut order = Vec::new();
        while let Some(timer) = timers.poll_event_time(50) {
            order.push(timer.timestamp);
            if timer.timestamp == 10 {
                register(&mut timers, TimeDomain::EventTime, 1, 20);
                register(&mut timers, TimeDomain::EventTime, 1, 60);
            }
        }
        assert_eq!(order, [10, 20]);
        assert_eq!(timers.next_event_time(), Some(60));
    }

    #[test]
    #[should_panic(expected = "watermark went backwards")]
    fn the_watermark_never_goes_backwards() {
        let mut timers = service();
        timers.advance_watermark(10);
        timers.advance_watermark(9);
    }

    #[test]
    fn many_deletions_keep_the_heap_bounded() {
        let mut timers = service();
        for round in 0..10_000 {
            register(&mut timers, TimeDomain::EventTime, round % 8, 1_000_000 + round as i64);
            delete(&mut timers, TimeDomain::EventTime, round % 8, 1_000_000 + round as i64);
        }
        assert!(timers.event_time.heap.len() <= TOMBSTONES_SLACK + 1, "{} heap entries for no live timer", timers.event_time.heap.len());
        assert!(timers.is_empty());
    }

    #[test]
    fn a_key_groups_timers_move_to_another_subtask_and_fire_there() {
        let old = KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM);
        let mut source = TimerService::<u64>::new(old, MAX_PARALLELISM);
        for key in 0..64u64 {
            register(&mut source, TimeDomain::EventTime, key, key as i64);
            register(&mut source, TimeDomain::ProcessingTime, key, 1_000 + key as i64);
        }
        let new = KeyGroupRange::for_subtask(1, 2, MAX_PARALLELISM);
        let mut target = TimerService::<u64>::new(new, MAX_PARALLELISM);
        let group = new.start;
        let moved = source.snapshot_key_group(group);
        let expected: Vec<u64> = (0..64).filter(|key| assign_key_group(key, MAX_PARALLELISM) == group).collect();
        assert_eq!(moved.event_time().len(), expected.len());
        target.restore_key_group(moved.clone()).expect("owned group");
        let mut event_keys: Vec<u64> = target.advance_watermark(i64::MAX).into_iter().map(|timer| timer.key).collect();
        event_keys.sort();
        assert_eq!(event_keys, expected);
        assert_eq!(target.advance_processing_time(i64::MAX).len(), expected.len());

        let wrong = TimerService::<u64>::new(KeyGroupRange::for_subtask(0, 2, MAX_PARALLELISM), MAX_PARALLELISM).restore_key_group(moved);
        assert!(matches!(wrong, Err(StateError::KeyGroupNotOwned { .. })), "{wrong:?}");
    }

    #[derive(Debug, Clone)]
    enum TimerOp {
        Register(TimeDomain, u64, i64),
        Delete(TimeDomain, u64, i64),
        AdvanceWatermark(i64),
        AdvanceProcessingTime(i64),
    }

    fn timer_op() -> impl Strategy<Value = TimerOp> {
        let domain = prop_oneof![Just(TimeDomain::EventTime), Just(TimeDomain::ProcessingTime)];
        prop_oneof![
            4 => (domain.clone(), 0..12u64, 0..200i64).prop_map(|(d, k, t)| TimerOp::Register(d, k, t)),
            2 => (domain, 0..12u64, 0..200i64).prop_map(|(d, k, t)| TimerOp::Delete(d, k, t)),
            1 => (0..40i64).prop_map(TimerOp::AdvanceWatermark),
            1 => (0..40i64).prop_map(TimerOp::AdvanceProcessingTime),
        ]
    }

    type Live = HashSet<(TimeDomain, u64, i64)>;

    /// Checks timers fired in `domain` up to `time` against the model, and removes them from it.
    fn check_fired(domain: TimeDomain, time: i64, fired: Vec<Timer<u64>>, live: &mut Live) -> Result<(), TestCaseError> {
        let mut previous = i64::MIN;
        for timer in &fired {
            prop_assert!(timer.timestamp >= previous, "fired out of order");
            prop_assert!(timer.timestamp <= time, "fired before its time");
            prop_assert!(live.remove(&(domain, timer.key, timer.timestamp)), "fired a timer not live: {:?}", timer);
            previous = timer.timestamp;
        }
        prop_assert!(!live.iter().any(|&(d, _, t)| d == domain && t <= time), "a due timer did not fire");
        Ok(())
    }

    proptest! {
        /// Against a model set of live timers: every registered, undeleted timer fires exactly
        /// once, never before its time, and each advance fires in non-decreasing time order.
        #[test]
        fn every_live_timer_fires_exactly_once_in_time_order(ops in proptest::collection::vec(timer_op(), 0..300)) {
            let mut timers = service();
            let mut live = Live::new();
            let (mut watermark, mut now) = (0i64, 0i64);
            for op in ops {
                match op {
                    TimerOp::Register(domain, key, timestamp) => {
                        let new = register(&mut timers, domain, key, timestamp);
                        prop_assert_eq!(new, live.insert((domain, key, timestamp)));
                    }
                    TimerOp::Delete(domain, key, timestamp) => {
                        let deleted = delete(&mut timers, domain, key, timestamp);
                        prop_assert_eq!(deleted, live.remove(&(domain, key, timestamp)));
                    }
                    TimerOp::AdvanceWatermark(by) => {
                        watermark += by;
                        let due = timers.advance_watermark(watermark);
                        check_fired(TimeDomain::EventTime, watermark, due, &mut live)?;
                    }
                    TimerOp::AdvanceProcessingTime(by) => {
                        now += by;
                        let due = timers.advance_processing_time(now);
                        check_fired(TimeDomain::ProcessingTime, now, due, &mut live)?;
                    }
                }
                prop_assert_eq!(timers.len(TimeDomain::EventTime) + timers.len(TimeDomain::ProcessingTime), live.len());
            }
            let due = timers.advance_watermark(i64::MAX);
            check_fired(TimeDomain::EventTime, i64::MAX, due, &mut live)?;
            let due = timers.advance_processing_time(i64::MAX);
            check_fired(TimeDomain::ProcessingTime, i64::MAX, due, &mut live)?;
            prop_assert!(live.is_empty());
            prop_assert!(timers.is_empty());
        }
    }
}
