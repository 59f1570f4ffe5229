//! The task actor: one subtask of a chain of operators, run as a ractor actor on its slot's core.
//!
//! A task's head is either a source reader or an input gate. Each actor turn it takes up to
//! `frames_per_turn_max` frames from the head, pushes them through its operator chain, and routes the
//! output through its partitioner into credit-bounded output channels. It never takes input while
//! an output channel waits for credit: it stops, the frames it has not consumed keep their credits,
//! and so backpressure reaches the sources without any queue growing. End of input flows in-band
//! behind the last frame; a task completes when every input has ended, no operator has work under
//! way (requests in flight), and its last frame and end marker have left. An operator whose work
//! finishes outside the task's turns wakes the task through a `TaskWaker` (one coalesced `Wake`
//! message); while an operator is saturated the task takes no input, as while an output waits for
//! credit. A failure is reported to the job driver, naming the operator, and the actor stops; it
//! is never restarted here.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::base::OperatorFailure;
use crate::channel::credit::{ChannelEvent, CreditSender, GateCredits};
use crate::channel::partitioner::{ErasedPartitioner, FrameDispatch};
use crate::channel::transport::{Endpoint, ReceivedFrame, SendFailed};
use crate::frame::AnyFrame;
use crate::operator::{ChainFailure, FrameSink, OperatorChain, OperatorCounts, TaskWaker};
use crate::runtime::alignment::AlignmentMember;
use crate::runtime::checkpoint::{BarrierAction, BarrierAligner, CheckpointingMode};
use crate::source::{ErasedSourceReader, ReaderStatus};

/// Messages a task actor handles.
pub(crate) enum TaskMessage {
    /// Connects the task to its peers and starts it: where each output channel goes (actor, gate
    /// channel there) and where each gate channel's credits go (actor, output channel there).
    /// Outputs are in `TaskState::outputs` order; an input names (producer, its output, channel).
    Start { outputs: Vec<Vec<(Endpoint, usize)>>, inputs: Vec<(Endpoint, usize, usize)> },
    /// An event on gate channel `channel`, with the sender's backlog after it.
    Event { channel: usize, event: ChannelEvent, backlog: u32 },
    /// A frame from a producer in another process on gate channel `channel`, still encoded, with
    /// the sender's backlog after it.
    RemoteFrame { channel: usize, frame: ReceivedFrame, backlog: u32 },
    /// Credits for channel `channel` of output `output`.
    Credit { output: usize, channel: usize, credits: u32 },
    /// Continue work left over from an earlier turn.
    Resume,
    /// The linger time of a partly filled output frame has passed.
    Linger,
    /// A processing time an operator asked for has come.
    Tick,
    /// An operator's work outside the task's turns has finished (`TaskWaker::wake`).
    Wake,
    /// The job is being cancelled.
    Cancel,
    /// A source task takes checkpoint `id` (from the coordinator), unaligned or not (savepoints
    /// are always aligned).
    TriggerCheckpoint { id: u64, unaligned: bool },
    /// Checkpoint `id` completed.
    CheckpointComplete { id: u64 },
    /// The job's driver changed (a new coordinator adopted the attempt) and knows nothing of the
    /// checkpoints acknowledged before: the next checkpoint holds every key group, none refers
    /// to an earlier one.
    Rebase,
}

/// Identifies a subtask: (task index in the plan, subtask index).
pub(crate) type SubtaskId = (usize, usize);

/// Counters of one subtask, reported when it finishes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubtaskMetrics {
    /// Counts per node of the chain, head first (the source's records out for a source task).
    pub node_counts: Vec<OperatorCounts>,
    /// Most frames queued at the input gate at once.
    pub gate_queued_frames_peak: u32,
    /// Frames the input gate can hold at most (exclusive plus floating buffers).
    pub gate_capacity: u32,
    /// Most frames waiting for credit on one output channel at once.
    pub output_backlog_frames_peak: u32,
    /// Bytes of frames encoded for consumers in other processes.
    pub encoded_bytes_out: u64,
}

/// What tasks and slots tell the job driver.
pub(crate) enum TaskReport {
    Spawned {
        id: SubtaskId,
        actor: crate::runtime::cluster::SubtaskHandle,
        /// How its input frames decode (none for a source task), for a network thread to decode
        /// a frame from another process before it reaches the task.
        input: Option<crate::operator::InputDecoder>,
    },
    /// A worker refused to run the attempt (another graph, an unknown job): not retried.
    DeployRefused {
        worker: u32,
        reason: String,
    },
    /// A worker now reports to this driver, which adopted its running attempt; its subtasks'
    /// reports since the attempt began follow. Checkpoints up to `newest_checkpoint` were seen.
    Adopted {
        newest_checkpoint: u64,
    },
    Finished {
        id: SubtaskId,
        metrics: SubtaskMetrics,
        /// The sinks' pre-commits after `finish`, by node: committed with the first checkpoint
        /// triggered after this, or when the job has finished.
        committables: Vec<(usize, crate::sink::Committable)>,
        /// A source reader's final position, for checkpoints taken after it finished.
        source_position: Option<u64>,
    },
    Failed {
        id: SubtaskId,
        position: usize,
        failure: OperatorFailure,
    },
    /// The actor has stopped (sent by its slot after the actor ends, for whatever reason).
    Stopped {
        id: SubtaskId,
    },
    /// The subtask took checkpoint `id`.
    CheckpointAck {
        subtask: SubtaskId,
        checkpoint: u64,
        snapshot: TaskSnapshot,
        /// How long its gate waited for the last barrier.
        alignment: Duration,
    },
    /// A slot thread died (an engine fault outside any user call): its subtasks will report
    /// nothing more.
    SlotLost {
        subtasks: Vec<SubtaskId>,
        reason: String,
    },
}

/// What one subtask put into a checkpoint.
#[derive(Default)]
pub(crate) struct TaskSnapshot {
    /// The source reader's position, for a source task.
    pub source_position: Option<u64>,
    /// Keyed state by node: the key groups that changed since the subtask's previous snapshot
    /// (all of them if the operator does not track changes).
    pub operators: Vec<(usize, Vec<crate::state::DeferredKeyGroup>)>,
    /// Time the task spent taking the snapshot, on its slot (the encoding of keyed state that
    /// operators defer runs later, on the driver).
    pub sync_duration: Duration,
    /// By node: the key groups unchanged since the subtask's previous snapshot, whose state is
    /// the one that snapshot held (incremental checkpoints).
    pub unchanged: Vec<(usize, Vec<usize>)>,
    /// The sinks' pre-commits at the barrier, by node.
    pub committables: Vec<(usize, crate::sink::Committable)>,
    /// Non-keyed operator state, by node.
    pub operator_states: Vec<(usize, Vec<u8>)>,
    /// Unaligned: frames that reached the gate before the barrier of their channel and after the
    /// snapshot, as (gate channel, encoded frame), in arrival order per channel.
    pub input_in_flight: Vec<(usize, Vec<u8>)>,
    /// Unaligned: frames the barrier overtook at the sender, as (output, channel, encoded frame).
    pub output_in_flight: Vec<(usize, usize, Vec<u8>)>,
}

