//! The current key: [`ScopedKey`] (a key with its key group, hashed once) and [`KeyContext`], what
//! an operator hands user code for one record or timer (Flink's `setCurrentKey` plus the
//! context's `timerService()`).
//!
//! The context borrows the backend, the timer service and the key for the duration of one call,
//! so the borrow checker guarantees that user code touches only the current key's state and cannot
//! keep a reference past the record. Building one costs one key hash and one range check; it
//! allocates nothing. The key group must be owned by the subtask: a key from elsewhere means the
//! partitioner routed a record wrongly, which would split a key's state, so it panics.

use std::fmt;

use super::backend::StateBackend;
#[cfg(test)]
use super::heap::HeapStateBackend;
use super::timers::{TimeDomain, TimerService};
use crate::base::Key;
use crate::key_group::assign_key_group;

/// A key and its key group, computed once with `assign_key_group`.
pub struct ScopedKey<'a, K> {
    key: &'a K,
    key_group: usize,
}

impl<'a, K: crate::base::key::KeyBytes> ScopedKey<'a, K> {
    /// `key` in a job with `max_parallelism` key groups.
    #[inline]
    pub fn new(key: &'a K, max_parallelism: usize) -> ScopedKey<'a, K> {
        ScopedKey { key, key_group: assign_key_group(key, max_parallelism) }
    }
}

impl<'a, K> ScopedKey<'a, K> {
    /// `key` placed in `key_group` by its owner rather than by its own hash: a namespace (such as
    /// a window) whose entries belong to the group of the record key they are kept for.
    #[inline]
    pub(crate) fn in_key_group(key: &'a K, key_group: usize) -> ScopedKey<'a, K> {
        ScopedKey { key, key_group }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &'a K {
        self.key
    }

    /// The key's group.
    #[inline]
    pub fn key_group(&self) -> usize {
        self.key_group
    }
}

impl<K> Clone for ScopedKey<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for ScopedKey<'_, K> {}

impl<K: fmt::Debug> fmt::Debug for ScopedKey<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}@{}", self.key, self.key_group)
    }
}

/// The current key's view of a subtask's keyed state and timers; state handles act through it.
pub struct KeyContext<'a, K, B = super::KeyedStateBackend<K>> {
    backend: &'a mut B,
    timers: &'a mut TimerService<K>,
    key: ScopedKey<'a, K>,
}

impl<'a, K: Key, B: StateBackend<K>> KeyContext<'a, K, B> {
    /// Makes `key` the current key of `backend` and `timers`.
    ///
    /// Panics if the key's group is not owned by the subtask (a routing bug), or, in debug
    /// builds, if the backend and the timer service own different key groups.
    #[inline]
    pub fn new(backend: &'a mut B, timers: &'a mut TimerService<K>, key: &'a K) -> KeyContext<'a, K, B> {
        debug_assert_eq!(backend.key_groups(), timers.key_groups(), "state and timers of one subtask own different key groups");
        let key = backend.scope(key);
        KeyContext { backend, timers, key }
    }

    /// The current key.
    pub fn key(&self) -> &'a K {
        self.key.key()
    }

    /// The current key's group.
    pub fn key_group(&self) -> usize {
        self.key.key_group()
    }

