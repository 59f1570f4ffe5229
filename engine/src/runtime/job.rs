//! The job driver: deploys an execution plan onto slots, wires the task actors, waits for them and
//! turns their reports into a `JobResult` or the first failure; restarts a failed job from its
//! newest checkpoint as the restart strategy allows (each restart is a new *attempt*: every
//! subtask is built anew, sources seek to their checkpointed positions and keyed operators get
//! the key groups of their range back, whatever parallelism the checkpoint was taken at).
//!
//! Each slot is a thread pinned to a core running a single-threaded tokio runtime (timers and
//! the I/O driver, so async I/O functions can use sockets); the slot spawns
//! its subtasks' actors there, so an actor never leaves its core. Wiring happens in two steps
//! because an actor reference exists only once the actor is spawned: slots spawn and report every
//! actor, then the driver sends each its peers and the job starts. On the first failure the driver
//! cancels every actor and returns the failure; a slot that loses an actor without a report makes
//! the job fail too, so the driver never waits on a task that cannot finish.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorRef};
use serde::Serialize;

use super::alignment::AlignmentGroup;
use super::checkpoint::{BarrierAligner, CheckpointCoordinator, CheckpointStats};
use super::cluster::SubtaskHandle;
use super::keeper::CheckpointKeeper;
use super::restart::RestartTracker;
use super::snapshot::{JobSnapshot, RestoreState};
use super::task::{
    InputGate, SourceWatermark, SubtaskId, SubtaskMetrics, TaskActor, TaskHead, TaskMessage, TaskOutput, TaskReport, TaskSettings,
    TaskState,
};
use crate::base::{OperatorFailure, SubtaskContext, UserError};
use crate::channel::credit::{CreditSender, GateCredits};
use crate::channel::partitioner::Partitioning;
use crate::channel::transport::Endpoint;
use crate::config::EngineConfig;
use crate::error::JobError;
use crate::graph::logical::{GraphFactories, JobGraph, NodeFactory, PartitionerSetup};
use crate::graph::plan::ExecutionPlan;
use crate::operator::OperatorChain;

/// Counts of one operator over all its subtasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorMetrics {
    /// Node id in the job graph.
    pub node: usize,
    /// Operator name.
    pub name: String,
    /// Parallelism it ran with.
    pub parallelism: usize,
    /// Records taken in.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Operator-specific counters (e.g. `late_records_dropped`), summed over subtasks.
    pub extra: std::collections::BTreeMap<String, u64>,
}

/// Flow-control figures over all channels of the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChannelMetrics {
    /// Most frames queued at any one input gate at once.
    pub gate_queued_frames_peak: u32,
    /// Smallest buffer capacity of an input gate: the bound the peak must stay within.
    pub gate_capacity_min: u32,
    /// Most frames waiting for credit on any one output channel at once.
    pub output_backlog_frames_peak: u32,
    /// Bytes of frames encoded for consumers in other processes (or for every consumer, with
    /// `EngineConfig::encode_channels`).
    pub encoded_bytes: u64,
}

/// What a finished job reports.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// The job's name.
    pub job: String,
    /// Time from start of the tasks to the last task finishing.
    pub elapsed: Duration,
    /// Counts per operator, in graph order.
    pub operators: Vec<OperatorMetrics>,
    /// Flow-control figures.
    pub channels: ChannelMetrics,
    /// Checkpoints taken (all zero when checkpointing is off), over all attempts.
    pub checkpoints: CheckpointStats,
    /// Times the job was restarted from a checkpoint after a failure. The operator counts above
    /// are those of the last attempt.
    pub restarts: u32,
    /// The savepoint the job was stopped with (`JobClient::stop_with_savepoint`), if it was.
    pub stopped_with_savepoint: Option<std::path::PathBuf>,
    /// After the last restart: from the moment every task of the failed attempt had stopped to
    /// the moment every task of the last attempt was running (the restart delay included).
    pub last_recovery: Option<Duration>,
}

impl JobResult {
    /// The metrics of the first operator with this name.
    pub fn operator(&self, name: &str) -> Option<&OperatorMetrics> {
        self.operators.iter().find(|o| o.name == name)
    }

    /// Records emitted by all sources.
    pub fn source_records(&self, graph: &JobGraph) -> u64 {
        self.operators
            .iter()
            .filter(|o| graph.nodes[o.node].kind == crate::graph::logical::OperatorKind::Source)
            .map(|o| o.records_out)
            .sum()
    }
}

/// Everything a slot thread needs to build its subtasks.
pub(crate) struct Deployment {
    pub(crate) job: String,
    pub(crate) graph: JobGraph,
    pub(crate) factories: GraphFactories,
    pub(crate) plan: ExecutionPlan,
    pub(crate) config: EngineConfig,
    /// Per aligned source node: its group, the group index of its subtask 0, its max drift (ms).
    pub(crate) alignment: HashMap<usize, (Arc<AlignmentGroup>, usize, i64)>,
    /// Where the subtasks run when they run on other processes (workers); `None`: here.
    pub(crate) cluster: Option<Arc<super::cluster::ClusterCoordinator>>,
    /// Where this process's subtasks publish their live figures.
    pub(crate) live: Arc<super::live::LiveBoard>,
    /// The attempt being run (its subtasks' readings carry it).
    pub(crate) attempt: std::sync::atomic::AtomicU32,
}

/// The watermark alignment groups of a job's sources: one seat per source subtask.
pub(crate) fn alignment_groups(graph: &JobGraph) -> HashMap<usize, (Arc<AlignmentGroup>, usize, i64)> {
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for node in &graph.nodes {
        if let Some(alignment) = &node.watermark_alignment {
            members.entry(alignment.group.as_str()).or_default().push(node.id);
        }
    }
    let mut seats = HashMap::new();
    for (name, nodes) in members {
        let group = AlignmentGroup::new(name, nodes.iter().map(|&n| graph.parallelism_of(n)).sum());
        let mut first = 0;
        for node in nodes {
            let max_drift_ms = graph.nodes[node].watermark_alignment.as_ref().map_or(0, |a| a.max_drift_ms);
            seats.insert(node, (Arc::clone(&group), first, i64::try_from(max_drift_ms).unwrap_or(i64::MAX)));
            first += graph.parallelism_of(node);
        }
    }
    seats
}

