//! The async I/O operator: takes records in, starts their requests on the slot's runtime, and
//! emits results and held watermarks as the result queue lets them go.
//!
//! It never has more than `capacity` requests in flight: records of a frame beyond that wait in
//! `waiting` and start as requests complete. It is saturated (its task takes no input) while
//! `capacity` records are held, so everything it holds is bounded by `capacity` plus what one step
//! of its task pushes into it (one frame unless an operator chained before it multiplies frames).
//! Completions are collected on the task: on every call, and on `on_wake` after a request wakes
//! the task. It generates its watermarks, in the sense that it holds input watermarks behind
//! earlier records; idleness passes through at once, as in Flink.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use super::queue::{Emission, ResultQueue};
use super::request::{run_request, Completion, Outcome, RequestContext};
use super::{AsyncFunction, AsyncIoError, AsyncOptions, RequestTimedOut};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;
use crate::operator::{FrameOperator, Output, TaskWaker};

/// One subtask of an async I/O operator.
pub(crate) struct AsyncIoOperator<In, Out, F> {
    operator: String,
    function: Arc<F>,
    options: AsyncOptions,
    runtime: tokio::runtime::Handle,
    /// Shared by every request; made once the task's waker is known (`on_start`).
    requests: Option<Arc<RequestContext<In, Out, F>>>,
    completions_tx: Sender<Completion<In, Out>>,
    completions: Receiver<Completion<In, Out>>,
    queue: ResultQueue<Out>,
    /// Records taken in that wait for a request slot, with their tickets, oldest first.
    waiting: VecDeque<(u64, In)>,
    in_flight: usize,
    retries: u64,
    timeouts: u64,
    held_peak: usize,
}

impl<In, Out, F> AsyncIoOperator<In, Out, F>
where
    In: Record + Clone,
    Out: Record,
    F: AsyncFunction<In, Out>,
{
    /// Creates the operator of one subtask; it must be created on the slot's runtime.
    pub(crate) fn new(function: Arc<F>, options: AsyncOptions, context: &SubtaskContext) -> Result<Self, UserError> {
        let operator = context.operator_name.clone();
        if let Err(source) = options.validate() {
            return Err(Box::new(AsyncIoError::InvalidOptions { operator, source }));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Box::new(AsyncIoError::NoRuntime { operator }));
        };
        let (completions_tx, completions) = channel();
        Ok(AsyncIoOperator {
            operator,
            function,
            queue: ResultQueue::new(options.mode),
            options,
            runtime,
            requests: None,
            completions_tx,
            completions,
            waiting: VecDeque::new(),
            in_flight: 0,
            retries: 0,
            timeouts: 0,
            held_peak: 0,
        })
    }

    fn start_request(&mut self, ticket: u64, input: In) {
        debug_assert!(self.in_flight < self.options.capacity, "a request started beyond capacity");
        let requests = Arc::clone(self.requests.as_ref().expect("the task starts its operators before any input"));
        self.in_flight += 1;
        // Detached: the request reports through the channel, and ends with the slot's runtime
        // if the job fails first.
        drop(self.runtime.spawn(run_request(requests, ticket, input)));
    }

    /// Moves every arrived completion into the queue and starts waiting records in freed slots.
    fn collect_completions(&mut self) -> Result<(), UserError> {
        while let Ok(Completion { ticket, outcome }) = self.completions.try_recv() {
            self.in_flight -= 1;
            let result = match outcome {
                Outcome::Succeeded { value, attempts } => {
                    self.retries += u64::from(attempts - 1);
                    Some(value)
                }
                Outcome::TimedOut { input, attempts } => {
                    self.timeouts += 1;
                    self.retries += u64::from(attempts.saturating_sub(1));
                    self.on_timeout(input, attempts)?
                }
                Outcome::Failed { error, attempts } => {
                    return Err(Box::new(AsyncIoError::RequestFailed { operator: self.operator.clone(), attempts, source: error }));
                }
                // Raised again on the task, where the operator's guard reports it as a panic.
                Outcome::Panicked(payload) => std::panic::resume_unwind(payload),
            };
            self.queue.complete(ticket, result);
        }
        while self.in_flight < self.options.capacity {
            let Some((ticket, input)) = self.waiting.pop_front() else { break };
            self.start_request(ticket, input);
        }
        Ok(())
    }

    fn on_timeout(&self, input: In, attempts: u32) -> Result<Option<Out>, UserError> {
        self.function.timeout(input).map_err(|error| -> UserError {
            let operator = self.operator.clone();
            if error.is::<RequestTimedOut>() {
                Box::new(AsyncIoError::TimedOut { operator, timeout: self.options.timeout, attempts })
            } else {
                Box::new(AsyncIoError::TimeoutHandlerFailed { operator, source: error })
            }
        })
    }

    fn emit_ready(&mut self, out: &mut Output<'_, Out>) {
        while let Some(emission) = self.queue.pop_ready() {
            match emission {
                Emission::Record(record) => out.emit(record),
                Emission::Watermark(watermark) => out.emit_watermark(watermark),
            }
        }
    }
}

impl<In, Out, F> FrameOperator<In, Out> for AsyncIoOperator<In, Out, F>
where
    In: Record + Clone,
    Out: Record,
    F: AsyncFunction<In, Out>,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        self.collect_completions()?;
        for input in frame {
            let ticket = self.queue.push_record();
            if self.in_flight < self.options.capacity {
                self.start_request(ticket, input);
            } else {
                self.waiting.push_back((ticket, input));
            }
        }
        self.held_peak = self.held_peak.max(self.queue.held());
        self.emit_ready(out);
        Ok(())
    }

    fn generates_watermarks(&self) -> bool {
        true
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        self.collect_completions()?;
        self.queue.push_watermark(watermark);
        self.emit_ready(out);
        Ok(())
    }

    fn on_idleness(&mut self, idle: bool, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        out.emit_idleness(idle);
        Ok(())
    }

    fn on_start(&mut self, waker: TaskWaker) {
        self.requests = Some(Arc::new(RequestContext {
            function: Arc::clone(&self.function),
            timeout: self.options.timeout,
            retry: self.options.retry.clone(),
            completions: self.completions_tx.clone(),
            waker,
        }));
    }

    fn on_wake(&mut self, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        self.collect_completions()?;
        self.emit_ready(out);
        Ok(())
    }

    fn is_saturated(&self) -> bool {
        self.queue.held() >= self.options.capacity
    }

    fn has_pending_work(&self) -> bool {
        !self.queue.is_empty()
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("async_retries", self.retries), ("async_timeouts", self.timeouts), ("async_held_peak", self.held_peak as u64)]
    }
}
