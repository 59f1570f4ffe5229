//! Support shared by the end-to-end tests in `tests/`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::{EngineConfig, JobError, JobResult, StreamEnvironment, SubtaskContext, UserError};

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

impl<T: tethys_engine::Codec + Clone + Sync> Source<T> for IdleUntilReleased<T> {
    fn create_reader(&self, _context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        Ok(Box::new(IdleUntilReleasedReader { first: Some(self.first.clone()), release: Arc::clone(&self.release) }))
    }
}

impl<T: tethys_engine::Codec> SourceReader<T> for IdleUntilReleasedReader<T> {
    fn poll_frame(&mut self, frame: &mut Vec<T>, _records_max: usize) -> Result<ReaderStatus, UserError> {
        if let Some(first) = self.first.take().filter(|f| !f.is_empty()) {
            frame.extend(first);
            return Ok(ReaderStatus::Ready);
        }
        Ok(if self.release.load(Ordering::Relaxed) { ReaderStatus::Finished } else { ReaderStatus::Idle })
    }
}

/// Longest a job run by `execute_within_deadline` may take before the test calls it a hang.
pub const JOB_DEADLINE: Duration = Duration::from_secs(30);

/// Builds and runs a job (2 slots, parallelism 2) on its own thread and waits at most
/// `JOB_DEADLINE` for its outcome: a job that hangs fails its test instead of stalling the suite.
pub fn execute_within_deadline(job: &'static str, define: impl FnOnce(&StreamEnvironment) + Send + 'static) -> Result<JobResult, JobError> {
    execute_with_config_within_deadline(job, EngineConfig { slots: 2, parallelism: 2, ..EngineConfig::default() }, define)
}

/// `execute_within_deadline` with the given settings.
pub fn execute_with_config_within_deadline(
    job: &'static str,
    config: EngineConfig,
    define: impl FnOnce(&StreamEnvironment) + Send + 'static,
) -> Result<JobResult, JobError> {
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let env = StreamEnvironment::new(config);
        define(&env);
        let _ = done_tx.send(env.execute(job));
    });
    match done.recv_timeout(JOB_DEADLINE) {
        Ok(outcome) => outcome,
        Err(_) => panic!("job '{job}' still running after {JOB_DEADLINE:?}: it hangs"),
    }
}
