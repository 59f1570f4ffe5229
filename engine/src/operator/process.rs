//! Keyed process functions: user code per record with keyed state, timers and side outputs
//! (Flink's `KeyedProcessFunction`).
//!
//! The operator owns the subtask's state backend and timer service for its key-group range. For
//! each record it scopes a `KeyContext` to the record's key (Flink's `setCurrentKey`) and calls
//! `process_element`; the function reads and writes state through the handles it registered in
//! `open`, and registers timers. Event-time timers fire, in time order, when the watermark
//! passes them, before the watermark goes downstream; processing-time timers fire when the
//! task's processing-time tick reaches them. A timer registered while timers fire, and already
//! due, fires in the same pass.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FrameOperator, Output, OutputTag};
use crate::base::Key;
use crate::base::UserError;
use crate::frame::Record;
use crate::state::{
    KeyContext, KeyGroupSnapshot, KeyGroupTimers, KeyGroupedState, KeyedStateBackend, OperatorKeyGroupSnapshot, StateBackend, StateError,
    TimeDomain, TimerService,
};

/// What a process function sees while handling a record or a timer.
pub struct ProcessContext<'c, 'o, K, Out: Record> {
    /// State and timers of the current key.
    pub keyed: KeyContext<'c, K>,
    out: &'c mut Output<'o, Out>,
    timestamp: Option<i64>,
    processing_time_ms: i64,
}

impl<K: Key, Out: Record> ProcessContext<'_, '_, K, Out> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.keyed.key()
    }

    /// The event time of the current record (or the timer's time when a timer fires), if the
    /// stream has timestamps.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.keyed.current_watermark()
    }

    /// Processing time now, milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time_ms
    }

    /// Emits a record.
    pub fn emit(&mut self, record: Out) {
        self.out.emit(record);
    }

    /// Emits a record to a side output.
    pub fn emit_side<S: Record>(&mut self, tag: &OutputTag<S>, record: S) {
        self.out.emit_side(tag, record);
    }

    /// Registers an event-time timer for the current key.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.keyed.register_event_time_timer(timestamp);
    }

    /// Registers a processing-time timer (milliseconds since the epoch) for the current key.
    pub fn register_processing_time_timer(&mut self, timestamp_ms: i64) {
        self.keyed.register_processing_time_timer(timestamp_ms);
    }
}

/// User code on a keyed stream with state and timers.
pub trait KeyedProcessFunction<K: Key, In: Record, Out: Record>: Send + 'static {
    /// Called once per subtask before any record: register state here.
    fn open(&mut self, _state: &mut KeyedStateBackend<K>) -> Result<(), UserError> {
        Ok(())
    }

    /// Handles one record of the current key.
    fn process_element(&mut self, record: In, ctx: &mut ProcessContext<'_, '_, K, Out>) -> Result<(), UserError>;

    /// Handles a timer of the current key firing at `timestamp` in `domain`.
    fn on_timer(&mut self, _timestamp: i64, _domain: TimeDomain, _ctx: &mut ProcessContext<'_, '_, K, Out>) -> Result<(), UserError> {
        Ok(())
    }
}

pub(crate) struct KeyedProcessOperator<K, In, F, KeyFn> {
    pub function: F,
    pub key_fn: KeyFn,
    pub timestamp_fn: Option<Arc<dyn Fn(&In) -> i64 + Send + Sync>>,
    pub backend: KeyedStateBackend<K>,
    pub timers: TimerService<K>,
    /// The earliest processing-time timer, kept for `next_processing_time`.
    pub next_processing_timer_ms: Option<i64>,
    /// A processing time in both clocks, to turn timer milliseconds into `Instant`s without
    /// drift between calls.
    pub clock_anchor: (Instant, i64),
    /// The watermark whose event-time timers are not all fired yet: firing stopped when the
    /// output blocked and goes on in `resume_output`.
    pub firing_until: Option<i64>,
    /// Most timers registered at once, sampled after each input frame.
    pub timers_peak: u64,
    /// Key groups whose state or timers changed since the last checkpoint (every call into the
    /// function is for one key and may change only that key's group).
    pub changes: crate::state::KeyGroupChanges,
    pub _records: PhantomData<fn(In)>,
}

