//! Sinks: where records leave a job.
//!
//! A [`Sink`] describes a parallel sink and creates one [`SinkWriter`] per subtask. Writers take
//! whole frames. `finish` is called once after the last frame, when every input has ended; a
//! writer that buffers flushes there. (Two-phase commit on checkpoint barriers comes with
//! checkpoints and extends this trait.)

pub mod collect;
pub mod discard;
pub mod file;
pub mod print;
pub mod sample;

use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// A parallel sink of records of type `T`.
pub trait Sink<T: Record>: Send + Sync + 'static {
    /// Creates the writer of one subtask.
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError>;
}

/// Writes the records of one sink subtask.
pub trait SinkWriter<T: Record>: Send {
    /// Writes one frame.
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError>;

    /// Called once after the last frame.
    fn finish(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}
