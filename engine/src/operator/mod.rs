//! Operators: the typed `FrameOperator` trait users and built-in operators implement, and the erased
//! form the runtime chains inside a task.
//!
//! An operator takes whole frames (one virtual call per frame, never per record) and emits frames
//! or single records through an [`Output`]. Inside a task, operators are chained: the output of one
//! is pushed straight into the next by a plain call, and the last pushes into the task's
//! partitioner. Every user call is wrapped in `catch_unwind`, so a panic becomes a failure that
//! names its operator by position in the chain; the innermost operator catches first, so a panic
//! downstream is never blamed on the operator that emitted the record.

pub mod async_io;
pub(crate) mod basic;
pub mod join;
pub(crate) mod keyed;
pub mod process;
#[cfg(test)]
pub(crate) mod rescale_test;
pub(crate) mod timestamps;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::base::{OperatorFailure, SubtaskContext, UserError};
use crate::frame::{AnyFrame, Record};

/// A failure at a given position of a task's operator chain.
#[derive(Debug)]
pub(crate) struct ChainFailure {
    /// Position of the failing operator in its chain (0 = head).
    pub position: usize,
    pub failure: OperatorFailure,
}

/// Where an operator's output frames go: the next operator of the chain or the task's partitioner.
pub(crate) trait FrameSink {
    fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure>;
    /// Takes a frame of side output `output` (1-based) of the operator before it.
    fn push_side(&mut self, output: usize, frame: AnyFrame) -> Result<(), ChainFailure>;
    /// Passes on an advanced watermark, after every frame pushed before it.
    fn watermark(&mut self, watermark: i64) -> Result<(), ChainFailure>;
    /// Passes on a change of idleness: an idle stream holds no watermark back downstream.
    fn idleness(&mut self, idle: bool) -> Result<(), ChainFailure>;
    /// Whether what is pushed now would wait: an output channel of the task waits for credit, or
    /// an operator further down the chain still has output of its own to emit. A sink that
    /// never waits (a test's collector) keeps the default.
    fn is_blocked(&self) -> bool {
        false
    }
}

/// Brings a task back for an operator whose work finishes outside the task's turns (a request
/// running on the slot's runtime, say): `wake` asks the task to call the chain's
/// `FrameOperator::on_wake` in a coming turn. Wakes before that turn coalesce into one message, so
/// waking once per finished request costs one atomic swap, not one message each.
#[derive(Clone)]
pub struct TaskWaker {
    inner: Arc<WakerInner>,
}

struct WakerInner {
    /// A notification was sent and the task has not yet re-armed the waker for it.
    pending: AtomicBool,
    notify: Box<dyn Fn() + Send + Sync>,
}

impl TaskWaker {
    /// A waker that calls `notify` (which sends the task its wake message) for the first wake
    /// after each `rearm`.
    pub(crate) fn new(notify: impl Fn() + Send + Sync + 'static) -> TaskWaker {
        TaskWaker { inner: Arc::new(WakerInner { pending: AtomicBool::new(false), notify: Box::new(notify) }) }
    }

    /// Asks the task to call `on_wake` in a coming turn. Callable from any thread; a wake after
    /// the task has stopped is ignored.
    pub fn wake(&self) {
        if !self.inner.pending.swap(true, Ordering::AcqRel) {
            (self.inner.notify)();
        }
    }

    /// Called by the task right before it calls `on_wake`: a wake from now on notifies again.
    /// The swap acquires what every waker did before its wake, so `on_wake` sees it.
    pub(crate) fn rearm(&self) {
        self.inner.pending.swap(false, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for TaskWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskWaker").field("pending", &self.inner.pending.load(Ordering::Relaxed)).finish()
    }
}

/// Collects an operator's output into frames and hands full frames on.
pub struct Output<'a, T: Record> {
    next: &'a mut dyn FrameSink,
    side_outputs: &'a [String],
    pending: &'a mut Vec<T>,
    frame_records_max: usize,
    failure: Option<ChainFailure>,
    /// `next.is_blocked()`, read when the output is made and after each frame or event it passes
    /// on, so operators may ask after every record for the price of a field read.
    blocked: bool,
    records_out: u64,
}

