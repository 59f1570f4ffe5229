//! The keyed session window operator: per key, session windows that merge as records come, with
//! Flink's `WindowOperator` semantics over a `MergingWindowSet` and an `EventTimeTrigger`.
//!
//! A record opens the window `[ts, ts + gap)`, which first merges with every session of its key
//! it overlaps or touches (`session::SessionWindowSet`); only then is lateness checked, on the
//! merged session. So a record behind the watermark that falls into, extends or bridges a live
//! session is kept. A record whose window merged with nothing and is already past
//! `max timestamp + allowed lateness` is late and goes to the `LatePolicy`.
//!
//! Firing: a session fires on time when the watermark reaches its max timestamp (`end - 1`). A
//! record that lands in a session the watermark has already passed fires it at once (an update
//! if that very window fired before). A session that grows or merges is a new window: if its end
//! is past the watermark it waits for the watermark and fires on time, as its own first firing.
//! A session's state is kept until the watermark reaches `max timestamp + allowed lateness`.
//!
//! Timers: the engine's deduplicating `TimerService`, one event-time timer per (key, time): a
//! session's end while it waits to fire on time, and its cleanup time. Timers of sessions merged
//! away are deleted unless another live session of the key needs the same time, so the timers
//! held are at most two per live session, whatever the number of records.

use super::function::MergingWindowFunction;
use super::operator::{LatePolicy, LateRecord};
use super::session::{EventTimeSessionWindows, SessionWindowSet};
use super::TimeWindow;
use crate::base::Key;
use crate::base::UserError;
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::operator::keyed::KeyedStateMap;
use crate::operator::{FrameOperator, Output};
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError, TimeDomain, Timer, TimerService};

/// A session's state and whether this very window has fired before.
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
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
    /// Event-time timers: each session's end (until it fires on time) and its cleanup time.
    timers: TimerService<K>,
    watermark: i64,
    /// The watermark's due timers are not all handled yet: the output blocked.
    firing_pending: bool,
    /// Scratch for one record: the sessions its window merges with.
    merged: Vec<TimeWindow>,
    late_dropped: u64,
    late_reassigned: u64,
}

/// When a session's state goes: the watermark reached its max timestamp plus allowed lateness.
fn cleanup_time(window: TimeWindow, allowed_lateness_ms: i64) -> i64 {
    window.max_timestamp().saturating_add(allowed_lateness_ms)
}

