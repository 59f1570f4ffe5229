//! `WindowAssigner`: the common face of the non-merging window kinds (tumbling, sliding,
//! cumulate), so one window operator serves them all. Session windows merge and have their own
//! operator. `WindowOperatorKind` picks the operator for a window kind, so the DataStream API has
//! one windowed stream for all kinds.

use super::cumulate::CumulateEventTimeWindows;
use super::function::{MergingWindowFunction, WindowFunction};
use super::global::{GlobalWindow, TriggeredGlobalWindows};
use super::global_operator::GlobalWindowOperator;
use super::operator::{LatePolicy, WindowOperator};
use super::session::EventTimeSessionWindows;
use super::session_operator::SessionWindowOperator;
use super::sliding::SlidingEventTimeWindows;
use super::trigger::Trigger;
use super::tumbling::TumblingEventTimeWindows;
use super::TimeWindow;
use crate::base::Key;
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::operator::FrameOperator;

/// Assigns each timestamp to the windows that contain it.
pub trait WindowAssigner: Copy + Send + Sync + 'static {
    /// Appends the windows containing `timestamp` to `windows` (which the caller reuses).
    fn assign_into(&self, timestamp: i64, windows: &mut Vec<TimeWindow>);
}

impl WindowAssigner for TumblingEventTimeWindows {
    #[inline]
    fn assign_into(&self, timestamp: i64, windows: &mut Vec<TimeWindow>) {
        windows.push(self.assign(timestamp));
    }
}

impl WindowAssigner for SlidingEventTimeWindows {
    #[inline]
    fn assign_into(&self, timestamp: i64, windows: &mut Vec<TimeWindow>) {
        windows.extend(self.assign(timestamp));
    }
}

impl WindowAssigner for CumulateEventTimeWindows {
    #[inline]
    fn assign_into(&self, timestamp: i64, windows: &mut Vec<TimeWindow>) {
        windows.extend(self.assign(timestamp));
    }
}

/// Builds the window operator for a kind of window and a window function.
pub trait WindowOperatorKind<K, T: Record, F: WindowFunction<K, T>>: Copy + Send + Sync + 'static {
    /// The operator, for one subtask.
    #[allow(clippy::too_many_arguments)]
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> impl FrameOperator<T, F::Out>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static;
}

impl<K: Key, T: Record + Clone, F: WindowFunction<K, T>, A: WindowAssigner> WindowOperatorKind<K, T, F> for A {
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> impl FrameOperator<T, F::Out>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        WindowOperator::new(key_fn, timestamp_fn, self, function, allowed_lateness_ms, late_policy, range, max_parallelism)
    }
}

impl<K: Key, T: Record, F: MergingWindowFunction<K, T>> WindowOperatorKind<K, T, F> for EventTimeSessionWindows {
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> impl FrameOperator<T, F::Out>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        SessionWindowOperator::new(key_fn, timestamp_fn, self, function, allowed_lateness_ms, late_policy, range, max_parallelism)
    }
}

impl<K: Key, T: Record, F: WindowFunction<K, T>, Tr: Trigger<GlobalWindow> + Copy + crate::state::StateValue + Sync>
    WindowOperatorKind<K, T, F> for TriggeredGlobalWindows<Tr>
{
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        _allowed_lateness_ms: i64,
        _late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> impl FrameOperator<T, F::Out>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        // A global window never closes, so nothing is ever late to it.
        GlobalWindowOperator::new(key_fn, timestamp_fn, function, self.trigger, range, max_parallelism)
    }
}
