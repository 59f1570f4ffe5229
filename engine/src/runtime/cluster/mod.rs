//! Running one job across processes: a coordinator that drives it and workers that run its
//! subtasks, joined by a transport the engine only sees through [`ClusterNet`].
//!
//! **How a job reaches a worker.** A job's behaviour is code, so it does not travel. Every process
//! of a job runs the same program, which knows the job by name ([`protocol::JobSpec`]: a name and
//! arguments its [`JobRegistry`] turns into the same graph, as Flink's application mode and
//! timely-dataflow do). The coordinator (node 0, the process the user started) builds the graph
//! and plan, and sends each worker a `Deploy` with the job's name and arguments, the engine
//! configuration, its graph fingerprint and the slots of the plan the worker owns (worker k owns
//! the k-th run of `slots` consecutive slots). The worker builds the job itself, compares
//! fingerprints (refusing with the first operator that differs: `JobError::Deploy`), builds its
//! subtasks (restored from the checkpoint the coordinator sends along) and reports each spawned.
//! Once all are, the coordinator sends each subtask its peers' addresses (`Start`); a worker
//! connects a peer in its own process by actor reference and one elsewhere through a
//! [`RemoteLink`](crate::channel::transport::RemoteLink) to that process.
//!
//! **Driving it.** The coordinator runs the same job driver as a job in one process (checkpoint
//! coordinator, checkpoint store, restart strategy, sinks' committers); only where a subtask runs
//! differs ([`SubtaskHandle`]). Workers turn their subtasks' reports into [`protocol::WireReport`]s
//! (encoding keyed state there, off the task slots) and send them to the coordinator. Every
//! restart is a new attempt: control and data messages carry it, and what belongs to an older one
//! is dropped, so nothing of a failed attempt reaches the next.
//!
//! **Failures.** A worker whose connection closes fails the attempt (its subtasks are lost); a
//! subtask that cannot reach a peer fails by itself; a worker that loses the coordinator cancels
//! everything it runs. The restart strategy then decides, as in one process.

// rkyv's derive adds resolver types for enum variants that cannot carry docs; every item written
// here is documented.
mod alignment;
#[allow(missing_docs)]
pub mod protocol;
mod wire;
pub mod worker;

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorRef;

use self::protocol::{Address, DataStream, JobSpec, ToCoordinator, ToWorker};
use crate::channel::transport::{FrameBytes, LinkDown, ReceivedFrame, RemoteLink, WireEvent};
use crate::graph::fingerprint::GraphFingerprint;
use crate::graph::plan::ExecutionPlan;
use crate::operator::InputDecoder;
use crate::runtime::job::Deployment;
use crate::runtime::snapshot::JobSnapshot;
use crate::runtime::task::{SubtaskId, TaskMessage, TaskReport};

pub use self::worker::{JobRegistry, WorkerNode};

/// A process of a job's cluster: 0 is the coordinator, workers are 1 and up.
pub type NodeId = u32;

/// The node the coordinator runs as.
pub const COORDINATOR: NodeId = 0;

/// The process's connections to the others, as the engine uses them (the `tethys-net` crate
/// implements it over its mesh). Never blocks.
pub trait ClusterNet: Send + Sync + 'static {
    /// This process's node.
    fn me(&self) -> NodeId;
    /// A link for the data plane of attempt `attempt` to `node`.
    fn data_link(&self, node: NodeId, attempt: u32) -> Result<Arc<dyn RemoteLink>, LinkDown>;
    /// Sends an encoded control message ([`protocol::ToWorker`] or [`protocol::ToCoordinator`]).
    fn send_control(&self, node: NodeId, message: Vec<u8>) -> Result<(), LinkDown>;
}

/// What a data-plane message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// An encoded frame; the aux word is the sender's backlog.
    Frame,
    /// An encoded [`WireEvent`]; the aux word is the sender's backlog.
    Event,
    /// Credits; the aux word is their number.
    Credit,
}

