//! A source over an in-memory collection, split between subtasks by position (record `i` goes to
//! subtask `i mod parallelism`), for tests and examples.

use std::sync::Arc;

use super::{ReaderStatus, Source, SourceReader};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Emits the records of a collection once, then finishes.
pub struct CollectionSource<T> {
    records: Arc<Vec<T>>,
}

impl<T> CollectionSource<T> {
    /// A source over `records`.
    pub fn new(records: impl Into<Vec<T>>) -> Self {
        CollectionSource { records: Arc::new(records.into()) }
    }
}

impl<T: Record + Clone + Sync> Source<T> for CollectionSource<T> {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(CollectionReader {
            records: Arc::clone(&self.records),
            first: context.subtask_index,
            next: context.subtask_index,
            stride: context.parallelism,
        }))
    }
}

struct CollectionReader<T> {
    records: Arc<Vec<T>>,
    first: usize,
    next: usize,
    stride: usize,
}

impl<T: Record + Clone + Sync> SourceReader<T> for CollectionReader<T> {
    fn poll_frame(&mut self, frame: &mut Vec<T>, records_max: usize) -> Result<ReaderStatus, UserError> {
        while frame.len() < records_max && self.next < self.records.len() {
            frame.push(self.records[self.next].clone());
            self.next += self.stride;
        }
        Ok(if self.next >= self.records.len() { ReaderStatus::Finished } else { ReaderStatus::Ready })
    }

    fn position(&self) -> Option<u64> {
        Some(self.next as u64)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        super::check_strided_position(position, self.first as u64, self.stride as u64)?;
        self.next = usize::try_from(position)?;
        Ok(())
    }
}
