//! The keyed global window operator: one window per key holding all its records, emitted when a
//! trigger says so (Flink's `GlobalWindows` with a custom trigger, e.g. count windows).
//!
//! Per key it keeps the window function's state and the key's trigger instance. After each
//! record the trigger decides: continue, fire (emit and keep), purge (drop contents) or both. A
//! purge drops the key's whole entry, trigger state and timer included, so a key whose window was
//! purged holds nothing until its next record (with purging count windows, per-key state lives
//! only while a window is open). Event-time triggers name the watermark at which they want to be
//! asked again; the operator keeps that time as the key's one timer in the engine's
//! [`TimerService`], moving it when the trigger's answer changes, so timers are bounded by keys,
//! not records. Results carry the global window as `TimeWindow { start: i64::MIN, end: i64::MAX }`.

use super::function::WindowFunction;
use super::global::GlobalWindow;
use super::trigger::{Trigger, TriggerResult};
use super::TimeWindow;
use crate::base::Key;
use crate::base::UserError;
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::operator::keyed::KeyedStateMap;
use crate::operator::{FrameOperator, Output};
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError, TimeDomain, TimerService};

/// The global window as a time window, for results.
pub const GLOBAL_TIME_WINDOW: TimeWindow = TimeWindow { start: i64::MIN, end: i64::MAX };

/// A key's window contents (none after a purge), trigger, and the event-time timer registered for
/// it in the timer service (always the trigger's last answer, or none).
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct KeyWindow<S, Tr> {
    contents: Option<S>,
    trigger: Tr,
    fired: bool,
    timer: Option<i64>,
}

pub(crate) struct GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn> {
    key_fn: KeyFn,
    timestamp_fn: TimestampFn,
    function: F,
    trigger: Tr,
    windows: KeyedStateMap<K, KeyWindow<S, Tr>>,
    timers: TimerService<K>,
    watermark: i64,
    /// Whether timers up to the watermark are still to fire: firing stopped when the output
    /// blocked and goes on in `resume_output`.
    firing: bool,
}

