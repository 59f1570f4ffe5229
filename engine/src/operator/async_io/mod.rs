//! Async I/O (Flink's `AsyncDataStream`): calls an external service per record without waiting
//! for the answer, with many requests in flight at once.
//!
//! The user's `AsyncFunction` returns a future per record; the operator runs it as a tokio task on
//! the slot's runtime (the runtime the task actor runs on), under a timeout and a retry strategy,
//! and the result comes back through a channel and a `TaskWaker`. Invariants: at most `capacity`
//! requests are in flight; while `capacity` records are held (in flight, waiting, or done but not
//! yet emitted) the operator is saturated and its task takes no input, so backpressure reaches the
//! sources; a frame is taken in whole, its records beyond capacity queued to start later, so at
//! most `capacity - 1` plus one input frame are held (when the operator heads its chain or follows
//! one-in-one-out operators). Ordered mode emits results in input order; unordered mode as they
//! complete, but never across a watermark (`queue`). End of input waits for every request. A
//! timed-out record goes to `AsyncFunction::timeout`, which may give a fallback or fail the job;
//! a request that fails its last attempt fails the job, naming the operator.

mod operator;
mod queue;
mod request;
mod retry;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub(crate) use operator::AsyncIoOperator;
pub use retry::{Backoff, RetryStrategy, RETRY_ATTEMPTS_MAX, RETRY_DELAY_MAX};

use crate::base::UserError;

/// A boxed future that can run on any thread of a runtime.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Most requests one operator instance may have in flight.
pub const CAPACITY_MAX: usize = 65_536;
/// Requests in flight per operator instance unless set otherwise (Flink's default).
pub const CAPACITY_DEFAULT: usize = 100;
/// Longest timeout a request may have.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(24 * 3_600);

/// A function that answers a record asynchronously, e.g. by asking an external service.
///
/// Closures `Fn(In) -> impl Future<Output = Result<Out, UserError>>` implement it, with the default
/// timeout handler.
pub trait AsyncFunction<In, Out>: Send + Sync + 'static {
    /// Starts the request for `input`. An error is retried as the `RetryStrategy` allows; after the
    /// last attempt it fails the job.
    fn invoke(&self, input: In) -> BoxFuture<Result<Out, UserError>>;

    /// Called on the task when the request for `input` has not completed within the timeout:
    /// `Ok(Some(fallback))` emits the fallback in the record's place, `Ok(None)` emits nothing, an
    /// error fails the job. The default fails it with `AsyncIoError::TimedOut`.
    fn timeout(&self, _input: In) -> Result<Option<Out>, UserError> {
        Err(Box::new(RequestTimedOut))
    }
}

impl<In, Out, F, Fut> AsyncFunction<In, Out> for F
where
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, UserError>> + Send + 'static,
{
    fn invoke(&self, input: In) -> BoxFuture<Result<Out, UserError>> {
        Box::pin(self(input))
    }
}

/// In which order results leave the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncMode {
    /// In input order: a slow request holds back the results after it.
    Ordered,
    /// As requests complete, but never across a watermark: every result of the records before a
    /// watermark leaves before it (Flink's unordered mode under event time).
    Unordered,
}

/// How an async operator runs its requests.
#[derive(Debug, Clone)]
pub struct AsyncOptions {
    /// Result order.
    pub mode: AsyncMode,
    /// Most requests in flight per subtask, `1..=CAPACITY_MAX`; a full operator takes no input.
    pub capacity: usize,
    /// Time a request may take, all attempts and retry delays included, `(0, TIMEOUT_MAX]`.
    pub timeout: Duration,
    /// How failed attempts are retried.
    pub retry: RetryStrategy,
}

impl AsyncOptions {
    /// Results in input order; `CAPACITY_DEFAULT` requests in flight, no retries.
    pub fn ordered(timeout: Duration) -> Self {
        AsyncOptions { mode: AsyncMode::Ordered, capacity: CAPACITY_DEFAULT, timeout, retry: RetryStrategy::no_retry() }
    }

    /// Results as they complete, within watermarks; `CAPACITY_DEFAULT` requests in flight, no
    /// retries.
    pub fn unordered(timeout: Duration) -> Self {
        AsyncOptions { mode: AsyncMode::Unordered, ..AsyncOptions::ordered(timeout) }
    }

    /// Sets the most requests in flight per subtask.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the retry strategy.
    pub fn retry(mut self, retry: RetryStrategy) -> Self {
        self.retry = retry;
        self
    }