    /// The current key with its group, for calling the backend directly.
    pub fn scoped_key(&self) -> ScopedKey<'a, K> {
        self.key
    }

    /// The backend, for operations a handle does not offer.
    pub fn backend(&mut self) -> &mut B {
        self.backend
    }

    /// Removes every state of the current key (its timers stay, as in Flink).
    pub fn clear_all_state(&mut self) {
        self.backend.clear_key(self.key);
    }

    /// Asks for `on_timer` with the current key once the watermark reaches `timestamp`; once only,
    /// however often it is asked.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.timers.register_timer(TimeDomain::EventTime, self.key, timestamp);
    }

    /// Withdraws an event-time timer of the current key, if registered.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.timers.delete_timer(TimeDomain::EventTime, self.key, timestamp);
    }

    /// Asks for `on_timer` with the current key once processing time reaches `timestamp_ms`.
    pub fn register_processing_time_timer(&mut self, timestamp_ms: i64) {
        self.timers.register_timer(TimeDomain::ProcessingTime, self.key, timestamp_ms);
    }

    /// Withdraws a processing-time timer of the current key, if registered.
    pub fn delete_processing_time_timer(&mut self, timestamp_ms: i64) {
        self.timers.delete_timer(TimeDomain::ProcessingTime, self.key, timestamp_ms);
    }

    /// The subtask's current event-time watermark (`i64::MIN` before the first).
    pub fn current_watermark(&self) -> i64 {
        self.timers.current_watermark()
    }

    pub(crate) fn parts(&mut self) -> (&mut B, ScopedKey<'a, K>) {
        (self.backend, self.key)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{ManualClock, StateDescriptor, StateTtlConfig, ValueState};
    use super::*;
    use crate::key_group::KeyGroupRange;

    /// What a keyed process function looks like on top of this module: handles in fields, state
    /// and timers through the context.
    struct CountThenClear {
        count: ValueState<u64>,
    }

    impl CountThenClear {
        fn open<B: StateBackend<u64>>(backend: &mut B) -> CountThenClear {
            CountThenClear { count: backend.register_value(&StateDescriptor::new("count")).expect("fresh backend") }
        }

        fn process_element<B: StateBackend<u64>>(&mut self, timestamp: i64, ctx: &mut KeyContext<'_, u64, B>) -> u64 {
            ctx.register_event_time_timer(timestamp + 10);
            self.count.modify(ctx, |count| {
                let count = count.get_or_insert(0);
                *count += 1;
                *count
            })
        }

        fn on_timer<B: StateBackend<u64>>(&mut self, ctx: &mut KeyContext<'_, u64, B>) -> Option<u64> {
            let last = self.count.get(ctx);
            self.count.clear(ctx);
            last
        }
    }

    #[test]
    fn a_process_function_counts_per_key_and_clears_on_its_timer() {
        let range = KeyGroupRange::for_subtask(0, 1, 16);
        let mut backend = HeapStateBackend::<u64>::new(range, 16);
        let mut timers = TimerService::<u64>::new(range, 16);
        let mut function = CountThenClear::open(&mut backend);

        let mut emitted = Vec::new();
        for (key, timestamp) in [(1u64, 100), (2, 100), (1, 100), (1, 105)] {
            let mut ctx = KeyContext::new(&mut backend, &mut timers, &key);
            emitted.push(function.process_element(timestamp, &mut ctx));
        }
        assert_eq!(emitted, [1, 1, 2, 3]);

        // Watermark 110: key 1's timer at 110 and key 2's at 110 fire (the 115 one waits); each fires once.
        let mut fired = Vec::new();
        while let Some(timer) = timers.poll_event_time(110) {
            let mut ctx = KeyContext::new(&mut backend, &mut timers, &timer.key);
            fired.push((timer.key, timer.timestamp, function.on_timer(&mut ctx)));
        }
        fired.sort();
        assert_eq!(fired, [(1, 110, Some(3)), (2, 110, Some(1))]);
        assert_eq!(timers.next_event_time(), Some(115));
        assert!(backend.keys(assign_key_group(&1u64, 16)).is_empty());
    }

    #[test]
    fn the_context_scopes_handles_to_its_key() {
        let range = KeyGroupRange::for_subtask(0, 1, 8);
        let clock = ManualClock::new(0);
        let mut backend = HeapStateBackend::<String>::with_clock(range, 8, std::sync::Arc::new(clock));
        let mut timers = TimerService::new(range, 8);
        let name: ValueState<String> = backend
            .register_value(&StateDescriptor::new("name").with_ttl(StateTtlConfig::new(Duration::from_secs(1))))
            .expect("fresh backend");
        let (alice, bob) = ("alice".to_string(), "bob".to_string());
        name.update(&mut KeyContext::new(&mut backend, &mut timers, &alice), "A".to_string());
        let mut ctx = KeyContext::new(&mut backend, &mut timers, &bob);
        assert_eq!(ctx.key(), "bob");
        assert_eq!(ctx.key_group(), assign_key_group(&bob, 8));
        assert_eq!(name.get(&mut ctx), None);
        name.update(&mut ctx, "B".to_string());
        ctx.clear_all_state();
        assert_eq!(name.get(&mut ctx), None);
        assert_eq!(name.get(&mut KeyContext::new(&mut backend, &mut timers, &alice)).as_deref(), Some("A"));
    }

    #[test]
    #[should_panic(expected = "routed to subtask")]
    fn a_key_of_another_subtask_is_a_routing_bug() {
        let range = KeyGroupRange::for_subtask(0, 2, 16);
        let mut backend = HeapStateBackend::<i64>::new(range, 16);
        let mut timers = TimerService::new(range, 16);
        let foreign = (0..1000i64).find(|k| !range.contains(assign_key_group(k, 16))).expect("half the keys are foreign");
        KeyContext::new(&mut backend, &mut timers, &foreign);
    }
}
