//! A sink that counts and discards every record: the sink of the benchmarks.
//!
//! It reads each record (`black_box`) so the work upstream cannot be optimised away, and adds its
//! count to a shared counter once per frame. It can be made slow (`with_frame_delay`), to show
//! backpressure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Sink, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Discards records, counting them.
#[derive(Clone, Default)]
pub struct DiscardSink {
    records: Arc<AtomicU64>,
    /// Time each frame takes (a slow sink, for demonstrations and tests of backpressure).
    frame_delay: Option<std::time::Duration>,
}

impl DiscardSink {
    /// A new sink with a zero count.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same sink, taking `delay` per frame: a slow consumer that backpressures its producers.
    pub fn with_frame_delay(mut self, delay: std::time::Duration) -> Self {
        self.frame_delay = Some(delay);
        self
    }

    /// Records discarded so far by all subtasks.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
}

impl<T: Record> Sink<T> for DiscardSink {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl<T: Record> SinkWriter<T> for DiscardSink {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        if let Some(delay) = self.frame_delay {
            std::thread::sleep(delay);
        }
        self.records.fetch_add(frame.len() as u64, Ordering::Relaxed);
        std::hint::black_box(frame);
        Ok(())
    }
}