/// Why a data-plane message reached no task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undeliverable {
    /// It belongs to another attempt than the one running (a failed one): dropped.
    #[error("a message of attempt {message} while attempt {running:?} runs")]
    StaleAttempt {
        /// The message's attempt (modulo 2^16).
        message: u16,
        /// The running attempt (modulo 2^16), if any.
        running: Option<u16>,
    },
    /// No such subtask runs here.
    #[error("no subtask {task}.{subtask} runs here")]
    UnknownSubtask {
        /// Task index.
        task: u16,
        /// Subtask index.
        subtask: u16,
    },
    /// An event's bytes are not an event.
    #[error(transparent)]
    MalformedEvent(#[from] crate::channel::transport::MalformedEvent),
    /// Credits that do not fit 32 bits.
    #[error("a credit message grants {0} credits")]
    BadCredit(u64),
}

/// A subtask in this process: its actor, and how its input frames decode.
#[derive(Clone)]
struct LocalTask {
    actor: ActorRef<TaskMessage>,
    input: Option<InputDecoder>,
}

/// The running attempt (if any) and its subtasks in this process.
type TaskTable = (Option<u32>, HashMap<SubtaskId, LocalTask>);

/// The subtasks of the running attempt in this process, by id: where the data plane delivers.
#[derive(Default)]
pub struct LocalTasks {
    table: RwLock<TaskTable>,
}

impl LocalTasks {
    /// Forgets every subtask; `attempt` is the one running from now on.
    pub(crate) fn reset(&self, attempt: Option<u32>) {
        let mut table = self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *table = (attempt, HashMap::new());
    }

    /// Records a spawned subtask of `attempt` (ignored if another attempt runs now).
    pub(crate) fn register(&self, attempt: u32, id: SubtaskId, actor: ActorRef<TaskMessage>, input: Option<InputDecoder>) {
        let mut table = self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.0 == Some(attempt) {
            table.1.insert(id, LocalTask { actor, input });
        }
    }

    /// The actor of subtask `id` of `attempt`, if it runs here.
    pub(crate) fn actor(&self, attempt: u32, id: SubtaskId) -> Option<ActorRef<TaskMessage>> {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (table.0 == Some(attempt)).then(|| table.1.get(&id).map(|task| task.actor.clone())).flatten()
    }

    /// Every actor of the running attempt.
    pub(crate) fn all(&self) -> Vec<ActorRef<TaskMessage>> {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        table.1.values().map(|task| task.actor.clone()).collect()
    }

    /// Every actor of `attempt`, if it is the running one.
    pub(crate) fn all_of(&self, attempt: u32) -> Vec<ActorRef<TaskMessage>> {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.0 == Some(attempt) {
            table.1.values().map(|task| task.actor.clone()).collect()
        } else {
            Vec::new()
        }
    }

    /// The subtask of the running attempt a data-plane message's stream names.
    fn task_of(&self, stream: DataStream) -> Result<LocalTask, Undeliverable> {
        let table = self.table.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = table.0.map(|attempt| attempt as u16);
        if running != Some(stream.attempt) {
            return Err(Undeliverable::StaleAttempt { message: stream.attempt, running });
        }
        let task = table.1.get(&(stream.task as usize, stream.subtask as usize)).cloned();
        task.ok_or(Undeliverable::UnknownSubtask { task: stream.task, subtask: stream.subtask })
    }

    /// Delivers a frame whose bytes the caller still holds (e.g. where they lie in the
    /// connection's receive buffer): decoded here, on the caller's thread, into the subtask's
    /// input type, so its bytes are copied once, into the frame's records, and the subtask
    /// receives a frame as from a producer in its own process. `Ok(false)`: not decoded here
    /// (bytes that are not a frame of that type, or a subtask without a decoder); deliver them
    /// with [`deliver`](Self::deliver), and the subtask fails naming the channel.
    pub fn deliver_frame_in_place(&self, stream: u64, aux: u64, bytes: &[u8]) -> Result<bool, Undeliverable> {
        let stream = DataStream::unpack(stream);
        let task = self.task_of(stream)?;
        let Some(Ok(frame)) = task.input.map(|decode| decode(bytes)) else { return Ok(false) };
        let event = crate::channel::credit::ChannelEvent::Frame(frame);
        // A stopped actor belongs to an attempt that is ending: nothing to deliver to.
        let _ = task.actor.send_message(TaskMessage::Event { channel: stream.port as usize, event, backlog: aux as u32 });
        Ok(true)
    }