/// An unaligned checkpoint taken at a gate whose channels have not all delivered its barrier:
/// the frames they deliver before it are recorded into the snapshot.
pub(crate) struct Recording {
    id: u64,
    snapshot: TaskSnapshot,
    alignment: Duration,
    /// Channels still recording.
    open: Vec<bool>,
}

impl Recording {
    /// An event arrived on `channel`: a frame before the barrier is recorded; the barrier (or
    /// end of input) closes the channel.
    fn on_event(&mut self, channel: usize, event: &ChannelEvent) -> Result<(), ChainFailure> {
        if !self.open[channel] {
            return Ok(());
        }
        match event {
            ChannelEvent::Frame(frame) => {
                let encoded = frame.encode().map_err(|error| ChainFailure {
                    position: 0,
                    failure: OperatorFailure::Failed(format!("checkpoint {}: cannot store an in-flight frame: {error}", self.id).into()),
                })?;
                self.snapshot.input_in_flight.push((channel, encoded));
            }
            ChannelEvent::Barrier { id, .. } if *id >= self.id => self.open[channel] = false,
            ChannelEvent::EndOfInput => self.open[channel] = false,
            _ => {}
        }
        Ok(())
    }

    fn is_complete(&self) -> bool {
        !self.open.contains(&true)
    }

    fn into_ack(self, subtask: SubtaskId) -> TaskReport {
        TaskReport::CheckpointAck { subtask, checkpoint: self.id, snapshot: self.snapshot, alignment: self.alignment }
    }
}

impl TaskSnapshot {
    /// Key groups in the snapshot, over all operators.
    pub(crate) fn key_groups(&self) -> u64 {
        let changed: u64 = self.operators.iter().map(|(_, groups)| groups.len() as u64).sum();
        changed + self.unchanged.iter().map(|(_, groups)| groups.len() as u64).sum::<u64>()
    }
}

/// Runtime settings a task needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskSettings {
    pub frames_per_turn_max: usize,
    pub watermark_interval: Duration,
    /// Time without data after which a source task declares its output idle.
    pub source_idle_timeout: Option<Duration>,
    pub frame_records_max: usize,
    pub frame_bytes_max: usize,
    pub linger: Duration,
    /// The key groups this subtask owns (what its keyed operators snapshot).
    pub key_groups: crate::key_group::KeyGroupRange,
    /// Exclusive buffers a gate channel whose producer runs in another process gets beyond the
    /// others' (`EngineConfig::remote_exclusive_credits_per_channel`).
    pub remote_extra_credits: u32,
    /// An aligned checkpoint whose alignment waits this long is taken unaligned.
    pub aligned_checkpoint_timeout: Option<Duration>,
}

pub(crate) enum TaskHead {
    Source { reader: Box<dyn ErasedSourceReader>, records_out: u64, watermark: SourceWatermark },
    Gate(InputGate),
}

/// When a source task last emitted a watermark, and which; whether it declared itself idle; and
/// its place in a watermark alignment group, if its source has one.
pub(crate) struct SourceWatermark {
    pub emitted: i64,
    pub emitted_at: Option<Instant>,
    /// When the reader last gave records.
    pub data_at: Option<Instant>,
    pub idle: bool,
    pub alignment: Option<AlignmentMember>,
}

impl SourceWatermark {
    pub(crate) fn new(alignment: Option<AlignmentMember>) -> Self {
        SourceWatermark { emitted: i64::MIN, emitted_at: None, data_at: None, idle: false, alignment }
    }

    /// Publishes the reader's watermark to the alignment group and says whether the reader must
    /// not be polled now: it leads the group by more than the max drift. The task then leaves a
    /// wake-up with the group and is resumed when the others catch up. Time spent waiting is
    /// not idleness.
    fn waits_for_alignment(&mut self, current: Option<i64>) -> bool {
        let Some(member) = &self.alignment else { return false };
        if let Some(current) = current {
            member.report(current);
        }
        let waits = member.must_wait();
        if waits {
            self.data_at = Some(Instant::now());
        }
        waits
    }

    /// The reader has finished: it no longer holds its alignment group back.
    fn finish(&mut self) {
        if let Some(member) = &self.alignment {
            member.finish();
        }
    }

    /// Whether the source should now declare itself idle: no data for `timeout`.
    fn turns_idle(&mut self, timeout: Option<Duration>) -> bool {
        let Some(timeout) = timeout else { return false };
        let since = *self.data_at.get_or_insert_with(Instant::now);
        if self.idle || since.elapsed() < timeout {
            return false;
        }
        self.idle = true;
        if let Some(member) = &self.alignment {
            member.set_idle(true);
        }
        true
    }

    /// Records that data arrived; true if the source was idle and must declare itself active.
    fn turns_active(&mut self) -> bool {
        self.data_at = Some(Instant::now());
        let was_idle = std::mem::replace(&mut self.idle, false);
        if let (true, Some(member)) = (was_idle, &self.alignment) {
            member.set_idle(false);
        }
        was_idle
    }

    /// The watermark to emit now, if the reader's has advanced and the interval has passed.
    fn due(&mut self, current: Option<i64>, interval: Duration) -> Option<i64> {
        let current = current?;
        if current <= self.emitted || self.emitted_at.is_some_and(|at| at.elapsed() < interval) {
            return None;
        }
        self.emitted = current;
        self.emitted_at = Some(Instant::now());
        Some(current)
    }
}

pub(crate) struct InputGate {
    pub credits: GateCredits,
    /// Events received and not yet taken, per channel (each channel's order is kept).
    pub queues: Vec<VecDeque<ChannelEvent>>,
    /// The channel the next take starts looking at: channels take turns.
    pub next_channel: usize,
    pub open_channels: usize,
    /// Per gate channel: the producer, its output index and its channel index there.
    pub upstream: Vec<(Endpoint, usize, usize)>,
    /// Last watermark per channel; an ended channel holds `i64::MAX`.
    pub channel_watermarks: Vec<i64>,
    /// Channels whose sender declared itself idle: left out of the minimum.
    pub channel_idle: Vec<bool>,
    /// The gate's watermark: the minimum over its active channels, never going backwards.
    pub watermark: i64,
    /// Whether every open channel is idle, so the gate's own output is idle.
    pub idle: bool,
    /// Checkpoint barrier alignment.
    pub aligner: BarrierAligner,
    /// A checkpoint whose barriers are all in, to take before anything else.
    pub checkpoint_ready: Option<(u64, Duration)>,
    /// Unaligned: the newest barrier that arrived (ahead of the frames queued before it) and
    /// whose checkpoint is not taken yet.
    pub unaligned_due: Option<u64>,
}

impl InputGate {
    pub(crate) fn new(credits: GateCredits, channels: usize) -> Self {
        InputGate {
            credits,
            queues: (0..channels).map(|_| VecDeque::new()).collect(),
            next_channel: 0,
            open_channels: channels,
            upstream: Vec::new(),
            channel_watermarks: vec![i64::MIN; channels],
            channel_idle: vec![false; channels],
            watermark: i64::MIN,
            idle: false,
            aligner: BarrierAligner::new(channels, CheckpointingMode::ExactlyOnce),
            checkpoint_ready: None,
            unaligned_due: None,
        }
    }

