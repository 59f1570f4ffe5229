//! `WindowAssigner`: the common face of the non-merging window kinds (tumbling, sliding,
//! cumulate), so one window operator serves them all. Session windows merge and have their own
//! operator.

use super::cumulate::CumulateEventTimeWindows;
use super::sliding::SlidingEventTimeWindows;
use super::tumbling::TumblingEventTimeWindows;
use super::TimeWindow;

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
