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
    /// Records of a frame not yet passed on: a punctuated generator's frame is cut at each new
    /// watermark, and passing it on stops when the output blocks.
    pub pending_input: std::vec::IntoIter<T>,
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
            pending_input: Vec::new().into_iter(),
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
    /// Passes the pending input on, cut after each record the generator hands a new watermark
    /// for, with that watermark between the parts; stops after a cut that finds the output
    /// blocked (every cut sends a frame and a watermark). Each record moves once; a frame without
    /// new watermarks moves whole.
    fn process_punctuated(&mut self, out: &mut Output<'_, T>) {
        let mut part = Vec::with_capacity(self.pending_input.len());
        for record in self.pending_input.by_ref() {
            self.generator.on_event((self.timestamp_fn)(&record));
            let watermark = self.generator.on_event_watermark().filter(|watermark| *watermark > self.emitted);
            part.push(record);
            if let Some(watermark) = watermark {
                out.emit_frame(std::mem::take(&mut part));
                self.emitted = watermark;
                out.emit_watermark(watermark);
                if out.is_blocked() {
                    return;
                }
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
            debug_assert!(!self.has_pending_output(), "input while output is pending");
            self.pending_input = frame.into_iter();
            self.process_punctuated(out);
        } else {
            for record in &frame {
                self.generator.on_event((self.timestamp_fn)(record));
            }
            out.emit_frame(frame);
        }
        // Not while records wait in `pending_input`: the watermark would overtake them.
        if now >= self.next_emit && !self.has_pending_output() {
            self.emit_if_advanced(now, out);
        }
        Ok(())
    }

    fn generates_watermarks(&self) -> bool {
        true
    }

    fn has_pending_output(&self) -> bool {
        self.pending_input.len() > 0
    }

    fn resume_output(&mut self, out: &mut Output<'_, T>) -> Result<(), UserError> {
        self.process_punctuated(out);
        Ok(())
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
        // After the final watermark nothing is left to emit, and while idle nothing until the
        // next record (which ends the idleness in `process`).
        (self.emitted < i64::MAX && !self.idle).then_some(self.next_emit)
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

    #[test]
    fn an_idle_assigner_asks_for_no_tick_until_the_next_record() {
        let generator = Box::new(BoundedOutOfOrderness::new(Duration::from_millis(10)));
        let timeout = Duration::from_millis(5);
        let operator = TimestampsAndWatermarks::<i64>::new(Arc::new(|t: &i64| *t), generator, Duration::from_millis(1), Some(timeout));
        let idle_at = operator.last_record + timeout;
        let mut chain = OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))]);
        let mut log = Log(Vec::new());
        chain.on_processing_time(idle_at, &mut log).unwrap();
        // Idle now. Its periodic time is in the past: asking for it would bring the task back at
        // once, again and again, until a record came.
        assert_eq!(chain.next_processing_time(), None);
        chain.process(AnyFrame::new(vec![1i64]), &mut log).unwrap();
        assert!(chain.next_processing_time().is_some(), "a record ends the idleness");
    }
}