/// Where a job's subtasks run.
pub(crate) enum RunsOn {
    /// In this process, publishing their live figures on this board.
    Here(Arc<super::live::LiveBoard>),
    /// On the workers of a cluster (whose coordinator's board holds their figures).
    Cluster(Arc<super::cluster::ClusterCoordinator>),
}

/// Runs a planned job to completion, restarting it from its newest checkpoint after a failure
/// as the restart strategy allows.
pub(crate) fn run_job(
    job: &str,
    graph: JobGraph,
    factories: GraphFactories,
    plan: ExecutionPlan,
    config: EngineConfig,
    control: Option<Receiver<ControlCommand>>,
    runs_on: RunsOn,
) -> Result<JobResult, JobError> {
    let (cluster, live) = match runs_on {
        RunsOn::Here(live) => (None, live),
        RunsOn::Cluster(cluster) => {
            let live = cluster.live_board();
            (Some(cluster), live)
        }
    };
    let alignment = alignment_groups(&graph);
    let mut deployment = Arc::new(Deployment {
        job: job.to_string(),
        graph,
        factories,
        plan,
        config,
        alignment,
        cluster,
        live,
        attempt: Default::default(),
    });
    let mut attempt = 0;
    let mut keeper = open_keeper(&deployment)?;
    let total = deployment.plan.subtask_count();
    let mut coordinator = CheckpointCoordinator::new(deployment.config.checkpoint_interval, total, keeper.newest_id() + 1);
    let mut restarts = RestartTracker::new(deployment.config.effective_restart_strategy());
    // When the last failed attempt had stopped, to measure how long recovering took.
    let mut failed_at: Option<Instant> = None;
    loop {
        // On a cluster that lost workers, the next attempt runs on those left: planned anew, for
        // the workers live now (one lost meanwhile fails the attempt at once).
        let live_workers = deployment.cluster.as_ref().map(|cluster| cluster.live_workers()).unwrap_or_default();
        if deployment.cluster.is_some() {
            let slots: usize = live_workers.iter().map(|worker| worker.slots).sum();
            if slots == 0 {
                return Err(runtime_error(job, "no worker is left to run the job".to_string()));
            }
            if slots != deployment.plan.slots {
                let plan =
                    ExecutionPlan::build(&deployment.graph, slots).map_err(|source| JobError::Graph { job: job.to_string(), source })?;
                let d = &*deployment;
                deployment = Arc::new(Deployment {
                    job: d.job.clone(),
                    graph: d.graph.clone(),
                    factories: d.factories.clone(),
                    plan,
                    config: EngineConfig { slots, ..d.config.clone() },
                    alignment: alignment_groups(&d.graph),
                    cluster: d.cluster.clone(),
                    live: Arc::clone(&d.live),
                    attempt: Default::default(),
                });
            }
        }
        // Readings of subtasks of this process carry their attempt; older ones are forgotten (on
        // a cluster the coordinator's board follows its own attempts).
        attempt += 1;
        deployment.attempt.store(attempt, std::sync::atomic::Ordering::Relaxed);
        if deployment.cluster.is_none() {
            deployment.live.retain_attempt(attempt);
        }
        let restore = match keeper.latest() {
            Some(snapshot) => Some(Arc::new(
                RestoreState::prepare(snapshot, &deployment.graph).map_err(|source| JobError::Restore { job: job.to_string(), source })?,
            )),
            None => None,
        };
        // An attempt adopted from a lost driver runs on: nothing it pre-committed is aborted.
        let adopting = deployment.cluster.as_ref().is_some_and(|cluster| cluster.adoption_due());
        let begun = match adopting {
            true => keeper.begin_adopted(&deployment.graph, restore.as_deref()),
            false => keeper.begin_attempt(&deployment.graph, restore.as_deref()),
        };
        let outcome = begun
            .map_err(|error| runtime_error(job, error.to_string()))
            .and_then(|()| run_attempt(&deployment, &live_workers, restore, &mut keeper, &mut coordinator, control.as_ref()));
        let keeper_error = |error: super::keeper::KeeperError| runtime_error(job, error.to_string());
        match outcome {
            Ok(mut result) => {
                if result.stopped_with_savepoint.is_some() {
                    keeper.job_stopped(&deployment.graph).map_err(keeper_error)?;
                } else {
                    keeper.job_finished(&deployment.graph).map_err(keeper_error)?;
                }
                result.checkpoints = coordinator.stats();
                result.restarts = restarts.restarts();
                result.last_recovery = failed_at.and_then(|failed| (Instant::now() - result.elapsed).checked_duration_since(failed));
                return Ok(result);
            }
            Err(error @ JobError::Cancelled { .. }) => {
                keeper.job_stopped(&deployment.graph).map_err(keeper_error)?;
                return Err(error);
            }
            // A worker that built another job builds it again on a restart.
            Err(error @ JobError::Deploy { .. }) => return Err(error),
            Err(error) => {
                let now = Instant::now();
                failed_at = Some(now);
                let Some(delay) = restarts.on_failure(now) else { return Err(error) };
                eprintln!(
                    "job '{job}' failed ({error}); restarting from checkpoint {} in {delay:?}",
                    keeper.latest().map_or("none (from the start)".to_string(), |snapshot| snapshot.checkpoint.to_string())
                );
                std::thread::sleep(delay);
                coordinator.restart();
            }
        }
    }
}