impl<K: Key, F, Tr: Clone, S: Clone, KeyFn, TimestampFn> GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn> {
    pub(crate) fn new(
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        trigger: Tr,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Self {
        GlobalWindowOperator {
            key_fn,
            timestamp_fn,
            function,
            trigger,
            windows: KeyedStateMap::new(range, max_parallelism).tracking_changes(),
            timers: TimerService::new(range, max_parallelism),
            watermark: i64::MIN,
            firing: false,
        }
    }

    /// Brings the key's entry and timer in line with what its trigger decided.
    fn settle(&mut self, key: &K, settled: Settled) {
        if settled.purged {
            self.windows.remove(key);
        }
        let wanted = if settled.purged { None } else { settled.wanted };
        if settled.registered != wanted {
            // Only here: most records leave the timer as it was and cost no second key hash.
            let scoped = self.timers.scope(key);
            if let Some(at) = settled.registered {
                self.timers.delete_timer(TimeDomain::EventTime, scoped, at);
            }
            if let Some(at) = wanted {
                self.timers.register_timer(TimeDomain::EventTime, scoped, at);
            }
        }
    }
}

/// A key's window after its trigger acted: the timer the service holds for it, the one the
/// trigger wants now, and whether the window was purged (its entry goes).
struct Settled {
    registered: Option<i64>,
    wanted: Option<i64>,
    purged: bool,
}

/// Carries out a trigger's decision on one key's window at `watermark`; `wanted` is the timer the
/// trigger asks for now, which becomes the window's registered timer.
fn act<K, T, F: WindowFunction<K, T>, Tr>(
    function: &F,
    key: &K,
    window: &mut KeyWindow<F::State, Tr>,
    decision: TriggerResult,
    wanted: Option<i64>,
    watermark: i64,
    out: &mut Output<'_, F::Out>,
) -> Result<Settled, UserError> {
    if decision.is_fire() {
        if let Some(contents) = &window.contents {
            function.emit(key, GLOBAL_TIME_WINDOW, contents, window.fired, watermark, out)?;
            window.fired = !decision.is_purge();
        }
    }
    let registered = std::mem::replace(&mut window.timer, wanted);
    Ok(Settled { registered, wanted, purged: decision.is_purge() })
}

impl<K, T, F, Tr, KeyFn, TimestampFn> FrameOperator<T, F::Out> for GlobalWindowOperator<K, F, Tr, F::State, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: WindowFunction<K, T>,
    Tr: Trigger<GlobalWindow> + crate::state::StateValue,
    KeyFn: Fn(&T) -> K + Send + 'static,
    TimestampFn: Fn(&T) -> i64 + Send + 'static,
{
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        for record in frame {
            let timestamp = (self.timestamp_fn)(&record);
            let key = (self.key_fn)(&record);
            let (function, prototype, watermark) = (&self.function, &self.trigger, self.watermark);
            let settled = self.windows.update(
                key.clone(),
                || KeyWindow { contents: None, trigger: prototype.clone(), fired: false, timer: None },
                |key, window| {
                    function.add(window.contents.get_or_insert_with(|| function.create()), record);
                    let decision = window.trigger.on_element(timestamp, &GlobalWindow, watermark);
                    let wanted = window.trigger.event_timer(&GlobalWindow);
                    act(function, key, window, decision, wanted, watermark, out)
                },
            )?;
            self.settle(&key, settled);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        debug_assert!(!self.firing, "a watermark arrived while timers were still firing");
        self.watermark = watermark;
        self.firing = true;
        self.resume_output(out)
    }

    fn has_pending_output(&self) -> bool {
        self.firing
    }

    /// Fires the due timers one key at a time until the output blocks.
    fn resume_output(&mut self, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let watermark = self.watermark;
        loop {
            if out.is_blocked() {
                return Ok(());
            }
            let Some(timer) = self.timers.poll_event_time(watermark) else { break };
            let function = &self.function;
            let settled = self.windows.with_existing(&timer.key, |window| {
                debug_assert_eq!(window.timer, Some(timer.timestamp), "a key's timer is the one its window registered");
                // The service fired the timer: it is registered no more.
                window.timer = None;
                let decision = if window.trigger.event_timer(&GlobalWindow).is_some_and(|at| at <= watermark) {
                    window.trigger.on_event_timer(watermark, &GlobalWindow)
                } else {
                    TriggerResult::Continue
                };
                // A timer the trigger wants at or before this watermark waits for the next one.
                let wanted = window.trigger.event_timer(&GlobalWindow).filter(|at| *at > watermark);
                act(function, &timer.key, window, decision, wanted, watermark, out)
            });
            if let Some(settled) = settled.transpose()? {
                self.settle(&timer.key, settled);
            }
        }
        self.firing = false;
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("state_keys", self.windows.len() as u64), ("event_timers", self.timers.len(TimeDomain::EventTime) as u64)]
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K, F, Tr, S, KeyFn, TimestampFn> KeyGroupedState for GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn>
where
    K: Key,
    S: crate::state::StateValue,
    Tr: Trigger<GlobalWindow> + crate::state::StateValue,
{
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        OperatorKeyGroupSnapshot::new(key_group, self.windows.max_parallelism, &self.windows.snapshot_group(key_group))
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        Ok(self.windows.snapshot_group_deferred(key_group))
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        self.windows.take_changes()
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (key_group, entries) = snapshot.into_data::<Vec<(K, KeyWindow<S, Tr>)>>(self.windows.range(), self.windows.max_parallelism)?;
        // Timers are derived from the restored windows: each keeps the one it had registered.
        for (key, window) in &entries {
            let replaced = self.windows.with_existing(key, |old| old.timer).flatten();
            self.settle(key, Settled { registered: replaced, wanted: window.timer, purged: false });
        }
        self.windows.restore_group(key_group, entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::frame::AnyFrame;
    use crate::key_group::assign_key_group;
    use crate::operator::rescale_test::{assert_rescale_keeps_results, Collected, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};
    use crate::window::function::ReduceWindowFunction;
    use crate::window::trigger::{CountTrigger, EventTimeTrigger};
    use crate::window::WindowResult;

    /// A chain of one global window operator summing `(key, value)` records per key.
    fn summing_chain<Tr: Trigger<GlobalWindow> + crate::state::StateValue>(trigger: Tr) -> OperatorChain {
        let range = KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM);
        let operator = GlobalWindowOperator::new(
            |r: &(i64, i64)| r.0,
            |r: &(i64, i64)| r.1,
            ReduceWindowFunction(|a: (i64, i64), b: (i64, i64)| (a.0, a.1 + b.1)),
            trigger,
            range,
            MAX_PARALLELISM,
        );
        OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
    }

    fn metric(chain: &OperatorChain, name: &str) -> u64 {
        chain.counts()[0].extra(name).unwrap_or_else(|| panic!("no metric {name}"))
    }

    #[test]
    fn event_timers_are_one_per_key_however_many_records() {
        // Every record asks for the same end-of-input timer of its key: 5 keys, 5 timers.
        let mut chain = summing_chain(EventTimeTrigger::new());
        let mut out = Collected::<WindowResult<i64, (i64, i64)>>(Vec::new());
        for round in 0..20i64 {
            let frame: Vec<(i64, i64)> = (0..500i64).map(|i| (i % 5, round * 500 + i)).collect();
            chain.process(AnyFrame::new(frame), &mut out).unwrap();
            chain.watermark(round * 500, &mut out).unwrap();
            assert!(metric(&chain, "event_timers") <= 5, "{} timers for 5 keys", metric(&chain, "event_timers"));
        }
        chain.watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(out.0.len(), 5, "each key fires once at end of input");
        assert_eq!(metric(&chain, "event_timers"), 0);
    }

    #[test]
    fn a_purged_window_drops_its_trigger_state() {
        // 1,000 keys, each fires and purges once: nothing of them is left.
        let mut chain = summing_chain(CountTrigger::of(2).purging());
        let mut out = Collected::<WindowResult<i64, (i64, i64)>>(Vec::new());
        let frame: Vec<(i64, i64)> = (0..2_000i64).map(|i| (i % 1_000, i)).collect();
        chain.process(AnyFrame::new(frame), &mut out).unwrap();
        assert_eq!(out.0.len(), 1_000);
        assert_eq!(metric(&chain, "state_keys"), 0, "purged windows keep no per-key state");
        // A key seen again starts a fresh count.
        chain.process(AnyFrame::new(vec![(7i64, 1i64), (7, 2)]), &mut out).unwrap();
        assert_eq!(out.0.len(), 1_001);
        assert_eq!(out.0[1_000].value, (7, 3));
    }

    #[test]
    fn count_windows_moved_by_key_group_give_the_same_results() {
        // Groups of 4 per key: counts in progress at the move carry over.
        let records: Vec<(i64, i64)> = (0..2_000i64).map(|i| (i % 7, i)).collect();
        let frames: Vec<(Vec<(i64, i64)>, i64)> = records.chunks(90).map(|c| (c.to_vec(), c.last().unwrap().1)).collect();
        assert_rescale_keeps_results::<_, WindowResult<i64, (i64, i64)>>(
            |subtask, parallelism| {
                let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
                let operator = GlobalWindowOperator::new(
                    |r: &(i64, i64)| r.0,
                    |r: &(i64, i64)| r.1,
                    ReduceWindowFunction(|a: (i64, i64), b: (i64, i64)| (a.0, a.1 + b.1)),
                    CountTrigger::of(4).purging(),
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
