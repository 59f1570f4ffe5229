//! Event-time windows: window assigners and the operators that keep per-window, per-key state and
//! emit results when the watermark passes a window's end.
//!
//! A window `[start, end)` fires when the watermark reaches `end - 1` (its largest timestamp), as in
//! Flink. A record for a fired window within the allowed lateness updates it and re-fires it
//! (marked as an update); a later one goes to the operator's `LatePolicy`.

pub mod cumulate;
pub mod global;
pub(crate) mod global_operator;
pub mod session;
pub(crate) mod session_operator;
pub mod sliding;
pub mod trigger;
pub mod tumbling;

pub mod assigner;
pub mod function;
pub mod operator;

use serde::{Deserialize, Serialize};

/// Window parameters that describe no usable window, refused where the assigner is made
/// (`try_of`, `try_with_gap`); the panicking constructors report the same message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// A size, slide, step or gap under a millisecond: no timestamp could ever fall in it.
    #[error("{what} must be at least 1 ms, got {given:?}")]
    UnderOneMillisecond {
        /// Which parameter ("tumbling window size", "sliding window slide", ...).
        what: &'static str,
        /// The value given.
        given: std::time::Duration,
    },
    /// A slide larger than the size leaves gaps between windows whose records are silently in no
    /// window. Flink accepts it; Tethys refuses it as a likely mistake (sample with a filter).
    #[error(
        "a sliding window's slide ({slide_ms} ms) is larger than its size ({size_ms} ms): records between windows would belong to none"
    )]
    SlideLargerThanSize {
        /// The window size.
        size_ms: i64,
        /// The slide.
        slide_ms: i64,
    },
    /// Cumulate windows end on step boundaries, so the largest window is a whole number of steps.
    #[error("a cumulate window's max size ({max_size_ms} ms) must be a whole number of steps ({step_ms} ms)")]
    NotWholeSteps {
        /// The step.
        step_ms: i64,
        /// The max size.
        max_size_ms: i64,
    },
    /// A sliding window offset of a whole slide or more names the same windows as its remainder.
    #[error("a sliding window offset ({offset_ms} ms) must be under the slide ({slide_ms} ms)")]
    OffsetNotUnderSlide {
        /// The offset.
        offset_ms: i64,
        /// The slide.
        slide_ms: i64,
    },
}

/// Milliseconds of `given`, refused with `WindowError::UnderOneMillisecond` if zero.
fn positive_ms(what: &'static str, given: std::time::Duration) -> Result<i64, WindowError> {
    let ms = crate::time::duration_ms(given);
    if ms > 0 {
        Ok(ms)
    } else {
        Err(WindowError::UnderOneMillisecond { what, given })
    }
}

/// A time window `[start, end)` in event-time milliseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct TimeWindow {
    /// First timestamp in the window.
    pub start: i64,
    /// One past the last timestamp in the window.
    pub end: i64,
}

impl TimeWindow {
    /// The largest timestamp in the window: it fires when the watermark reaches this.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
}

/// A window as a state key (the disk window store's namespace): start, then end.
impl crate::base::key::KeyBytes for TimeWindow {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut crate::base::key::KeyHasher) {
        hasher.write_u64(self.start as u64);
        hasher.write_u64(self.end as u64);
    }
}

/// The windows of one timestamp from an assigner with several per timestamp (sliding, cumulate):
/// `remaining` windows, each the previous one with its start and end moved by fixed steps.
/// Allocates nothing.
#[derive(Debug, Clone)]
pub struct AssignedWindows {
    next: TimeWindow,
    start_step: i64,
    end_step: i64,
    remaining: i64,
}

impl AssignedWindows {
    pub(crate) fn new(first: TimeWindow, start_step: i64, end_step: i64, remaining: i64) -> Self {
        debug_assert!(remaining >= 0);
        AssignedWindows { next: first, start_step, end_step, remaining }
    }
}

impl Iterator for AssignedWindows {
    type Item = TimeWindow;

    #[inline]
    fn next(&mut self) -> Option<TimeWindow> {
        if self.remaining == 0 {
            return None;
        }
        let window = self.next;
        self.remaining -= 1;
        self.next = TimeWindow { start: window.start + self.start_step, end: window.end + self.end_step };
        Some(window)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for AssignedWindows {}

impl std::iter::FusedIterator for AssignedWindows {}

/// The result of a window for one key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct WindowResult<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: TimeWindow,
    /// The window function's result.
    pub value: V,
    /// Whether this result refines one emitted before for the same key and window (a late record
    /// within allowed lateness re-fired the window).
    pub is_update: bool,
}
