//! Event-time windows: window assigners and the operators that keep per-window, per-key state and
//! emit results when the watermark passes a window's end.
//!
//! A window `[start, end)` fires when the watermark reaches `end - 1` (its largest timestamp), as in
//! Flink. Records whose window has already fired are late; until allowed lateness and late-data
//! policies land, they are dropped and counted.

pub mod tumbling;

pub(crate) mod aggregate;

use serde::{Deserialize, Serialize};

/// A time window `[start, end)` in event-time milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// The result of a window for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowResult<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: TimeWindow,
    /// The window function's result.
    pub value: V,
}
