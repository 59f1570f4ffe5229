//! Triggers: when a window's contents are emitted (fired) and when they are dropped (purged), as
//! Flink's `Trigger` and `TriggerResult`. A trigger decides; the window operator acts.
//!
//! Each (key, window) has its own trigger instance holding that window's trigger state (a count,
//! whether its timer is pending); the operator clones a prototype when it opens a window and drops
//! the instance with the window. The operator asks the trigger after every element
//! ([`Trigger::on_element`]) and when the watermark reaches the trigger's event-time timer
//! ([`Trigger::event_timer`], then [`Trigger::on_event_timer`]), so it need not visit every window
//! on every watermark. Triggers are pure (no I/O, no clock) and object-safe, so an operator can
//! hold `Box<dyn Trigger<W>>`. Purging drops the window's contents; a count trigger restarts its
//! own count when it fires, as in Flink. The global window operator drops the key's trigger
//! instance (and its timer) with purged contents, so a purged key keeps no state at all; its next
//! element starts from a fresh copy of the prototype.

use super::TimeWindow;

/// What a trigger needs to know of a window: the last timestamp it holds.
pub trait Window {
    /// The largest timestamp in the window; the watermark reaching it completes the window.
    fn max_timestamp(&self) -> i64;
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        TimeWindow::max_timestamp(self)
    }
}

/// What the window operator does with a window after asking its trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerResult {
    /// Nothing.
    Continue,
    /// Emit the window's result and keep its contents, so a later firing includes them again.
    Fire,
    /// Drop the window's contents without emitting.
    Purge,
    /// Emit the window's result, then drop its contents.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window's result is emitted.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the window's contents are dropped (after emitting, if it also fires).
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// Decides when one window of one key fires or purges.
/// A trigger keeps its state in itself (a count, the time it asked for): it is part of each
/// window's checkpointed state, so it derives the engine's codec (rkyv) like state values do.
pub trait Trigger<W: Window>: Send {
    /// An element with `timestamp` was added to `window`; `watermark` is the operator's current
    /// watermark.
    fn on_element(&mut self, timestamp: i64, window: &W, watermark: i64) -> TriggerResult;

    /// The watermark has reached [`event_timer`](Self::event_timer); the trigger moves or clears
    /// its timer.
    fn on_event_timer(&mut self, watermark: i64, window: &W) -> TriggerResult;

    /// The watermark at which the trigger wants [`on_event_timer`](Self::on_event_timer), if
    /// any: the operator asks again after every call, as the answer can change.
    fn event_timer(&self, window: &W) -> Option<i64>;
}

/// Fires every `n` elements of the window (Flink's `CountTrigger`); wrap it in
/// [`PurgingTrigger`] to drop the contents at each firing, as Flink's count windows do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CountTrigger {
    elements_per_firing: u64,
    elements_since_firing: u64,
}

impl CountTrigger {
    /// Fires at every `elements_per_firing`-th element.
    ///
    /// # Panics
    /// If `elements_per_firing` is 0.
    pub fn of(elements_per_firing: u64) -> Self {
        assert!(elements_per_firing > 0, "a count trigger fires after at least 1 element");
        CountTrigger { elements_per_firing, elements_since_firing: 0 }
    }

    /// The same trigger, purging the window's contents whenever it fires.
    pub fn purging(self) -> PurgingTrigger<CountTrigger> {
        PurgingTrigger::of(self)
    }

    /// Elements counted since the last firing.
    pub fn elements_since_firing(&self) -> u64 {
        self.elements_since_firing
    }
}

impl<W: Window> Trigger<W> for CountTrigger {
    fn on_element(&mut self, _timestamp: i64, _window: &W, _watermark: i64) -> TriggerResult {
        self.elements_since_firing += 1;
        if self.elements_since_firing >= self.elements_per_firing {
            self.elements_since_firing = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_event_timer(&mut self, _watermark: i64, _window: &W) -> TriggerResult {
        TriggerResult::Continue
    }

    fn event_timer(&self, _window: &W) -> Option<i64> {
        None
    }
}

/// Fires once when the watermark passes the window's end, and again at once for each element
/// that arrives after that (Flink's `EventTimeTrigger`, the default of time windows). On a
/// global window it fires only at the end of input, when the watermark reaches `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct EventTimeTrigger {
    timer_pending: bool,
}

impl EventTimeTrigger {
    /// A trigger for a window that has no element yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<W: Window> Trigger<W> for EventTimeTrigger {
    fn on_element(&mut self, _timestamp: i64, window: &W, watermark: i64) -> TriggerResult {
        if window.max_timestamp() <= watermark {
            // The window is complete already (a late element within allowed lateness).
            self.timer_pending = false;
            TriggerResult::Fire
        } else {
            self.timer_pending = true;
            TriggerResult::Continue
        }
    }

    fn on_event_timer(&mut self, watermark: i64, window: &W) -> TriggerResult {
        if self.timer_pending && window.max_timestamp() <= watermark {
            self.timer_pending = false;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn event_timer(&self, window: &W) -> Option<i64> {
        self.timer_pending.then(|| window.max_timestamp())
    }
}

/// Never fires (Flink's `NeverTrigger`, the default of global windows, which need a real
/// trigger to emit anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NeverTrigger;

impl<W: Window> Trigger<W> for NeverTrigger {
    fn on_element(&mut self, _timestamp: i64, _window: &W, _watermark: i64) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_event_timer(&mut self, _watermark: i64, _window: &W) -> TriggerResult {
        TriggerResult::Continue
    }

    fn event_timer(&self, _window: &W) -> Option<i64> {
        None
    }
}

/// Turns every `Fire` of the inner trigger into `FireAndPurge` (Flink's `PurgingTrigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PurgingTrigger<T> {
    inner: T,
}

impl<T> PurgingTrigger<T> {
    /// Purges whenever `inner` fires.
    pub fn of(inner: T) -> Self {
        PurgingTrigger { inner }
    }