impl<K: Key, In: Record, F, KeyFn> KeyedProcessOperator<K, In, F, KeyFn> {
    fn refresh_next_processing_timer(&mut self) {
        self.next_processing_timer_ms = self.timers.next_processing_time();
    }

    /// The processing time (ms) of `instant`, by the anchor.
    fn millis_at(&self, instant: Instant) -> i64 {
        let (anchor, anchor_ms) = self.clock_anchor;
        anchor_ms.saturating_add(instant.saturating_duration_since(anchor).as_millis() as i64)
    }
}

impl<K, In, Out, F, KeyFn> FrameOperator<In, Out> for KeyedProcessOperator<K, In, F, KeyFn>
where
    K: Key,
    In: Record,
    Out: Record,
    F: KeyedProcessFunction<K, In, Out>,
    KeyFn: Fn(&In) -> K + Send + 'static,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        let processing_time_ms = self.millis_at(Instant::now());
        for record in frame {
            let key = (self.key_fn)(&record);
            let timestamp = self.timestamp_fn.as_ref().map(|f| f(&record));
            self.changes.mark(crate::key_group::assign_key_group(&key, self.backend.max_parallelism()));
            let mut ctx =
                ProcessContext { keyed: KeyContext::new(&mut self.backend, &mut self.timers, &key), out, timestamp, processing_time_ms };
            self.function.process_element(record, &mut ctx)?;
            // State TTL cleans up in the background as records flow (for states that ask).
            self.backend.cleanup_after_record();
        }
        let timers = self.timers.len(TimeDomain::EventTime) + self.timers.len(TimeDomain::ProcessingTime);
        self.timers_peak = self.timers_peak.max(timers as u64);
        self.refresh_next_processing_timer();
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("timers_peak", self.timers_peak)]
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        debug_assert!(self.firing_until.is_none(), "a watermark arrived while timers were still firing");
        self.firing_until = Some(watermark);
        self.resume_output(out)
    }

    fn has_pending_output(&self) -> bool {
        self.firing_until.is_some()
    }

    /// Fires the event-time timers up to the watermark, one at a time, until the output blocks.
    fn resume_output(&mut self, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        let Some(watermark) = self.firing_until else { return Ok(()) };
        let processing_time_ms = self.millis_at(Instant::now());
        loop {
            if out.is_blocked() {
                self.refresh_next_processing_timer();
                return Ok(());
            }
            let Some(timer) = self.timers.poll_event_time(watermark) else { break };
            self.changes.mark(crate::key_group::assign_key_group(&timer.key, self.backend.max_parallelism()));
            let mut ctx = ProcessContext {
                keyed: KeyContext::new(&mut self.backend, &mut self.timers, &timer.key),
                out,
                timestamp: Some(timer.timestamp),
                processing_time_ms,
            };
            self.function.on_timer(timer.timestamp, TimeDomain::EventTime, &mut ctx)?;
        }
        self.firing_until = None;
        self.refresh_next_processing_timer();
        Ok(())
    }

    fn on_processing_time(&mut self, now: Instant, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        let now_ms = self.millis_at(now);
        // Timers left when the output blocks stay due: the task calls again once it has room.
        while !out.is_blocked() {
            let Some(timer) = self.timers.poll_processing_time(now_ms) else { break };
            self.changes.mark(crate::key_group::assign_key_group(&timer.key, self.backend.max_parallelism()));
            let mut ctx = ProcessContext {
                keyed: KeyContext::new(&mut self.backend, &mut self.timers, &timer.key),
                out,
                timestamp: None,
                processing_time_ms: now_ms,
            };
            self.function.on_timer(timer.timestamp, TimeDomain::ProcessingTime, &mut ctx)?;
        }
        self.refresh_next_processing_timer();
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }

    fn next_processing_time(&self) -> Option<Instant> {
        let due_ms = self.next_processing_timer_ms?;
        let (anchor, anchor_ms) = self.clock_anchor;
        Some(anchor + Duration::from_millis(due_ms.saturating_sub(anchor_ms).max(0) as u64))
    }
}