impl<T: Record> Output<'_, T> {
    /// Emits one record; it is sent on when the current frame is full (or the input frame ends).
    #[inline]
    pub fn emit(&mut self, record: T) {
        self.pending.push(record);
        if self.pending.len() >= self.frame_records_max {
            self.flush();
        }
    }

    /// Emits a whole frame. An empty frame is dropped.
    pub fn emit_frame(&mut self, frame: Vec<T>) {
        if frame.is_empty() {
            return;
        }
        self.flush();
        self.send(frame);
    }

    /// Emits a record to the side output `tag`. A side output nobody consumes drops its records.
    ///
    /// Each call sends a frame of one record: side outputs are for the rare record (late data,
    /// errors); a frequent split is better written as two filters.
    pub fn emit_side<S: Record>(&mut self, tag: &OutputTag<S>, record: S) {
        self.emit_side_frame(tag, vec![record]);
    }

    /// Emits a frame of records to the side output `tag`.
    pub fn emit_side_frame<S: Record>(&mut self, tag: &OutputTag<S>, frame: Vec<S>) {
        let Some(index) = self.side_outputs.iter().position(|name| name == tag.name()) else { return };
        if frame.is_empty() || self.failure.is_some() {
            return;
        }
        if let Err(failure) = self.next.push_side(index + 1, AnyFrame::new(frame)) {
            self.failure = Some(failure);
        }
        self.blocked = self.failure.is_some() || self.next.is_blocked();
    }

    /// Emits a watermark after every record emitted before it. Only operators that generate
    /// watermarks (`FrameOperator::generates_watermarks`) call this; for the others the runtime
    /// forwards their input watermark.
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.flush();
        if self.failure.is_none() {
            if let Err(failure) = self.next.watermark(watermark) {
                self.failure = Some(failure);
            }
            self.blocked = self.failure.is_some() || self.next.is_blocked();
        }
    }

    /// Whether the output has no room now: frames already emitted wait for credit downstream (or
    /// for an operator further down the chain). Records emitted while it holds are not lost, but
    /// they queue beyond the channel's credits. An operator that can emit much from one call (a
    /// window firing, a flat_map that explodes, timers) checks this after each record or frame,
    /// stops while it holds, and reports `FrameOperator::has_pending_output` until it has emitted
    /// the rest from `FrameOperator::resume_output`; so what waits beyond the credits is at most
    /// one frame per channel (the frame that filled the last credit), not the whole burst.
    #[inline]
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Declares the operator's output idle (no records or watermarks for a while) or active again.
    pub fn emit_idleness(&mut self, idle: bool) {
        self.flush();
        if self.failure.is_none() {
            if let Err(failure) = self.next.idleness(idle) {
                self.failure = Some(failure);
            }
            self.blocked = self.failure.is_some() || self.next.is_blocked();
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let full = std::mem::replace(self.pending, Vec::with_capacity(self.frame_records_max));
            self.send(full);
        }
    }

    fn send(&mut self, frame: Vec<T>) {
        // After a downstream failure the job is failing: drop further output.
        if self.failure.is_none() {
            self.records_out += frame.len() as u64;
            if let Err(failure) = self.next.push(AnyFrame::new(frame)) {
                self.failure = Some(failure);
            }
            self.blocked = self.failure.is_some() || self.next.is_blocked();
        }
    }
}

/// Names a side output of an operator and the type of its records, like Flink's `OutputTag`.
/// Operators emit to it with `Output::emit_side`; `DataStream::side_output` reads it.
pub struct OutputTag<S> {
    name: String,
    _records: std::marker::PhantomData<fn() -> S>,
}

impl<S> Clone for OutputTag<S> {
    fn clone(&self) -> Self {
        OutputTag { name: self.name.clone(), _records: std::marker::PhantomData }
    }
}

impl<S> std::fmt::Debug for OutputTag<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({:?})", self.name)
    }
}

impl<S> OutputTag<S> {
    /// A tag named `name`: unique among the side outputs of one operator.
    pub fn new(name: &str) -> Self {
        OutputTag { name: name.to_string(), _records: std::marker::PhantomData }
    }

    /// The tag's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A typed operator on frames. Implement it for custom operators; the built-in ones use it too.
pub trait FrameOperator<In: Record, Out: Record>: Send + 'static {
    /// Processes one input frame.
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError>;

