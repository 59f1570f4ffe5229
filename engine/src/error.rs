//! Errors a job run returns, each naming where the problem is.

use thiserror::Error;

use crate::base::OperatorFailure;
use crate::config::ConfigError;
use crate::graph::plan::GraphError;

/// Why a job did not complete.
#[derive(Debug, Error)]
pub enum JobError {
    /// The engine configuration is invalid.
    #[error("job '{job}': {source}")]
    Config {
        /// The job.
        job: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// The job graph cannot run.
    #[error("job '{job}': {source}")]
    Graph {
        /// The job.
        job: String,
        /// What is wrong.
        source: GraphError,
    },
    /// An operator failed: user code panicked or returned an error, or could not be created.
    #[error("job '{job}': operator '{operator}' (subtask {subtask} of {parallelism}) failed: {failure}")]
    OperatorFailed {
        /// The job.
        job: String,
        /// The failing operator's name.
        operator: String,
        /// The failing subtask's index.
        subtask: usize,
        /// The operator's parallelism.
        parallelism: usize,
        /// What happened.
        failure: OperatorFailure,
    },
    /// The key selector of a hash-partitioned edge failed: it runs in the producing subtask, on
    /// behalf of the consuming (keyed) operator.
    #[error("job '{job}': key selector of edge '{from}' -> '{to}' (in subtask {subtask} of {parallelism} of '{from}') failed: {failure}")]
    KeySelectorFailed {
        /// The job.
        job: String,
        /// The producing operator, whose subtask ran the key selector.
        from: String,
        /// The consuming operator the records were keyed for.
        to: String,
        /// The producing subtask's index.
        subtask: usize,
        /// The producer's parallelism.
        parallelism: usize,
        /// What happened.
        failure: OperatorFailure,
    },
    /// The checkpoint or savepoint the job was to start from does not fit it.
    #[error("job '{job}': {source}")]
    Restore {
        /// The job.
        job: String,
        /// What does not fit.
        source: crate::runtime::snapshot::RestoreError,
    },
    /// The job was cancelled (`JobClient::cancel`).
    #[error("job '{job}' was cancelled")]
    Cancelled {
        /// The job.
        job: String,
    },
    /// A savepoint could not be taken.
    #[error("job '{job}': savepoint failed: {reason}")]
    Savepoint {
        /// The job.
        job: String,
        /// Why.
        reason: String,
    },
    /// A worker refused to run the job: it built another graph (a graph fingerprint mismatch,
    /// naming the operator that differs), does not know the job, or cannot take its settings.
    /// Not retried: restarting cannot change what the worker built.
    #[error("job '{job}': worker {worker} refused it: {reason}")]
    Deploy {
        /// The job.
        job: String,
        /// The worker's node id.
        worker: u32,
        /// Why.
        reason: String,
    },
    /// The runtime could not start or lost a slot (an engine fault, not the job's).
    #[error("job '{job}': runtime failure: {reason}")]
    Runtime {
        /// The job.
        job: String,
        /// What happened.
        reason: String,
    },
}

impl JobError {
    /// The failing operator's name, if an operator failed.
    pub fn operator(&self) -> Option<&str> {
        match self {
            JobError::OperatorFailed { operator, .. } => Some(operator),
            JobError::KeySelectorFailed { to, .. } => Some(to),
            _ => None,
        }
    }
}