    /// Checks every setting against its limit; the operator does this when it is created.
    pub fn validate(&self) -> Result<(), AsyncOptionsError> {
        if !(1..=CAPACITY_MAX).contains(&self.capacity) {
            return Err(AsyncOptionsError::Capacity { capacity: self.capacity, max: CAPACITY_MAX });
        }
        if self.timeout.is_zero() || self.timeout > TIMEOUT_MAX {
            return Err(AsyncOptionsError::Timeout { timeout: self.timeout, max: TIMEOUT_MAX });
        }
        self.retry.validate()
    }
}

/// An `AsyncOptions` setting outside its limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AsyncOptionsError {
    /// Capacity is zero or above the maximum.
    #[error("capacity {capacity} is outside 1..={max}")]
    Capacity {
        /// The capacity given.
        capacity: usize,
        /// `CAPACITY_MAX`.
        max: usize,
    },
    /// The timeout is zero or above the maximum.
    #[error("timeout {timeout:?} is outside (0, {max:?}]")]
    Timeout {
        /// The timeout given.
        timeout: Duration,
        /// `TIMEOUT_MAX`.
        max: Duration,
    },
    /// The retry strategy allows no attempt or too many.
    #[error("max attempts {attempts} is outside 1..={max}")]
    Attempts {
        /// The attempts given.
        attempts: u32,
        /// `RETRY_ATTEMPTS_MAX`.
        max: u32,
    },
    /// A retry delay is above the maximum.
    #[error("retry delay {delay:?} is above {max:?}")]
    Delay {
        /// The longest delay of the strategy.
        delay: Duration,
        /// `RETRY_DELAY_MAX`.
        max: Duration,
    },
    /// An exponential backoff does not grow.
    #[error("backoff multiplier {multiplier} is not a finite number of at least 1")]
    Multiplier {
        /// The multiplier given.
        multiplier: f64,
    },
}

/// Why an async operator failed the job; each names the operator.
#[derive(Debug, thiserror::Error)]
pub enum AsyncIoError {
    /// The operator's options are outside their limits.
    #[error("async operator '{operator}': {source}")]
    InvalidOptions {
        /// The operator's name.
        operator: String,
        /// What is wrong.
        source: AsyncOptionsError,
    },
    /// The operator was created outside a tokio runtime (an engine fault: slots run one).
    #[error("async operator '{operator}' was created outside a tokio runtime")]
    NoRuntime {
        /// The operator's name.
        operator: String,
    },
    /// A request did not complete in time and the timeout handler did not give a result.
    #[error("async operator '{operator}': request timed out after {timeout:?} ({attempts} attempt(s) started)")]
    TimedOut {
        /// The operator's name.
        operator: String,
        /// The request timeout.
        timeout: Duration,
        /// Attempts started before the timeout.
        attempts: u32,
    },
    /// The user's timeout handler returned an error of its own.
    #[error("async operator '{operator}': timeout handler failed: {source}")]
    TimeoutHandlerFailed {
        /// The operator's name.
        operator: String,
        /// The handler's error.
        source: UserError,
    },
    /// A request's last attempt failed, or its error is not one the strategy retries.
    #[error("async operator '{operator}': request failed after {attempts} attempt(s): {source}")]
    RequestFailed {
        /// The operator's name.
        operator: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        source: UserError,
    },
}

/// The error of the default `AsyncFunction::timeout`: the operator reports it as
/// `AsyncIoError::TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request timed out")]
pub struct RequestTimedOut;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_against_their_limits() {
        let ok = AsyncOptions::unordered(Duration::from_secs(1)).capacity(10);
        assert_eq!(ok.validate(), Ok(()));
        assert!(matches!(ok.clone().capacity(0).validate(), Err(AsyncOptionsError::Capacity { .. })));
        assert!(matches!(ok.clone().capacity(CAPACITY_MAX + 1).validate(), Err(AsyncOptionsError::Capacity { .. })));
        assert!(matches!(AsyncOptions::ordered(Duration::ZERO).validate(), Err(AsyncOptionsError::Timeout { .. })));
        assert!(matches!(AsyncOptions::ordered(TIMEOUT_MAX * 2).validate(), Err(AsyncOptionsError::Timeout { .. })));
        assert!(matches!(ok.retry(RetryStrategy::fixed_delay(0, Duration::ZERO)).validate(), Err(AsyncOptionsError::Attempts { .. })));
    }
}