/// Opens the job's checkpoint store, reads what it starts from, and creates the sinks' committers.
fn open_keeper(deployment: &Deployment) -> Result<CheckpointKeeper, JobError> {
    let Deployment { job, factories, config, .. } = deployment;
    let failed = |reason: String| runtime_error(job, reason);
    let store = config
        .checkpoint_dir
        .as_deref()
        .map(|dir| tethys_storage::checkpoint_store::CheckpointStore::open(dir, config.checkpoints_retained))
        .transpose()
        .map_err(|error| failed(format!("checkpoint store: {error}")))?;
    let initial = match &config.restore_from {
        Some(path) => {
            Some(JobSnapshot::read_path(path).map_err(|error| failed(format!("cannot restore from {}: {error}", path.display())))?)
        }
        None => None,
    };
    let mut committers = BTreeMap::new();
    for (node, factory) in &factories.committers {
        let created = catch_unwind(AssertUnwindSafe(|| factory()));
        let committer = match created {
            Ok(Ok(committer)) => committer,
            Ok(Err(error)) => {
                return Err(failed(format!("sink '{}' cannot create its committer: {error}", deployment.graph.nodes[*node].name)))
            }
            Err(payload) => {
                let failure = OperatorFailure::from_panic(payload);
                return Err(failed(format!("sink '{}' cannot create its committer: {failure}", deployment.graph.nodes[*node].name)));
            }
        };
        if let Some(committer) = committer {
            committers.insert(*node, committer);
        }
    }
    let gate = deployment.cluster.as_ref().and_then(|cluster| cluster.checkpoint_gate());
    Ok(CheckpointKeeper::new(store, initial, committers).with_gate(gate))
}

/// Runs one attempt of the job: spawns every subtask (restored from `restore`; on a cluster, on
/// `workers`, which its plan is built for), drives them to the end or the first failure.
fn run_attempt(
    deployment: &Arc<Deployment>,
    workers: &[super::cluster::WorkerSlots],
    restore: Option<Arc<RestoreState>>,
    keeper: &mut CheckpointKeeper,
    coordinator: &mut CheckpointCoordinator,
    control: Option<&Receiver<ControlCommand>>,
) -> Result<JobResult, JobError> {
    let (reports_tx, reports) = channel();
    if let Some(cluster) = &deployment.cluster {
        // The subtasks run on the workers: they report through the cluster's inbox.
        if cluster.adoption_due() {
            cluster.adopt(deployment, reports_tx);
        } else {
            cluster.deploy(deployment, workers, keeper.latest().map(|snapshot| &**snapshot), reports_tx);
        }
        let outcome = drive(deployment, &reports, keeper, coordinator, control);
        cluster.attempt_ended(cluster.current_attempt());
        return outcome;
    }
    let threads = spawn_slots(deployment, restore, 0..deployment.plan.slots, &reports_tx);
    drop(reports_tx);
    let outcome = drive(deployment, &reports, keeper, coordinator, control);
    // Every actor has stopped or been cancelled; the slot threads end once their actors have.
    let mut panicked = None;
    for thread in threads {
        if thread.join().is_err() {
            panicked = Some(runtime_error(&deployment.job, "a slot thread panicked".to_string()));
        }
    }
    match (outcome, panicked) {
        (Err(error), _) => Err(error),
        (Ok(_), Some(error)) => Err(error),
        (Ok(result), None) => Ok(result),
    }
}

/// Starts one thread per slot in `slots` that has subtasks of the plan, each building, spawning
/// and watching its subtasks; every report goes to `reports_tx`.
pub(crate) fn spawn_slots(
    deployment: &Arc<Deployment>,
    restore: Option<Arc<RestoreState>>,
    slots: std::ops::Range<usize>,
    reports_tx: &Sender<TaskReport>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut per_slot: Vec<Vec<SubtaskId>> = vec![Vec::new(); deployment.plan.slots];
    for task in &deployment.plan.tasks {
        for (subtask, &slot) in task.slots.iter().enumerate() {
            per_slot[slot].push((task.id, subtask));
        }
    }
    let core_ids = if deployment.config.pin_slots { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    let mut threads = Vec::new();
    for (slot, subtasks) in per_slot.into_iter().enumerate() {
        if subtasks.is_empty() || !slots.contains(&slot) {
            continue;
        }
        let core = (!core_ids.is_empty()).then(|| core_ids[slot % core_ids.len()]);
        let slot_deployment = Arc::clone(deployment);
        let slot_restore = restore.clone();
        let reports = reports_tx.clone();
        let unplaced = subtasks.clone();
        let spawned = std::thread::Builder::new().name(format!("tethys-slot-{slot}")).spawn(move || {
            let lost = subtasks.clone();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_slot(&slot_deployment, slot_restore.as_deref(), core, subtasks, reports.clone())
            }));
            if let Err(payload) = ran {
                // Its actors and watchers went with its runtime: nothing else will report them.
                let reason = format!("slot {slot} {}", OperatorFailure::from_panic(payload));
                let _ = reports.send(TaskReport::SlotLost { subtasks: lost, reason });
            }
        });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(error) => {
                // Reported like any other start failure, so the driver cancels what did start.
                for id in unplaced {
                    let failure = OperatorFailure::Failed(format!("cannot start slot thread {slot}: {error}").into());
                    let _ = reports_tx.send(TaskReport::Failed { id, position: 0, failure });
                }
            }
        }
    }
    threads
}

fn runtime_error(job: &str, reason: String) -> JobError {
    JobError::Runtime { job: job.to_string(), reason }
}

