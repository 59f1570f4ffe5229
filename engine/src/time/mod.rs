//! Event time: watermark strategies and the generators behind them.

pub mod watermark;

/// `duration` in whole milliseconds, the engine's unit of event time, saturating at `i64::MAX`
/// (292 million years: larger durations mean "forever" anyway).
pub(crate) fn duration_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
