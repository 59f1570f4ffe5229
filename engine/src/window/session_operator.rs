//! The keyed session window operator: per key, session windows that merge as records come.
//!
//! Each record opens the window `[ts, ts + gap)`; windows of one key that intersect merge into
//! one session, their states merged by the window function (see `session::SessionWindowSet`).
//! A session fires when the watermark reaches its max timestamp. Which keys to look at is kept
//! in a fire index by time (an entry per session end and per end of allowed lateness); a stale
//! entry (the session grew or merged) finds nothing due and costs one lookup.
//!
//! Lateness as in the other window operator: a fired session keeps its state until the watermark
//! passes `max timestamp + allowed lateness`; a late record that lands in it (or merges with it)
//! updates it, and it fires again at once, marked as an update. A record whose own window is past
//! allowed lateness goes to the `LatePolicy`; `EarliestOpenWindow` opens it a session at the
//! first timestamp after the watermark.

use std::collections::BTreeMap;

use super::function::MergingWindowFunction;
use super::operator::{LatePolicy, LateRecord};
use super::session::{EventTimeSessionWindows, SessionWindowSet};
use crate::base::Key;
use crate::base::UserError;
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::operator::keyed::KeyedStateMap;
use crate::operator::{FrameOperator, Output};
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError};

/// A session's state and whether it has fired before.
#[derive(Clone)]
pub(crate) struct SessionState<S> {
    value: S,
    fired: bool,
}

pub(crate) struct SessionWindowOperator<K, T, F: MergingWindowFunction<K, T>, KeyFn, TimestampFn> {
    key_fn: KeyFn,
    timestamp_fn: TimestampFn,
    assigner: EventTimeSessionWindows,
    function: F,
    allowed_lateness_ms: i64,
    late_policy: LatePolicy<T>,
    sessions: KeyedStateMap<K, SessionWindowSet<SessionState<F::State>>>,
    /// Keys to look at when the watermark reaches each time.
    fire_index: BTreeMap<i64, Vec<K>>,
    watermark: i64,
    late_dropped: u64,
    late_reassigned: u64,
}

impl<K, T, F, KeyFn, TimestampFn> SessionWindowOperator<K, T, F, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: MergingWindowFunction<K, T>,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        assigner: EventTimeSessionWindows,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Self {
        assert!(allowed_lateness_ms >= 0, "allowed lateness is never negative");
        SessionWindowOperator {
            key_fn,
            timestamp_fn,
            assigner,
            function,
            allowed_lateness_ms,
            late_policy,
            sessions: KeyedStateMap::new(range, max_parallelism),
            fire_index: BTreeMap::new(),
            watermark: i64::MIN,
            late_dropped: 0,
            late_reassigned: 0,
        }
    }

    /// Adds a record at `timestamp` to its key's sessions; fires at once if the session it lands
    /// in is already past the watermark (a late update within allowed lateness).
    fn add(&mut self, key: K, timestamp: i64, record: T, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let window = self.assigner.assign(timestamp);
        let (function, watermark, lateness) = (&self.function, self.watermark, self.allowed_lateness_ms);
        let mut due = None;
        let result = self.sessions.update(key, SessionWindowSet::new, |key, set| {
            let added = set.add(
                window,
                |earlier, later| SessionState { value: function.merge(earlier.value, later.value), fired: earlier.fired || later.fired },
                || SessionState { value: function.create(), fired: false },
            );
            function.add(&mut added.state.value, record);
            let session = added.window;
            if session.max_timestamp() <= watermark {
                let is_update = added.state.fired;
                added.state.fired = true;
                due = Some((key.clone(), session.max_timestamp().saturating_add(lateness)));
                function.emit(key, session, &added.state.value, is_update, out)
            } else {
                due = Some((key.clone(), session.max_timestamp()));
                Ok(())
            }
        });
        if let Some((key, at)) = due {
            self.fire_index.entry(at).or_default().push(key);
        }
        result
    }
}