    /// Delivers a data-plane message (see [`DataKind`]) to the subtask its stream names.
    pub fn deliver(&self, kind: DataKind, stream: u64, aux: u64, payload: Box<dyn FrameBytes>) -> Result<(), Undeliverable> {
        let stream = DataStream::unpack(stream);
        let actor = self.task_of(stream)?.actor;
        let channel = stream.port as usize;
        let message = match kind {
            DataKind::Frame => TaskMessage::RemoteFrame { channel, frame: ReceivedFrame(payload), backlog: aux as u32 },
            DataKind::Event => {
                let event = WireEvent::decode(payload.bytes())?.into_channel_event();
                TaskMessage::Event { channel, event, backlog: aux as u32 }
            }
            DataKind::Credit => {
                let credits = u32::try_from(aux).map_err(|_| Undeliverable::BadCredit(aux))?;
                let (output, channel) = DataStream::credit_target(stream.port);
                TaskMessage::Credit { output, channel, credits }
            }
        };
        // A stopped actor belongs to an attempt that is ending: nothing to deliver to.
        let _ = actor.send_message(message);
        Ok(())
    }
}

/// Where the driver reaches a subtask: an actor in this process, or a subtask on a worker.
#[derive(Clone)]
pub(crate) enum SubtaskHandle {
    /// An actor in this process.
    Local(ActorRef<TaskMessage>),
    /// Subtask `id` of attempt `attempt` on worker `node`.
    Remote { cluster: Arc<ClusterCoordinator>, node: NodeId, attempt: u32, id: SubtaskId },
}

impl SubtaskHandle {
    /// The actor, if the subtask runs in this process.
    pub(crate) fn local(&self) -> Option<&ActorRef<TaskMessage>> {
        match self {
            SubtaskHandle::Local(actor) => Some(actor),
            SubtaskHandle::Remote { .. } => None,
        }
    }

    /// Cancels the subtask (on a worker: every subtask of the attempt there).
    pub(crate) fn cancel(&self) {
        match self {
            SubtaskHandle::Local(actor) => {
                let _ = actor.send_message(TaskMessage::Cancel);
            }
            SubtaskHandle::Remote { cluster, node, attempt, .. } => cluster.send(*node, &ToWorker::Cancel { attempt: *attempt }),
        }
    }

    /// Asks a source subtask to take checkpoint `id`.
    pub(crate) fn trigger_checkpoint(&self, id: u64, unaligned: bool) {
        match self {
            SubtaskHandle::Local(actor) => {
                let _ = actor.send_message(TaskMessage::TriggerCheckpoint { id, unaligned });
            }
            SubtaskHandle::Remote { cluster, node, attempt, id: subtask } => {
                cluster.send(*node, &ToWorker::TriggerCheckpoint { attempt: *attempt, subtask: wire_id(*subtask), id, unaligned })
            }
        }
    }

    /// Tells a source subtask that checkpoint `id` completed.
    pub(crate) fn checkpoint_complete(&self, id: u64) {
        match self {
            SubtaskHandle::Local(actor) => {
                let _ = actor.send_message(TaskMessage::CheckpointComplete { id });
            }
            SubtaskHandle::Remote { cluster, node, attempt, id: subtask } => {
                cluster.send(*node, &ToWorker::CheckpointComplete { attempt: *attempt, subtask: wire_id(*subtask), id })
            }
        }
    }
}

fn wire_id((task, subtask): SubtaskId) -> protocol::WireSubtask {
    (task as u32, subtask as u32)
}

/// The worker of `workers` (in slot order) that owns `slot`.
fn node_of_slot(workers: &[WorkerSlots], slot: usize) -> NodeId {
    let mut first = 0;
    for worker in workers {
        if slot < first + worker.slots {
            return worker.node;
        }
        first += worker.slots;
    }
    panic!("slot {slot} beyond the workers' {first} slots: the plan was built for more")
}

