//! Global windows: one window per key holding all its elements, as Flink's `GlobalWindows`.
//!
//! The window never completes by time (its `max_timestamp` is `i64::MAX`, reached only by the
//! final watermark at end of input), so a [`Trigger`](super::trigger::Trigger) decides when it
//! emits: by default a [`NeverTrigger`] (nothing is emitted, Flink's default), usually a
//! [`CountTrigger`](super::trigger::CountTrigger) (count windows), or an
//! [`EventTimeTrigger`](super::trigger::EventTimeTrigger) to emit once at end of input.

use serde::{Deserialize, Serialize};

use super::trigger::{NeverTrigger, Trigger, Window};

/// The one window of a key under [`GlobalWindows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    /// `i64::MAX`: only the watermark at end of input reaches it.
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

/// Assigns every element to the [`GlobalWindow`] of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global window assigner.
    pub fn create() -> Self {
        GlobalWindows
    }

    /// The window of an element at `timestamp`: always the global one.
    #[inline]
    pub fn assign(&self, _timestamp: i64) -> GlobalWindow {
        GlobalWindow
    }

    /// The trigger used when none is given: never fires, as in Flink.
    /// The global window fired by `trigger` (e.g. `CountTrigger::of(100).purging()` for count
    /// windows); pass the result to `KeyedStream::window`.
    pub fn with_trigger<Tr: Trigger<GlobalWindow> + Copy + Send + Sync + 'static>(self, trigger: Tr) -> TriggeredGlobalWindows<Tr> {
        TriggeredGlobalWindows { trigger }
    }

    /// The trigger Flink's global windows default to: never fire.
    pub fn default_trigger(&self) -> NeverTrigger {
        NeverTrigger
    }
}

#[cfg(test)]
mod tests {
    use super::super::trigger::{CountTrigger, EventTimeTrigger, Trigger, TriggerResult};
    use super::*;

    /// A global window's contents and results under `trigger`, as the window operator would
    /// keep them: elements at `timestamps`, then the end-of-input watermark.
    fn results_of(mut trigger: impl Trigger<GlobalWindow>, timestamps: &[i64]) -> Vec<Vec<i64>> {
        let assigner = GlobalWindows::create();
        let mut contents = Vec::new();
        let mut results = Vec::new();
        let mut act = |result: TriggerResult, contents: &mut Vec<i64>| {
            if result.is_fire() {
                results.push(contents.clone());
            }
            if result.is_purge() {
                contents.clear();
            }
        };
        for &timestamp in timestamps {
            let window = assigner.assign(timestamp);
            contents.push(timestamp);
            act(trigger.on_element(timestamp, &window, i64::MIN), &mut contents);
        }
        // The end-of-input watermark, i64::MAX, reaches any timer.
        if trigger.event_timer(&GlobalWindow).is_some() {
            act(trigger.on_event_timer(i64::MAX, &GlobalWindow), &mut contents);
        }
        results
    }

    #[test]
    fn every_timestamp_lands_in_the_global_window() {
        let assigner = GlobalWindows::create();
        assert_eq!(assigner.assign(i64::MIN), GlobalWindow);
        assert_eq!(assigner.assign(0), assigner.assign(i64::MAX));
        assert_eq!(GlobalWindow.max_timestamp(), i64::MAX);
    }

    #[test]
    fn count_trigger_fires_the_whole_window_every_n_elements() {
        assert_eq!(results_of(CountTrigger::of(2), &[1, 2, 3, 4, 5]), vec![vec![1, 2], vec![1, 2, 3, 4]]);
    }

    #[test]
    fn purging_count_trigger_makes_tumbling_count_windows() {
        assert_eq!(results_of(CountTrigger::of(2).purging(), &[1, 2, 3, 4, 5]), vec![vec![1, 2], vec![3, 4]]);
    }

    #[test]
    fn event_time_trigger_fires_once_at_end_of_input() {
        assert_eq!(results_of(EventTimeTrigger::new(), &[1, 2, 3]), vec![vec![1, 2, 3]]);
    }

    #[test]
    fn default_trigger_emits_nothing() {
        assert_eq!(results_of(GlobalWindows::create().default_trigger(), &[1, 2, 3]), Vec::<Vec<i64>>::new());
    }
}

/// Global windows with the trigger that fires them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggeredGlobalWindows<Tr> {
    /// The trigger prototype: each key gets its own copy.
    pub trigger: Tr,
}
