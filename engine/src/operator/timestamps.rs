//! The timestamp and watermark assigner: applies a `WatermarkStrategy` to a stream.
//!
//! It passes records through unchanged, feeds their timestamps to the strategy's generator, and
//! emits the generator's watermark at most every `watermark_interval` (on records and on
//! processing-time ticks), only when it advances. Watermarks from upstream are replaced, as in
//! Flink, except the final maximum watermark at end of input, which is passed on so that
//! everything downstream fires. With idleness it declares its output idle after the timeout
//! without records, and active again before the next record.

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

impl<T: Record> FrameOperator<T, T> for TimestampsAndWatermarks<T> {
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, T>) -> Result<(), UserError> {
        if frame.is_empty() {
            return Ok(());
        }
        for record in &frame {
            self.generator.on_event((self.timestamp_fn)(record));
        }
        let now = Instant::now();
        self.last_record = now;
        if self.idle {
            self.idle = false;
            out.emit_idleness(false);
        }
        out.emit_frame(frame);
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