/// The subtasks of `plan` that run on `node` among `workers`.
fn subtasks_on(workers: &[WorkerSlots], node: NodeId, plan: &ExecutionPlan) -> Vec<SubtaskId> {
    plan.tasks
        .iter()
        .flat_map(|task| task.slots.iter().enumerate().map(move |(subtask, &slot)| ((task.id, subtask), slot)))
        .filter(|&(_, slot)| node_of_slot(workers, slot) == node)
        .map(|(id, _)| id)
        .collect()
}

/// One worker of a job: its node and its number of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSlots {
    /// The worker's node.
    pub node: NodeId,
    /// Its slots.
    pub slots: usize,
}

/// The coordinator's side of a job on workers: deploys attempts, routes the workers' reports
/// into the job driver, and sends what the driver asks of remote subtasks.
pub struct ClusterCoordinator {
    net: Arc<dyn ClusterNet>,
    job: JobSpec,
    /// Every worker the cluster started with, in slot order.
    workers: Vec<WorkerSlots>,
    /// The running attempt and where its reports go.
    inbox: Mutex<Inbox>,
    /// Asked before each checkpoint completes (the control plane's log), if set.
    gate: Mutex<Option<crate::runtime::keeper::CheckpointGate>>,
    /// The job's first attempt is one the workers run already, to adopt (see [`Self::adopting`]).
    adopt_first: std::sync::atomic::AtomicBool,
    /// The live figures of the job's subtasks, as their workers last sent them.
    live: Arc<crate::runtime::live::LiveBoard>,
}

#[derive(Default)]
struct Inbox {
    /// The newest attempt deployed (0 before the first).
    attempt: u32,
    /// Where the running attempt's reports go; `None` between attempts.
    reports: Option<Sender<TaskReport>>,
    /// The running attempt's plan (to map slots to workers).
    plan: Option<ExecutionPlan>,
    /// The workers of the running attempt, in slot order: worker k owns the slots after those
    /// of the workers before it.
    attempt_workers: Vec<WorkerSlots>,
    /// Workers whose connection was lost: no later attempt uses them.
    lost: std::collections::BTreeSet<NodeId>,
    /// The running attempt is an adopted one; its number is learnt from the first worker that
    /// answers (0 until then).
    adopted: bool,
}

impl ClusterCoordinator {
    /// The coordinator of `job` on `workers` (in slot order), reaching them through `net`.
    pub fn new(net: Arc<dyn ClusterNet>, job: JobSpec, workers: Vec<WorkerSlots>) -> Arc<ClusterCoordinator> {
        assert!(workers.iter().all(|w| w.node != COORDINATOR && w.slots > 0), "workers are nodes 1 and up with slots");
        Arc::new(ClusterCoordinator {
            net,
            job,
            workers,
            inbox: Mutex::new(Inbox::default()),
            gate: Mutex::new(None),
            adopt_first: std::sync::atomic::AtomicBool::new(false),
            live: crate::runtime::live::LiveBoard::new(),
        })
    }

    /// The live figures of the job's subtasks, as their workers send them (about every second).
    pub fn live_board(&self) -> Arc<crate::runtime::live::LiveBoard> {
        Arc::clone(&self.live)
    }

    /// The coordinator of `job` whose workers (in slot order) already run an attempt of it, begun
    /// by a coordinator that was lost (the leader that drove it died): the job driver adopts that
    /// attempt instead of deploying one. It asks each worker to report to it, learns what its
    /// subtasks did meanwhile, and goes on checkpointing above every checkpoint they saw; nothing
    /// restarts. A worker that cannot be adopted fails the attempt (`JobError::Deploy`), and the
    /// job restarts from its checkpoint as after any failure.
    pub fn adopting(net: Arc<dyn ClusterNet>, job: JobSpec, workers: Vec<WorkerSlots>) -> Arc<ClusterCoordinator> {
        let cluster = ClusterCoordinator::new(net, job, workers);
        cluster.adopt_first.store(true, std::sync::atomic::Ordering::Release);
        cluster
    }

