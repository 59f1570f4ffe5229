//! A sink that collects every record in memory, for tests and sampled results.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Sink, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Collects records into a shared vector; read it with [`CollectSink::records`] after the job.
pub struct CollectSink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink { records: Arc::clone(&self.records) }
    }
}

impl<T> Default for CollectSink<T> {
    fn default() -> Self {
        CollectSink { records: Arc::new(Mutex::new(Vec::new())) }
    }
}

impl<T: Clone> CollectSink<T> {
    /// A new, empty sink. Keep a clone to read the records after the job.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the records collected so far, in arrival order (subtasks interleaved).
    pub fn records(&self) -> Vec<T> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<T: Record + Clone> Sink<T> for CollectSink<T> {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl<T: Record> SinkWriter<T> for CollectSink<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner).extend(frame);
        Ok(())
    }
}