impl<K, T, F, KeyFn, TimestampFn> SessionWindowOperator<K, T, F, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: MergingWindowFunction<K, T>,
    KeyFn: Fn(&T) -> K,
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
            sessions: KeyedStateMap::new(range, max_parallelism).tracking_changes(),
            timers: TimerService::new(range, max_parallelism),
            watermark: i64::MIN,
            firing_pending: false,
            merged: Vec::new(),
            late_dropped: 0,
            late_reassigned: 0,
        }
    }

    /// Merges the window of a record at `timestamp` into its key's sessions and, unless the merged
    /// session is already past allowed lateness, adds the record to it (firing at once if the
    /// watermark has passed the session's end). Returns the record if it is late.
    fn add(&mut self, key: K, timestamp: i64, record: T, out: &mut Output<'_, F::Out>) -> Result<Option<T>, UserError> {
        let window = self.assigner.assign(timestamp);
        let (watermark, lateness) = (self.watermark, self.allowed_lateness_ms);
        if cleanup_time(window, lateness) <= watermark {
            // Late unless it merges with a live session: live sessions end after
            // `watermark - lateness`, and so does any session they merge into (Flink checks this
            // and fails), so only a window that merges with nothing can be late.
            let merges = self.sessions.with_existing(&key, |set| set.intersecting(window).len() > 0).unwrap_or(false);
            if !merges {
                return Ok(Some(record));
            }
        }
        let SessionWindowOperator { function, sessions, timers, merged, .. } = self;
        sessions.update(key, SessionWindowSet::new, |key, set| {
            merged.clear();
            merged.extend(set.intersecting(window));
            let added = set.add(
                window,
                // Sessions that merge become a new window: it has not fired.
                |earlier, later| SessionState { value: function.merge(earlier.value, later.value), fired: false },
                || SessionState { value: function.create(), fired: false },
            );
            let session = added.window;
            debug_assert!(
                cleanup_time(session, lateness) > watermark,
                "merging made sessions {merged:?} late as {session:?} at watermark {watermark}"
            );
            if !(merged.len() == 1 && merged[0] == session) {
                // Grown or merged: a new window, which fires on its own.
                added.state.fired = false;
            }
            function.add(&mut added.state.value, record);
            let scoped = timers.scope(key);
            let fired = if session.max_timestamp() <= watermark {
                let is_update = added.state.fired;
                added.state.fired = true;
                function.emit(key, session, &added.state.value, is_update, watermark, out)
            } else {
                timers.register_timer(TimeDomain::EventTime, scoped, session.max_timestamp());
                Ok(())
            };
            timers.register_timer(TimeDomain::EventTime, scoped, cleanup_time(session, lateness));
            // The timers of the sessions merged away go, unless a live session needs the same time.
            for gone in merged.iter().filter(|gone| **gone != session) {
                for time in [gone.max_timestamp(), cleanup_time(*gone, lateness)] {
                    let needed = set.has_max_timestamp(time)
                        || time.checked_sub(lateness).is_some_and(|end| set.has_max_timestamp(end))
                        || (time == i64::MAX && set.windows().any(|live| cleanup_time(live, lateness) == i64::MAX));
                    if !needed {
                        timers.delete_timer(TimeDomain::EventTime, scoped, time);
                    }
                }
            }
            fired
        })?;
        Ok(None)
    }

    /// Handles a record later than allowed lateness by the `LatePolicy`.
    fn on_late(&mut self, record: T, timestamp: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        match &self.late_policy {
            LatePolicy::Drop => self.late_dropped += 1,
            LatePolicy::SideOutput(tag) => {
                out.emit_side(tag, LateRecord { record, window: self.assigner.assign(timestamp), watermark: self.watermark })
            }
            LatePolicy::EarliestOpenWindow => {
                self.late_reassigned += 1;
                let key = (self.key_fn)(&record);
                // The window at the first timestamp after the watermark is never late.
                let late = self.add(key, self.watermark.saturating_add(1), record, out)?;
                assert!(late.is_none(), "a window after the watermark is not late");
            }
        }
        Ok(())
    }

    /// A due timer of `timer.key`: fires the sessions ending at its time (Flink's
    /// `EventTimeTrigger.onEventTime`) and drops those whose cleanup time it is.
    fn on_timer(&mut self, timer: Timer<K>, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let Timer { key, timestamp } = timer;
        let (function, watermark, lateness) = (&self.function, self.watermark, self.allowed_lateness_ms);
        let emptied = self.sessions.with_existing(&key, |set| -> Result<bool, UserError> {
            for (session, state) in set.iter_mut() {
                if session.max_timestamp() == timestamp {
                    let is_update = state.fired;
                    state.fired = true;
                    function.emit(&key, session, &state.value, is_update, watermark, out)?;
                }
            }
            set.retain(|session, _| cleanup_time(session, lateness) != timestamp);
            Ok(set.is_empty())
        });
        if emptied.transpose()? == Some(true) {
            self.sessions.remove(&key);
        }
        Ok(())
    }

    /// Handles the due timers until none is left or the output blocks.
    fn fire_due_timers(&mut self, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        while let Some(timer) = self.timers.poll_event_time(self.watermark) {
            self.on_timer(timer, out)?;
            if out.is_blocked() {
                return Ok(());
            }
        }
        self.firing_pending = false;
        Ok(())
    }

    /// Live sessions over all keys.
    fn sessions_open(&self) -> usize {
        self.sessions.iter().map(|(_, set)| set.len()).sum()
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
            let key = (self.key_fn)(&record);
            if let Some(late) = self.add(key, timestamp, record, out)? {
                self.on_late(late, timestamp, out)?;
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        debug_assert!(!self.firing_pending, "a watermark came while firings were pending");
        self.watermark = watermark;
        self.firing_pending = true;
        self.fire_due_timers(out)
    }

    fn has_pending_output(&self) -> bool {
        self.firing_pending
    }

    fn resume_output(&mut self, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        if self.firing_pending {
            self.fire_due_timers(out)?;
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("late_records_dropped", self.late_dropped),
            ("late_records_reassigned", self.late_reassigned),
            ("event_timers", self.timers.len(TimeDomain::EventTime) as u64),
            ("sessions_open", self.sessions_open() as u64),
        ]
    }
}