    /// Takes the next event: channels take turns, and every queued event is taken. A gate never
    /// holds back a channel's frames: pausing one input of a diamond stalls the shared upstream
    /// the other input waits for. Watermark alignment acts at the sources instead
    /// (`runtime::alignment`).
    fn take(&mut self) -> Option<(usize, ChannelEvent)> {
        let channels = self.queues.len();
        for offset in 0..channels {
            let channel = (self.next_channel + offset) % channels;
            if self.aligner.is_blocked(channel) {
                continue; // what follows its barrier waits for the other channels' barriers
            }
            if let Some(event) = self.queues[channel].pop_front() {
                self.next_channel = (channel + 1) % channels;
                return Some((channel, event));
            }
        }
        None
    }

    /// Records a channel's watermark; returns the gate's watermark if it advanced.
    fn advance_watermark(&mut self, channel: usize, watermark: i64) -> Option<i64> {
        debug_assert!(watermark >= self.channel_watermarks[channel], "channel {channel} watermark went backwards");
        self.channel_watermarks[channel] = watermark;
        self.combined_watermark()
    }

    /// The minimum over active channels, if it is above the gate's watermark (which it becomes).
    /// A channel that returns from idleness behind the gate does not pull it back: its records
    /// may be late, as in Flink.
    fn combined_watermark(&mut self) -> Option<i64> {
        let minimum =
            self.channel_watermarks.iter().zip(&self.channel_idle).filter(|(_, idle)| !**idle).map(|(watermark, _)| *watermark).min()?;
        (minimum > self.watermark).then(|| {
            self.watermark = minimum;
            minimum
        })
    }

    /// Records a channel's idleness; returns the gate's watermark if it advanced (an idle channel
    /// no longer holds it back) and the gate's idleness if that changed.
    fn set_idle(&mut self, channel: usize, idle: bool) -> (Option<i64>, Option<bool>) {
        self.channel_idle[channel] = idle;
        let open_all_idle = self.channel_watermarks.iter().zip(&self.channel_idle).all(|(watermark, idle)| *idle || *watermark == i64::MAX);
        let all_idle = open_all_idle && self.channel_watermarks.iter().any(|w| *w != i64::MAX);
        let changed = (all_idle != self.idle).then(|| {
            self.idle = all_idle;
            all_idle
        });
        (self.combined_watermark(), changed)
    }
}

pub(crate) struct TaskOutput {
    /// Which output of the chain's tail operator this is: 0 main, `k` side output `k`.
    pub node_output: usize,
    /// The chain position a failure of this output's partitioner (a user's key selector) is
    /// reported at: past the chain's operators, `operators + k` for output `k`, so the driver
    /// names the edge and its consumer instead of an operator of the chain.
    pub failure_position: usize,
    pub partitioner: Box<dyn ErasedPartitioner>,
    pub senders: Vec<CreditSender>,
    pub downstream: Vec<(Endpoint, usize)>,
    /// What went to consumers in other processes.
    pub remote: RemoteSends,
}

/// What one output sent to consumers in other processes.
#[derive(Default)]
pub(crate) struct RemoteSends {
    /// Bytes of frames encoded for them.
    pub encoded_bytes: u64,
    /// The first event that could not reach one: the task fails with it.
    pub failure: Option<SendFailed>,
}

impl TaskOutput {
    fn is_blocked(&self) -> bool {
        self.senders.iter().any(CreditSender::is_blocked)
    }

    /// Sends an event on `channel` now, ahead of what waits for credit (an unaligned barrier).
    fn send_now(&mut self, channel: usize, event: ChannelEvent) {
        let (endpoint, gate_channel) = &self.downstream[channel];
        let backlog = self.senders[channel].backlog_frames();
        match endpoint.send_event(*gate_channel, event, backlog) {
            Ok(bytes) => self.remote.encoded_bytes += bytes,
            Err(failure) => {
                self.remote.failure.get_or_insert(failure);
            }
        }
    }

    /// Sends what channel `channel` may send now.
    fn pump(&mut self, channel: usize) {
        pump_channel(&mut self.senders[channel], &self.downstream[channel], &mut self.remote);
    }

    /// Sends a watermark or idleness event on every channel, after the records gathered before it.
    fn broadcast(&mut self, event: impl Fn() -> ChannelEvent) {
        let mut dispatch = Dispatch(self.senders.as_mut_slice(), self.downstream.as_slice(), &mut self.remote);
        self.partitioner.flush(&mut dispatch);
        for channel in 0..self.senders.len() {
            self.senders[channel].enqueue(event());
            self.pump(channel);
        }
    }

    /// Sends every partly filled frame.
    fn flush(&mut self) {
        let mut dispatch = Dispatch(self.senders.as_mut_slice(), self.downstream.as_slice(), &mut self.remote);
        self.partitioner.flush(&mut dispatch);
    }

    fn end_all(&mut self) {
        self.flush();
        for channel in 0..self.senders.len() {
            self.senders[channel].enqueue(ChannelEvent::EndOfInput);
            self.pump(channel);
        }
    }
}

/// Sends what one output channel may send now; the first failure to reach a remote consumer is
/// kept in `remote` (the task fails with it), and the channel's events go on being taken.
#[inline]
fn pump_channel(sender: &mut CreditSender, (endpoint, gate_channel): &(Endpoint, usize), remote: &mut RemoteSends) {
    while let Some((event, backlog)) = sender.next_sendable() {
        match endpoint.send_event(*gate_channel, event, backlog) {
            Ok(bytes) => remote.encoded_bytes += bytes,
            Err(error) => {
                remote.failure.get_or_insert(error);
            }
        }
    }
}

/// Hands routed frames to their channel and sends them if credit allows.
struct Dispatch<'a>(&'a mut [CreditSender], &'a [(Endpoint, usize)], &'a mut RemoteSends);

impl FrameDispatch for Dispatch<'_> {
    fn dispatch(&mut self, channel: usize, frame: AnyFrame) {
        let sender = &mut self.0[channel];
        sender.enqueue(ChannelEvent::Frame(frame));
        pump_channel(sender, &self.1[channel], self.2);
    }
}

/// The end of a task's chain: its partitioner, or nothing for a sink task.
struct ChainTail<'a>(&'a mut [TaskOutput]);

impl ChainTail<'_> {
    /// Partitions a frame of the tail operator's output `node_output`. A hash partitioner runs
    /// the user's key selector here: its panic is caught and blamed on the output's edge, never on
    /// the operator that emitted the frame (whose own guard would otherwise catch it).
    fn route(&mut self, node_output: usize, frame: AnyFrame) -> Result<(), ChainFailure> {
        // Outputs nobody consumes are dropped, as Flink drops unconsumed side outputs.
        let Some(output) = self.0.iter_mut().find(|o| o.node_output == node_output) else { return Ok(()) };
        let position = output.failure_position;
        let mut dispatch = Dispatch(output.senders.as_mut_slice(), output.downstream.as_slice(), &mut output.remote);
        let partitioner = &mut output.partitioner;
        catch_unwind(AssertUnwindSafe(|| partitioner.route(frame, &mut dispatch)))
            .map_err(|payload| ChainFailure { position, failure: OperatorFailure::from_panic(payload) })
    }
}