    /// The wrapped trigger.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

/// `Fire` becomes `FireAndPurge`; everything else is kept.
fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        result
    }
}

impl<W: Window, T: Trigger<W>> Trigger<W> for PurgingTrigger<T> {
    fn on_element(&mut self, timestamp: i64, window: &W, watermark: i64) -> TriggerResult {
        purging(self.inner.on_element(timestamp, window, watermark))
    }

    fn on_event_timer(&mut self, watermark: i64, window: &W) -> TriggerResult {
        purging(self.inner.on_event_timer(watermark, window))
    }

    fn event_timer(&self, window: &W) -> Option<i64> {
        self.inner.event_timer(window)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const WINDOW: TimeWindow = TimeWindow { start: 0, end: 10 };

    fn on_elements<T: Trigger<TimeWindow>>(trigger: &mut T, elements: usize) -> Vec<TriggerResult> {
        (0..elements).map(|i| trigger.on_element(i as i64, &WINDOW, i64::MIN)).collect()
    }

    #[test]
    fn count_trigger_fires_every_n_elements() {
        use TriggerResult::{Continue, Fire};
        let mut trigger = CountTrigger::of(3);
        assert_eq!(on_elements(&mut trigger, 7), vec![Continue, Continue, Fire, Continue, Continue, Fire, Continue]);
        assert_eq!(trigger.elements_since_firing(), 1);
        assert_eq!(Trigger::<TimeWindow>::event_timer(&trigger, &WINDOW), None);
        assert_eq!(trigger.on_event_timer(i64::MAX, &WINDOW), Continue);
    }

    #[test]
    fn purging_count_trigger_fires_and_purges() {
        use TriggerResult::{Continue, FireAndPurge};
        let mut trigger = CountTrigger::of(2).purging();
        assert_eq!(on_elements(&mut trigger, 5), vec![Continue, FireAndPurge, Continue, FireAndPurge, Continue]);
        assert_eq!(CountTrigger::of(1).purging().on_element(0, &WINDOW, 0), FireAndPurge);
    }

    #[test]
    fn event_time_trigger_fires_when_the_watermark_passes_the_window() {
        let mut trigger = EventTimeTrigger::new();
        assert_eq!(trigger.event_timer(&WINDOW), None, "no timer before the first element");
        assert_eq!(trigger.on_element(3, &WINDOW, 0), TriggerResult::Continue);
        assert_eq!(trigger.event_timer(&WINDOW), Some(9));
        assert_eq!(trigger.on_event_timer(8, &WINDOW), TriggerResult::Continue);
        assert_eq!(trigger.on_event_timer(9, &WINDOW), TriggerResult::Fire);
        assert_eq!(trigger.event_timer(&WINDOW), None, "the timer fires once");
        assert_eq!(trigger.on_event_timer(20, &WINDOW), TriggerResult::Continue);
        assert_eq!(trigger.on_element(4, &WINDOW, 20), TriggerResult::Fire, "a late element fires at once");
        assert_eq!(trigger.event_timer(&WINDOW), None);
    }

    #[test]
    fn never_trigger_never_fires() {
        let mut trigger = NeverTrigger;
        assert!(on_elements(&mut trigger, 100).iter().all(|result| *result == TriggerResult::Continue));
        assert_eq!(trigger.on_event_timer(i64::MAX, &WINDOW), TriggerResult::Continue);
    }

    #[test]
    fn results_say_whether_they_fire_and_purge() {
        let flags = |result: TriggerResult| (result.is_fire(), result.is_purge());
        assert_eq!(flags(TriggerResult::Continue), (false, false));
        assert_eq!(flags(TriggerResult::Fire), (true, false));
        assert_eq!(flags(TriggerResult::Purge), (false, true));
        assert_eq!(flags(TriggerResult::FireAndPurge), (true, true));
    }

    #[test]
    fn triggers_are_object_safe() {
        let mut triggers: Vec<Box<dyn Trigger<TimeWindow>>> = vec![
            Box::new(CountTrigger::of(1)),
            Box::new(CountTrigger::of(1).purging()),
            Box::new(EventTimeTrigger::new()),
            Box::new(NeverTrigger),
        ];
        let results: Vec<TriggerResult> = triggers.iter_mut().map(|trigger| trigger.on_element(0, &WINDOW, 100)).collect();
        assert_eq!(results, vec![TriggerResult::Fire, TriggerResult::FireAndPurge, TriggerResult::Fire, TriggerResult::Continue]);
    }

    proptest! {
        #[test]
        fn count_trigger_fires_exactly_at_multiples_of_n(n in 1u64..20, elements in 0usize..200) {
            let mut trigger = CountTrigger::of(n);
            for (i, result) in on_elements(&mut trigger, elements).into_iter().enumerate() {
                let expected = if (i as u64 + 1) % n == 0 { TriggerResult::Fire } else { TriggerResult::Continue };
                prop_assert_eq!(result, expected, "element {}", i + 1);
            }
            prop_assert_eq!(trigger.elements_since_firing(), elements as u64 % n);
        }
    }
}
