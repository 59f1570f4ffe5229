//! Sinks: where records leave a job.
//!
//! A [`Sink`] describes a parallel sink and creates one [`SinkWriter`] per subtask. Writers take
//! whole frames. `finish` is called once after the last frame, when every input has ended; a
//! writer that buffers flushes there.
//!
//! **Exactly-once sinks commit in two phases**, as Flink's (sink V2: writer and committer):
//! - at the barrier of checkpoint `c`, after every record before it was written, the runtime calls
//!   [`SinkWriter::pre_commit`]: the writer makes what it wrote since its previous pre-commit
//!   durable but not yet visible (a topic transaction, an in-progress part file) and returns a
//!   [`Committable`] saying how to make it visible; the committable is stored in checkpoint `c`;
//! - when checkpoint `c` has completed (every task acknowledged it), the job's [`SinkCommitter`]
//!   (one per sink, from [`Sink::create_committer`]) commits the committables of `c` and of any
//!   earlier checkpoint that did not complete;
//! - after `finish`, the writer pre-commits once more ([`FINAL_CHECKPOINT`]), and those
//!   committables are committed once the whole job has finished, so a failure after one sink
//!   finished cannot leave visible what the restarted job writes again;
//! - when a job restarts from checkpoint `c`, the committer first commits again what `c` holds
//!   (commit is idempotent: it may have happened before the failure), then aborts everything else
//!   the sink's writers had begun ([`SinkCommitter::abort_uncommitted`]): that data follows `c`
//!   and the restarted job writes it again.
//!
//! A sink without a committer (the default) is at-least-once: what it writes is visible at once,
//! and a restarted job writes what followed the checkpoint again.

pub mod collect;
pub mod discard;
pub mod file;
pub mod print;
pub mod sample;
pub mod topic;

use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// A parallel sink of records of type `T`.
pub trait Sink<T: Record>: Send + Sync + 'static {
    /// Creates the writer of one subtask.
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError>;

    /// Creates the committer of a sink that commits in two phases (see the module
    /// documentation); `None` (the default) for a sink whose writes are visible when written.
    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        Ok(None)
    }
}

/// The checkpoint id passed to [`SinkWriter::pre_commit`] after `finish`: what the writer wrote
/// after the last checkpoint, committed when the job has finished.
pub const FINAL_CHECKPOINT: u64 = u64::MAX;

/// What a committer needs to make one pre-commit of one writer visible, encoded by the sink
/// (e.g. a topic partition and transaction id, or a part file's temporary and final path). It is
/// stored in checkpoints, so it must be decodable by a later run of the same job.
pub type Committable = Vec<u8>;

/// Writes the records of one sink subtask.
pub trait SinkWriter<T: Record>: Send {
    /// Writes one frame.
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError>;

    /// Called once after the last frame.
    fn finish(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// Phase one of the two-phase commit, at the barrier of checkpoint `checkpoint` (or
    /// [`FINAL_CHECKPOINT`] after `finish`): makes everything written since the previous
    /// pre-commit durable but not visible, and returns how to commit it; `None` when there is
    /// nothing to commit. What is written next belongs to the next pre-commit. Only called for
    /// sinks with a committer.
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Option<Committable>, UserError> {
        Ok(None)
    }
}

/// Phase two of a sink's two-phase commit: makes pre-committed writes visible. One per sink, run
/// by the job (not by a subtask), so committables of every subtask of the sink reach it.
pub trait SinkCommitter: Send {
    /// Makes `committables` visible. Idempotent: a committable that was committed already (before
    /// a failure) is committed again without effect and without error.
    fn commit(&mut self, committables: &[Committable]) -> Result<(), UserError>;

    /// Before a job (re)starts, after the committables of the checkpoint it restores from were
    /// committed: discards everything this sink's writers pre-committed or began and that was not
    /// committed, so it never becomes visible.
    fn abort_uncommitted(&mut self) -> Result<(), UserError>;
}