impl<K: Key, In: Record, F: Send, KeyFn: Send> KeyGroupedState for KeyedProcessOperator<K, In, F, KeyFn> {
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        let state = self.backend.snapshot_key_group(key_group)?;
        let timers = self.timers.snapshot_key_group(key_group);
        OperatorKeyGroupSnapshot::new(key_group, self.backend.max_parallelism(), &(state, timers))
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        // The state is taken without a copy; the group's timers are copied (as Flink's heap timers).
        let state = self.backend.snapshot_key_group_deferred(key_group)?;
        let timers = self.timers.snapshot_key_group(key_group);
        let max_parallelism = self.backend.max_parallelism();
        Ok(Box::new(move || OperatorKeyGroupSnapshot::new(key_group, max_parallelism, &(state()?, timers))))
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        let changed = self.changes.key_groups();
        self.changes.clear();
        Some(changed)
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (_, (state, timers)) =
            snapshot.into_data::<(KeyGroupSnapshot<K>, KeyGroupTimers<K>)>(self.backend.key_groups(), self.backend.max_parallelism())?;
        self.backend.restore_key_group(state)?;
        self.timers.restore_key_group(timers)?;
        self.refresh_next_processing_timer();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::key_group::{assign_key_group, KeyGroupRange};
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};
    use crate::state::{StateDescriptor, SystemClock, ValueState};

    /// Counts a key's records; 50 ms after each record's time, emits (key, count, timer time)
    /// if no later record came, and forgets the key.
    struct CountUntilQuiet(Option<ValueState<(u64, i64)>>);

    impl KeyedProcessFunction<i64, (i64, i64), (i64, u64, i64)> for CountUntilQuiet {
        fn open(&mut self, state: &mut KeyedStateBackend<i64>) -> Result<(), UserError> {
            self.0 = Some(state.register_value(&StateDescriptor::new("count-and-last"))?);
            Ok(())
        }

        fn process_element(&mut self, record: (i64, i64), ctx: &mut ProcessContext<'_, '_, i64, (i64, u64, i64)>) -> Result<(), UserError> {
            let state = self.0.expect("opened");
            state.modify(&mut ctx.keyed, |s| {
                let (count, _) = s.unwrap_or((0, 0));
                *s = Some((count + 1, record.1));
            });
            ctx.register_event_time_timer(record.1 + 50);
            Ok(())
        }

        fn on_timer(
            &mut self,
            timestamp: i64,
            _domain: TimeDomain,
            ctx: &mut ProcessContext<'_, '_, i64, (i64, u64, i64)>,
        ) -> Result<(), UserError> {
            let state = self.0.expect("opened");
            if let Some((count, last)) = state.get(&mut ctx.keyed) {
                if last + 50 == timestamp {
                    let key = *ctx.key();
                    ctx.emit((key, count, timestamp));
                    state.clear(&mut ctx.keyed);
                }
            }
            Ok(())
        }
    }

    #[test]
    fn state_and_timers_moved_by_key_group_give_the_same_results() {
        // Keys go quiet now and then (every 7th step skips ahead), so timers fire on both sides of
        // the move and some are still pending in the snapshot.
        let records: Vec<(i64, i64)> = (0..3_000i64).map(|i| (i % 9, i * 10 + (i / 7) * 60)).collect();
        let frames: Vec<(Vec<(i64, i64)>, i64)> = records.chunks(100).map(|c| (c.to_vec(), c.last().unwrap().1 - 20)).collect();
        assert_rescale_keeps_results::<_, (i64, u64, i64)>(
            |subtask, parallelism| {
                let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
                let mut backend = KeyedStateBackend::open(None, None, range, MAX_PARALLELISM).unwrap();
                let mut function = CountUntilQuiet(None);
                function.open(&mut backend).unwrap();
                let operator = KeyedProcessOperator {
                    function,
                    key_fn: |r: &(i64, i64)| r.0,
                    timestamp_fn: Some(
                        std::sync::Arc::new(|r: &(i64, i64)| r.1) as std::sync::Arc<dyn Fn(&(i64, i64)) -> i64 + Send + Sync>
                    ),
                    backend,
                    timers: TimerService::new(range, MAX_PARALLELISM),
                    next_processing_timer_ms: None,
                    clock_anchor: (Instant::now(), crate::state::Clock::now_ms(&SystemClock)),
                    firing_until: None,
                    timers_peak: 0,
                    changes: crate::state::KeyGroupChanges::all_changed(range),
                    _records: PhantomData,
                };
                OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
            },
            &frames,
            |r| assign_key_group(&r.0, MAX_PARALLELISM),
        );
    }
}
