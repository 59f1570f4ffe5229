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
    /// Whether this result refines one emitted before for the same key and window (a late record
    /// within allowed lateness re-fired the window).
    pub is_update: bool,
}
