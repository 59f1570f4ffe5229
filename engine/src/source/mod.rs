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
pub mod topic;

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

    /// Moves the reader to `position` (one `position` returned earlier, by a reader of the same
    /// subtask), so that it goes on exactly from there after a restore. The default refuses: a
    /// source that cannot be replayed cannot give exactly-once results.
    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        Err(Box::new(SeekError { position, reason: "this source cannot be replayed" }))
    }
}

/// A reader could not move to a checkpointed position.
#[derive(Debug, thiserror::Error)]
#[error("cannot seek to position {position}: {reason}")]
pub struct SeekError {
    /// The position asked for.
    pub position: u64,
    /// Why not.
    pub reason: &'static str,
}

/// Checks a position of a reader that reads every `stride`-th item from `first` on: it must be
/// one such item (or one past the last read).
pub(crate) fn check_strided_position(position: u64, first: u64, stride: u64) -> Result<(), UserError> {
    if position < first || !(position - first).is_multiple_of(stride) {
        return Err(Box::new(SeekError { position, reason: "not a position of this subtask (another parallelism?)" }));
    }
    Ok(())
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
    /// Moves the reader to a checkpointed position.
    #[allow(dead_code)] // restoring from checkpoints is the next user
    fn seek(&mut self, position: u64) -> Result<(), UserError>;
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

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        self.0.seek(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext { subtask_index, parallelism, ..SubtaskContext::for_test(5) }
    }

    fn read<T: Record>(reader: &mut dyn SourceReader<T>, frames: usize) -> Vec<T> {
        let mut records = Vec::new();
        for _ in 0..frames {
            reader.poll_frame(&mut records, 5).unwrap();
        }
        records
    }

    /// A reader moved to a position goes on exactly as the reader that reported it did.
    fn check_replay<T: PartialEq + std::fmt::Debug + Record>(source: &dyn Source<T>) {
        let mut original = source.create_reader(&context(1, 2)).unwrap();
        read(original.as_mut(), 3);
        let position = original.position().expect("a replayable source reports a position");
        let continuation = read(original.as_mut(), 2);
        let mut restored = source.create_reader(&context(1, 2)).unwrap();
        restored.seek(position).unwrap();
        assert_eq!(read(restored.as_mut(), 2), continuation);
        assert!(restored.seek(position + 1).is_err(), "a position of the other subtask is refused");
    }

    #[test]
    fn generator_and_collection_readers_replay_from_their_position() {
        check_replay(&collection::CollectionSource::new((0..100u64).collect::<Vec<_>>()));
        check_replay(&bids::BidsSource::new(1_000, 3));
        check_replay(&nexmark::NexmarkSource::new(1_000, 3));
    }
}