impl FrameSink for ChainTail<'_> {
    fn is_blocked(&self) -> bool {
        self.0.iter().any(TaskOutput::is_blocked)
    }

    fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure> {
        self.route(0, frame)
    }

    fn push_side(&mut self, output: usize, frame: AnyFrame) -> Result<(), ChainFailure> {
        self.route(output, frame)
    }

    fn watermark(&mut self, watermark: i64) -> Result<(), ChainFailure> {
        for output in self.0.iter_mut() {
            output.broadcast(|| ChannelEvent::Watermark(watermark));
        }
        Ok(())
    }

    fn idleness(&mut self, idle: bool) -> Result<(), ChainFailure> {
        for output in self.0.iter_mut() {
            output.broadcast(|| ChannelEvent::Idleness(idle));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Input has ended; operators still have work under way (requests in flight).
    Draining,
    /// The operators' `finish` has been called; what they emitted at it (and what waits behind
    /// it) goes out before end of input.
    Closing,
    /// End of input is sent on every output; the last events wait for credit.
    Finishing,
    Done,
}

/// What one step of a turn did.
enum Step {
    Processed,
    /// A source leads its watermark alignment group by more than the max drift.
    AlignmentWait,
    NothingQueued,
    Idle,
    InputEnded,
    Failed(ChainFailure),
}

/// The state of one task actor.
pub(crate) struct TaskState {
    pub id: SubtaskId,
    /// Its clock and where it publishes its live figures (`None` in unit tests of the task).
    pub live: Option<super::live::LiveRecorder>,
    pub head: TaskHead,
    pub chain: OperatorChain,
    /// The node of each operator of the chain (what checkpoints name their state by).
    pub chain_nodes: Vec<usize>,
    pub outputs: Vec<TaskOutput>,
    pub settings: TaskSettings,
    pub reports: Sender<TaskReport>,
    phase: Phase,
    resume_scheduled: bool,
    linger_scheduled: bool,
    /// When the pending `Tick` message is due, if one is scheduled.
    tick_due: Option<Instant>,
    /// The aligned checkpoint whose alignment timeout has a `Tick` scheduled (so the task wakes
    /// to switch it to unaligned even if no message comes meanwhile).
    alignment_timeout_scheduled: Option<u64>,
    started: bool,
    /// The waker the chain's operators got at start; re-armed before each `on_wake` round.
    waker: Option<TaskWaker>,
    /// A `Wake` came and the chain's `on_wake` has not run since (it waits for blocked outputs).
    wake_due: bool,
    /// A due processing time whose operator had nothing to fire (see `fire_due_timers`).
    drained_tick: Option<Instant>,
    /// A source's input has ended and its final (maximum) watermark is still to be sent.
    final_watermark_due: bool,
    /// A checkpoint to take (id, time its gate spent aligning, unaligned), before any more input.
    checkpoint_due: Option<(u64, Duration, bool)>,
    /// An unaligned checkpoint taken whose in-flight frames are still being recorded: it is
    /// acknowledged when every channel has delivered its barrier (or ended).
    recording: Option<Recording>,
    /// In-flight frames of the checkpoint restored from, processed before any input.
    pub replay: VecDeque<AnyFrame>,
    /// The sinks' pre-commits after `finish`, sent with the `Finished` report.
    final_committables: Vec<(usize, crate::sink::Committable)>,
    /// The next checkpoint snapshots every key group (see `TaskMessage::Rebase`).
    full_snapshot_due: bool,
}

impl TaskState {
    pub(crate) fn new(
        id: SubtaskId,
        head: TaskHead,
        chain: (OperatorChain, Vec<usize>),
        outputs: Vec<TaskOutput>,
        settings: TaskSettings,
        reports: Sender<TaskReport>,
    ) -> Self {
        let (chain, chain_nodes) = chain;
        TaskState {
            id,
            live: None,
            head,
            chain,
            chain_nodes,
            final_committables: Vec::new(),
            outputs,
            settings,
            reports,
            phase: Phase::Running,
            resume_scheduled: false,
            linger_scheduled: false,
            tick_due: None,
            alignment_timeout_scheduled: None,
            started: false,
            waker: None,
            wake_due: false,
            drained_tick: None,
            final_watermark_due: false,
            checkpoint_due: None,
            recording: None,
            replay: VecDeque::new(),
            full_snapshot_due: false,
        }
    }

    fn handle(&mut self, myself: &ActorRef<TaskMessage>, message: TaskMessage) {
        // A frame from another process is validated and decoded here, once; then it is a frame
        // like any other. Bytes that are not a frame of the input's type fail the task, naming
        // the channel and its producer.
        let message = match message {
            TaskMessage::RemoteFrame { channel, frame, backlog } => match self.chain.decode_input(frame.0.bytes()) {
                Ok(decoded) => TaskMessage::Event { channel, event: ChannelEvent::Frame(decoded), backlog },
                Err(error) => {
                    let producer = match &self.head {
                        TaskHead::Gate(gate) => {
                            gate.upstream.get(channel).map_or_else(|| "an unknown producer".to_string(), |(p, ..)| p.describe())
                        }
                        TaskHead::Source { .. } => "nobody (a source task has no inputs)".to_string(),
                    };
                    let reason = format!("a frame on input channel {channel} from {producer} does not decode: {error}");
                    return self.fail(myself, ChainFailure { position: 0, failure: OperatorFailure::Failed(reason.into()) });
                }
            },
            other => other,
        };
        match message {
            TaskMessage::Start { outputs, inputs } => {
                assert_eq!(outputs.len(), self.outputs.len(), "wiring gives every output its consumers");
                for (output, downstream) in self.outputs.iter_mut().zip(outputs) {
                    assert_eq!(downstream.len(), output.senders.len(), "wiring gives every output channel a consumer");
                    output.downstream = downstream;
                }
                if let TaskHead::Gate(gate) = &mut self.head {
                    assert_eq!(inputs.len(), gate.open_channels, "wiring gives every gate channel a producer");
                    // Channels from other processes get more buffers (granted with the first grants).
                    for (channel, (producer, ..)) in inputs.iter().enumerate() {
                        if matches!(producer, Endpoint::Remote { .. }) && self.settings.remote_extra_credits > 0 {
                            gate.credits.add_exclusive(channel, self.settings.remote_extra_credits);
                        }
                    }
                    gate.upstream = inputs;
                }
                let actor = myself.clone();
                // A stopped actor means the job is ending; a late wake has nothing left to do.
                let waker = TaskWaker::new(move || {
                    let _ = actor.send_message(TaskMessage::Wake);
                });
                if let Err(failure) = self.chain.start(&waker) {
                    return self.fail(myself, failure);
                }
                self.waker = Some(waker);
                self.started = true;
            }
            TaskMessage::RemoteFrame { .. } => unreachable!("decoded above"),
            TaskMessage::Event { channel, event, backlog } => {
                // What a peer in another process sends is checked: a violation fails the task
                // with an error naming it, never a panic.
                let violation = match &self.head {
                    TaskHead::Source { .. } => Some("a source task received a channel event".to_string()),
                    TaskHead::Gate(gate) if channel >= gate.queues.len() => {
                        Some(format!("an event for input channel {channel}, of {} channels", gate.queues.len()))
                    }
                    TaskHead::Gate(gate) if matches!(event, ChannelEvent::Frame(_)) && !gate.credits.has_room(channel) => {
                        Some(format!("input channel {channel} sent a frame without credit"))
                    }
                    TaskHead::Gate(_) => None,
                };
                if let Some(violation) = violation {
                    let reason = format!("flow-control protocol violated: {violation}");
                    return self.fail(myself, ChainFailure { position: 0, failure: OperatorFailure::Failed(reason.into()) });
                }
                let TaskHead::Gate(gate) = &mut self.head else { unreachable!("checked above") };
                if matches!(event, ChannelEvent::Frame(_)) {
                    gate.credits.on_frame(channel, backlog);
                }
                if let Some(recording) = &mut self.recording {
                    if let Err(failure) = recording.on_event(channel, &event) {
                        return self.fail(myself, failure);
                    }
                }
                if let ChannelEvent::Barrier { id, unaligned: true } = event {
                    // Unaligned: the barrier goes ahead of the frames queued before it.
                    let recorded = self.recording.as_ref().is_some_and(|recording| recording.id >= id);
                    if gate.aligner.is_new(id) && !recorded {
                        gate.unaligned_due = Some(gate.unaligned_due.map_or(id, |due| due.max(id)));
                    }
                }
                gate.queues[channel].push_back(event);
                if self.recording.as_ref().is_some_and(Recording::is_complete) {
                    let recording = self.recording.take().expect("checked above");
                    let _ = self.reports.send(recording.into_ack(self.id));
                }
            }
            TaskMessage::Credit { output, channel, credits } => {
                if self.outputs.get(output).is_none_or(|o| channel >= o.senders.len()) {
                    let reason =
                        format!("flow-control protocol violated: credits for channel {channel} of output {output}, which does not exist");
                    return self.fail(myself, ChainFailure { position: 0, failure: OperatorFailure::Failed(reason.into()) });
                }
                let output = &mut self.outputs[output];
                output.senders[channel].add_credits(credits);
                // A consumer in another process may grant credits before this task's `Start`
                // arrives (over another connection): nothing is queued to send yet then.
                if !output.downstream.is_empty() {
                    output.pump(channel);
                }
            }
            TaskMessage::Resume => self.resume_scheduled = false,
            TaskMessage::Wake => self.wake_due = true,
            // `work`, which runs after every message, fires the timers that are due (once the
            // output has room: what they emit would otherwise queue beyond the credits).
            TaskMessage::Tick => self.tick_due = None,
            TaskMessage::Linger => {
                self.linger_scheduled = false;
                if matches!(self.phase, Phase::Running | Phase::Draining | Phase::Closing) {
                    // A blocked output keeps its partly filled frames: sending them would only
                    // queue them beyond the credits; `work` schedules the linger again.
                    for output in self.outputs.iter_mut().filter(|o| !o.is_blocked()) {
                        output.flush();
                    }
                }
            }
            TaskMessage::Cancel => {
                self.phase = Phase::Done;
                myself.stop(Some("cancelled".into()));
                return;
            }
            TaskMessage::TriggerCheckpoint { id, unaligned } => {
                // A source that has read all its input takes no more checkpoints: the coordinator
                // abandons this one when the source finishes.
                if self.phase == Phase::Running && matches!(self.head, TaskHead::Source { .. }) {
                    self.checkpoint_due = Some((id, Duration::ZERO, unaligned));
                }
            }
            TaskMessage::Rebase => self.full_snapshot_due = true,
            TaskMessage::CheckpointComplete { id } => {
                if let TaskHead::Source { reader, .. } = &mut self.head {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| reader.notify_checkpoint_complete(id))) {
                        let failure = ChainFailure { position: 0, failure: OperatorFailure::from_panic(payload) };
                        return self.fail(myself, failure);
                    }
                }
            }
        }
        if self.started {
            self.work(myself);
        }
    }

    fn work(&mut self, myself: &ActorRef<TaskMessage>) {
        let mut turns = 0;
        while matches!(self.phase, Phase::Running | Phase::Draining | Phase::Closing) {
            if self.chain.has_pending_output() {
                if self.outputs.iter().any(TaskOutput::is_blocked) {
                    break; // A credit message wakes the task.
                }
                // An operator stopped emitting when the output blocked: it goes on before the
                // chain takes anything else.
                if let Err(failure) = self.chain.resume(&mut ChainTail(&mut self.outputs)) {
                    return self.fail(myself, failure);
                }
                continue;
            }
            // A checkpoint is taken even while the output waits for credit (barriers need none):
            // under backpressure an unaligned barrier overtakes the frames waiting, and an aligned
            // one queues behind them. Not while an operator is half-way through its output: its
            // state would not match what it emitted.
            if let TaskHead::Gate(gate) = &mut self.head {
                if let Some((id, alignment)) = gate.checkpoint_ready.take() {
                    self.checkpoint_due = Some((id, alignment, false));
                } else if let Some(id) = gate.unaligned_due.take() {
                    self.checkpoint_due = Some((id, Duration::ZERO, true));
                } else if let (Some(timeout), Some(id)) = (self.settings.aligned_checkpoint_timeout, gate.aligner.aligning()) {
                    let waited = gate.aligner.alignment_duration();
                    if waited >= timeout {
                        self.checkpoint_due = Some((id, waited, true));
                    }
                }
            }
            if let Some((id, alignment, unaligned)) = self.checkpoint_due.take() {
                // Here no operator has output pending, so the snapshot holds exactly what came
                // before the barrier, and the barrier follows that output on every channel.
                if matches!(self.phase, Phase::Running | Phase::Draining) {
                    if let Err(failure) = self.take_checkpoint(id, alignment, unaligned) {
                        return self.fail(myself, failure);
                    }
                }
                continue;
            }
            if self.outputs.iter().any(TaskOutput::is_blocked) {
                break; // A credit message wakes the task.
            }
            if self.phase == Phase::Closing {
                for output in &mut self.outputs {
                    output.end_all();
                }
                self.phase = Phase::Finishing;
                continue;
            }
            if self.final_watermark_due {
                // A finished source has no more event time to wait for: as in Flink, its end is
                // the maximum watermark, which fires every pending event-time result. Sent once
                // the output has room, like every watermark of a source.
                self.final_watermark_due = false;
                if let Err(failure) = self.chain.watermark(i64::MAX, &mut ChainTail(&mut self.outputs)) {
                    return self.fail(myself, failure);
                }
                continue;
            }
            if self.wake_due {
                // Only with outputs free: what the operators emit now is bounded by their own
                // pending work, not left to pile up behind a blocked channel.
                self.wake_due = false;
                if let Some(waker) = &self.waker {
                    waker.rearm();
                }
                if let Err(failure) = self.chain.on_wake(&mut ChainTail(&mut self.outputs)) {
                    return self.fail(myself, failure);
                }
                continue;
            }
            // Processing-time timers already due go before more input: otherwise a task kept
            // busy by its input (and so never blocked) registers timers faster than `Tick`
            // messages fire them. When input has ended they still fire before the end (they only
            // waited for credit); later ones are dropped with the operators, as in Flink.
            match self.fire_due_timers() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(failure) => return self.fail(myself, failure),
            }
            if self.phase == Phase::Draining {
                if self.chain.has_pending_work() {
                    break; // A `Wake` (or `Tick`) brings the task back.
                }
                self.finish_chain();
                continue;
            }
            if turns == self.settings.frames_per_turn_max {
                self.schedule_resume(myself, None);
                break;
            }
            if self.chain.is_saturated() {
                break; // The saturated operator wakes the task when it has room.
            }
            match self.step() {
                Step::Processed => turns += 1,
                Step::NothingQueued => break,
                Step::Idle => {
                    self.schedule_resume(myself, Some(crate::config::SOURCE_IDLE_POLL_INTERVAL));
                    break;
                }
                Step::InputEnded => self.end_input(),
                Step::AlignmentWait => {
                    let TaskHead::Source { watermark: SourceWatermark { alignment: Some(member), .. }, .. } = &self.head else {
                        unreachable!("only an aligned source waits for alignment")
                    };
                    let actor = myself.clone();
                    // A stopped actor means the job is ending; a late wake-up has nothing to do.
                    if member.wait(Box::new(move || {
                        let _ = actor.send_message(TaskMessage::Resume);
                    })) {
                        break; // the member that lets it go resumes the task
                    }
                }
                Step::Failed(failure) => return self.fail(myself, failure),
            }
        }
        let mut credit_failure = None;
        if let TaskHead::Gate(gate) = &mut self.head {
            for (channel, credits) in gate.credits.take_grants() {
                let (producer, output, output_channel) = &gate.upstream[channel];
                if let Err(error) = producer.send_credit(*output, *output_channel, credits) {
                    credit_failure.get_or_insert(format!("cannot give credit to input channel {channel}'s producer: {error}"));
                }
            }
        }
        if let Some(reason) = credit_failure {
            return self.fail(myself, ChainFailure { position: 0, failure: OperatorFailure::Failed(reason.into()) });
        }
        // A consumer in another process that cannot be reached fails the task (and the job),
        // blaming the operator whose output it is.
        if let Some((k, failure)) = self.outputs.iter_mut().enumerate().find_map(|(k, output)| output.remote.failure.take().map(|f| (k, f)))
        {
            let reason = format!("output {k} cannot reach its consumer: {failure}");
            let position = self.chain_nodes.len().saturating_sub(1);
            return self.fail(myself, ChainFailure { position, failure: OperatorFailure::Failed(reason.into()) });
        }
        match self.phase {
            Phase::Closing => self.schedule_linger(myself),
            Phase::Running | Phase::Draining => {
                self.schedule_linger(myself);
                self.schedule_tick(myself);
                self.schedule_alignment_timeout(myself);
            }
            Phase::Finishing => self.try_complete(myself),
            Phase::Done => {}
        }
    }

    /// Takes one frame from the head and pushes it through the chain.
    fn step(&mut self) -> Step {
        let tail = &mut ChainTail(&mut self.outputs);
        match &mut self.head {
            TaskHead::Source { reader, records_out, watermark } => {
                // The watermark of the records already read goes first: a step runs only while
                // the output has room, so its flush never queues beyond the credits, and a source
                // kept at the credit limit still advances event time.
                if let Some(due) = watermark.due(reader.watermark(), self.settings.watermark_interval) {
                    if let Err(failure) = self.chain.watermark(due, tail) {
                        return Step::Failed(failure);
                    }
                    if tail.is_blocked() || self.chain.has_pending_output() {
                        return Step::Processed; // the firings it caused wait for credit first
                    }
                }
                if watermark.waits_for_alignment(reader.watermark()) {
                    return Step::AlignmentWait;
                }
                let polled = catch_unwind(AssertUnwindSafe(|| reader.poll(self.settings.frame_records_max, self.settings.frame_bytes_max)));
                let (frame, status) = match polled {
                    Ok(Ok(polled)) => polled,
                    Ok(Err(error)) => return Step::Failed(ChainFailure { position: 0, failure: OperatorFailure::Failed(error) }),
                    Err(payload) => return Step::Failed(ChainFailure { position: 0, failure: OperatorFailure::from_panic(payload) }),
                };
                if let Some(frame) = frame {
                    if watermark.turns_active() {
                        if let Err(failure) = self.chain.idleness(false, tail) {
                            return Step::Failed(failure);
                        }
                    }
                    *records_out += frame.len() as u64;
                    if let Err(failure) = self.chain.process(frame, tail) {
                        return Step::Failed(failure);
                    }
                } else if status == ReaderStatus::Idle && watermark.turns_idle(self.settings.source_idle_timeout) {
                    if let Err(failure) = self.chain.idleness(true, tail) {
                        return Step::Failed(failure);
                    }
                }
                match status {
                    ReaderStatus::Ready => Step::Processed,
                    ReaderStatus::Idle => Step::Idle,
                    ReaderStatus::Finished => {
                        watermark.finish();
                        Step::InputEnded
                    }
                }
            }
            TaskHead::Gate(_) if !self.replay.is_empty() => {
                // In-flight frames of the checkpoint restored from come before any new input.
                let frame = self.replay.pop_front().expect("checked non-empty");
                match self.chain.process(frame, tail) {
                    Ok(()) => Step::Processed,
                    Err(failure) => Step::Failed(failure),
                }
            }
            TaskHead::Gate(gate) => match gate.take() {
                None => Step::NothingQueued,
                Some((channel, ChannelEvent::Frame(frame))) => {
                    gate.credits.on_consumed(channel);
                    match self.chain.process(frame, tail) {
                        Ok(()) => Step::Processed,
                        Err(failure) => Step::Failed(failure),
                    }
                }
                Some((channel, ChannelEvent::Watermark(watermark))) => match gate.advance_watermark(channel, watermark) {
                    Some(advanced) => match self.chain.watermark(advanced, tail) {
                        Ok(()) => Step::Processed,
                        Err(failure) => Step::Failed(failure),
                    },
                    None => Step::Processed,
                },
                Some((channel, ChannelEvent::Idleness(idle))) => {
                    let (advanced, gate_idle) = gate.set_idle(channel, idle);
                    let mut result = Ok(());
                    if gate_idle == Some(false) {
                        result = self.chain.idleness(false, tail);
                    }
                    if let Some(advanced) = advanced {
                        result = result.and_then(|()| self.chain.watermark(advanced, tail));
                    }
                    if gate_idle == Some(true) {
                        result = result.and_then(|()| self.chain.idleness(true, tail));
                    }
                    match result {
                        Ok(()) => Step::Processed,
                        Err(failure) => Step::Failed(failure),
                    }
                }
                Some((channel, ChannelEvent::Barrier { id, .. })) => {
                    if let BarrierAction::Checkpoint(id) = gate.aligner.on_barrier(channel, id) {
                        gate.checkpoint_ready = Some((id, gate.aligner.alignment_duration()));
                    }
                    Step::Processed
                }
                Some((channel, ChannelEvent::EndOfInput)) => {
                    if let BarrierAction::Checkpoint(id) = gate.aligner.on_end_of_input(channel) {
                        gate.checkpoint_ready = Some((id, gate.aligner.alignment_duration()));
                    }
                    gate.open_channels -= 1;
                    // An ended channel no longer holds event time back.
                    if let Some(advanced) = gate.advance_watermark(channel, i64::MAX) {
                        if let Err(failure) = self.chain.watermark(advanced, tail) {
                            return Step::Failed(failure);
                        }
                    }
                    if gate.open_channels == 0 {
                        Step::InputEnded
                    } else {
                        Step::Processed
                    }
                }
            },
        }
    }

    /// Snapshots the reader's position and every keyed operator's key groups, has the sinks
    /// pre-commit, sends barrier `id` on every output behind what was emitted before it, and
    /// acknowledges to the coordinator. The snapshot is encoded here, on the slot (copy-on-write
    /// snapshots are a later step); it is written to storage by the driver.
    fn take_checkpoint(&mut self, id: u64, alignment: Duration, unaligned: bool) -> Result<(), ChainFailure> {
        let started = Instant::now();
        let mut snapshot = TaskSnapshot::default();
        if let TaskHead::Source { reader, .. } = &self.head {
            snapshot.source_position = reader.position();
        }
        let first_position = usize::from(matches!(self.head, TaskHead::Source { .. }));
        let full = std::mem::take(&mut self.full_snapshot_due);
        for index in 0..self.chain.len() {
            if let Some(state) = self.chain.keyed_state(index) {
                // Asked even for a full snapshot: it restarts the tracking from this checkpoint.
                let changed = state.changed_key_groups().filter(|_| !full);
                let (mut groups, mut unchanged) = (Vec::new(), Vec::new());
                for group in self.settings.key_groups.as_range() {
                    if changed.as_ref().is_some_and(|changed| changed.binary_search(&group).is_err()) {
                        unchanged.push(group);
                        continue;
                    }
                    groups.push(state.snapshot_key_group_deferred(group).map_err(|error| ChainFailure {
                        position: first_position + index,
                        failure: OperatorFailure::Failed(format!("checkpoint {id}: {error}").into()),
                    })?);
                }
                snapshot.operators.push((self.chain_nodes[index], groups));
                snapshot.unchanged.push((self.chain_nodes[index], unchanged));
            }
        }
        snapshot.operator_states =
            self.chain.snapshot_operator_states()?.into_iter().map(|(index, state)| (self.chain_nodes[index], state)).collect();
        snapshot.committables =
            self.chain.pre_commit(id)?.into_iter().map(|(index, committable)| (self.chain_nodes[index], committable)).collect();
        let encoding_failed = |error: crate::base::CodecError| ChainFailure {
            position: 0,
            failure: OperatorFailure::Failed(format!("checkpoint {id}: cannot store an in-flight frame: {error}").into()),
        };
        if !unaligned {
            for output in &mut self.outputs {
                output.broadcast(|| ChannelEvent::Barrier { id, unaligned: false });
            }
            snapshot.sync_duration = started.elapsed();
            let _ = self.reports.send(TaskReport::CheckpointAck { subtask: self.id, checkpoint: id, snapshot, alignment });
            return Ok(());
        }
        // Unaligned: the barrier overtakes the frames waiting for credit, which are stored.
        for (k, output) in self.outputs.iter_mut().enumerate() {
            output.flush();
            for channel in 0..output.senders.len() {
                for frame in output.senders[channel].queued_frames() {
                    snapshot.output_in_flight.push((k, channel, frame.encode().map_err(encoding_failed)?));
                }
                output.send_now(channel, ChannelEvent::Barrier { id, unaligned: true });
            }
        }
        snapshot.sync_duration = started.elapsed();
        let TaskHead::Gate(gate) = &mut self.head else {
            let _ = self.reports.send(TaskReport::CheckpointAck { subtask: self.id, checkpoint: id, snapshot, alignment });
            return Ok(());
        };
        // Frames queued before their channel's barrier are not in the snapshot's state: stored.
        // A channel whose barrier has not come yet goes on being recorded until it does.
        let mut open = vec![false; gate.queues.len()];
        for (channel, queue) in gate.queues.iter().enumerate() {
            if gate.aligner.delivered_or_ended(channel) {
                continue;
            }
            let mut closed = false;
            for event in queue {
                match event {
                    ChannelEvent::Frame(frame) => snapshot.input_in_flight.push((channel, frame.encode().map_err(encoding_failed)?)),
                    ChannelEvent::Barrier { id: barrier, .. } if *barrier >= id => {
                        closed = true;
                        break;
                    }
                    ChannelEvent::EndOfInput => {
                        closed = true;
                        break;
                    }
                    _ => {}
                }
            }
            open[channel] = !closed;
        }
        gate.aligner.taken_unaligned(id);
        let recording = Recording { id, snapshot, alignment, open };
        if recording.is_complete() {
            let _ = self.reports.send(recording.into_ack(self.id));
        } else {
            self.recording = Some(recording);
        }
        Ok(())
    }

    /// Every input has ended: the operators drain their pending work before they are finished.
    fn end_input(&mut self) {
        self.final_watermark_due = matches!(self.head, TaskHead::Source { .. });
        self.phase = Phase::Draining;
    }

    /// No operator has pending work left: finishes them and sends end of input on every output.
    fn finish_chain(&mut self) {
        debug_assert!(!self.chain.has_pending_work(), "operators finished with work under way");
        let finished =
            self.chain.finish(&mut ChainTail(&mut self.outputs)).and_then(|()| self.chain.pre_commit(crate::sink::FINAL_CHECKPOINT));
        match finished {
            Ok(committables) => {
                self.final_committables =
                    committables.into_iter().map(|(index, committable)| (self.chain_nodes[index], committable)).collect();
            }
            Err(failure) => {
                self.phase = Phase::Done;
                self.report_failure(failure);
                return;
            }
        }
        self.phase = Phase::Closing;
    }

    fn try_complete(&mut self, myself: &ActorRef<TaskMessage>) {
        if self.outputs.iter().any(TaskOutput::is_blocked) {
            return; // The end marker still waits for credit behind the last frames.
        }
        self.phase = Phase::Done;
        let committables = std::mem::take(&mut self.final_committables);
        let source_position = match &self.head {
            TaskHead::Source { reader, .. } => reader.position(),
            TaskHead::Gate(_) => None,
        };
        let _ = self.reports.send(TaskReport::Finished { id: self.id, metrics: self.metrics(), committables, source_position });
        myself.stop(None);
    }

    fn fail(&mut self, myself: &ActorRef<TaskMessage>, failure: ChainFailure) {
        self.phase = Phase::Done;
        self.report_failure(failure);
        myself.stop(Some("operator failed".into()));
    }

    fn report_failure(&mut self, failure: ChainFailure) {
        let _ = self.reports.send(TaskReport::Failed { id: self.id, position: failure.position, failure: failure.failure });
    }

    fn schedule_resume(&mut self, myself: &ActorRef<TaskMessage>, after: Option<Duration>) {
        if self.resume_scheduled {
            return;
        }
        self.resume_scheduled = true;
        match after {
            None => {
                let _ = myself.send_message(TaskMessage::Resume);
            }
            Some(delay) => {
                myself.send_after(delay, || TaskMessage::Resume);
            }
        }
    }

    /// Fires the processing-time timers that are due, if any; true if it did (the caller loops,
    /// since they may have blocked the output). An operator that still asks for the same time
    /// after being called with its output free has nothing to fire then, and is not called for
    /// that time again, so a due time that never clears cannot spin the task.
    fn fire_due_timers(&mut self) -> Result<bool, ChainFailure> {
        let Some(due) = self.chain.next_processing_time() else { return Ok(false) };
        let now = Instant::now();
        if due > now || Some(due) == self.drained_tick {
            return Ok(false);
        }
        self.chain.on_processing_time(now, &mut ChainTail(&mut self.outputs))?;
        if !self.is_output_blocked() && self.chain.next_processing_time() == Some(due) {
            self.drained_tick = Some(due);
        }
        Ok(true)
    }

    /// Whether what the chain emits now would wait: an output waits for credit, or an operator
    /// still has output pending.
    fn is_output_blocked(&self) -> bool {
        self.outputs.iter().any(TaskOutput::is_blocked) || self.chain.has_pending_output()
    }

    fn schedule_tick(&mut self, myself: &ActorRef<TaskMessage>) {
        if self.is_output_blocked() {
            return; // The credit that unblocks the output runs `work`, which schedules the tick.
        }
        let Some(next) = self.chain.next_processing_time() else { return };
        // A time its operator had nothing to fire at would come back at once, again and again.
        if self.tick_due.is_some_and(|due| due <= next) || Some(next) == self.drained_tick {
            return;
        }
        self.tick_due = Some(next);
        myself.send_after(next.saturating_duration_since(Instant::now()), || TaskMessage::Tick);
    }

    /// While an aligned checkpoint waits for barriers, wakes the task when its alignment timeout
    /// runs out, whatever the output's state: the switch to unaligned must not wait for a message
    /// that a stalled input may never send (the `work` loop makes the switch).
    fn schedule_alignment_timeout(&mut self, myself: &ActorRef<TaskMessage>) {
        let (Some(timeout), TaskHead::Gate(gate)) = (self.settings.aligned_checkpoint_timeout, &self.head) else { return };
        let Some(id) = gate.aligner.aligning() else { return };
        if self.alignment_timeout_scheduled == Some(id) {
            return;
        }
        self.alignment_timeout_scheduled = Some(id);
        let left = timeout.saturating_sub(gate.aligner.alignment_duration());
        myself.send_after(left, || TaskMessage::Tick);
    }

    fn schedule_linger(&mut self, myself: &ActorRef<TaskMessage>) {
        if self.linger_scheduled || !self.outputs.iter().any(|o| o.partitioner.has_pending()) {
            return;
        }
        if self.settings.linger.is_zero() {
            for output in self.outputs.iter_mut().filter(|o| !o.is_blocked()) {
                output.flush();
            }
            return;
        }
        self.linger_scheduled = true;
        myself.send_after(self.settings.linger, || TaskMessage::Linger);
    }

    /// Its live figures' counts (the recorder adds the times).
    fn live_reading(&self, ended: bool) -> super::live::SubtaskLive {
        let counts = self.chain.counts();
        let mut operators: Vec<(u64, u64)> = counts.iter().map(|count| (count.records_in, count.records_out)).collect();
        let (records_in, watermark) = match &self.head {
            TaskHead::Source { records_out, watermark, .. } => {
                operators.insert(0, (0, *records_out));
                (*records_out, (watermark.emitted != i64::MIN).then_some(watermark.emitted))
            }
            TaskHead::Gate(gate) => {
                (operators.first().map_or(0, |(records_in, _)| *records_in), (gate.watermark != i64::MIN).then_some(gate.watermark))
            }
        };
        super::live::SubtaskLive {
            task: self.id.0 as u32,
            subtask: self.id.1 as u32,
            records_in,
            records_out: operators.last().map_or(0, |(_, records_out)| *records_out),
            operators,
            watermark,
            ended,
            ..Default::default()
        }
    }

    fn metrics(&self) -> SubtaskMetrics {
        let mut metrics = SubtaskMetrics::default();
        match &self.head {
            TaskHead::Source { records_out, .. } => {
                metrics.node_counts.push(OperatorCounts { records_in: 0, records_out: *records_out, extra: Vec::new() });
            }
            TaskHead::Gate(gate) => {
                metrics.gate_queued_frames_peak = gate.credits.queued_frames_peak();
                metrics.gate_capacity = gate.credits.capacity();
            }
        }
        metrics.node_counts.extend(self.chain.counts());
        metrics.output_backlog_frames_peak =
            self.outputs.iter().flat_map(|o| &o.senders).map(CreditSender::backlog_frames_peak).max().unwrap_or(0);
        metrics.encoded_bytes_out = self.outputs.iter().map(|o| o.remote.encoded_bytes).sum();
        metrics
    }
}