/// Spawns the subtasks of one slot on a runtime pinned to `core`, and waits for their actors.
pub(crate) fn run_slot(
    deployment: &Deployment,
    restore: Option<&RestoreState>,
    core: Option<core_affinity::CoreId>,
    subtasks: Vec<SubtaskId>,
    reports: Sender<TaskReport>,
) {
    if let Some(core) = core {
        // Pinning is a performance measure; a machine that forbids it still runs the job.
        let _ = core_affinity::set_for_current(core);
    }
    // Timers for ticks and retries; the I/O driver for async I/O functions that use sockets.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().enable_io().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            for id in subtasks {
                let failure = OperatorFailure::Failed(format!("cannot build the slot's runtime: {error}").into());
                let _ = reports.send(TaskReport::Failed { id, position: 0, failure });
            }
            return;
        }
    };
    runtime.block_on(async {
        // One watcher per actor reports its end the moment it happens: an actor that dies behind
        // one that runs forever is reported all the same.
        let mut watchers = tokio::task::JoinSet::new();
        for id in subtasks {
            let state = match build_subtask(deployment, restore, id, reports.clone()) {
                Ok(state) => state,
                Err((position, failure)) => {
                    let _ = reports.send(TaskReport::Failed { id, position, failure });
                    continue;
                }
            };
            let input = state.chain.input_decoder();
            match Actor::spawn(None, TaskActor, state).await {
                Ok((actor, handle)) => {
                    let _ = reports.send(TaskReport::Spawned { id, actor: SubtaskHandle::Local(actor), input });
                    let reports = reports.clone();
                    watchers.spawn(async move {
                        let _ = handle.await;
                        let _ = reports.send(TaskReport::Stopped { id });
                    });
                }
                Err(error) => {
                    let failure = OperatorFailure::Failed(format!("cannot spawn the task actor: {error}").into());
                    let _ = reports.send(TaskReport::Failed { id, position: 0, failure });
                }
            }
        }
        while watchers.join_next().await.is_some() {}
    });
}

/// Runs one piece of user code that builds part of a subtask (a reader, an operator, a writer, a
/// watermark generator): its error or panic becomes the failure of chain position `position`.
fn build_guarded<T>(position: usize, build: impl FnOnce() -> Result<T, UserError>) -> Result<T, (usize, OperatorFailure)> {
    match catch_unwind(AssertUnwindSafe(build)) {
        Ok(Ok(built)) => Ok(built),
        Ok(Err(error)) => Err((position, OperatorFailure::Failed(error))),
        Err(payload) => Err((position, OperatorFailure::from_panic(payload))),
    }
}

/// Creates the source reader, operators, input gate and output channels of one subtask.
///
/// Every call into user code is guarded: a panic while building fails the job like a panic while
/// running, naming the operator, instead of taking the slot thread down unreported.
fn build_subtask(
    deployment: &Deployment,
    restore: Option<&RestoreState>,
    id: SubtaskId,
    reports: Sender<TaskReport>,
) -> Result<TaskState, (usize, OperatorFailure)> {
    let Deployment { graph, factories, plan, config, .. } = deployment;
    let (task_id, subtask) = id;
    let task = &plan.tasks[task_id];
    let attempt = deployment.attempt.load(std::sync::atomic::Ordering::Relaxed);
    let context = |node: usize| SubtaskContext {
        operator_name: graph.nodes[node].name.clone(),
        subtask_index: subtask,
        parallelism: task.parallelism,
        max_parallelism: graph.max_parallelism,
        frame_records_max: config.frame_records_max,
        frame_bytes_max: config.frame_bytes_max,
        watermark_interval: config.watermark_interval,
        side_outputs: graph.nodes[node].side_outputs.clone(),
        state_dir: match &config.state_backend {
            crate::state::StateBackendConfig::Heap => None,
            crate::state::StateBackendConfig::Disk { dir, .. } => Some(dir.join(format!("node-{node}-subtask-{subtask}"))),
        },
        state_cache_bytes: match &config.state_backend {
            crate::state::StateBackendConfig::Heap => None,
            crate::state::StateBackendConfig::Disk { cache_bytes, .. } => Some(*cache_bytes),
        },
        output_tap: Some(super::live::OutputTap::new(Arc::clone(&deployment.live), task_id as u32, subtask as u32, attempt)),
    };
    let key_groups = crate::key_group::KeyGroupRange::for_subtask(subtask, task.parallelism, graph.max_parallelism.max(task.parallelism));
    let mut operators = Vec::new();
    let mut chain_nodes = Vec::new();
    let mut head = None;
    for (position, &node) in task.nodes.iter().enumerate() {
        match &factories.nodes[node] {
            NodeFactory::Source(factory) => {
                assert_eq!(position, 0, "a source heads its task");
                let mut reader = build_guarded(position, || factory(&context(node)))?;
                if let Some(offset) = restore.and_then(|restore| restore.source_position(node, subtask)) {
                    build_guarded(position, || reader.seek(offset))?;
                }
                let alignment =
                    deployment.alignment.get(&node).map(|(group, first, max_drift_ms)| group.member(first + subtask, *max_drift_ms));
                head = Some(TaskHead::Source { reader, records_out: 0, watermark: SourceWatermark::new(alignment) });
            }
            NodeFactory::Operator(factory) => {
                let mut operator = build_guarded(position, || factory(&context(node), position))?;
                if let Some(restore) = restore {
                    restore_keyed_state(operator.as_mut(), restore.key_groups(node, key_groups), restore.checkpoint)
                        .map_err(|failure| (position, failure))?;
                    operator
                        .restore_operator_state(restore.operator_states(node, subtask, task.parallelism))
                        .map_err(|failure| (position, failure.failure))?;
                }
                operators.push(operator);
                chain_nodes.push(node);
            }
        }
    }
    let head = head.unwrap_or_else(|| {
        let channels = plan.input_channels(task_id, subtask).len();
        let mut gate =
            InputGate::new(GateCredits::new(channels, config.exclusive_credits_per_channel, config.floating_credits_per_gate), channels);
        gate.aligner = BarrierAligner::new(channels, config.checkpointing_mode);
        TaskHead::Gate(gate)
    });
    let outputs = task
        .outputs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            let input = plan.tasks[spec.to_task].inputs[spec.input_index];
            let channels = plan.output_channels(task_id, subtask, k).len();
            let setup = PartitionerSetup {
                partitioning: input.partitioning,
                channels,
                subtask_index: subtask,
                max_parallelism: graph.max_parallelism,
                frame_records_max: config.frame_records_max,
                frame_bytes_max: config.frame_bytes_max,
            };
            debug_assert!(input.partitioning != Partitioning::Default, "the plan resolves default partitioning");
            TaskOutput {
                node_output: spec.output,
                failure_position: task.nodes.len() + k,
                partitioner: factories.edges[input.edge](&setup),
                senders: (0..channels).map(|_| CreditSender::new(config.exclusive_credits_per_channel)).collect(),
                downstream: Vec::new(),
                remote: Default::default(),
            }
        })
        .collect();
    let settings = TaskSettings {
        watermark_interval: config.watermark_interval,
        source_idle_timeout: task.nodes.first().and_then(|&n| graph.nodes[n].idle_timeout_ms).map(Duration::from_millis),
        frames_per_turn_max: config.frames_per_turn_max,
        frame_records_max: config.frame_records_max,
        frame_bytes_max: config.frame_bytes_max,
        linger: config.linger,
        key_groups,
        aligned_checkpoint_timeout: config.aligned_checkpoint_timeout,
        remote_extra_credits: config.remote_exclusive_credits_per_channel.saturating_sub(config.exclusive_credits_per_channel),
    };
    // In-flight frames of an unaligned checkpoint: replayed into the chain before any input.
    let mut replay = std::collections::VecDeque::new();
    if let (Some(restore), TaskHead::Gate(_), Some(first)) = (restore, &head, operators.first()) {
        for bytes in restore.in_flight(task.nodes[0], subtask) {
            let frame = first.decode_input(bytes).map_err(|error| {
                let reason = format!("in-flight frame of checkpoint {} does not decode: {error}", restore.checkpoint);
                (0, OperatorFailure::Failed(reason.into()))
            })?;
            replay.push_back(frame);
        }
    }
    let mut state = TaskState::new(id, head, (OperatorChain::new(operators), chain_nodes), outputs, settings, reports);
    state.replay = replay;
    state.live = Some(super::live::LiveRecorder::new(Arc::clone(&deployment.live), attempt));
    Ok(state)
}

