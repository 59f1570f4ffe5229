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
//!
//! A punctuated generator (Flink's `WatermarkGenerator::onEvent` emitting) may also hand over a
//! watermark right after any record ([`WatermarkGenerator::on_event_watermark`]): the engine emits it
//! before the next record, whatever the frame size, so downstream operators see record, watermark,
//! record, ... in arrival order. [`BoundedOutOfOrderness::per_record`] is such a generator.

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
    /// Whether the generator is punctuated: the engine then asks [`on_event_watermark`] after every
    /// record. Asked once per frame, so a periodic generator costs nothing per record.
    ///
    /// [`on_event_watermark`]: WatermarkGenerator::on_event_watermark
    fn is_punctuated(&self) -> bool {
        false
    }
    /// A watermark to emit right after the record just given to [`on_event`], before any later
    /// record (Flink's punctuated emission from `onEvent`). Only asked when [`is_punctuated`]; a
    /// watermark not above the last one emitted is ignored.
    ///
    /// [`on_event`]: WatermarkGenerator::on_event
    /// [`is_punctuated`]: WatermarkGenerator::is_punctuated
    fn on_event_watermark(&mut self) -> Option<i64> {
        None
    }
}

/// Watermark = largest timestamp seen - bound - 1.
#[derive(Debug, Clone, Copy)]
pub struct BoundedOutOfOrderness {
    bound_ms: i64,
    max_timestamp: Option<i64>,
    per_record: bool,
    /// Per record: the record just seen raised the maximum, so its watermark is due.
    raised: bool,
}

impl BoundedOutOfOrderness {
    /// A generator tolerating records up to `bound` behind the largest timestamp seen; its
    /// watermark is emitted periodically.
    pub fn new(bound: Duration) -> Self {
        let bound_ms = duration_ms(bound);
        BoundedOutOfOrderness { bound_ms, max_timestamp: None, per_record: false, raised: false }
    }

    /// The same watermark, emitted right after each record that raises it (punctuated) instead of
    /// periodically: what Flink does with a generator that emits in `onEvent`.
    pub fn per_record(mut self) -> Self {
        self.per_record = true;
        self
    }
}

impl WatermarkGenerator for BoundedOutOfOrderness {
    #[inline]
    fn on_event(&mut self, timestamp: i64) {
        self.raised = self.max_timestamp.is_none_or(|max| timestamp > max);
        if self.raised {
            self.max_timestamp = Some(timestamp);
        }
    }

    fn current_watermark(&self) -> Option<i64> {
        self.max_timestamp.map(|max| max.saturating_sub(self.bound_ms).saturating_sub(1))
    }

    fn is_punctuated(&self) -> bool {
        self.per_record
    }

    #[inline]
    fn on_event_watermark(&mut self) -> Option<i64> {
        std::mem::take(&mut self.raised).then(|| self.current_watermark()).flatten()
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

    /// Records may be up to `bound` out of order, and the watermark is emitted right after each
    /// record that raises it (a punctuated generator, see [`BoundedOutOfOrderness::per_record`]),
    /// not periodically: downstream operators see every record with the watermark of its moment.
    pub fn for_bounded_out_of_orderness_per_record(bound: Duration, timestamp_fn: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        Self::for_generator(move || BoundedOutOfOrderness::new(bound).per_record(), timestamp_fn)
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
        assert!(!generator.is_punctuated());
    }

    #[test]
    fn per_record_generator_hands_over_a_watermark_only_after_records_that_raise_it() {
        let mut generator = BoundedOutOfOrderness::new(Duration::from_millis(100)).per_record();
        assert!(generator.is_punctuated());
        let mut after = |timestamp| {
            generator.on_event(timestamp);
            generator.on_event_watermark()
        };
        assert_eq!(after(1_000), Some(899));
        assert_eq!(after(900), None, "behind the maximum: no new watermark");
        assert_eq!(after(1_000), None, "equal to the maximum: no new watermark");
        assert_eq!(after(1_001), Some(900));
    }
}
