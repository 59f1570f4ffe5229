//! Cumulating event-time windows, Flink SQL's `CUMULATE`: within each period of `max_size`
//! (aligned to the epoch plus an optional offset) the windows all start at the period's start and
//! end after one step, two steps, ... up to `max_size`: `[start, start + step)`,
//! `[start, start + 2 * step)`, ..., `[start, start + max_size)`. They give early, growing
//! results of one long window (e.g. the day so far, every hour).
//!
//! Invariant: a timestamp is assigned to exactly the windows of its period whose end is past it,
//! shortest first (Flink's order); there is at least one, the full period. `max_size` is a whole
//! number of steps, as Flink requires, so window ends fall on step boundaries. Assignment is an
//! iterator computed from the timestamp alone: no allocation per record.

use std::time::Duration;

use super::{positive_ms, AssignedWindows, TimeWindow, WindowError};
use crate::time::duration_ms;

/// Assigns each timestamp to every cumulating window of its period that contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CumulateEventTimeWindows {
    step_ms: i64,
    max_size_ms: i64,
    offset_ms: i64,
}

impl CumulateEventTimeWindows {
    /// Windows growing by `step` up to `max_size`, periods aligned to the epoch.
    ///
    /// # Panics
    /// On the parameters `try_of` refuses.
    pub fn of(step: Duration, max_size: Duration) -> Self {
        Self::try_of(step, max_size).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Windows growing by `step` up to `max_size`. Refused, as by Flink: a step or max size under
    /// a millisecond, and a max size that is not a whole number of steps.
    pub fn try_of(step: Duration, max_size: Duration) -> Result<Self, WindowError> {
        let step_ms = positive_ms("a cumulate window's step", step)?;
        let max_size_ms = positive_ms("a cumulate window's max size", max_size)?;
        if max_size_ms % step_ms != 0 {
            return Err(WindowError::NotWholeSteps { step_ms, max_size_ms });
        }
        Ok(CumulateEventTimeWindows { step_ms, max_size_ms, offset_ms: 0 })
    }

    /// Shifts period starts by `offset` (e.g. to align daily periods to a time zone). An offset of
    /// a whole period or more names the same windows as its remainder, so it is reduced to that.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset_ms = duration_ms(offset).rem_euclid(self.max_size_ms);
        self
    }

    /// Growth of consecutive windows in milliseconds.
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// Size of the largest window, the whole period, in milliseconds.
    pub fn max_size_ms(&self) -> i64 {
        self.max_size_ms
    }

    /// Offset of period starts from the epoch in milliseconds, under the max size.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// The most windows one timestamp can be in: `max_size / step`, a capacity for buffers.
    pub fn windows_per_timestamp_max(&self) -> usize {
        usize::try_from(self.max_size_ms / self.step_ms).unwrap_or(usize::MAX)
    }

