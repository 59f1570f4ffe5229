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

/// Ids `0..total`, split between subtasks by stride, released `block` at a time: after each block
/// a reader waits (idle) until it is told of a completed checkpoint, so checkpoints fall between
/// data without any test waiting on time. Replayable: the position is the next id. With
/// `fail_next_seek` set, the next seek fails once (a fault during recovery).
#[derive(Clone)]
pub struct BlockSource {
    pub total: u64,
    pub block: u64,
    pub fail_next_seek: Arc<AtomicBool>,
}

impl BlockSource {
    /// Ids `0..total`, `block` per completed checkpoint.
    pub fn new(total: u64, block: u64) -> BlockSource {
        BlockSource { total, block, fail_next_seek: Arc::new(AtomicBool::new(false)) }
    }
}

struct BlockReader {
    next: u64,
    stride: u64,
    total: u64,
    block: u64,
    since_checkpoint: u64,
    fail_next_seek: Arc<AtomicBool>,
}

impl Source<u64> for BlockSource {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<u64>>, UserError> {
        Ok(Box::new(BlockReader {
            next: context.subtask_index as u64,
            stride: context.parallelism as u64,
            total: self.total,
            block: self.block,
            since_checkpoint: 0,
            fail_next_seek: Arc::clone(&self.fail_next_seek),
        }))
    }
}

impl SourceReader<u64> for BlockReader {
    fn poll_frame(&mut self, frame: &mut Vec<u64>, records_max: usize) -> Result<ReaderStatus, UserError> {
        if self.next >= self.total {
            return Ok(ReaderStatus::Finished);
        }
        if self.since_checkpoint >= self.block {
            return Ok(ReaderStatus::Idle);
        }
        while frame.len() < records_max.min(64) && self.next < self.total && self.since_checkpoint < self.block {
            frame.push(self.next);
            self.next += self.stride;
            self.since_checkpoint += 1;
        }
        Ok(ReaderStatus::Ready)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        if self.fail_next_seek.swap(false, Ordering::SeqCst) {
            return Err("injected failure while restoring".into());
        }
        self.next = position;
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, _id: u64) {
        self.since_checkpoint = 0;
    }
}

/// A fresh directory path under the system temp directory (not created), removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A directory named after `name` and this process.
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tethys-tests-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
