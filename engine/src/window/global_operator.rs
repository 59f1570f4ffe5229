//! The keyed global window operator: one window per key holding all its records, emitted when a
//! trigger says so (Flink's `GlobalWindows` with a custom trigger, e.g. count windows).
//!
//! Per key it keeps the window function's state and the key's trigger instance. After each
//! record the trigger decides: continue, fire (emit and keep), purge (drop contents) or both.
//! Event-time triggers name the watermark at which they want to be asked again; an index by that
//! time says which keys to ask when the watermark advances. Results carry the global window as
//! `TimeWindow { start: i64::MIN, end: i64::MAX }`.

use std::collections::BTreeMap;

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
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError};

/// The global window as a time window, for results.
pub const GLOBAL_TIME_WINDOW: TimeWindow = TimeWindow { start: i64::MIN, end: i64::MAX };

/// A key's window contents (none after a purge) and trigger.
#[derive(Clone)]
pub(crate) struct KeyWindow<S, Tr> {
    contents: Option<S>,
    trigger: Tr,
    fired: bool,
}

pub(crate) struct GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn> {
    key_fn: KeyFn,
    timestamp_fn: TimestampFn,
    function: F,
    trigger: Tr,
    windows: KeyedStateMap<K, KeyWindow<S, Tr>>,
    timer_index: BTreeMap<i64, Vec<K>>,
    watermark: i64,
}

impl<K: Key, F, Tr, S, KeyFn, TimestampFn> GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn> {
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
            windows: KeyedStateMap::new(range, max_parallelism),
            timer_index: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }
}

/// Carries out a trigger's decision on one key's window.
fn act<K, T, F: WindowFunction<K, T>, Tr>(
    function: &F,
    key: &K,
    window: &mut KeyWindow<F::State, Tr>,
    decision: TriggerResult,
    out: &mut Output<'_, F::Out>,
) -> Result<(), UserError> {
    if decision.is_fire() {
        if let Some(contents) = &window.contents {
            function.emit(key, GLOBAL_TIME_WINDOW, contents, window.fired, out)?;
            window.fired = !decision.is_purge();
        }
    }
    if decision.is_purge() {
        window.contents = None;
        window.fired = false;
    }
    Ok(())
}

impl<K, T, F, Tr, KeyFn, TimestampFn> FrameOperator<T, F::Out> for GlobalWindowOperator<K, F, Tr, F::State, KeyFn, TimestampFn>
where
    K: Key,
    T: Record,
    F: WindowFunction<K, T>,
    Tr: Trigger<GlobalWindow> + Clone + 'static,
    KeyFn: Fn(&T) -> K + Send + 'static,
    TimestampFn: Fn(&T) -> i64 + Send + 'static,
{
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let (function, prototype, watermark) = (&self.function, &self.trigger, self.watermark);
        for record in frame {
            let timestamp = (self.timestamp_fn)(&record);
            let key = (self.key_fn)(&record);
            let timer = self.windows.update(
                key.clone(),
                || KeyWindow { contents: None, trigger: prototype.clone(), fired: false },
                |key, window| -> Result<Option<i64>, UserError> {
                    function.add(window.contents.get_or_insert_with(|| function.create()), record);
                    let decision = window.trigger.on_element(timestamp, &GlobalWindow, watermark);
                    act(function, key, window, decision, out)?;
                    Ok(window.trigger.event_timer(&GlobalWindow))
                },
            )?;
            if let Some(at) = timer {
                self.timer_index.entry(at).or_default().push(key);
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let later = self.timer_index.split_off(&watermark.saturating_add(1));
        let due = std::mem::replace(&mut self.timer_index, later);
        let function = &self.function;
        for key in due.into_values().flatten() {
            let timer = self.windows.with_existing(&key, |window| -> Result<Option<i64>, UserError> {
                // A stale entry (the trigger moved its timer) asks a trigger that is not due.
                if window.trigger.event_timer(&GlobalWindow).is_some_and(|at| at <= watermark) {
                    let decision = window.trigger.on_event_timer(watermark, &GlobalWindow);
                    act(function, &key, window, decision, out)?;
                }
                Ok(window.trigger.event_timer(&GlobalWindow).filter(|at| *at > watermark))
            });
            if let Some(at) = timer.transpose()?.flatten() {
                self.timer_index.entry(at).or_default().push(key);
            }
        }
        Ok(())
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K, F, Tr, S, KeyFn, TimestampFn> KeyGroupedState for GlobalWindowOperator<K, F, Tr, S, KeyFn, TimestampFn>
where
    K: Key,
    S: Clone + Send + 'static,
    Tr: Trigger<GlobalWindow> + Clone + 'static,
{
    fn snapshot_key_group(&self, key_group: usize) -> OperatorKeyGroupSnapshot {
        OperatorKeyGroupSnapshot::new(key_group, self.windows.max_parallelism, self.windows.snapshot_group(key_group))
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (key_group, entries) = snapshot.into_data::<Vec<(K, KeyWindow<S, Tr>)>>(self.windows.range(), self.windows.max_parallelism)?;
        // The timer index is derived from the restored triggers.
        for (key, window) in &entries {
            if let Some(at) = window.trigger.event_timer(&GlobalWindow) {
                self.timer_index.entry(at).or_default().push(key.clone());
            }
        }
        self.windows.restore_group(key_group, entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::key_group::assign_key_group;
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};
    use crate::window::function::ReduceWindowFunction;
    use crate::window::trigger::CountTrigger;
    use crate::window::WindowResult;

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