    /// Every window containing `timestamp`, shortest first (Flink's order).
    ///
    /// Timestamps within `max_size` of `i64`'s limits overflow the window bounds.
    #[inline]
    pub fn assign(&self, timestamp: i64) -> AssignedWindows {
        let start = timestamp - (timestamp - self.offset_ms).rem_euclid(self.max_size_ms);
        // The first window ends at the step boundary after `timestamp`; the offset is also a
        // step boundary modulo `step` because `max_size` is a whole number of steps.
        let first_end = timestamp - (timestamp - self.offset_ms).rem_euclid(self.step_ms) + self.step_ms;
        let last_end = start + self.max_size_ms;
        debug_assert!(first_end <= last_end && (last_end - first_end) % self.step_ms == 0);
        AssignedWindows::new(TimeWindow { start, end: first_end }, 0, self.step_ms, (last_end - first_end) / self.step_ms + 1)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn window(start: i64, end: i64) -> TimeWindow {
        TimeWindow { start, end }
    }

    fn assigned(assigner: &CumulateEventTimeWindows, timestamp: i64) -> Vec<TimeWindow> {
        assigner.assign(timestamp).collect()
    }

    #[test]
    fn windows_grow_by_step_from_the_period_start() {
        let windows = CumulateEventTimeWindows::of(ms(2), ms(6));
        assert_eq!(windows.windows_per_timestamp_max(), 3);
        assert_eq!(assigned(&windows, 0), vec![window(0, 2), window(0, 4), window(0, 6)]);
        assert_eq!(assigned(&windows, 1), vec![window(0, 2), window(0, 4), window(0, 6)]);
        assert_eq!(assigned(&windows, 2), vec![window(0, 4), window(0, 6)]);
        assert_eq!(assigned(&windows, 5), vec![window(0, 6)]);
        assert_eq!(assigned(&windows, 6), vec![window(6, 8), window(6, 10), window(6, 12)]);
    }

    #[test]
    fn negative_timestamps_belong_to_the_period_before_the_epoch() {
        let windows = CumulateEventTimeWindows::of(ms(2), ms(6));
        assert_eq!(assigned(&windows, -1), vec![window(-6, 0)]);
        assert_eq!(assigned(&windows, -3), vec![window(-6, -2), window(-6, 0)]);
        assert_eq!(assigned(&windows, -6), vec![window(-6, -4), window(-6, -2), window(-6, 0)]);
        assert_eq!(assigned(&windows, -7), vec![window(-12, -6)]);
    }

    #[test]
    fn offset_shifts_periods_and_steps() {
        let windows = CumulateEventTimeWindows::of(ms(2), ms(6)).with_offset(ms(1));
        assert_eq!(assigned(&windows, 0), vec![window(-5, 1)]);
        assert_eq!(assigned(&windows, 1), vec![window(1, 3), window(1, 5), window(1, 7)]);
        assert_eq!(assigned(&windows, 4), vec![window(1, 5), window(1, 7)]);
        assert_eq!(assigned(&windows, -2), vec![window(-5, -1), window(-5, 1)]);
        assert_eq!(CumulateEventTimeWindows::of(ms(2), ms(6)).with_offset(ms(7)), windows, "offset reduced modulo the period");
    }

    #[test]
    fn step_equal_to_max_size_is_tumbling() {
        let cumulate = CumulateEventTimeWindows::of(ms(5), ms(5)).with_offset(ms(2));
        let tumbling = super::super::tumbling::TumblingEventTimeWindows::of(ms(5)).with_offset(ms(2));
        for ts in -30..30 {
            assert_eq!(assigned(&cumulate, ts), vec![tumbling.assign(ts)], "timestamp {ts}");
        }
    }

    #[test]
    fn hourly_steps_of_a_day() {
        let windows = CumulateEventTimeWindows::of(Duration::from_secs(3_600), Duration::from_secs(86_400));
        let day = 86_400_000;
        let assignment: Vec<_> = windows.assign(3 * day + 22 * 3_600_000 + 5).collect();
        assert_eq!(assignment, vec![window(3 * day, 3 * day + 23 * 3_600_000), window(3 * day, 4 * day)]);
    }

    #[test]
    #[should_panic(expected = "whole number of steps")]
    fn max_size_not_a_multiple_of_step_is_rejected() {
        let _ = CumulateEventTimeWindows::of(ms(4), ms(10));
    }

    #[test]
    fn bad_parameters_get_typed_errors() {
        assert_eq!(CumulateEventTimeWindows::try_of(ms(4), ms(10)), Err(WindowError::NotWholeSteps { step_ms: 4, max_size_ms: 10 }));
        assert!(matches!(CumulateEventTimeWindows::try_of(ms(5), ms(0)), Err(WindowError::UnderOneMillisecond { .. })));
        assert!(matches!(
            crate::window::tumbling::TumblingEventTimeWindows::try_of(Duration::from_micros(10)),
            Err(WindowError::UnderOneMillisecond { .. })
        ));
        assert!(matches!(crate::EventTimeSessionWindows::try_with_gap(ms(0)), Err(WindowError::UnderOneMillisecond { .. })));
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn zero_step_is_rejected() {
        let _ = CumulateEventTimeWindows::of(ms(0), ms(10));
    }

    /// Every cumulating window containing `timestamp`, found by enumerating the windows of every
    /// period near it, shortest first.
    fn brute_force(step: i64, max_size: i64, offset: i64, timestamp: i64) -> Vec<TimeWindow> {
        (timestamp - max_size..=timestamp)
            .filter(|start| (start - offset).rem_euclid(max_size) == 0)
            .flat_map(|start| (1..=max_size / step).map(move |steps| window(start, start + steps * step)))
            .filter(|w| w.start <= timestamp && timestamp < w.end)
            .collect()
    }

    proptest! {
        #[test]
        fn every_timestamp_lands_in_exactly_the_windows_containing_it(
            step in 1i64..20,
            steps in 1i64..8,
            offset_seed in 0u64..400,
            timestamp in -1_000i64..1_000,
        ) {
            let windows = CumulateEventTimeWindows::of(ms(step as u64), ms((step * steps) as u64)).with_offset(ms(offset_seed));
            let assignment = windows.assign(timestamp);
            prop_assert!(assignment.len() >= 1 && assignment.len() <= windows.windows_per_timestamp_max());
            prop_assert_eq!(assignment.collect::<Vec<_>>(), brute_force(step, step * steps, windows.offset_ms(), timestamp));
        }
    }
}