/// Gives a freshly built operator the key groups of its range from checkpoint `checkpoint`.
fn restore_keyed_state(
    operator: &mut dyn crate::operator::ErasedOperator,
    groups: Vec<crate::state::OperatorKeyGroupSnapshot>,
    checkpoint: u64,
) -> Result<(), OperatorFailure> {
    if groups.is_empty() {
        return Ok(());
    }
    let Some(state) = operator.keyed_state() else {
        let reason =
            format!("checkpoint {checkpoint} has keyed state for this operator, which keeps none: was another operator given its uid?");
        return Err(OperatorFailure::Failed(reason.into()));
    };
    for group in groups {
        let restored = catch_unwind(AssertUnwindSafe(|| state.restore_key_group(group)));
        match restored {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(OperatorFailure::Failed(format!("cannot restore checkpoint {checkpoint}: {error}").into())),
            Err(payload) => return Err(OperatorFailure::from_panic(payload)),
        }
    }
    Ok(())
}

/// What a `JobClient` asks of a running job.
pub(crate) enum ControlCommand {
    /// Take a savepoint into the store at `dir`; with `stop`, end the job once it is complete.
    Savepoint { dir: std::path::PathBuf, stop: bool, reply: SavepointReply },
    /// Cancel the job.
    Cancel,
}

/// Where a savepoint's outcome goes: its directory, or why it failed.
type SavepointReply = Sender<Result<std::path::PathBuf, String>>;

/// How long the driver waits for a report before it looks at control commands again.
const CONTROL_POLL: Duration = Duration::from_millis(20);

/// How an attempt ended without finishing, when that is not a failure.
enum Ended {
    /// Stopped after the savepoint at this path.
    Stopped(std::path::PathBuf),
    /// Cancelled.
    Cancelled,
}

