//! The timestamp and watermark assigner: applies a `WatermarkStrategy` to a stream.
//!
//! It passes records through unchanged, feeds their timestamps to the strategy's generator, and
//! emits the generator's watermark at most every `watermark_interval` (on records and on
//! processing-time ticks), only when it advances. A punctuated generator may also hand over a
//! watermark after any record: the frame is split there, so the watermark goes out right after
//! that record and before the next, whatever the frame size. Watermarks from upstream are
//! replaced, as in Flink, except the final maximum watermark at end of input, which is passed on
//! so that everything downstream fires. With idleness it declares its output idle after the
//! timeout without records, and active again before the next record. Its periodic part is
//! `PeriodicWatermarks`, which an operator that assigns timestamps while it transforms records
//! embeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::UserError;

use super::{FrameOperator, Output};
use crate::frame::Record;
use crate::time::watermark::WatermarkGenerator;

/// The periodic part of a timestamp assigner, for an operator that assigns timestamps itself
/// while it transforms records (SQL's scan computes each row's time column on the way): it feeds
/// timestamps to a generator and emits its watermark at most every `interval`, only when it
/// advances; with `idleness`, it declares the output idle after that long without records.
/// The operator forwards its hooks here: `on_records` before a frame's records, `on_event` per
/// record, `after_frame` once the frame is out, and `on_watermark`, `on_processing_time` and
/// `next_processing_time` as they come (its `generates_watermarks` is true).
pub struct PeriodicWatermarks {
    pub(crate) generator: Box<dyn WatermarkGenerator>,
    interval: Duration,
    idleness: Option<Duration>,
    pub(crate) emitted: i64,
    next_emit: Instant,
    last_record: Instant,
    idle: bool,
}

impl PeriodicWatermarks {
    /// Emits `generator`'s watermark at most every `interval` (the subtask's
    /// `watermark_interval`); idle after `idleness` without records, if set.
    pub fn new(generator: Box<dyn WatermarkGenerator>, interval: Duration, idleness: Option<Duration>) -> Self {
        let now = Instant::now();
        PeriodicWatermarks { generator, interval, idleness, emitted: i64::MIN, next_emit: now, last_record: now, idle: false }
    }

    /// Records are about to come: ends an idle spell. Returns the moment, for `after_frame`.
    pub fn on_records<Out: Record>(&mut self, out: &mut Output<'_, Out>) -> Instant {
        let now = Instant::now();
        self.last_record = now;
        if self.idle {
            self.idle = false;
            out.emit_idleness(false);
        }
        now
    }

    /// One record's timestamp.
    #[inline]
    pub fn on_event(&mut self, timestamp: i64) {
        self.generator.on_event(timestamp);
    }

    /// After a frame's records went out (at `now`, from `on_records`): the watermark, if due and
    /// advanced.
    pub fn after_frame<Out: Record>(&mut self, now: Instant, out: &mut Output<'_, Out>) {
        if now >= self.next_emit {
            self.emit_if_advanced(now, out);
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

    /// A watermark from upstream: replaced, except the final one at end of input, passed on.
    pub fn on_watermark<Out: Record>(&mut self, watermark: i64, out: &mut Output<'_, Out>) {
        if watermark == i64::MAX && self.emitted < i64::MAX {
            self.emitted = i64::MAX;
            out.emit_watermark(i64::MAX);
        }
    }

    /// A processing-time tick: idleness, or the watermark if advanced.
    pub fn on_processing_time<Out: Record>(&mut self, now: Instant, out: &mut Output<'_, Out>) {
        if self.emitted == i64::MAX {
            return;
        }
        if let Some(timeout) = self.idleness {
            if !self.idle && now.duration_since(self.last_record) >= timeout {
                self.idle = true;
                out.emit_idleness(true);
                return;
            }
        }
        if !self.idle {
            self.emit_if_advanced(now, out);
        }
    }

    /// When the next tick is wanted.
    pub fn next_processing_time(&self) -> Option<Instant> {
        // After the final watermark nothing is left to emit, and while idle nothing until the
        // next record (which ends the idleness in `on_records`).
        (self.emitted < i64::MAX && !self.idle).then_some(self.next_emit)
    }
}

pub(crate) struct TimestampsAndWatermarks<T> {
    pub timestamp_fn: Arc<dyn Fn(&T) -> i64 + Send + Sync>,
    pub watermarks: PeriodicWatermarks,
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
        TimestampsAndWatermarks {
            timestamp_fn,
            watermarks: PeriodicWatermarks::new(generator, interval, idleness),
            pending_input: Vec::new().into_iter(),
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
        let watermarks = &mut self.watermarks;
        for record in self.pending_input.by_ref() {
            watermarks.generator.on_event((self.timestamp_fn)(&record));
            let watermark = watermarks.generator.on_event_watermark().filter(|watermark| *watermark > watermarks.emitted);
            part.push(record);
            if let Some(watermark) = watermark {
                out.emit_frame(std::mem::take(&mut part));
                watermarks.emitted = watermark;
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
        let now = self.watermarks.on_records(out);
        if self.watermarks.generator.is_punctuated() {
            debug_assert!(!self.has_pending_output(), "input while output is pending");
            self.pending_input = frame.into_iter();
            self.process_punctuated(out);
        } else {
            for record in &frame {
                self.watermarks.on_event((self.timestamp_fn)(record));
            }
            out.emit_frame(frame);
        }
        // Not while records wait in `pending_input`: the watermark would overtake them.
        if !self.has_pending_output() {
            self.watermarks.after_frame(now, out);
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
        self.watermarks.on_watermark(watermark, out);
        Ok(())
    }

    fn on_processing_time(&mut self, now: Instant, out: &mut Output<'_, T>) -> Result<(), UserError> {
        self.watermarks.on_processing_time(now, out);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<Instant> {
        self.watermarks.next_processing_time()
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
        let idle_at = operator.watermarks.last_record + timeout;
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
