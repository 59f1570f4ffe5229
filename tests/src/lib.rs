//! Support shared by the end-to-end tests in `tests/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::SubtaskContext;
use tethys_engine::UserError;

/// A source that emits `first` (in one frame, from each subtask), then has nothing to give
/// (`Idle`) until the test's job sets `release`, then ends. A test makes the job itself set the
/// flag once the behaviour under test has happened, so the job only ends if it did.
pub struct IdleUntilReleased<T> {
    /// Records emitted before going idle.
    pub first: Vec<T>,
    /// Set to let the source end.
    pub release: Arc<AtomicBool>,
}

impl<T> IdleUntilReleased<T> {
    /// A source that emits `first`, then waits for `release`.
    pub fn new(first: Vec<T>, release: &Arc<AtomicBool>) -> Self {
        IdleUntilReleased { first, release: Arc::clone(release) }
    }
}

struct IdleUntilReleasedReader<T> {
    first: Option<Vec<T>>,
    release: Arc<AtomicBool>,
}

impl<T: Clone + Send + Sync + 'static> Source<T> for IdleUntilReleased<T> {
    fn create_reader(&self, _context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(IdleUntilReleasedReader { first: Some(self.first.clone()), release: Arc::clone(&self.release) }))
    }
}

impl<T: Send + 'static> SourceReader<T> for IdleUntilReleasedReader<T> {
    fn poll_frame(&mut self, frame: &mut Vec<T>, _records_max: usize) -> Result<ReaderStatus, UserError> {
        if let Some(first) = self.first.take().filter(|f| !f.is_empty()) {
            frame.extend(first);
            return Ok(ReaderStatus::Ready);
        }
        Ok(if self.release.load(Ordering::Relaxed) { ReaderStatus::Finished } else { ReaderStatus::Idle })
    }
}
