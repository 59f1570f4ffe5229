//! `WindowAssigner`: the common face of the non-merging window kinds (tumbling, sliding,
//! cumulate), so one window operator serves them all. Session windows merge and have their own
//! operator. `WindowOperatorKind` picks the operator for a window kind, so the DataStream API has
//! one windowed stream for all kinds.

use super::cumulate::CumulateEventTimeWindows;
use super::function::{MergingWindowFunction, WindowFunction};
use super::global::{GlobalWindow, TriggeredGlobalWindows};
use super::global_operator::GlobalWindowOperator;
use super::operator::{LatePolicy, WindowOperator, WindowStore};
use super::session::EventTimeSessionWindows;
use super::session_operator::SessionWindowOperator;
use super::sliding::SlidingEventTimeWindows;
use super::trigger::Trigger;
use super::tumbling::TumblingEventTimeWindows;
use super::TimeWindow;
use crate::base::Key;
use crate::base::SubtaskContext;
use crate::frame::Record;
use crate::operator::FrameOperator;
use crate::state::StateError;

/// Assigns each timestamp to the windows that contain it.
pub trait WindowAssigner: Copy + std::fmt::Debug + Send + Sync + 'static {
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
pub trait WindowOperatorKind<K, T: Record, F: WindowFunction<K, T>>: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// The operator, for one subtask.
    #[allow(clippy::too_many_arguments)]
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        context: &SubtaskContext,
    ) -> Result<impl FrameOperator<T, F::Out> + use<Self, K, T, F, KeyFn, TimestampFn>, StateError>
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
        context: &SubtaskContext,
    ) -> Result<impl FrameOperator<T, F::Out> + use<A, K, T, F, KeyFn, TimestampFn>, StateError>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        let (range, max_parallelism) = (context.key_groups(), context.max_parallelism);
        let store = WindowStore::open(context.state_dir.as_deref(), context.state_cache_bytes, range, max_parallelism)?;
        Ok(WindowOperator::new(key_fn, timestamp_fn, self, function, allowed_lateness_ms, late_policy, range, max_parallelism, store))
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
        context: &SubtaskContext,
    ) -> Result<impl FrameOperator<T, F::Out> + use<K, T, F, KeyFn, TimestampFn>, StateError>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        // Sessions are kept in memory whatever the backend (see ARCHITECTURE.md).
        let (range, max_parallelism) = (context.key_groups(), context.max_parallelism);
        Ok(SessionWindowOperator::new(key_fn, timestamp_fn, self, function, allowed_lateness_ms, late_policy, range, max_parallelism))
    }
}

impl<K: Key, T: Record, F: WindowFunction<K, T>, Tr: Trigger<GlobalWindow> + Copy + std::fmt::Debug + crate::state::StateValue + Sync>
    WindowOperatorKind<K, T, F> for TriggeredGlobalWindows<Tr>
{
    fn operator<KeyFn, TimestampFn>(
        self,
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        function: F,
        _allowed_lateness_ms: i64,
        _late_policy: LatePolicy<T>,
        context: &SubtaskContext,
    ) -> Result<impl FrameOperator<T, F::Out> + use<K, T, F, Tr, KeyFn, TimestampFn>, StateError>
    where
        KeyFn: Fn(&T) -> K + Send + 'static,
        TimestampFn: Fn(&T) -> i64 + Send + 'static,
    {
        // A global window never closes, so nothing is ever late to it.
        Ok(GlobalWindowOperator::new(key_fn, timestamp_fn, function, self.trigger, context.key_groups(), context.max_parallelism))
    }
}