/// The ractor actor that runs a `TaskState`.
pub(crate) struct TaskActor;

impl Actor for TaskActor {
    type Msg = TaskMessage;
    type State = TaskState;
    type Arguments = TaskState;

    async fn pre_start(&self, _myself: ActorRef<TaskMessage>, state: TaskState) -> Result<TaskState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(&self, myself: ActorRef<TaskMessage>, message: TaskMessage, state: &mut TaskState) -> Result<(), ActorProcessingErr> {
        let began = Instant::now();
        if let Some(live) = &mut state.live {
            live.begin(began);
        }
        state.handle(&myself, message);
        if state.live.is_some() {
            let now = Instant::now();
            let ended = state.phase == Phase::Done;
            let blocked = !ended && state.is_output_blocked();
            let due = state.live.as_mut().is_some_and(|live| live.end(began, now, blocked));
            if due || ended {
                let reading = state.live_reading(ended);
                if let Some(live) = &mut state.live {
                    live.publish(now, reading);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_watermark_is_the_minimum_over_channels_and_never_goes_back() {
        let mut gate = InputGate::new(GateCredits::new(3, 1, 0), 3);
        assert_eq!(gate.advance_watermark(0, 100), None, "channels 1 and 2 have no watermark yet");
        assert_eq!(gate.advance_watermark(1, 50), None);
        assert_eq!(gate.advance_watermark(2, 70), Some(50));
        assert_eq!(gate.advance_watermark(1, 60), Some(60));
        assert_eq!(gate.advance_watermark(1, 200), Some(70));
        // An ended channel stops holding the others back.
        assert_eq!(gate.advance_watermark(2, i64::MAX), Some(100));
        assert_eq!(gate.watermark, 100);
    }

    #[test]
    fn source_watermarks_are_throttled_and_only_advance() {
        let mut watermark = SourceWatermark::new(None);
        assert_eq!(watermark.due(Some(10), Duration::ZERO), Some(10));
        assert_eq!(watermark.due(Some(10), Duration::ZERO), None, "no advance, no watermark");
        assert_eq!(watermark.due(None, Duration::ZERO), None);
        assert_eq!(watermark.due(Some(20), Duration::from_secs(3600)), None, "interval not yet passed");
        assert_eq!(watermark.emitted, 10);
    }
}

#[cfg(test)]
mod idleness_tests {
    use super::*;

    #[test]
    fn idle_channels_leave_the_minimum_and_an_all_idle_gate_is_idle() {
        let mut gate = InputGate::new(GateCredits::new(2, 1, 0), 2);
        assert_eq!(gate.advance_watermark(0, 100), None);
        // Channel 1 goes idle: channel 0 alone sets the watermark; the gate is not idle.
        assert_eq!(gate.set_idle(1, true), (Some(100), None));
        // Channel 0 goes idle too: the whole gate is idle.
        assert_eq!(gate.set_idle(0, true), (None, Some(true)));
        // Channel 1 comes back behind the gate: active again, watermark does not go back.
        assert_eq!(gate.set_idle(1, false), (None, Some(false)));
        assert_eq!(gate.advance_watermark(1, 50), None);
        assert_eq!(gate.advance_watermark(1, 150), Some(150));
    }
}