/// Collects the actors, wires and starts them, and waits for the job's outcome, taking
/// checkpoints on the coordinator's schedule and savepoints when asked.
fn drive(
    deployment: &Deployment,
    reports: &Receiver<TaskReport>,
    keeper: &mut CheckpointKeeper,
    coordinator: &mut CheckpointCoordinator,
    control: Option<&Receiver<ControlCommand>>,
) -> Result<JobResult, JobError> {
    let Deployment { job, graph, plan, .. } = deployment;
    let total = plan.subtask_count();
    let sources: Vec<SubtaskId> = plan
        .tasks
        .iter()
        .filter(|task| graph.nodes[task.nodes[0]].kind == crate::graph::logical::OperatorKind::Source)
        .flat_map(|task| (0..task.parallelism).map(move |subtask| (task.id, subtask)))
        .collect();
    // Source subtasks still reading: checkpoints are triggered while any is.
    let mut sources_running = sources.len();
    let mut actors: Vec<Vec<Option<SubtaskHandle>>> = plan.tasks.iter().map(|t| vec![None; t.parallelism]).collect();
    let mut metrics: Vec<Vec<Option<SubtaskMetrics>>> = plan.tasks.iter().map(|t| vec![None; t.parallelism]).collect();
    let mut failure: Option<JobError> = None;
    let mut ended: Option<Ended> = None;
    let mut spawned = 0;
    let mut settled = SettledSubtasks::new(plan);
    let mut started_at: Option<Instant> = None;
    let mut finished = 0;
    // Savepoints asked for and not yet triggered; the one in progress (its checkpoint id).
    let mut savepoints_waiting: std::collections::VecDeque<(std::path::PathBuf, bool, SavepointReply)> = Default::default();
    let mut savepoint_active: Option<(u64, std::path::PathBuf, bool, SavepointReply)> = None;

    let fail = |id: SubtaskId, position: usize, cause: OperatorFailure| {
        let task = &plan.tasks[id.0];
        if let Some(output) = position.checked_sub(task.nodes.len()) {
            // Past the chain: the partitioner of output `output`, which runs the key selector.
            let spec = &task.outputs[output];
            let edge = &graph.edges[plan.tasks[spec.to_task].inputs[spec.input_index].edge];
            return JobError::KeySelectorFailed {
                job: job.clone(),
                from: graph.nodes[edge.from].name.clone(),
                to: graph.nodes[edge.to].name.clone(),
                subtask: id.1,
                parallelism: task.parallelism,
                failure: cause,
            };
        }
        JobError::OperatorFailed {
            job: job.clone(),
            operator: graph.nodes[task.nodes[position]].name.clone(),
            subtask: id.1,
            parallelism: task.parallelism,
            failure: cause,
        }
    };
    let cancel_all = |actors: &Vec<Vec<Option<SubtaskHandle>>>| {
        match &deployment.cluster {
            // One message per worker cancels all its subtasks, spawned or not yet.
            Some(cluster) => cluster.cancel_attempt(),
            None => actors.iter().flatten().flatten().for_each(SubtaskHandle::cancel),
        }
    };
    let unaligned_mode = deployment.config.checkpointing_mode == super::checkpoint::CheckpointingMode::Unaligned;
    // Savepoints are always aligned: they may be restored at another parallelism.
    let trigger = |id: u64, savepoint: bool, actors: &Vec<Vec<Option<SubtaskHandle>>>| {
        for &(task, subtask) in &sources {
            if let Some(actor) = &actors[task][subtask] {
                actor.trigger_checkpoint(id, unaligned_mode && !savepoint);
            }
        }
    };

    while settled.count < total {
        let running = failure.is_none() && ended.is_none() && sources_running > 0;
        if let Some(control) = control {
            while let Ok(command) = control.try_recv() {
                match command {
                    ControlCommand::Cancel => {
                        if failure.is_none() && ended.is_none() {
                            ended = Some(Ended::Cancelled);
                            cancel_all(&actors);
                        }
                    }
                    ControlCommand::Savepoint { dir, stop, reply } => {
                        if running {
                            savepoints_waiting.push_back((dir, stop, reply));
                        } else {
                            let _ = reply.send(Err("the job is ending: it takes no savepoint".to_string()));
                        }
                    }
                }
            }
        }
        // A savepoint waits for the checkpoint in progress, then goes first.
        if running && started_at.is_some() && savepoint_active.is_none() && !savepoints_waiting.is_empty() {
            if let Some(id) = coordinator.trigger_now(Instant::now()) {
                keeper.checkpoint_triggered(id);
                let (dir, stop, reply) = savepoints_waiting.pop_front().expect("checked non-empty");
                savepoint_active = Some((id, dir, stop, reply));
                trigger(id, true, &actors);
            }
        }
        // Checkpoints are triggered while every task runs and nothing has failed.
        let due = match started_at {
            Some(started) if running => coordinator.next_due(started),
            _ => None,
        };
        let wait = match (due, control) {
            (Some(due), _) => {
                due.saturating_duration_since(Instant::now()).min(if control.is_some() { CONTROL_POLL } else { Duration::MAX })
            }
            (None, Some(_)) => CONTROL_POLL,
            (None, None) => Duration::MAX,
        };
        let received =
            if wait == Duration::MAX { reports.recv().map_err(|_| RecvTimeoutError::Disconnected) } else { reports.recv_timeout(wait) };
        let report = match received {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => {
                let Some(started) = started_at else { continue };
                if running {
                    if let Some(id) = coordinator.trigger_if_due(started, Instant::now()) {
                        keeper.checkpoint_triggered(id);
                        trigger(id, false, &actors);
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                failure.get_or_insert_with(|| runtime_error(job, "all slots stopped before the job finished".to_string()));
                break;
            }
        };
        let mut completed = None;
        match report {
            TaskReport::Spawned { id, actor, .. } => {
                if failure.is_some() || ended.is_some() {
                    actor.cancel();
                }
                actors[id.0][id.1] = Some(actor);
                spawned += 1;
                if spawned == total && failure.is_none() && ended.is_none() {
                    started_at = Some(Instant::now());
                    match &deployment.cluster {
                        // An adopted attempt's subtasks run already.
                        Some(cluster) if cluster.adopted() => {}
                        Some(cluster) => cluster.start_all(plan),
                        None => start_all(plan, &actors, deployment.config.encode_channels),
                    }
                }
            }
            TaskReport::Finished { id, metrics: m, committables, source_position } => {
                metrics[id.0][id.1] = Some(m);
                finished += 1;
                let is_source = sources.contains(&id);
                if is_source {
                    sources_running -= 1;
                }
                // Checkpoints go on after tasks finish: a finished subtask no longer holds one
                // back, and what it committed last belongs to the next one.
                keeper.finished(id, source_position, committables, coordinator.next_id(), is_source);
                completed = coordinator.subtask_finished(id);
                if sources_running == 0 {
                    // No barrier will come any more: the job is ending.
                    if coordinator.abort_pending().is_some() {
                        keeper.abandoned();
                    }
                    if let Some((_, _, _, reply)) = savepoint_active.take() {
                        let _ = reply.send(Err("every source finished before the savepoint completed".to_string()));
                    }
                    for (_, _, reply) in savepoints_waiting.drain(..) {
                        let _ = reply.send(Err("the job is ending: it takes no savepoint".to_string()));
                    }
                }
            }
            TaskReport::CheckpointAck { subtask, checkpoint, snapshot, alignment } => {
                let (key_groups, sync) = (snapshot.key_groups(), snapshot.sync_duration);
                if let Err(error) = keeper.acknowledged(checkpoint, subtask, snapshot) {
                    if failure.is_none() && ended.is_none() {
                        failure = Some(runtime_error(job, error.to_string()));
                        cancel_all(&actors);
                    }
                    continue;
                }
                completed = coordinator.acknowledge(checkpoint, subtask, key_groups, alignment, sync);
            }
            TaskReport::Failed { id, position, failure: cause } => {
                if actors[id.0][id.1].is_none() {
                    settled.settle(id); // never spawned: no Stopped report follows
                }
                if failure.is_none() && ended.is_none() {
                    failure = Some(fail(id, position, cause));
                    cancel_all(&actors);
                }
            }
            TaskReport::Stopped { id } => {
                settled.settle(id);
                if metrics[id.0][id.1].is_none() && failure.is_none() && ended.is_none() {
                    let reason = format!("task {} subtask {} stopped without finishing", id.0, id.1);
                    failure = Some(fail(id, 0, OperatorFailure::Failed(reason.into())));
                    cancel_all(&actors);
                }
            }
            TaskReport::SlotLost { subtasks, reason } => {
                for id in subtasks {
                    settled.settle(id);
                }
                if failure.is_none() && ended.is_none() {
                    failure = Some(runtime_error(job, reason));
                    cancel_all(&actors);
                }
            }
            TaskReport::Adopted { newest_checkpoint } => coordinator.skip_past(newest_checkpoint),
            TaskReport::DeployRefused { worker, reason } => {
                // The worker spawned none of its subtasks: none of them will report.
                if let Some(cluster) = &deployment.cluster {
                    for id in cluster.subtasks_of(worker, plan) {
                        settled.settle(id);
                    }
                }
                if failure.is_none() && ended.is_none() {
                    failure = Some(JobError::Deploy { job: job.clone(), worker, reason });
                    cancel_all(&actors);
                } else if matches!(failure, Some(JobError::Runtime { .. })) {
                    // A refusal says more than the failures it caused.
                    failure = Some(JobError::Deploy { job: job.clone(), worker, reason });
                }
            }
        }
        let Some(id) = completed else { continue };
        let savepoint = savepoint_active.take_if(|(active, ..)| *active == id);
        let duration = coordinator.stats().latest_duration;
        let savepoint_dir = savepoint.as_ref().map(|(_, dir, ..)| dir.as_path());
        match keeper.complete(id, graph, plan, savepoint_dir, duration, coordinator.latest_subtasks()) {
            Ok((bytes, in_flight_bytes, path)) => {
                coordinator.record_size(bytes, in_flight_bytes, keeper.written_bytes);
                if let (Some((_, _, stop, reply)), Some(path)) = (savepoint, path) {
                    let _ = reply.send(Ok(path.clone()));
                    if stop && failure.is_none() && ended.is_none() {
                        ended = Some(Ended::Stopped(path));
                        cancel_all(&actors);
                    }
                }
            }
            Err(error) => {
                if let Some((_, _, _, reply)) = savepoint {
                    let _ = reply.send(Err(error.to_string()));
                }
                if failure.is_none() && ended.is_none() {
                    failure = Some(runtime_error(job, error.to_string()));
                    cancel_all(&actors);
                }
                continue;
            }
        }
        for &(task, subtask) in &sources {
            if let Some(actor) = &actors[task][subtask] {
                actor.checkpoint_complete(id);
            }
        }
        if let Some(cluster) = &deployment.cluster {
            cluster.checkpoint_completed(id);
        }
    }
    let refusal = if failure.is_some() { "the job failed" } else { "the job ended" };
    for (_, _, reply) in savepoints_waiting.drain(..).chain(savepoint_active.map(|(_, dir, stop, reply)| (dir, stop, reply))) {
        let _ = reply.send(Err(format!("{refusal} before the savepoint completed")));
    }
    if let Some(error) = failure {
        return Err(error);
    }
    let elapsed = started_at.map_or(Duration::ZERO, |t| t.elapsed());
    match ended {
        Some(Ended::Cancelled) => Err(JobError::Cancelled { job: job.clone() }),
        Some(Ended::Stopped(path)) => {
            let mut result = summarize(job, graph, plan, elapsed, metrics);
            result.stopped_with_savepoint = Some(path);
            Ok(result)
        }
        None => {
            assert_eq!(finished, total, "every subtask finished");
            Ok(summarize(job, graph, plan, elapsed, metrics))
        }
    }
}

/// The subtasks from which no report follows: failed to spawn, stopped, or lost with their slot.
struct SettledSubtasks {
    flags: Vec<Vec<bool>>,
    count: usize,
}

impl SettledSubtasks {
    fn new(plan: &ExecutionPlan) -> Self {
        SettledSubtasks { flags: plan.tasks.iter().map(|t| vec![false; t.parallelism]).collect(), count: 0 }
    }

    /// Marks `id` settled; a subtask counts once, however many reports say so.
    fn settle(&mut self, id: SubtaskId) {
        if !std::mem::replace(&mut self.flags[id.0][id.1], true) {
            self.count += 1;
        }
    }
}

/// Sends every actor its peers: the job starts. With `encoded`, every channel goes through a
/// loopback link that encodes frames and events as between processes.
fn start_all(plan: &ExecutionPlan, handles: &[Vec<Option<SubtaskHandle>>], encoded: bool) {
    let actors: Vec<Vec<Option<ActorRef<TaskMessage>>>> =
        handles.iter().map(|task| task.iter().map(|handle| handle.as_ref().and_then(SubtaskHandle::local).cloned()).collect()).collect();
    let loopback = encoded.then(|| {
        let link = crate::channel::transport::LoopbackLink::new();
        link.connect(actors.iter().map(|task| task.iter().map(|a| a.clone().expect("all actors spawned")).collect()).collect());
        link
    });
    let actor = |task: usize, subtask: usize| match &loopback {
        Some(link) => Endpoint::Remote { link: Arc::clone(link) as Arc<dyn crate::channel::transport::RemoteLink>, task: (task, subtask) },
        None => Endpoint::Local(actors[task][subtask].clone().expect("all actors spawned")),
    };
    for task in &plan.tasks {
        for subtask in 0..task.parallelism {
            let outputs = output_peers(plan, task.id, subtask)
                .into_iter()
                .map(|channels| {
                    channels.into_iter().map(|((consumer_task, consumer), gate)| (actor(consumer_task, consumer), gate)).collect()
                })
                .collect();
            let inputs = input_peers(plan, task.id, subtask)
                .into_iter()
                .map(|((producer_task, producer), output, channel)| (actor(producer_task, producer), output, channel))
                .collect();
            let own = actors[task.id][subtask].as_ref().expect("all actors spawned");
            let _ = own.send_message(TaskMessage::Start { outputs, inputs });
        }
    }
}

/// Per output of subtask `subtask` of task `task`, per channel: the consuming subtask and its gate
/// channel there.
pub(crate) fn output_peers(plan: &ExecutionPlan, task: usize, subtask: usize) -> Vec<Vec<(SubtaskId, usize)>> {
    plan.tasks[task]
        .outputs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            plan.output_channels(task, subtask, k).into_iter().map(|(consumer, gate)| ((spec.to_task, consumer), gate)).collect()
        })
        .collect()
}