    /// Whether the next attempt is one to adopt (once: the attempts after it are deployed).
    pub(crate) fn adoption_due(&self) -> bool {
        self.adopt_first.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether the running attempt was adopted.
    pub(crate) fn adopted(&self) -> bool {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner).adopted
    }

    /// Makes every checkpoint of the job wait for `gate` before it completes and its sinks commit
    /// (see `CheckpointGate`). Set before the job runs.
    pub fn set_checkpoint_gate(&self, gate: crate::runtime::keeper::CheckpointGate) {
        *self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(gate);
    }

    pub(crate) fn checkpoint_gate(&self) -> Option<crate::runtime::keeper::CheckpointGate> {
        self.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The slots of all workers together: what the first attempt's plan is built for.
    pub fn total_slots(&self) -> usize {
        self.workers.iter().map(|w| w.slots).sum()
    }

    /// The workers not lost, in slot order: where the next attempt runs.
    pub(crate) fn live_workers(&self) -> Vec<WorkerSlots> {
        let inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.workers.iter().copied().filter(|worker| !inbox.lost.contains(&worker.node)).collect()
    }

    /// The worker of the running attempt that owns `slot` of its plan.
    fn node_of_slot(&self, slot: usize) -> NodeId {
        let inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        node_of_slot(&inbox.attempt_workers, slot)
    }

    /// The subtasks of the running attempt's plan that run on `node`.
    pub(crate) fn subtasks_of(&self, node: NodeId, plan: &ExecutionPlan) -> Vec<SubtaskId> {
        subtasks_on(&self.attempt_workers(), node, plan)
    }

    fn address(&self, plan: &ExecutionPlan, (task, subtask): SubtaskId) -> Address {
        Address { node: self.node_of_slot(plan.tasks[task].slots[subtask]), task: task as u32, subtask: subtask as u32 }
    }

    /// Sends a control message to a worker; a worker that cannot be reached is reported by the
    /// transport (`on_peer_lost`), which fails the attempt.
    fn send(&self, node: NodeId, message: &ToWorker) {
        let bytes = protocol::encode(message).expect("control messages always encode");
        let _ = self.net.send_control(node, bytes);
    }

    fn attempt_workers(&self) -> Vec<WorkerSlots> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner).attempt_workers.clone()
    }

    pub(crate) fn current_attempt(&self) -> u32 {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner).attempt
    }

    /// Deploys a new attempt of the job on `workers` (the live ones its plan was built for, in
    /// slot order), restored from `restore`; its reports go to `reports`. A worker of them lost
    /// since fails the attempt at once. Returns the attempt.
    pub(crate) fn deploy(
        self: &Arc<Self>,
        deployment: &Deployment,
        workers: &[WorkerSlots],
        restore: Option<&JobSnapshot>,
        reports: Sender<TaskReport>,
    ) -> u32 {
        assert_eq!(workers.iter().map(|w| w.slots).sum::<usize>(), deployment.plan.slots, "the plan is built for these workers' slots");
        let attempt = {
            let mut inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inbox.attempt += 1;
            inbox.adopted = false;
            inbox.plan = Some(deployment.plan.clone());
            inbox.attempt_workers = workers.to_vec();
            // Lost between planning and now: its subtasks are lost already.
            for worker in workers.iter().filter(|worker| inbox.lost.contains(&worker.node)) {
                let subtasks = subtasks_on(workers, worker.node, &deployment.plan);
                let reason = format!("worker {} was lost as the attempt was deployed", worker.node);
                let _ = reports.send(TaskReport::SlotLost { subtasks, reason });
            }
            inbox.reports = Some(reports);
            inbox.attempt
        };
        let config = serde_json::to_string(&deployment.config).expect("an engine configuration always serializes");
        let fingerprint = serde_json::to_string(&GraphFingerprint::of(&deployment.graph)).expect("a fingerprint always serializes");
        let restore = restore.map(|snapshot| crate::base::codec::encode(snapshot).expect("a checkpoint always encodes"));
        let mut first = 0u32;
        for worker in workers {
            let slots = (first, first + worker.slots as u32);
            first = slots.1;
            let message = ToWorker::Deploy {
                attempt,
                job: self.job.clone(),
                config: config.clone(),
                fingerprint: fingerprint.clone(),
                slots,
                restore: restore.clone(),
            };
            let bytes = protocol::encode(&message).expect("control messages always encode");
            if let Err(error) = self.net.send_control(worker.node, bytes) {
                self.worker_lost(worker.node, &error.to_string());
            }
        }
        attempt
    }

    /// Adopts the attempt every worker runs (see [`Self::adopting`]); its reports go to `reports`.
    pub(crate) fn adopt(self: &Arc<Self>, deployment: &Deployment, reports: Sender<TaskReport>) {
        assert!(self.adopt_first.swap(false, std::sync::atomic::Ordering::AcqRel), "an attempt is adopted once, first");
        let workers = {
            let mut inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            inbox.adopted = true;
            inbox.reports = Some(reports);
            inbox.plan = Some(deployment.plan.clone());
            inbox.attempt_workers = self.workers.clone();
            inbox.attempt_workers.clone()
        };
        assert_eq!(workers.iter().map(|w| w.slots).sum::<usize>(), deployment.plan.slots, "the plan is built for the workers' slots");
        let fingerprint = serde_json::to_string(&GraphFingerprint::of(&deployment.graph)).expect("a fingerprint always serializes");
        for worker in &workers {
            let bytes = protocol::encode(&ToWorker::Adopt { fingerprint: fingerprint.clone() }).expect("control messages always encode");
            if let Err(error) = self.net.send_control(worker.node, bytes) {
                self.worker_lost(worker.node, &error.to_string());
            }
        }
    }

    /// Checkpoint `id` completed: every worker of the running attempt may forget the
    /// pre-commits it kept of it and of those before.
    pub(crate) fn checkpoint_completed(&self, id: u64) {
        let attempt = self.current_attempt();
        for worker in &self.attempt_workers() {
            self.send(worker.node, &ToWorker::CheckpointCompleted { attempt, id });
        }
    }

    /// The attempt ended: later reports of it are dropped.
    pub(crate) fn attempt_ended(&self, attempt: u32) {
        let mut inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if inbox.attempt == attempt {
            inbox.reports = None;
        }
    }

    /// Cancels the running attempt on every worker.
    pub(crate) fn cancel_attempt(&self) {
        let attempt = self.current_attempt();
        for worker in &self.attempt_workers() {
            self.send(worker.node, &ToWorker::Cancel { attempt });
        }
    }

    /// Sends every subtask of the running attempt its peers: the job starts.
    pub(crate) fn start_all(&self, plan: &ExecutionPlan) {
        let attempt = self.current_attempt();
        for task in &plan.tasks {
            for subtask in 0..task.parallelism {
                let outputs = crate::runtime::job::output_peers(plan, task.id, subtask)
                    .into_iter()
                    .map(|channels| channels.into_iter().map(|(consumer, gate)| (self.address(plan, consumer), gate as u32)).collect())
                    .collect();
                let inputs = crate::runtime::job::input_peers(plan, task.id, subtask)
                    .into_iter()
                    .map(|(producer, output, channel)| (self.address(plan, producer), output as u32, channel as u32))
                    .collect();
                let node = self.address(plan, (task.id, subtask)).node;
                self.send(node, &ToWorker::Start { attempt, subtask: wire_id((task.id, subtask)), outputs, inputs });
            }
        }
    }

    /// Tells every worker the job is over.
    pub fn shutdown_workers(&self) {
        for worker in &self.workers {
            self.send(worker.node, &ToWorker::Shutdown);
        }
    }

    /// A control message from worker `from`.
    pub fn on_control(self: &Arc<Self>, from: NodeId, bytes: &[u8]) {
        let message = match protocol::decode::<ToCoordinator>(bytes) {
            Ok(message) => message,
            Err(error) => {
                self.worker_lost(from, &format!("sent a control message that does not decode: {error}"));
                return;
            }
        };
        let mut inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (attempt, report) = match message {
            ToCoordinator::DeployRefused { attempt, reason } => (attempt, TaskReport::DeployRefused { worker: from, reason }),
            ToCoordinator::Adopted { attempt, newest_checkpoint } if inbox.adopted => {
                if inbox.attempt == 0 {
                    inbox.attempt = attempt;
                }
                if attempt == inbox.attempt {
                    (attempt, TaskReport::Adopted { newest_checkpoint })
                } else {
                    // The old coordinator was redeploying: its workers run different attempts.
                    let reason = format!("it runs attempt {attempt} while another worker runs attempt {}", inbox.attempt);
                    (inbox.attempt, TaskReport::DeployRefused { worker: from, reason: format!("cannot be adopted: {reason}") })
                }
            }
            ToCoordinator::AdoptRefused { reason } if inbox.adopted => {
                (inbox.attempt, TaskReport::DeployRefused { worker: from, reason: format!("cannot be adopted: {reason}") })
            }
            ToCoordinator::Adopted { .. } | ToCoordinator::AdoptRefused { .. } => return, // not adopting (any more)
            ToCoordinator::Alignment { attempt, seats } => {
                // Passed on to the attempt's other workers: the only ones that hold other seats.
                if attempt == inbox.attempt {
                    let bytes = protocol::encode(&ToWorker::Alignment { attempt, seats }).expect("control messages always encode");
                    for worker in inbox.attempt_workers.iter().filter(|worker| worker.node != from) {
                        let _ = self.net.send_control(worker.node, bytes.clone());
                    }
                }
                return;
            }
            ToCoordinator::Live { attempt, readings, outputs } => {
                if attempt == inbox.attempt {
                    self.live.retain_attempt(attempt);
                    readings.into_iter().filter(|reading| reading.attempt == attempt).for_each(|reading| self.live.publish(reading));
                    outputs.into_iter().filter(|sample| sample.attempt == attempt).for_each(|sample| self.live.publish_output(sample));
                }
                return;
            }
            ToCoordinator::Report { attempt, report } => (attempt, wire::into_task_report(report, self, from, attempt)),
        };
        if attempt == inbox.attempt {
            if let Some(reports) = &inbox.reports {
                let _ = reports.send(report);
            }
        }
    }

    /// Worker `node` is gone (its connection closed): the running attempt loses its subtasks.
    pub fn on_peer_lost(&self, node: NodeId, reason: &str) {
        self.worker_lost(node, reason);
    }

    fn worker_lost(&self, node: NodeId, reason: &str) {
        let mut inbox = self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !inbox.lost.insert(node) {
            return;
        }
        if let (Some(reports), Some(plan)) = (&inbox.reports, &inbox.plan) {
            let subtasks = subtasks_on(&inbox.attempt_workers, node, plan);
            let _ = reports.send(TaskReport::SlotLost { subtasks, reason: format!("worker {node} is lost: {reason}") });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;

    /// A network that carries every control message and no data.
    struct ControlOnly;

    impl ClusterNet for ControlOnly {
        fn me(&self) -> NodeId {
            0
        }

        fn data_link(&self, node: NodeId, _attempt: u32) -> Result<Arc<dyn RemoteLink>, LinkDown> {
            Err(LinkDown { peer: format!("node {node}"), reason: "no data plane here".into() })
        }

        fn send_control(&self, _node: NodeId, _message: Vec<u8>) -> Result<(), LinkDown> {
            Ok(())
        }
    }

    /// An actor that passes every message it receives on to a channel.
    struct Recorder;

    impl ractor::Actor for Recorder {
        type Msg = TaskMessage;
        type State = std::sync::mpsc::Sender<TaskMessage>;
        type Arguments = std::sync::mpsc::Sender<TaskMessage>;

        async fn pre_start(&self, _: ActorRef<TaskMessage>, sender: Self::Arguments) -> Result<Self::State, ractor::ActorProcessingErr> {
            Ok(sender)
        }

        async fn handle(
            &self,
            _: ActorRef<TaskMessage>,
            message: TaskMessage,
            sender: &mut Self::State,
        ) -> Result<(), ractor::ActorProcessingErr> {
            let _ = sender.send(message);
            Ok(())
        }
    }

    #[test]
    fn a_frame_read_where_it_lies_reaches_its_subtask_decoded_and_bytes_that_are_not_one_are_left_to_the_usual_way() {
        // The actor runs on a thread of its own while this test waits on the channel.
        let (received_tx, received) = channel();
        let (actor_tx, actor) = channel();
        let running = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let (actor, handle) = ractor::Actor::spawn(None, Recorder, received_tx).await.unwrap();
                actor_tx.send(actor).unwrap();
                handle.await.unwrap();
            });
        });
        let actor: ActorRef<TaskMessage> = actor.recv().unwrap();
        let tasks = LocalTasks::default();
        tasks.reset(Some(3));
        let decoder: InputDecoder = crate::frame::AnyFrame::decode::<u64>;
        tasks.register(3, (1, 0), actor.clone(), Some(decoder));
        tasks.register(3, (0, 0), actor.clone(), None);
        let stream = |attempt, task| DataStream { attempt, task, subtask: 0, port: 2 }.pack();
        let frame = crate::frame::AnyFrame::new(vec![7u64, 8, 9]).encode().unwrap();
        // Placed at an odd address, as a frame in a connection's ring may be.
        let mut unaligned = vec![0u8];
        unaligned.extend_from_slice(&frame);

        assert_eq!(tasks.deliver_frame_in_place(stream(3, 1), 5, &unaligned[1..]), Ok(true));
        assert_eq!(tasks.deliver_frame_in_place(stream(3, 1), 5, b"not a frame"), Ok(false), "the task reports what is wrong");
        assert_eq!(tasks.deliver_frame_in_place(stream(3, 0), 5, &frame), Ok(false), "no decoder: delivered as bytes");
        assert_eq!(
            tasks.deliver_frame_in_place(stream(2, 1), 5, &frame),
            Err(Undeliverable::StaleAttempt { message: 2, running: Some(3) })
        );
        assert_eq!(tasks.deliver_frame_in_place(stream(3, 4), 5, &frame), Err(Undeliverable::UnknownSubtask { task: 4, subtask: 0 }));
        match received.recv_timeout(std::time::Duration::from_secs(10)).unwrap() {
            TaskMessage::Event { channel, event: crate::channel::credit::ChannelEvent::Frame(frame), backlog } => {
                assert_eq!((channel, backlog), (2, 5));
                assert_eq!(frame.into_typed::<u64>(), vec![7, 8, 9]);
            }
            _ => panic!("the frame arrives as a decoded frame event"),
        }
        assert!(received.try_recv().is_err(), "only the frame that decoded was delivered");
        actor.stop(None);
        running.join().unwrap();
    }

    #[test]
    fn a_worker_lost_between_planning_and_deploying_fails_the_attempt_at_once() {
        let workers = vec![WorkerSlots { node: 1, slots: 1 }, WorkerSlots { node: 2, slots: 1 }];
        let cluster = ClusterCoordinator::new(Arc::new(ControlOnly), JobSpec { name: "lost".into(), args: vec![] }, workers);
        let deployment = crate::runtime::job::two_slot_deployment("lost");
        // Planned for both workers; the second is lost before the attempt is deployed.
        let planned = cluster.live_workers();
        cluster.worker_lost(2, "killed");
        let (reports_tx, reports) = channel();
        cluster.deploy(&deployment, &planned, None, reports_tx);
        let on = |node| subtasks_on(&planned, node, &deployment.plan);
        match reports.try_recv() {
            Ok(TaskReport::SlotLost { subtasks, reason }) => {
                assert_eq!(subtasks, on(2));
                assert!(reason.contains("worker 2"), "{reason}");
            }
            _ => panic!("the attempt must fail at once, its lost worker's subtasks reported"),
        }
        // The attempt's plan and workers agree: the other worker's loss finds its subtasks.
        cluster.worker_lost(1, "killed");
        match reports.try_recv() {
            Ok(TaskReport::SlotLost { subtasks, .. }) => assert_eq!(subtasks, on(1)),
            _ => panic!("the other worker's loss must be reported"),
        }
    }
}
