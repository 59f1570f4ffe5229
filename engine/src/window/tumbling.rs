//! Tumbling event-time windows: fixed-size, non-overlapping windows aligned to the epoch plus an
//! optional offset. Every timestamp belongs to exactly one window.

use std::time::Duration;

use super::{positive_ms, TimeWindow, WindowError};
use crate::time::duration_ms;

/// Assigns each timestamp to the tumbling window that contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumblingEventTimeWindows {
    size_ms: i64,
    offset_ms: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size`, aligned to the epoch.
    ///
    /// # Panics
    /// If `size` is under a millisecond (see `try_of`).
    pub fn of(size: Duration) -> Self {
        Self::try_of(size).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Windows of `size`, aligned to the epoch; a size under a millisecond is refused.
    pub fn try_of(size: Duration) -> Result<Self, WindowError> {
        Ok(TumblingEventTimeWindows { size_ms: positive_ms("a tumbling window's size", size)?, offset_ms: 0 })
    }

    /// Shifts window boundaries by `offset` (e.g. to align daily windows to a time zone).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        let offset_ms = duration_ms(offset);
        self.offset_ms = offset_ms.rem_euclid(self.size_ms);
        self
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The window containing `timestamp`.
    #[inline]
    pub fn assign(&self, timestamp: i64) -> TimeWindow {
        let start = timestamp - (timestamp - self.offset_ms).rem_euclid(self.size_ms);
        TimeWindow { start, end: start + self.size_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timestamp_lands_in_the_one_window_containing_it() {
        let windows = TumblingEventTimeWindows::of(Duration::from_millis(10)).with_offset(Duration::from_millis(3));
        for ts in -50i64..50 {
            let w = windows.assign(ts);
            assert!(w.start <= ts && ts < w.end, "{ts} not in {w:?}");
            assert_eq!(w.end - w.start, 10);
            assert_eq!((w.start - 3).rem_euclid(10), 0, "aligned to the offset");
        }
        assert_eq!(TumblingEventTimeWindows::of(Duration::from_secs(10)).assign(19_999), TimeWindow { start: 10_000, end: 20_000 });
    }
}