/// Per gate channel of subtask `subtask` of task `task`: the producing subtask, its output
/// feeding this input, and its channel there towards this subtask.
pub(crate) fn input_peers(plan: &ExecutionPlan, task: usize, subtask: usize) -> Vec<(SubtaskId, usize, usize)> {
    let consumer = &plan.tasks[task];
    plan.input_channels(task, subtask)
        .into_iter()
        .map(|(input_index, producer)| {
            let input = consumer.inputs[input_index];
            let output = plan.tasks[input.from_task]
                .outputs
                .iter()
                .position(|o| o.to_task == task && o.input_index == input_index)
                .expect("every input is an output of its producer");
            let channel = if input.partitioning == Partitioning::Forward { 0 } else { subtask };
            ((input.from_task, producer), output, channel)
        })
        .collect()
}

fn summarize(job: &str, graph: &JobGraph, plan: &ExecutionPlan, elapsed: Duration, metrics: Vec<Vec<Option<SubtaskMetrics>>>) -> JobResult {
    let mut operators: Vec<OperatorMetrics> = graph
        .nodes
        .iter()
        .map(|n| OperatorMetrics {
            node: n.id,
            name: n.name.clone(),
            parallelism: graph.parallelism_of(n.id),
            records_in: 0,
            records_out: 0,
            extra: Default::default(),
        })
        .collect();
    let mut channels = ChannelMetrics { gate_capacity_min: u32::MAX, ..Default::default() };
    for task in &plan.tasks {
        for subtask in metrics[task.id].iter().flatten() {
            for (&node, counts) in task.nodes.iter().zip(&subtask.node_counts) {
                operators[node].records_in += counts.records_in;
                operators[node].records_out += counts.records_out;
                for (name, value) in &counts.extra {
                    *operators[node].extra.entry(name.to_string()).or_insert(0) += value;
                }
            }
            if !task.inputs.is_empty() {
                channels.gate_queued_frames_peak = channels.gate_queued_frames_peak.max(subtask.gate_queued_frames_peak);
                channels.gate_capacity_min = channels.gate_capacity_min.min(subtask.gate_capacity);
            }
            channels.output_backlog_frames_peak = channels.output_backlog_frames_peak.max(subtask.output_backlog_frames_peak);
            channels.encoded_bytes += subtask.encoded_bytes_out;
        }
    }
    if channels.gate_capacity_min == u32::MAX {
        channels.gate_capacity_min = 0;
    }
    JobResult {
        job: job.to_string(),
        elapsed,
        operators,
        channels,
        checkpoints: CheckpointStats::default(),
        restarts: 0,
        stopped_with_savepoint: None,
        last_recovery: None,
    }
}