    /// Called when the operator's input watermark advances, before the watermark goes downstream:
    /// records emitted here precede it. Watermarks never go backwards.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// Whether the operator makes its own watermarks (a timestamp assigner). If so, input
    /// watermarks and idleness are given to it but not forwarded: it emits its own with
    /// `Output::emit_watermark` and `Output::emit_idleness`.
    fn generates_watermarks(&self) -> bool {
        false
    }

    /// Called when the input's idleness changes. An operator that generates watermarks gets it
    /// instead of having it forwarded and passes it on itself (`Output::emit_idleness`) if it
    /// wants to; for the others the runtime forwards it after this call.
    fn on_idleness(&mut self, _idle: bool, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once when the task starts, before any input, with the waker through which work
    /// that finishes outside the task's turns brings the task back (see `on_wake`).
    fn on_start(&mut self, _waker: TaskWaker) {}

    /// Called in a turn of the task after `TaskWaker::wake`, once the task's outputs can take
    /// frames again: emits what finished outside the task's turns.
    fn on_wake(&mut self, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// Whether the operator can take no more input now. While an operator of its chain is
    /// saturated the task takes no input, as while an output waits for credit, so backpressure
    /// reaches upstream; the operator must call `TaskWaker::wake` when it has room again.
    fn is_saturated(&self) -> bool {
        false
    }

    /// Whether work is still under way that will produce output (requests in flight). After end
    /// of input the task keeps calling `on_wake` as it is woken until no operator of its chain
    /// has pending work; only then are the operators finished and end of input sent on.
    fn has_pending_work(&self) -> bool {
        false
    }

    /// Called when processing time reaches the time `next_processing_time` asked for.
    fn on_processing_time(&mut self, _now: std::time::Instant, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// The next processing time the operator wants to be called at, if any.
    fn next_processing_time(&self) -> Option<std::time::Instant> {
        None
    }

    /// The operator's keyed state, by key group, for checkpoints and rescaling; `None` for
    /// operators without keyed state.
    fn keyed_state(&mut self) -> Option<&mut dyn crate::state::KeyGroupedState> {
        None
    }

    /// The operator's own state that is not keyed (Flink's operator state), encoded, for a
    /// checkpoint taken now; `None` if it keeps none. On restore the states of the subtasks of
    /// the checkpoint are dealt round-robin to the new subtasks (`restore_operator_state`).
    fn snapshot_operator_state(&mut self) -> Result<Option<Vec<u8>>, UserError> {
        Ok(None)
    }

    /// Takes back operator state a checkpoint holds (from one or more subtasks of the run that
    /// took it), before `on_start` and any input.
    fn restore_operator_state(&mut self, states: Vec<Vec<u8>>) -> Result<(), UserError> {
        if states.is_empty() {
            Ok(())
        } else {
            Err("a checkpoint holds operator state for an operator that keeps none".into())
        }
    }

    /// At checkpoint `checkpoint`'s barrier (or `FINAL_CHECKPOINT` after `finish`): phase one of a
    /// two-phase commit, for sinks (`SinkWriter::pre_commit`); what it returns is stored in the
    /// checkpoint and committed when the checkpoint completes. `None` for every other operator.
    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Option<crate::sink::Committable>, UserError> {
        Ok(None)
    }

    /// Operator-specific counters (e.g. late records dropped), summed over subtasks in the job's
    /// result.
    fn metrics(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Whether the operator stopped emitting because its output was blocked (`Output::is_blocked`)
    /// and still has output to emit from work it already took (a watermark's firings, the rest of
    /// an input frame). While it does, the runtime gives it no input, holds back the watermarks
    /// and idleness changes that follow, and calls `resume_output` whenever the output has room.
    fn has_pending_output(&self) -> bool {
        false
    }

    /// Continues the output `has_pending_output` announced, called while the output has room. It
    /// must emit something or finish, and it may stop again when the output blocks.
    fn resume_output(&mut self, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once when every input has ended, before end of input goes downstream.
    fn finish(&mut self, _out: &mut Output<'_, Out>) -> Result<(), UserError> {
        Ok(())
    }
}

/// Counts kept per operator instance.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorCounts {
    /// Records taken in.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Operator-specific counters.
    pub extra: Vec<(&'static str, u64)>,
}

impl OperatorCounts {
    /// The operator-specific counter `name`, if the operator reports it.
    pub fn extra(&self, name: &str) -> Option<u64> {
        self.extra.iter().find(|(counter, _)| *counter == name).map(|(_, value)| *value)
    }
}

/// An operator whose record types the runtime does not know.
pub(crate) trait ErasedOperator: Send {
    fn process(&mut self, frame: AnyFrame, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn on_watermark(&mut self, watermark: i64, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn on_idleness(&mut self, idle: bool, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn start(&mut self, waker: TaskWaker) -> Result<(), ChainFailure>;
    fn on_wake(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn is_saturated(&self) -> bool;
    fn has_pending_work(&self) -> bool;
    fn on_processing_time(&mut self, now: std::time::Instant, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn next_processing_time(&self) -> Option<std::time::Instant>;
    /// Whether the operator has output to emit, or input held back behind it, before it can take
    /// more (see `FrameOperator::has_pending_output`).
    fn has_pending_output(&self) -> bool;
    /// Emits pending output and then the held-back events, while `next` has room.
    fn resume(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn finish(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure>;
    fn counts(&self) -> OperatorCounts;
    fn keyed_state(&mut self) -> Option<&mut dyn crate::state::KeyGroupedState>;
    /// The operator's pre-commit at a checkpoint barrier (see `FrameOperator::pre_commit`).
    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<crate::sink::Committable>, ChainFailure>;
    /// The operator's non-keyed state for a checkpoint (see `FrameOperator::snapshot_operator_state`).
    fn snapshot_operator_state(&mut self) -> Result<Option<Vec<u8>>, ChainFailure>;
    /// Restores non-keyed state (see `FrameOperator::restore_operator_state`).
    fn restore_operator_state(&mut self, states: Vec<Vec<u8>>) -> Result<(), ChainFailure>;
    /// A frame of the operator's input type from bytes `AnyFrame::encode` wrote (in-flight data
    /// of an unaligned checkpoint, replayed on restore).
    fn decode_input(&self, bytes: &[u8]) -> Result<AnyFrame, crate::base::CodecError>;
    /// The function [`decode_input`](Self::decode_input) calls: the frames of this operator's
    /// input type from their encoding, callable where the operator is not (a network thread).
    fn input_decoder(&self) -> InputDecoder;
}

/// Decodes a frame of one input type from the bytes `AnyFrame::encode` wrote, at any address.
pub(crate) type InputDecoder = fn(&[u8]) -> Result<AnyFrame, crate::base::CodecError>;

/// An event that reached an operator while it had pending output, or that it has to pass on once
/// its pending output is out: kept in arrival order.
enum Deferred {
    /// Input for the operator.
    Frame(AnyFrame),
    Watermark(i64),
    Idleness(bool),
    /// A watermark the operator has handled and that goes downstream after its pending output.
    ForwardWatermark(i64),
    ForwardIdleness(bool),
    /// A wake (`TaskWaker`) that came while the operator had pending output.
    Wake,
    /// End of input: the operator's `finish`, after everything before it.
    Finish,
}

/// Wraps a typed operator as an erased one at a fixed chain position.
pub(crate) struct ErasedFrameOperator<In, Out, Op> {
    operator: Op,
    position: usize,
    /// Events held back while the operator has pending output. Bounded: the task takes no input
    /// while any operator of its chain has pending output, and operators before this one see
    /// `Output::is_blocked`, so only what one call of an operator that ignores it emits lands here.
    deferred: std::collections::VecDeque<Deferred>,
    pending: Vec<Out>,
    frame_records_max: usize,
    side_outputs: Vec<String>,
    counts: OperatorCounts,
    _in: std::marker::PhantomData<fn(In)>,
}

impl<In: Record, Out: Record, Op: FrameOperator<In, Out>> ErasedFrameOperator<In, Out, Op> {
    pub(crate) fn boxed(operator: Op, position: usize, context: &SubtaskContext) -> Box<dyn ErasedOperator> {
        Box::new(ErasedFrameOperator {
            operator,
            position,
            deferred: std::collections::VecDeque::new(),
            pending: Vec::new(),
            frame_records_max: crate::frame::records_per_frame::<Out>(context.frame_records_max, context.frame_bytes_max),
            side_outputs: context.side_outputs.clone(),
            counts: OperatorCounts::default(),
            _in: std::marker::PhantomData,
        })
    }

    fn run(
        &mut self,
        next: &mut dyn FrameSink,
        call: impl FnOnce(&mut Op, &mut Output<'_, Out>) -> Result<(), UserError>,
    ) -> Result<(), ChainFailure> {
        let blocked = next.is_blocked();
        let mut out = Output {
            next,
            side_outputs: &self.side_outputs,
            pending: &mut self.pending,
            frame_records_max: self.frame_records_max,
            failure: None,
            blocked,
            records_out: 0,
        };
        let operator = &mut self.operator;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let result = call(operator, &mut out);
            // A frame ends the operator's turn: what it emitted goes on now, not on the next frame.
            out.flush();
            result
        }));
        self.counts.records_out += out.records_out;
        if let Some(downstream) = out.failure {
            return Err(downstream);
        }
        let failure = match result {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => OperatorFailure::Failed(error),
            Err(payload) => OperatorFailure::from_panic(payload),
        };
        Err(ChainFailure { position: self.position, failure })
    }

    /// Runs a call into the operator that emits nothing; its error or panic fails it.
    fn guarded<R>(&mut self, call: impl FnOnce(&mut Op) -> Result<R, UserError>) -> Result<R, ChainFailure> {
        let operator = &mut self.operator;
        let failure = match catch_unwind(AssertUnwindSafe(|| call(operator))) {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => OperatorFailure::Failed(error),
            Err(payload) => OperatorFailure::from_panic(payload),
        };
        Err(ChainFailure { position: self.position, failure })
    }

    fn process_now(&mut self, frame: AnyFrame, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        self.counts.records_in += frame.len() as u64;
        let frame = frame.into_typed::<In>();
        self.run(next, |op, out| op.process(frame, out))
    }

    fn watermark_now(&mut self, watermark: i64, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        self.run(next, |op, out| op.on_watermark(watermark, out))?;
        if self.operator.generates_watermarks() {
            return Ok(());
        }
        if self.operator.has_pending_output() {
            // The firings this watermark started are not all out: it goes on after them.
            self.deferred.push_back(Deferred::ForwardWatermark(watermark));
            return Ok(());
        }
        next.watermark(watermark)
    }

    fn idleness_now(&mut self, idle: bool, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        self.run(next, |op, out| op.on_idleness(idle, out))?;
        if self.operator.generates_watermarks() {
            return Ok(());
        }
        if self.operator.has_pending_output() {
            self.deferred.push_back(Deferred::ForwardIdleness(idle));
            return Ok(());
        }
        next.idleness(idle)
    }
}

impl<In: Record, Out: Record, Op: FrameOperator<In, Out>> ErasedOperator for ErasedFrameOperator<In, Out, Op> {
    fn process(&mut self, frame: AnyFrame, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            self.deferred.push_back(Deferred::Frame(frame));
            return Ok(());
        }
        self.process_now(frame, next)
    }

    fn on_watermark(&mut self, watermark: i64, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            self.deferred.push_back(Deferred::Watermark(watermark));
            return Ok(());
        }
        self.watermark_now(watermark, next)
    }

    fn on_idleness(&mut self, idle: bool, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            self.deferred.push_back(Deferred::Idleness(idle));
            return Ok(());
        }
        self.idleness_now(idle, next)
    }

    fn has_pending_output(&self) -> bool {
        !self.deferred.is_empty() || self.operator.has_pending_output()
    }

    fn resume(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        while !next.is_blocked() {
            if self.operator.has_pending_output() {
                let emitted_before = self.counts.records_out;
                self.run(next, |op, out| op.resume_output(out))?;
                if self.operator.has_pending_output() && !next.is_blocked() && self.counts.records_out == emitted_before {
                    // It would be called again and again: a broken operator, not a slow output.
                    let failure = OperatorFailure::Failed("has pending output but emitted nothing while its output had room".into());
                    return Err(ChainFailure { position: self.position, failure });
                }
                continue;
            }
            match self.deferred.pop_front() {
                None => return Ok(()),
                Some(Deferred::Frame(frame)) => self.process_now(frame, next)?,
                Some(Deferred::Watermark(watermark)) => self.watermark_now(watermark, next)?,
                Some(Deferred::Idleness(idle)) => self.idleness_now(idle, next)?,
                Some(Deferred::ForwardWatermark(watermark)) => next.watermark(watermark)?,
                Some(Deferred::ForwardIdleness(idle)) => next.idleness(idle)?,
                Some(Deferred::Wake) => self.run(next, |op, out| op.on_wake(out))?,
                Some(Deferred::Finish) => self.run(next, |op, out| op.finish(out))?,
            }
        }
        Ok(())
    }

    fn start(&mut self, waker: TaskWaker) -> Result<(), ChainFailure> {
        let operator = &mut self.operator;
        catch_unwind(AssertUnwindSafe(|| operator.on_start(waker)))
            .map_err(|payload| ChainFailure { position: self.position, failure: OperatorFailure::from_panic(payload) })
    }

    fn on_wake(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            // After the output and input it already has: the wake is not lost, only later.
            self.deferred.push_back(Deferred::Wake);
            return Ok(());
        }
        self.run(next, |op, out| op.on_wake(out))
    }

    fn is_saturated(&self) -> bool {
        self.operator.is_saturated()
    }

    fn has_pending_work(&self) -> bool {
        self.operator.has_pending_work()
    }

    fn on_processing_time(&mut self, now: std::time::Instant, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            return Ok(()); // its timers stay due: the task calls again once the output has room
        }
        self.run(next, |op, out| op.on_processing_time(now, out))
    }

    fn next_processing_time(&self) -> Option<std::time::Instant> {
        self.operator.next_processing_time()
    }

    fn finish(&mut self, next: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        if self.has_pending_output() {
            // An operator before it emitted at its own finish and filled the output.
            self.deferred.push_back(Deferred::Finish);
            return Ok(());
        }
        self.run(next, |op, out| op.finish(out))
    }

    fn keyed_state(&mut self) -> Option<&mut dyn crate::state::KeyGroupedState> {
        self.operator.keyed_state()
    }

    fn decode_input(&self, bytes: &[u8]) -> Result<AnyFrame, crate::base::CodecError> {
        AnyFrame::decode::<In>(bytes)
    }

    fn input_decoder(&self) -> InputDecoder {
        AnyFrame::decode::<In>
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<crate::sink::Committable>, ChainFailure> {
        self.guarded(|operator| operator.pre_commit(checkpoint))
    }

    fn snapshot_operator_state(&mut self) -> Result<Option<Vec<u8>>, ChainFailure> {
        self.guarded(|operator| operator.snapshot_operator_state())
    }

    fn restore_operator_state(&mut self, states: Vec<Vec<u8>>) -> Result<(), ChainFailure> {
        self.guarded(|operator| operator.restore_operator_state(states))
    }

    fn counts(&self) -> OperatorCounts {
        OperatorCounts { extra: self.operator.metrics(), ..self.counts.clone() }
    }
}

/// The operators of one task, head first, pushing into the task's output.
pub(crate) struct OperatorChain {
    operators: Vec<Box<dyn ErasedOperator>>,
}

/// The rest of a chain seen from one operator: the operators after it, then the task output.
struct ChainRest<'a> {
    operators: &'a mut [Box<dyn ErasedOperator>],
    output: &'a mut dyn FrameSink,
}

impl FrameSink for ChainRest<'_> {
    fn is_blocked(&self) -> bool {
        self.operators.iter().any(|op| op.has_pending_output()) || self.output.is_blocked()
    }

    fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure> {
        match self.operators.split_first_mut() {
            Some((operator, operators)) => operator.process(frame, &mut ChainRest { operators, output: self.output }),
            None => self.output.push(frame),
        }
    }

    fn push_side(&mut self, output: usize, frame: AnyFrame) -> Result<(), ChainFailure> {
        // Only the tail of a chain can have consumed side outputs (a consumed side output ends the
        // chain), so a side frame here comes from the last operator.
        debug_assert!(self.operators.is_empty(), "side output from an operator inside a chain");
        self.output.push_side(output, frame)
    }

    fn watermark(&mut self, watermark: i64) -> Result<(), ChainFailure> {
        match self.operators.split_first_mut() {
            Some((operator, operators)) => operator.on_watermark(watermark, &mut ChainRest { operators, output: self.output }),
            None => self.output.watermark(watermark),
        }
    }

    fn idleness(&mut self, idle: bool) -> Result<(), ChainFailure> {
        match self.operators.split_first_mut() {
            Some((operator, operators)) => operator.on_idleness(idle, &mut ChainRest { operators, output: self.output }),
            None => self.output.idleness(idle),
        }
    }
}

impl OperatorChain {
    pub(crate) fn new(operators: Vec<Box<dyn ErasedOperator>>) -> OperatorChain {
        OperatorChain { operators }
    }

    /// A frame of the chain's input type from its encoding (a frame from another process, or one
    /// an unaligned checkpoint stored). Panics on a chain without operators (a source task's).
    pub(crate) fn decode_input(&self, bytes: &[u8]) -> Result<AnyFrame, crate::base::CodecError> {
        self.operators.first().expect("a task with inputs has operators").decode_input(bytes)
    }

    /// The chain's input decoder ([`ErasedOperator::input_decoder`] of its head), if it has
    /// operators.
    pub(crate) fn input_decoder(&self) -> Option<InputDecoder> {
        self.operators.first().map(|head| head.input_decoder())
    }

    /// Pushes a frame into the head of the chain.
    pub(crate) fn process(&mut self, frame: AnyFrame, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        ChainRest { operators: &mut self.operators, output }.push(frame)
    }

    /// Passes an advanced watermark through the chain, operator by operator.
    pub(crate) fn watermark(&mut self, watermark: i64, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        ChainRest { operators: &mut self.operators, output }.watermark(watermark)
    }

    /// Passes a change of idleness through the chain.
    pub(crate) fn idleness(&mut self, idle: bool, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        ChainRest { operators: &mut self.operators, output }.idleness(idle)
    }

    /// Calls every operator whose requested processing time has come, in chain order.
    pub(crate) fn on_processing_time(&mut self, now: std::time::Instant, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        for position in 0..self.operators.len() {
            if self.operators[position].next_processing_time().is_some_and(|at| at <= now) {
                let (operator, operators) = self.operators[position..].split_first_mut().expect("position in range");
                operator.on_processing_time(now, &mut ChainRest { operators, output })?;
            }
        }
        Ok(())
    }

    /// Gives every operator the task's waker, in chain order, before any input.
    pub(crate) fn start(&mut self, waker: &TaskWaker) -> Result<(), ChainFailure> {
        self.operators.iter_mut().try_for_each(|op| op.start(waker.clone()))
    }

    /// Calls every operator's `on_wake` in chain order, so what one emits passes through the rest.
    pub(crate) fn on_wake(&mut self, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        for position in 0..self.operators.len() {
            let (operator, operators) = self.operators[position..].split_first_mut().expect("position in range");
            operator.on_wake(&mut ChainRest { operators, output })?;
        }
        Ok(())
    }

    /// Whether an operator of the chain has output to emit (or input held back) before the task
    /// may give the chain more input.
    pub(crate) fn has_pending_output(&self) -> bool {
        self.operators.iter().any(|op| op.has_pending_output())
    }

    /// Lets operators with pending output emit it while `output` has room, the last of the chain
    /// first, so what an earlier one emits finds the later ones ready to take it.
    pub(crate) fn resume(&mut self, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        for position in (0..self.operators.len()).rev() {
            if !self.operators[position].has_pending_output() {
                continue;
            }
            let (operator, operators) = self.operators[position..].split_first_mut().expect("position in range");
            operator.resume(&mut ChainRest { operators, output })?;
            if self.operators[position].has_pending_output() {
                return Ok(()); // blocked again: the rest waits for credit
            }
        }
        Ok(())
    }

    /// Whether an operator of the chain can take no more input now.
    pub(crate) fn is_saturated(&self) -> bool {
        self.operators.iter().any(|op| op.is_saturated())
    }

    /// Whether an operator of the chain still has work under way that will produce output.
    pub(crate) fn has_pending_work(&self) -> bool {
        self.operators.iter().any(|op| op.has_pending_work())
    }

    /// The earliest processing time an operator of the chain asked to be called at.
    pub(crate) fn next_processing_time(&self) -> Option<std::time::Instant> {
        self.operators.iter().filter_map(|op| op.next_processing_time()).min()
    }

    /// Finishes the operators in order, so each one's final output passes through the ones after it.
    pub(crate) fn finish(&mut self, output: &mut dyn FrameSink) -> Result<(), ChainFailure> {
        for position in 0..self.operators.len() {
            let (operator, operators) = self.operators[position..].split_first_mut().expect("position in range");
            operator.finish(&mut ChainRest { operators, output })?;
        }
        Ok(())
    }

    /// Number of operators in the chain.
    pub(crate) fn len(&self) -> usize {
        self.operators.len()
    }

    /// The keyed state of the operator at `position`, if it keeps any (for checkpoints and
    /// rescaling).
    pub(crate) fn keyed_state(&mut self, position: usize) -> Option<&mut dyn crate::state::KeyGroupedState> {
        self.operators.get_mut(position)?.keyed_state()
    }

    /// The non-keyed state of the chain's operators that keep some, by chain index.
    pub(crate) fn snapshot_operator_states(&mut self) -> Result<Vec<(usize, Vec<u8>)>, ChainFailure> {
        let mut states = Vec::new();
        for (index, operator) in self.operators.iter_mut().enumerate() {
            if let Some(state) = operator.snapshot_operator_state()? {
                states.push((index, state));
            }
        }
        Ok(states)
    }

    /// The pre-commits of the chain's sinks at checkpoint `checkpoint`, by chain index.
    pub(crate) fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<(usize, crate::sink::Committable)>, ChainFailure> {
        let mut committables = Vec::new();
        for (index, operator) in self.operators.iter_mut().enumerate() {
            if let Some(committable) = operator.pre_commit(checkpoint)? {
                committables.push((index, committable));
            }
        }
        Ok(committables)
    }

    pub(crate) fn counts(&self) -> Vec<OperatorCounts> {
        self.operators.iter().map(|op| op.counts()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u32>);
    impl FrameSink for Collect {
        fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure> {
            self.0.extend(frame.into_typed::<u32>());
            Ok(())
        }

        fn watermark(&mut self, _watermark: i64) -> Result<(), ChainFailure> {
            Ok(())
        }

        fn idleness(&mut self, _idle: bool) -> Result<(), ChainFailure> {
            Ok(())
        }

        fn push_side(&mut self, _output: usize, _frame: AnyFrame) -> Result<(), ChainFailure> {
            Ok(())
        }
    }

    struct Double;
    impl FrameOperator<u32, u32> for Double {
        fn process(&mut self, frame: Vec<u32>, out: &mut Output<'_, u32>) -> Result<(), UserError> {
            for r in frame {
                out.emit(r * 2);
            }
            Ok(())
        }
    }

    struct PanicOn(u32);
    impl FrameOperator<u32, u32> for PanicOn {
        fn process(&mut self, frame: Vec<u32>, out: &mut Output<'_, u32>) -> Result<(), UserError> {
            assert!(!frame.contains(&self.0), "saw {}", self.0);
            out.emit_frame(frame);
            Ok(())
        }
    }

    #[test]
    fn chain_applies_operators_in_order_and_counts() {
        let mut chain = OperatorChain::new(vec![
            ErasedFrameOperator::boxed(Double, 0, &SubtaskContext::for_test(2)),
            ErasedFrameOperator::boxed(Double, 1, &SubtaskContext::for_test(2)),
        ]);
        let mut sink = Collect(Vec::new());
        chain.process(AnyFrame::new(vec![1u32, 2, 3]), &mut sink).unwrap();
        assert_eq!(sink.0, vec![4, 8, 12]);
        assert_eq!(chain.counts()[0], OperatorCounts { records_in: 3, records_out: 3, extra: Vec::new() });
    }

    #[test]
    fn wakes_coalesce_until_the_task_rearms_the_waker() {
        let notified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&notified);
        let waker = TaskWaker::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        waker.wake();
        waker.clone().wake();
        assert_eq!(notified.load(Ordering::SeqCst), 1, "one message for wakes before the task's turn");
        waker.rearm();
        waker.wake();
        assert_eq!(notified.load(Ordering::SeqCst), 2, "a wake after the turn notifies again");
    }

    #[test]
    fn panic_is_blamed_on_the_operator_that_panicked() {
        let mut chain = OperatorChain::new(vec![
            ErasedFrameOperator::boxed(Double, 0, &SubtaskContext::for_test(16)),
            ErasedFrameOperator::boxed(PanicOn(4), 1, &SubtaskContext::for_test(16)),
        ]);
        let mut sink = Collect(Vec::new());
        let failure = chain.process(AnyFrame::new(vec![1u32, 2]), &mut sink).unwrap_err();
        assert_eq!(failure.position, 1);
        assert!(matches!(&failure.failure, OperatorFailure::Panicked(m) if m.contains("saw 4")), "{failure:?}");
    }
}
