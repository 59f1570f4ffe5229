//! Sources: where records enter a job.
//!
//! A [`Source`] describes a parallel source and creates one [`SourceReader`] per subtask; a reader
//! fills frames on demand. The runtime polls a reader only when its task has credit to send, so a
//! source never runs ahead of a slow consumer; a reader with nothing to give now says `Idle` and is
//! polled again later instead of blocking its core. Sources that must be replayed after a failure
//! (later: checkpoints) keep their position in the reader.

pub mod bids;
pub mod collection;
pub mod file;
pub mod nexmark;

use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// What a reader reports after filling a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderStatus {
    /// More records may follow at once.
    Ready,
    /// No record is available now; poll again later.
    Idle,
    /// The input is exhausted; no record follows.
    Finished,
}

/// A parallel source of records of type `T`.
pub trait Source<T: Record>: Send + Sync + 'static {
    /// Creates the reader of one subtask.
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError>;
}

/// Reads the records of one source subtask.
pub trait SourceReader<T: Record>: Send {
    /// Appends up to `records_max` records to `frame` and says whether more may follow.
    fn poll_frame(&mut self, frame: &mut Vec<T>, records_max: usize) -> Result<ReaderStatus, UserError>;

    /// The reader's current event-time watermark, if it emits event time: no record it emits
    /// later has an earlier timestamp. It must never go backwards. `None` (the default) for
    /// sources without event time.
    fn watermark(&self) -> Option<i64> {
        None
    }

    /// The reader's position: what a checkpoint records so that a restored reader goes on from
    /// there (records read by a collection reader, the next id of a generator). `None` for a
    /// reader that cannot be replayed.
    fn position(&self) -> Option<u64> {
        None
    }

    /// Checkpoint `id` is complete: every task has its state, so what the reader read before it
    /// will never be asked for again (Flink's `notifyCheckpointComplete`).
    fn notify_checkpoint_complete(&mut self, _id: u64) {}
}

/// A source reader whose record type the runtime does not know.
pub(crate) trait ErasedSourceReader: Send {
    /// Polls the reader for up to `records_max` records, fewer if they would take more than
    /// `bytes_max` bytes (`frame::records_per_frame`).
    fn poll(&mut self, records_max: usize, bytes_max: usize) -> Result<(Option<crate::frame::AnyFrame>, ReaderStatus), UserError>;
    /// The reader's current watermark.
    fn watermark(&self) -> Option<i64>;
    /// The reader's position for a checkpoint.
    fn position(&self) -> Option<u64>;
    /// Checkpoint `id` completed.
    fn notify_checkpoint_complete(&mut self, id: u64);
}

pub(crate) struct TypedSourceReader<T: Record>(pub Box<dyn SourceReader<T>>);

impl<T: Record> ErasedSourceReader for TypedSourceReader<T> {
    fn poll(&mut self, records_max: usize, bytes_max: usize) -> Result<(Option<crate::frame::AnyFrame>, ReaderStatus), UserError> {
        let records_max = crate::frame::records_per_frame::<T>(records_max, bytes_max);
        let mut frame = Vec::with_capacity(records_max);
        let status = self.0.poll_frame(&mut frame, records_max)?;
        debug_assert!(frame.len() <= records_max, "reader exceeded records_max");
        let frame = (!frame.is_empty()).then(|| crate::frame::AnyFrame::new(frame));
        Ok((frame, status))
    }

    fn watermark(&self) -> Option<i64> {
        self.0.watermark()
    }

    fn position(&self) -> Option<u64> {
        self.0.position()
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        self.0.notify_checkpoint_complete(id);
    }
}
