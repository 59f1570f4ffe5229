//! The timestamp and watermark assigner: applies a `WatermarkStrategy` to a stream.
//!
//! It passes records through unchanged, feeds their timestamps to the strategy's generator, and
//! emits the generator's watermark at most every `watermark_interval` (on records and on
//! processing-time ticks), only when it advances. A punctuated generator may also hand over a
//! watermark after any record: the frame is split there, so the watermark goes out right after
//! that record and before the next, whatever the frame size. Watermarks from upstream are
//! replaced, as in Flink, except the final maximum watermark at end of input, which is passed on
//! so that everything downstream fires. With idleness it declares its output idle after the
//! timeout without records, and active again before the next record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::UserError;

use super::{FrameOperator, Output};
use crate::frame::Record;
use crate::time::watermark::WatermarkGenerator;

pub(crate) struct TimestampsAndWatermarks<T> {
    pub timestamp_fn: Arc<dyn Fn(&T) -> i64 + Send + Sync>,
    pub generator: Box<dyn WatermarkGenerator>,
    pub interval: Duration,
    pub idleness: Option<Duration>,
    pub emitted: i64,
    pub next_emit: Instant,
    pub last_record: Instant,
    pub idle: bool,
}

impl<T> TimestampsAndWatermarks<T> {
    pub(crate) fn new(
        timestamp_fn: Arc<dyn Fn(&T) -> i64 + Send + Sync>,
        generator: Box<dyn WatermarkGenerator>,
        interval: Duration,
        idleness: Option<Duration>,
    ) -> Self {
        let now = Instant::now();
        TimestampsAndWatermarks {
            timestamp_fn,
            generator,
            interval,
            idleness,
            emitted: i64::MIN,
            next_emit: now,
            last_record: now,
            idle: false,
        }
    }

    fn emit_if_advanced<Out: Record>(&mut self, now: Instant, out: &mut Output<'_, Out>) {
        self.next_emit = now + self.interval;
        if let Some(watermark) = self.generator.current_watermark() {
            if watermark > self.emitted {
                self.emitted = watermark;
                out.emit_watermark(watermark);
            }
        }
    }
}

impl<T: Record> TimestampsAndWatermarks<T> {
    /// Passes `frame` on, cut after each record the generator hands a new watermark for, with that
    /// watermark between the parts. Each record moves once; a frame without new watermarks moves
    /// whole.
    fn process_punctuated(&mut self, frame: Vec<T>, out: &mut Output<'_, T>) {
        let mut part = Vec::with_capacity(frame.len());
        for record in frame {
            self.generator.on_event((self.timestamp_fn)(&record));
            let watermark = self.generator.on_event_watermark().filter(|watermark| *watermark > self.emitted);
            part.push(record);
            if let Some(watermark) = watermark {
                out.emit_frame(std::mem::take(&mut part));
                self.emitted = watermark;
                out.emit_watermark(watermark);
            }
        }
        if !part.is_empty() {
            out.emit_frame(part);
        }
    }
}

impl<T: Record> FrameOperator<T, T> for TimestampsAndWatermarks<T> {
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, T>) -> Result<(), UserError> {
        if frame.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        self.last_record = now;
        if self.idle {
            self.idle = false;
            out.emit_idleness(false);
        }
        if self.generator.is_punctuated() {
            self.process_punctuated(frame, out);
        } else {
            for record in &frame {
                self.generator.on_event((self.timestamp_fn)(record));
            }
            out.emit_frame(frame);
        }
        if now >= self.next_emit {
            self.emit_if_advanced(now, out);
        }
        Ok(())
    }

    fn generates_watermarks(&self) -> bool {
        true
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, T>) -> Result<(), UserError> {
        if watermark == i64::MAX && self.emitted < i64::MAX {
            self.emitted = i64::MAX;
            out.emit_watermark(i64::MAX);
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: Instant, out: &mut Output<'_, T>) -> Result<(), UserError> {
        if self.emitted == i64::MAX {
            return Ok(());
        }
        if let Some(timeout) = self.idleness {
            if !self.idle && now.duration_since(self.last_record) >= timeout {
                self.idle = true;
                out.emit_idleness(true);
                return Ok(());
            }
        }
        if !self.idle {
            self.emit_if_advanced(now, out);
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<Instant> {
        // After the final watermark nothing is left to emit.
        (self.emitted < i64::MAX).then_some(self.next_emit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::frame::AnyFrame;
    use crate::operator::{ChainFailure, ErasedFrameOperator, FrameSink, OperatorChain};
    use crate::time::watermark::BoundedOutOfOrderness;

    /// What left the operator, in order.
    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Records(Vec<i64>),
        Watermark(i64),
    }

    struct Log(Vec<Event>);
    impl FrameSink for Log {
        fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure> {
            self.0.push(Event::Records(frame.into_typed::<i64>()));
            Ok(())
        }
        fn push_side(&mut self, _output: usize, _frame: AnyFrame) -> Result<(), ChainFailure> {
            Ok(())
        }
        fn watermark(&mut self, watermark: i64) -> Result<(), ChainFailure> {
            self.0.push(Event::Watermark(watermark));
            Ok(())
        }
        fn idleness(&mut self, _idle: bool) -> Result<(), ChainFailure> {
            Ok(())
        }
        fn is_blocked(&self) -> bool {
            false
        }
    }

    /// Runs `timestamps` in frames of `frame_records` through a per-record generator with a bound
    /// of 9 ms (watermark = max - 10) and an interval too long to ever emit periodically.
    fn punctuated(timestamps: &[i64], frame_records: usize) -> Vec<Event> {
        let generator = Box::new(BoundedOutOfOrderness::new(Duration::from_millis(9)).per_record());
        let operator = TimestampsAndWatermarks::<i64>::new(Arc::new(|t: &i64| *t), generator, Duration::from_secs(3600), None);
        let mut chain = OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))]);
        let mut log = Log(Vec::new());
        for frame in timestamps.chunks(frame_records) {
            chain.process(AnyFrame::new(frame.to_vec()), &mut log).unwrap();
        }
        log.0
    }

    #[test]
    fn punctuated_watermark_follows_the_record_that_raised_it_whatever_the_frame_size() {
        use Event::{Records, Watermark};
        let timestamps = [100, 95, 120, 110, 90, 130];
        // The interval (1 h) has not passed at the first frame either: `next_emit` starts at
        // construction, so only the per-record watermarks appear.
        let expected =
            vec![Records(vec![100]), Watermark(90), Records(vec![95, 120]), Watermark(110), Records(vec![110, 90, 130]), Watermark(120)];
        let merge = |events: Vec<Event>| {
            let mut merged: Vec<Event> = Vec::new();
            for event in events {
                match (merged.last_mut(), event) {
                    (Some(Records(before)), Records(more)) => before.extend(more),
                    (_, event) => merged.push(event),
                }
            }
            merged
        };
        for frame_records in [1, 2, 3, 6, 100] {
            assert_eq!(merge(punctuated(&timestamps, frame_records)), expected, "frames of {frame_records}");
        }
        assert_eq!(punctuated(&timestamps, 100).len(), expected.len(), "one frame per part, no empty frames");
    }
}
