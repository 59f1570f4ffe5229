//! One async request, from first attempt to completion: the code that runs as a tokio task on the
//! slot's runtime, outside the task actor's turns.
//!
//! A request calls the user's function, retries failed attempts as its `RetryStrategy` allows,
//! and is cut off by the timeout, which covers every attempt and the delays between them (as in
//! Flink). Whatever happens, exactly one `Completion` goes back to the operator, followed by a
//! wake of its task: a panic in user code is caught and carried back, so the operator can fail
//! the job with it instead of waiting for a completion that never comes. The input stays with
//! the request (each attempt gets a clone) so that a timed-out record can go to the user's
//! timeout handler, which runs on the task, not here.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use super::retry::RetryStrategy;
use super::AsyncFunction;
use crate::base::UserError;
use crate::operator::TaskWaker;

/// How one request ended.
pub(crate) enum Outcome<In, Out> {
    /// An attempt gave a result.
    Succeeded { value: Out, attempts: u32 },
    /// The last attempt failed, or its error is not retried.
    Failed { error: UserError, attempts: u32 },
    /// The timeout passed first; the input goes to the timeout handler.
    TimedOut { input: In, attempts: u32 },
    /// User code panicked; the payload is resumed on the task so the panic is reported as such.
    Panicked(Box<dyn Any + Send>),
}

/// A request's outcome, under the ticket its record got from the result queue.
pub(crate) struct Completion<In, Out> {
    pub ticket: u64,
    pub outcome: Outcome<In, Out>,
}

/// What every request of one operator instance shares (one `Arc` clone per request).
pub(crate) struct RequestContext<In, Out, F> {
    pub function: Arc<F>,
    pub timeout: Duration,
    pub retry: RetryStrategy,
    pub completions: Sender<Completion<In, Out>>,
    pub waker: TaskWaker,
}

/// Runs one request to its completion, hands the completion to the operator and wakes its task.
pub(crate) async fn run_request<In, Out, F>(context: Arc<RequestContext<In, Out, F>>, ticket: u64, input: In)
where
    In: Clone + Send + 'static,
    Out: Send + 'static,
    F: AsyncFunction<In, Out>,
{
    let outcome = attempt_within_timeout(&context, input).await;
    // A closed channel means the operator is gone (the job is failing): nobody needs the result.
    let _ = context.completions.send(Completion { ticket, outcome });
    context.waker.wake();
}

async fn attempt_within_timeout<In, Out, F>(context: &RequestContext<In, Out, F>, mut input: In) -> Outcome<In, Out>
where
    In: Clone + Send,
    F: AsyncFunction<In, Out>,
{
    let mut attempts = 0;
    let caught = {
        let mut attempts_future = pin!(tokio::time::timeout(context.timeout, attempt(context, &mut input, &mut attempts)));
        std::future::poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| attempts_future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(payload) => Poll::Ready(Err(payload)),
        })
        .await
    };
    match caught {
        Ok(Ok(Ok(value))) => Outcome::Succeeded { value, attempts },
        Ok(Ok(Err(error))) => Outcome::Failed { error, attempts },
        Ok(Err(_elapsed)) => Outcome::TimedOut { input, attempts },
        Err(payload) => Outcome::Panicked(payload),
    }
}

/// Calls the function until an attempt succeeds or the strategy gives up. `attempts` counts the
/// attempts made, readable after a timeout drops this future.
async fn attempt<In, Out, F>(context: &RequestContext<In, Out, F>, input: &mut In, attempts: &mut u32) -> Result<Out, UserError>
where
    In: Clone + Send,
    F: AsyncFunction<In, Out>,
{
    loop {
        *attempts += 1;
        match context.function.invoke(input.clone()).await {
            Ok(value) => return Ok(value),
            Err(error) if context.retry.should_retry(*attempts, &error) => tokio::time::sleep(context.retry.delay_after(*attempts)).await,
            Err(error) => return Err(error),
        }
    }
}