impl<K, T, F, KeyFn, TimestampFn> KeyGroupedState for SessionWindowOperator<K, T, F, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: MergingWindowFunction<K, T>,
{
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        OperatorKeyGroupSnapshot::new(key_group, self.sessions.max_parallelism, &self.sessions.snapshot_group(key_group))
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        Ok(self.sessions.snapshot_group_deferred(key_group))
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        self.sessions.take_changes()
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        type Sessions<K, S> = Vec<(K, SessionWindowSet<SessionState<S>>)>;
        let (key_group, entries) = snapshot.into_data::<Sessions<K, F::State>>(self.sessions.range(), self.sessions.max_parallelism)?;
        // Timers are derived state: a session that has not fired waits for its end, and every
        // session for its cleanup time.
        for (key, sessions) in &entries {
            let scoped = self.timers.scope(key);
            for (session, state) in sessions.iter() {
                if !state.fired {
                    self.timers.register_timer(TimeDomain::EventTime, scoped, session.max_timestamp());
                }
                self.timers.register_timer(TimeDomain::EventTime, scoped, cleanup_time(session, self.allowed_lateness_ms));
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
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::window::function::{AggregateWindowFunction, ProcessWindowFunction, WindowContext};
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

    /// A record of the model tests: key, event time, value, arrival sequence.
    type Event = (u8, i64, i64, u64);

    /// A firing: key, window start and end, records, sum of values, largest sequence, whether
    /// an update, and the watermark at the firing.
    type Fired = (u8, i64, i64, u64, i64, u64, bool, i64);

    /// What goes into the operator, in order.
    #[derive(Debug, Clone)]
    enum Input {
        Frame(Vec<Event>),
        Watermark(i64),
    }

    /// The inputs for `events` arriving in order with a watermark of `max ts - bound` right after
    /// each record that raises it (then `i64::MAX` at the end); records between two watermarks are
    /// cut into frames of `frame_records`.
    fn inputs(events: &[Event], bound: i64, frame_records: usize) -> Vec<Input> {
        let (mut inputs, mut frame, mut watermark) = (Vec::new(), Vec::new(), i64::MIN);
        for &event in events {
            frame.push(event);
            if frame.len() == frame_records {
                inputs.push(Input::Frame(std::mem::take(&mut frame)));
            }
            if event.1 - bound > watermark {
                watermark = event.1 - bound;
                if !frame.is_empty() {
                    inputs.push(Input::Frame(std::mem::take(&mut frame)));
                }
                inputs.push(Input::Watermark(watermark));
            }
        }
        if !frame.is_empty() {
            inputs.push(Input::Frame(frame));
        }
        inputs.push(Input::Watermark(i64::MAX));
        inputs
    }

    /// Collects the firings and the late side output (side output 1).
    struct Collect {
        fired: Vec<Fired>,
        late: Vec<Event>,
    }

    impl crate::operator::FrameSink for Collect {
        fn push(&mut self, frame: crate::frame::AnyFrame) -> Result<(), crate::operator::ChainFailure> {
            self.fired.extend(frame.into_typed::<Fired>());
            Ok(())
        }
        fn push_side(&mut self, output: usize, frame: crate::frame::AnyFrame) -> Result<(), crate::operator::ChainFailure> {
            assert_eq!(output, 1);
            self.late.extend(frame.into_typed::<LateRecord<Event>>().into_iter().map(|late| late.record));
            Ok(())
        }
        fn watermark(&mut self, _watermark: i64) -> Result<(), crate::operator::ChainFailure> {
            Ok(())
        }
        fn idleness(&mut self, _idle: bool) -> Result<(), crate::operator::ChainFailure> {
            Ok(())
        }
    }

    fn summarize(context: &WindowContext<'_, u8>, records: &[Event], out: &mut Output<'_, Fired>) -> Result<(), UserError> {
        out.emit((
            *context.key,
            context.window.start,
            context.window.end,
            records.len() as u64,
            records.iter().map(|r| r.2).sum(),
            records.iter().map(|r| r.3).max().expect("a firing window has records"),
            context.is_update,
            context.watermark,
        ));
        Ok(())
    }

    /// A session operator chain (gap, allowed lateness, late records to side output "late").
    fn session_chain(gap_ms: u64, lateness_ms: i64) -> OperatorChain {
        let operator = SessionWindowOperator::new(
            |e: &Event| e.0,
            |e: &Event| e.1,
            EventTimeSessionWindows::with_gap(std::time::Duration::from_millis(gap_ms)),
            ProcessWindowFunction(summarize, std::marker::PhantomData),
            lateness_ms,
            LatePolicy::SideOutput(crate::operator::OutputTag::new("late")),
            KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM),
            MAX_PARALLELISM,
        );
        let context = SubtaskContext { side_outputs: vec!["late".to_string()], ..SubtaskContext::for_test(1024) };
        OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &context)])
    }

    fn run_operator(gap_ms: u64, lateness_ms: i64, inputs: &[Input]) -> (Vec<Fired>, Vec<Event>) {
        let mut chain = session_chain(gap_ms, lateness_ms);
        let mut out = Collect { fired: Vec::new(), late: Vec::new() };
        for input in inputs {
            match input {
                Input::Frame(frame) => chain.process(crate::frame::AnyFrame::new(frame.clone()), &mut out).unwrap(),
                Input::Watermark(watermark) => chain.watermark(*watermark, &mut out).unwrap(),
            }
        }
        (out.fired, out.late)
    }

    /// A session of the model: its window, its records, whether this window fired, and whether
    /// it still waits for the watermark to fire on time.
    struct ModelSession {
        start: i64,
        end: i64,
        records: Vec<Event>,
        fired: bool,
        waiting: bool,
    }

    /// Flink's session windows with allowed lateness, written from its documented rules, record
    /// by record and without indexes: a record's window `[ts, ts + gap)` first merges with every
    /// live session of its key it overlaps or touches; the merged window is late only if its max
    /// timestamp plus lateness is at or behind the watermark (then the record goes to the side
    /// output). A merged window behind the watermark fires at once; otherwise it fires when the
    /// watermark reaches its max timestamp. A window that changed is a new window (not an
    /// update). A window's state is dropped once the watermark reaches max timestamp + lateness.
    fn model(gap: i64, lateness: i64, inputs: &[Input]) -> (Vec<Fired>, Vec<Event>) {
        let mut sessions: BTreeMap<u8, Vec<ModelSession>> = BTreeMap::new();
        let (mut fired, mut late, mut watermark) = (Vec::new(), Vec::new(), i64::MIN);
        let fire = |key: u8, session: &ModelSession, is_update: bool, watermark: i64| -> Fired {
            let sum = session.records.iter().map(|r| r.2).sum();
            let max_seq = session.records.iter().map(|r| r.3).max().unwrap();
            (key, session.start, session.end, session.records.len() as u64, sum, max_seq, is_update, watermark)
        };
        for input in inputs {
            match input {
                Input::Frame(frame) => {
                    for &event in frame {
                        let (start, end) = (event.1, event.1 + gap);
                        let live = sessions.entry(event.0).or_default();
                        let (hits, rest): (Vec<ModelSession>, Vec<ModelSession>) =
                            std::mem::take(live).into_iter().partition(|s| s.start <= end && start <= s.end);
                        *live = rest;
                        let merged_start = hits.iter().map(|s| s.start).chain([start]).min().unwrap();
                        let merged_end = hits.iter().map(|s| s.end).chain([end]).max().unwrap();
                        if merged_end - 1 + lateness <= watermark {
                            assert!(hits.is_empty(), "live sessions cannot merge into a late one");
                            late.push(event);
                            continue;
                        }
                        let same_window = hits.len() == 1 && (hits[0].start, hits[0].end) == (merged_start, merged_end);
                        let was_fired = same_window && hits[0].fired;
                        let mut records: Vec<Event> = hits.into_iter().flat_map(|s| s.records).collect();
                        records.push(event);
                        let mut session = ModelSession { start: merged_start, end: merged_end, records, fired: was_fired, waiting: true };
                        if merged_end - 1 <= watermark {
                            fired.push(fire(event.0, &session, was_fired, watermark));
                            session.fired = true;
                            session.waiting = false;
                        }
                        live.push(session);
                    }
                }
                Input::Watermark(next) => {
                    watermark = *next;
                    for (key, live) in sessions.iter_mut() {
                        for session in live.iter_mut().filter(|s| s.waiting && s.end - 1 <= watermark) {
                            fired.push(fire(*key, session, session.fired, watermark));
                            session.fired = true;
                            session.waiting = false;
                        }
                        live.retain(|s| (s.end - 1).saturating_add(lateness) > watermark);
                    }
                }
            }
        }
        (fired, late)
    }

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    #[test]
    fn record_behind_the_watermark_that_extends_a_live_session_is_kept() {
        // Gap 10, lateness 0, watermark = max ts - 10. After the record at 35 the watermark is 25
        // and [20, 30) is live. The record at 12 has its own window [12, 22) behind the watermark,
        // but it first merges into [12, 30), which is not: kept. So is the one at 5 ([5, 15)),
        // and the one at 0. The record at -20 merges with nothing and is late.
        let events: Vec<Event> =
            vec![(1, 20, 1, 0), (1, 35, 2, 1), (1, 12, 4, 2), (1, 5, 8, 3), (1, 0, 16, 4), (1, -20, 32, 5), (1, 60, 64, 6)];
        let (fired, late) = run_operator(10, 0, &inputs(&events, 10, 1024));
        assert_eq!(
            sorted(fired),
            vec![(1, 0, 30, 4, 29, 4, false, 50), (1, 35, 45, 1, 2, 1, false, 50), (1, 60, 70, 1, 64, 6, false, i64::MAX)]
        );
        assert_eq!(late, vec![(1, -20, 32, 5)]);
    }

    #[test]
    fn fired_session_extended_past_the_watermark_fires_again_on_time_as_a_new_window() {
        // Gap 10, lateness 100, watermark = max ts - 10. [0, 10) fires on time at watermark 20.
        // The record at 5 grows it to [0, 15), still behind the watermark: a new window, fired at
        // once (not an update); the record at 3 lands inside it: fired again, as an update. The
        // record at 14 grows it to [0, 24), whose end is past the watermark: a new window that
        // waits and fires on time, at watermark 35.
        let events: Vec<Event> = vec![(1, 0, 1, 0), (1, 30, 2, 1), (1, 5, 4, 2), (1, 3, 8, 3), (1, 14, 16, 4), (1, 45, 32, 5)];
        let (fired, late) = run_operator(10, 100, &inputs(&events, 10, 1024));
        assert_eq!(
            sorted(fired),
            vec![
                (1, 0, 10, 1, 1, 0, false, 20),
                (1, 0, 15, 2, 5, 2, false, 20),
                (1, 0, 15, 3, 13, 3, true, 20),
                (1, 0, 24, 4, 29, 4, false, 35),
                (1, 30, 40, 1, 2, 1, false, i64::MAX),
                (1, 45, 55, 1, 32, 5, false, i64::MAX),
            ]
        );
        assert!(late.is_empty());
    }

    #[test]
    fn sessions_that_only_touch_merge() {
        // Gap 10: [0, 10) and [10, 20) touch, and merge into one session.
        let events: Vec<Event> = vec![(1, 0, 1, 0), (1, 10, 2, 1)];
        let (fired, _) = run_operator(10, 0, &inputs(&events, 100, 1024));
        assert_eq!(fired, vec![(1, 0, 20, 2, 3, 1, false, i64::MAX)]);
    }

    #[test]
    fn timers_stay_bounded_by_live_sessions_not_records() {
        // 5 keys, 20,000 records; each record extends its key's session (timestamps grow by 1 ms per
        // record, gap 50 ms), and every 1,000 ms of event time a key pauses long enough that its
        // session fires. Each extension moves the session's timers: the old ones must go.
        for lateness in [0, 30] {
            let mut chain = session_chain(50, lateness);
            let mut out = Collect { fired: Vec::new(), late: Vec::new() };
            let events: Vec<Event> = (0..20_000u64).map(|i| ((i % 5) as u8, (i as i64) + (i as i64 / 1_000) * 100, 1, i)).collect();
            for input in inputs(&events, 20, 100) {
                match input {
                    Input::Frame(frame) => chain.process(crate::frame::AnyFrame::new(frame), &mut out).unwrap(),
                    Input::Watermark(watermark) => chain.watermark(watermark, &mut out).unwrap(),
                }
                let metrics = &chain.counts()[0].extra;
                let metric = |name: &str| metrics.iter().find(|(metric, _)| *metric == name).unwrap().1;
                let (timers, sessions) = (metric("event_timers"), metric("sessions_open"));
                assert!(timers <= 2 * sessions, "{timers} timers for {sessions} live sessions (lateness {lateness})");
            }
            assert_eq!(out.fired.iter().map(|f| f.3).sum::<u64>(), 20_000, "every record fired once");
            let metrics = &chain.counts()[0].extra;
            assert!(metrics.contains(&("event_timers", 0)) && metrics.contains(&("sessions_open", 0)), "{metrics:?}");
        }
    }

    fn events_strategy() -> impl Strategy<Value = Vec<Event>> {
        proptest::collection::vec((0u8..3, 0i64..300, 1i64..10), 0..80)
            .prop_map(|raw| raw.into_iter().enumerate().map(|(seq, (key, ts, value))| (key, ts, value, seq as u64)).collect())
    }

    proptest! {
        #[test]
        fn session_operator_matches_the_model_of_flinks_rules(
            events in events_strategy(),
            gap in 1u64..25,
            lateness in prop_oneof![Just(0i64), 1i64..60],
            bound in 0i64..50,
            frame_records in prop_oneof![Just(1usize), 1usize..8, Just(1024)],
        ) {
            let inputs = inputs(&events, bound, frame_records);
            let (fired, late) = run_operator(gap, lateness, &inputs);
            let (expected_fired, expected_late) = model(gap as i64, lateness, &inputs);
            prop_assert_eq!(sorted(fired), sorted(expected_fired));
            prop_assert_eq!(sorted(late), sorted(expected_late));
        }
    }
}
