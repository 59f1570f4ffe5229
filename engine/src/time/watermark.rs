//! Watermark strategies: how a stream's event time and watermarks are derived from its records.
//!
//! A strategy pairs a timestamp assigner (a record's event time in milliseconds) with a watermark
//! generator, as Flink's `WatermarkStrategy` does:
//! - bounded out-of-orderness: records may arrive up to `bound` late; the watermark is the largest
//!   timestamp seen minus the bound minus 1 ms (Flink's formula), so a record exactly `bound`
//!   behind the maximum is still on time;
//! - monotonous timestamps: the bound is zero;
//! - custom: any [`WatermarkGenerator`].
//!
//! With idleness, a stream that has seen no record for that long declares itself idle, so it no
//! longer holds back the watermark of the operators downstream; its next record makes it active.
//! Generators are asked for their watermark periodically (the engine's `watermark_interval`), and
//! the emitted watermark never goes backwards.

use std::sync::Arc;
use std::time::Duration;

use crate::time::duration_ms;

/// Derives watermarks from the timestamps of the records it sees.
pub trait WatermarkGenerator: Send {
    /// Sees one record's timestamp.
    fn on_event(&mut self, timestamp: i64);
    /// The current watermark, if any record has been seen. May stay put; the engine only emits
    /// it when it advances.
    fn current_watermark(&self) -> Option<i64>;
}

/// Watermark = largest timestamp seen - bound - 1.
#[derive(Debug, Clone, Copy)]
pub struct BoundedOutOfOrderness {
    bound_ms: i64,
    max_timestamp: Option<i64>,
}

impl BoundedOutOfOrderness {
    /// A generator tolerating records up to `bound` behind the largest timestamp seen.
    pub fn new(bound: Duration) -> Self {
        let bound_ms = duration_ms(bound);
        BoundedOutOfOrderness { bound_ms, max_timestamp: None }
    }
}

impl WatermarkGenerator for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, timestamp: i64) {
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |max| max.max(timestamp)));
    }

    fn current_watermark(&self) -> Option<i64> {
        self.max_timestamp.map(|max| max.saturating_sub(self.bound_ms).saturating_sub(1))
    }
}

type TimestampFn<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;
type GeneratorFactory = Arc<dyn Fn() -> Box<dyn WatermarkGenerator> + Send + Sync>;

/// How to find a stream's event time and watermarks.
pub struct WatermarkStrategy<T> {
    pub(crate) timestamp_fn: TimestampFn<T>,
    pub(crate) generator: GeneratorFactory,
    pub(crate) idleness: Option<Duration>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy { timestamp_fn: Arc::clone(&self.timestamp_fn), generator: Arc::clone(&self.generator), idleness: self.idleness }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Records may be up to `bound` out of order; `timestamp_fn` gives a record's event time (ms).
    pub fn for_bounded_out_of_orderness(bound: Duration, timestamp_fn: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::for_generator(move || BoundedOutOfOrderness::new(bound), timestamp_fn)
    }

    /// Timestamps never decrease; the watermark follows the largest one.
    pub fn for_monotonous_timestamps(timestamp_fn: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO, timestamp_fn)
    }

    /// A custom generator, created once per subtask by `generator`.
    pub fn for_generator<G: WatermarkGenerator + 'static>(
        generator: impl Fn() -> G + Send + Sync + 'static,
        timestamp_fn: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> Self {
        WatermarkStrategy {
            timestamp_fn: Arc::new(timestamp_fn),
            generator: Arc::new(move || Box::new(generator()) as Box<dyn WatermarkGenerator>),
            idleness: None,
        }
    }

    /// Declares the stream idle after `timeout` without records.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_maximum_by_the_bound_plus_one() {
        let mut generator = BoundedOutOfOrderness::new(Duration::from_millis(100));
        assert_eq!(generator.current_watermark(), None);
        generator.on_event(1_000);
        generator.on_event(900); // late-ish but within the bound: no effect on the maximum
        assert_eq!(generator.current_watermark(), Some(899));
        generator.on_event(1_500);
        assert_eq!(generator.current_watermark(), Some(1_399));
    }
}
