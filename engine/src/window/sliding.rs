//! Sliding (hopping) event-time windows: windows of a fixed size that start every `slide`, aligned
//! to the epoch plus an optional offset, as Flink's `SlidingEventTimeWindows`.
//!
//! Invariant: a timestamp is assigned to exactly the windows `[start, start + size)` that contain
//! it, where `start ≡ offset (mod slide)`; that is `ceil(size / slide)` or `floor(size / slide)`
//! windows (a slide larger than the size, which would leave gaps in no window, is refused).
//! Windows come latest start first, Flink's order. Assignment is an iterator computed from the
//! timestamp alone, so it allocates nothing per record; `out.extend(assigner.assign(ts))` fills a
//! reused buffer.

use std::time::Duration;

use super::{positive_ms, AssignedWindows, TimeWindow, WindowError};
use crate::time::duration_ms;

/// Assigns each timestamp to every sliding window that contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingEventTimeWindows {
    size_ms: i64,
    slide_ms: i64,
    offset_ms: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`, aligned to the epoch.
    ///
    /// A `slide` under `size` makes windows overlap (each timestamp in about `size / slide` of
    /// them); a `slide` equal to `size` makes them tumble.
    ///
    /// # Panics
    /// On the parameters `try_of` refuses.
    pub fn of(size: Duration, slide: Duration) -> Self {
        Self::try_of(size, slide).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Windows of `size` starting every `slide`. Refused: a size or slide under a millisecond
    /// (Flink rejects `size <= 0` and `slide <= 0`), and a slide larger than the size, which
    /// would leave records between windows in none (Flink accepts that; it is almost always a
    /// mistake, and sampling is better written as a filter).
    pub fn try_of(size: Duration, slide: Duration) -> Result<Self, WindowError> {
        let size_ms = positive_ms("a sliding window's size", size)?;
        let slide_ms = positive_ms("a sliding window's slide", slide)?;
        if slide_ms > size_ms {
            return Err(WindowError::SlideLargerThanSize { size_ms, slide_ms });
        }
        Ok(SlidingEventTimeWindows { size_ms, slide_ms, offset_ms: 0 })
    }

    /// Shifts window starts by `offset` (e.g. to align daily windows to a time zone).
    ///
    /// # Panics
    /// If `offset` is not under the slide: Flink requires `|offset| < slide`, since an offset of
    /// a whole slide or more names the same windows as its remainder.
    pub fn with_offset(self, offset: Duration) -> Self {
        self.try_with_offset(offset).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Shifts window starts by `offset`; an offset of the slide or more is refused.
    pub fn try_with_offset(mut self, offset: Duration) -> Result<Self, WindowError> {
        let offset_ms = duration_ms(offset);
        if offset_ms >= self.slide_ms {
            return Err(WindowError::OffsetNotUnderSlide { offset_ms, slide_ms: self.slide_ms });
        }
        self.offset_ms = offset_ms;
        Ok(self)
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Distance between consecutive window starts in milliseconds.
    pub fn slide_ms(&self) -> i64 {
        self.slide_ms
    }

    /// Offset of window starts from the epoch in milliseconds, under the slide.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }

    /// The most windows one timestamp can be in: `ceil(size / slide)`, a capacity for buffers.
    pub fn windows_per_timestamp_max(&self) -> usize {
        usize::try_from((self.size_ms - 1) / self.slide_ms + 1).unwrap_or(usize::MAX)
    }

    /// Every window containing `timestamp`, latest start first (Flink's order).
    ///
    /// Timestamps within `size` of `i64`'s limits overflow the window bounds.
    #[inline]
    pub fn assign(&self, timestamp: i64) -> AssignedWindows {
        let last_start = timestamp - (timestamp - self.offset_ms).rem_euclid(self.slide_ms);
        // Starts `last_start - k * slide` for k >= 0 while the start is above `timestamp - size`.
        let span = last_start - timestamp + self.size_ms;
        let remaining = if span > 0 { (span - 1) / self.slide_ms + 1 } else { 0 };
        AssignedWindows::new(TimeWindow { start: last_start, end: last_start + self.size_ms }, -self.slide_ms, -self.slide_ms, remaining)
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

    fn assigned(assigner: &SlidingEventTimeWindows, timestamp: i64) -> Vec<TimeWindow> {
        assigner.assign(timestamp).collect()
    }

    #[test]
    fn overlapping_windows_come_latest_start_first() {
        let windows = SlidingEventTimeWindows::of(ms(10), ms(5));
        assert_eq!(assigned(&windows, 0), vec![window(0, 10), window(-5, 5)]);
        assert_eq!(assigned(&windows, 4), vec![window(0, 10), window(-5, 5)]);
        assert_eq!(assigned(&windows, 5), vec![window(5, 15), window(0, 10)]);
        assert_eq!(assigned(&windows, 9), vec![window(5, 15), window(0, 10)]);
        assert_eq!(assigned(&windows, 10), vec![window(10, 20), window(5, 15)]);
    }

    #[test]
    fn negative_timestamps_align_downwards() {
        let windows = SlidingEventTimeWindows::of(ms(10), ms(5));
        assert_eq!(assigned(&windows, -1), vec![window(-5, 5), window(-10, 0)]);
        assert_eq!(assigned(&windows, -5), vec![window(-5, 5), window(-10, 0)]);
        assert_eq!(assigned(&windows, -6), vec![window(-10, 0), window(-15, -5)]);
    }

    #[test]
    fn size_not_a_multiple_of_slide_gives_ceil_or_floor_windows() {
        let windows = SlidingEventTimeWindows::of(ms(10), ms(3));
        assert_eq!(windows.windows_per_timestamp_max(), 4);
        assert_eq!(assigned(&windows, 0), vec![window(0, 10), window(-3, 7), window(-6, 4), window(-9, 1)]);
        assert_eq!(assigned(&windows, 1), vec![window(0, 10), window(-3, 7), window(-6, 4)]);
        assert_eq!(assigned(&windows, 2), vec![window(0, 10), window(-3, 7), window(-6, 4)]);
    }

    #[test]
    fn offset_shifts_every_window_start() {
        let windows = SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset(ms(2));
        assert_eq!(assigned(&windows, 0), vec![window(-3, 7), window(-8, 2)]);
        assert_eq!(assigned(&windows, 1), vec![window(-3, 7), window(-8, 2)]);
        assert_eq!(assigned(&windows, 2), vec![window(2, 12), window(-3, 7)]);
        assert_eq!(assigned(&windows, -4), vec![window(-8, 2), window(-13, -3)]);
    }

    #[test]
    fn slide_equal_to_size_is_tumbling() {
        let sliding = SlidingEventTimeWindows::of(ms(7), ms(7)).with_offset(ms(3));
        let tumbling = super::super::tumbling::TumblingEventTimeWindows::of(ms(7)).with_offset(ms(3));
        for ts in -30..30 {
            assert_eq!(assigned(&sliding, ts), vec![tumbling.assign(ts)], "timestamp {ts}");
        }
    }

    #[test]
    fn iterator_reports_its_exact_length() {
        let windows = SlidingEventTimeWindows::of(Duration::from_secs(60), Duration::from_secs(10));
        let mut assignment = windows.assign(123_456);
        assert_eq!(assignment.len(), 6);
        assignment.next();
        assert_eq!(assignment.len(), 5);
        assert_eq!(assignment.by_ref().count(), 5);
        assert_eq!(assignment.next(), None);
    }

    #[test]
    #[should_panic(expected = "under the slide")]
    fn offset_of_a_whole_slide_is_rejected() {
        let _ = SlidingEventTimeWindows::of(ms(10), ms(5)).with_offset(ms(5));
    }

    #[test]
    fn bad_parameters_get_typed_errors() {
        assert_eq!(
            SlidingEventTimeWindows::try_of(ms(0), ms(1)),
            Err(WindowError::UnderOneMillisecond { what: "a sliding window's size", given: ms(0) })
        );
        assert_eq!(SlidingEventTimeWindows::try_of(ms(10), ms(11)), Err(WindowError::SlideLargerThanSize { size_ms: 10, slide_ms: 11 }));
        assert_eq!(
            SlidingEventTimeWindows::try_of(ms(10), ms(5)).and_then(|w| w.try_with_offset(ms(5))),
            Err(WindowError::OffsetNotUnderSlide { offset_ms: 5, slide_ms: 5 })
        );
        assert!(SlidingEventTimeWindows::try_of(ms(10), ms(10)).is_ok(), "a slide equal to the size tumbles");
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn zero_slide_is_rejected() {
        let _ = SlidingEventTimeWindows::of(ms(10), ms(0));
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn sub_millisecond_size_is_rejected() {
        let _ = SlidingEventTimeWindows::of(Duration::from_micros(999), ms(1));
    }

    /// Every window `[start, start + size)` with an aligned start that contains `timestamp`,
    /// found by trying every start near it, latest first.
    fn brute_force(size: i64, slide: i64, offset: i64, timestamp: i64) -> Vec<TimeWindow> {
        (timestamp - size - slide..=timestamp)
            .rev()
            .filter(|start| (start - offset).rem_euclid(slide) == 0)
            .map(|start| window(start, start + size))
            .filter(|w| w.start <= timestamp && timestamp < w.end)
            .collect()
    }

    proptest! {
        #[test]
        fn every_timestamp_lands_in_exactly_the_windows_containing_it(
            size in 1i64..60,
            slide_seed in 1i64..60,
            offset_seed in 0i64..60,
            timestamp in -1_000i64..1_000,
        ) {
            let slide = 1 + (slide_seed - 1) % size; // slides up to the size
            let offset = offset_seed % slide;
            let windows = SlidingEventTimeWindows::of(ms(size as u64), ms(slide as u64)).with_offset(ms(offset as u64));
            let assignment = windows.assign(timestamp);
            prop_assert!(assignment.len() <= windows.windows_per_timestamp_max());
            prop_assert_eq!(assignment.collect::<Vec<_>>(), brute_force(size, slide, offset, timestamp));
        }

        #[test]
        fn far_timestamps_land_in_windows_containing_them(
            size in 1i64..100_000,
            slide_seed in 1i64..100_000,
            timestamp in -(1i64 << 60)..(1i64 << 60),
        ) {
            let slide = 1 + (slide_seed - 1) % size;
            let windows = SlidingEventTimeWindows::of(ms(size as u64), ms(slide as u64));
            let mut previous_start = None;
            for w in windows.assign(timestamp) {
                prop_assert!(w.start <= timestamp && timestamp < w.end);
                prop_assert_eq!(w.start.rem_euclid(slide), 0);
                if let Some(previous) = previous_start {
                    prop_assert_eq!(previous - w.start, slide);
                }
                previous_start = Some(w.start);
            }
            let expected = (0..=size / slide + 1).filter(|k| {
                let start = timestamp - timestamp.rem_euclid(slide) - k * slide;
                start + size > timestamp
            }).count();
            prop_assert_eq!(windows.assign(timestamp).len(), expected);
        }
    }
}