impl<K, T, F, KeyFn, TimestampFn> FrameOperator<T, F::Out> for SessionWindowOperator<K, T, F, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: MergingWindowFunction<K, T>,
    KeyFn: Fn(&T) -> K + Send + 'static,
    TimestampFn: Fn(&T) -> i64 + Send + 'static,
{
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        for record in frame {
            let timestamp = (self.timestamp_fn)(&record);
            let window = self.assigner.assign(timestamp);
            if window.max_timestamp().saturating_add(self.allowed_lateness_ms) <= self.watermark {
                match &self.late_policy {
                    LatePolicy::Drop => self.late_dropped += 1,
                    LatePolicy::SideOutput(tag) => out.emit_side(tag, LateRecord { record, window, watermark: self.watermark }),
                    LatePolicy::EarliestOpenWindow => {
                        self.late_reassigned += 1;
                        let key = (self.key_fn)(&record);
                        self.add(key, self.watermark.saturating_add(1), record, out)?;
                    }
                }
                continue;
            }
            let key = (self.key_fn)(&record);
            self.add(key, timestamp, record, out)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let later = self.fire_index.split_off(&watermark.saturating_add(1));
        let due = std::mem::replace(&mut self.fire_index, later);
        let (function, lateness) = (&self.function, self.allowed_lateness_ms);
        for key in due.into_values().flatten() {
            let mut cleanup_at = Vec::new();
            let emptied = self.sessions.with_existing(&key, |set| -> Result<bool, UserError> {
                for (session, state) in set.iter_mut() {
                    if session.max_timestamp() > watermark {
                        break;
                    }
                    if !state.fired {
                        state.fired = true;
                        function.emit(&key, session, &state.value, false, out)?;
                        if lateness > 0 {
                            cleanup_at.push(session.max_timestamp().saturating_add(lateness));
                        }
                    }
                }
                // Retire sessions past allowed lateness.
                set.fire_until(watermark.saturating_sub(lateness)).for_each(drop);
                Ok(set.is_empty())
            });
            for at in cleanup_at {
                self.fire_index.entry(at).or_default().push(key.clone());
            }
            if emptied.transpose()? == Some(true) {
                self.sessions.remove(&key);
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("late_records_dropped", self.late_dropped), ("late_records_reassigned", self.late_reassigned)]
    }
}

impl<K, T, F, KeyFn, TimestampFn> KeyGroupedState for SessionWindowOperator<K, T, F, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: MergingWindowFunction<K, T>,
{
    fn snapshot_key_group(&self, key_group: usize) -> OperatorKeyGroupSnapshot {
        OperatorKeyGroupSnapshot::new(key_group, self.sessions.max_parallelism, self.sessions.snapshot_group(key_group))
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        type Sessions<K, S> = Vec<(K, SessionWindowSet<SessionState<S>>)>;
        let (key_group, entries) = snapshot.into_data::<Sessions<K, F::State>>(self.sessions.range(), self.sessions.max_parallelism)?;
        // The fire index is derived state: each session is due at its end, a fired one at the end of
        // its allowed lateness.
        for (key, sessions) in &entries {
            for (session, state) in sessions.iter() {
                let due =
                    if state.fired { session.max_timestamp().saturating_add(self.allowed_lateness_ms) } else { session.max_timestamp() };
                self.fire_index.entry(due).or_default().push(key.clone());
            }
        }
        self.sessions.restore_group(key_group, entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::base::SubtaskContext;
    use crate::base::{AggregateFunction, MergingAggregateFunction};
    use crate::key_group::assign_key_group;
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};
    use crate::window::function::AggregateWindowFunction;
    use crate::window::WindowResult;

    struct Sum;
    impl AggregateFunction<(i64, i64), i64, i64> for Sum {
        fn create_accumulator(&self) -> i64 {
            0
        }
        fn add(&self, sum: &mut i64, record: (i64, i64)) {
            *sum += record.1;
        }
        fn get_result(&self, sum: &i64) -> i64 {
            *sum
        }
    }
    impl MergingAggregateFunction<(i64, i64), i64, i64> for Sum {
        fn merge(&self, a: i64, b: i64) -> i64 {
            a + b
        }
    }

    #[test]
    fn sessions_moved_by_key_group_give_the_same_results() {
        // Each key sees a record every 21 ms or 35 ms: with a 30 ms gap some runs merge, some split.
        let records: Vec<(i64, i64)> = (0..4_000i64).map(|i| (i % 5, i * 7 + (i % 3) * 5)).collect();
        let frames: Vec<(Vec<(i64, i64)>, i64)> = records.chunks(200).map(|c| (c.to_vec(), c.last().unwrap().1 - 40)).collect();
        for lateness in [0, 100] {
            assert_rescale_keeps_results::<_, WindowResult<i64, i64>>(
                |subtask, parallelism| {
                    let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
                    let operator = SessionWindowOperator::new(
                        |r: &(i64, i64)| r.0,
                        |r: &(i64, i64)| r.1,
                        EventTimeSessionWindows::with_gap(std::time::Duration::from_millis(30)),
                        AggregateWindowFunction(Arc::new(Sum), std::marker::PhantomData),
                        lateness,
                        LatePolicy::Drop,
                        range,
                        MAX_PARALLELISM,
                    );
                    OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
                },
                &frames,
                |r| assign_key_group(&r.0, MAX_PARALLELISM),
            );
        }
    }
}
