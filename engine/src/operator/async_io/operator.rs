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
//!
//! Checkpoints store every record held, in queue order, as Flink's async operator does: the input
//! of a request still in flight (or waiting to start), and the result of one done but not yet
//! emitted. A restored subtask takes them back before any input: it starts the requests again and
//! emits the results in their turn, so no record is lost or answered twice downstream.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use super::queue::{Emission, Held, ResultQueue};
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
    /// Records taken in that wait for a request slot, with their tickets and request ids, oldest
    /// first.
    waiting: VecDeque<(u64, u64, In)>,
    /// Requests started and not completed: request id -> (ticket, input), the input kept for
    /// checkpoints.
    pending: std::collections::HashMap<u64, (u64, In)>,
    /// The next request id.
    next_request: u64,
    /// Records a checkpoint held, taken back in `on_start`.
    restored: Vec<AsyncEntry<In, Out>>,
    in_flight: usize,
    retries: u64,
    timeouts: u64,
    held_peak: usize,
}

impl<In, Out, F> AsyncIoOperator<In, Out, F>
where
    In: Record + Clone,
    Out: Record + Clone,
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
            pending: std::collections::HashMap::new(),
            next_request: 0,
            restored: Vec::new(),
            in_flight: 0,
            retries: 0,
            timeouts: 0,
            held_peak: 0,
        })
    }

    fn start_request(&mut self, ticket: u64, request: u64, input: In) {
        debug_assert!(self.in_flight < self.options.capacity, "a request started beyond capacity");
        let requests = Arc::clone(self.requests.as_ref().expect("the task starts its operators before any input"));
        self.in_flight += 1;
        self.pending.insert(request, (ticket, input.clone()));
        // Detached: the request reports through the channel, and ends with the slot's runtime
        // if the job fails first.
        drop(self.runtime.spawn(run_request(requests, request, input)));
    }

    /// Takes a record in: starts its request, or queues it until a slot frees.
    fn take_in(&mut self, input: In) {
        let request = self.next_request;
        self.next_request += 1;
        let ticket = self.queue.push_record(request);
        if self.in_flight < self.options.capacity {
            self.start_request(ticket, request, input);
        } else {
            self.waiting.push_back((ticket, request, input));
        }
    }

    /// Moves every arrived completion into the queue and starts waiting records in freed slots.
    fn collect_completions(&mut self) -> Result<(), UserError> {
        while let Ok(Completion { ticket: request, outcome }) = self.completions.try_recv() {
            self.in_flight -= 1;
            let (ticket, _) = self.pending.remove(&request).expect("a completion of a request in flight");
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
            self.queue.complete(ticket, request, result);
        }
        while self.in_flight < self.options.capacity {
            let Some((ticket, request, input)) = self.waiting.pop_front() else { break };
            self.start_request(ticket, request, input);
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

/// A record an async I/O subtask held at a checkpoint.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum AsyncEntry<In, Out> {
    /// Its request had not completed: it starts again.
    Pending(In),
    /// Its result had not been emitted yet.
    Done(Out),
}

impl<In, Out, F> FrameOperator<In, Out> for AsyncIoOperator<In, Out, F>
where
    In: Record + Clone,
    Out: Record + Clone,
    F: AsyncFunction<In, Out>,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        self.collect_completions()?;
        for input in frame {
            self.take_in(input);
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
            waker: waker.clone(),
        }));
        // What a checkpoint held comes first: requests start again, results wait their turn.
        let restored = std::mem::take(&mut self.restored);
        if restored.is_empty() {
            return;
        }
        for entry in restored {
            match entry {
                AsyncEntry::Pending(input) => self.take_in(input),
                AsyncEntry::Done(result) => {
                    let request = self.next_request;
                    self.next_request += 1;
                    let ticket = self.queue.push_record(request);
                    self.queue.complete(ticket, request, Some(result));
                }
            }
        }
        // Results that are ready go out on the task's next turn.
        waker.wake();
    }

    fn snapshot_operator_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        self.collect_completions()?;
        let waiting: std::collections::HashMap<u64, &In> = self.waiting.iter().map(|(_, request, input)| (*request, input)).collect();
        let entries: Vec<AsyncEntry<In, Out>> = self
            .queue
            .held_records()
            .into_iter()
            .map(|held| match held {
                Held::Pending(request) => {
                    let input = self.pending.get(&request).map(|(_, input)| input).or_else(|| waiting.get(&request).copied());
                    AsyncEntry::Pending(input.expect("every pending record's input is kept").clone())
                }
                Held::Done(result) => AsyncEntry::Done(result.clone()),
            })
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        Ok(Some(crate::base::codec::encode(&entries)?))
    }

    fn restore_operator_state(&mut self, states: Vec<Vec<u8>>) -> Result<(), UserError> {
        for state in states {
            let entries: Vec<AsyncEntry<In, Out>> = crate::base::codec::decode(&state)
                .map_err(|error| format!("async I/O operator '{}': a checkpoint's requests do not decode: {error}", self.operator))?;
            self.restored.extend(entries);
        }
        Ok(())
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