/// For tests: a job of two subtasks per operator, a collection rebalanced into a discarding sink,
/// planned on two slots, run here (no cluster).
#[cfg(test)]
pub(crate) fn two_slot_deployment(job: &str) -> Deployment {
    let env = crate::StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 2, ..EngineConfig::default() });
    env.from_collection(vec![1u64]).rebalance().sink("out", crate::sink::discard::DiscardSink::new());
    let graph = env.job_graph();
    let plan = ExecutionPlan::build(&graph, 2).unwrap();
    Deployment {
        job: job.into(),
        alignment: alignment_groups(&graph),
        graph,
        factories: GraphFactories::default(),
        plan,
        config: EngineConfig::default(),
        cluster: None,
        live: super::live::LiveBoard::new(),
        attempt: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_slot_fails_the_job_instead_of_leaving_the_driver_waiting() {
        let deployment = two_slot_deployment("lost");
        let plan = &deployment.plan;
        let ids: Vec<SubtaskId> = plan.tasks.iter().flat_map(|t| (0..t.parallelism).map(move |s| (t.id, s))).collect();
        let (reports_tx, reports) = channel();
        // One subtask failed to build and was reported; then its slot died with every subtask of
        // the job (the other slot's senders stay open, as its actors would hold them).
        let failure = OperatorFailure::Failed("cannot build".into());
        reports_tx.send(TaskReport::Failed { id: ids[0], position: 0, failure }).unwrap();
        reports_tx.send(TaskReport::SlotLost { subtasks: ids.clone(), reason: "slot 0 panicked: engine bug".into() }).unwrap();
        let (outcome_tx, outcome) = channel();
        std::thread::spawn(move || {
            let mut keeper = CheckpointKeeper::new(None, None, BTreeMap::new());
            let mut coordinator = CheckpointCoordinator::new(None, 2, 1);
            let _ = outcome_tx.send(drive(&deployment, &reports, &mut keeper, &mut coordinator, None).map(|_| ()));
            drop(reports_tx);
        });
        let error = outcome.recv_timeout(Duration::from_secs(30)).expect("the driver returned").unwrap_err();
        // The first failure is the one reported; the lost slot settled the rest, counted once each.
        assert!(matches!(error, JobError::OperatorFailed { .. }), "{error}");
    }
}
