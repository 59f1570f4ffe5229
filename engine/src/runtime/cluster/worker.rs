//! A worker: builds the job the coordinator names, runs the subtasks of its slots, connects them
//! to their peers here and elsewhere, and reports to the coordinator.

use std::sync::mpsc::channel;
use std::sync::{Arc, Condvar, Mutex};

use super::alignment::SharedAlignment;
use super::protocol::{self, Address, JobSpec, ToCoordinator, ToWorker, WireReport};
use super::{wire, ClusterNet, LocalTasks, NodeId, COORDINATOR};

/// How often a worker sends its subtasks' live figures to the coordinator.
pub const LIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
use crate::channel::transport::Endpoint;
use crate::config::EngineConfig;
use crate::graph::fingerprint::GraphFingerprint;
use crate::runtime::job::{alignment_groups, spawn_slots, Deployment};
use crate::runtime::snapshot::{JobSnapshot, RestoreState};
use crate::runtime::task::{TaskMessage, TaskReport};
use crate::StreamEnvironment;

/// Whether every subtask of `plan` runs in the slots `slots` (the whole job on this worker).
fn plan_is_local_to(plan: &crate::graph::plan::ExecutionPlan, slots: (u32, u32)) -> bool {
    plan.tasks.iter().flat_map(|task| &task.slots).all(|&slot| (slots.0 as usize..slots.1 as usize).contains(&slot))
}

/// Defines a job by name and arguments in a `StreamEnvironment`: every process of a cluster runs
/// the same program with the same registry, so a worker rebuilds exactly the coordinator's job.
/// Returns why it cannot (an unknown name, bad arguments).
pub type JobRegistry = Arc<dyn Fn(&JobSpec, &StreamEnvironment) -> Result<(), String> + Send + Sync>;

/// One worker process's part of a cluster (see the module documentation of `cluster`).
pub struct WorkerNode {
    me: NodeId,
    net: Arc<dyn ClusterNet>,
    registry: JobRegistry,
    tasks: Arc<LocalTasks>,
    /// Why the worker is done (shut down, or the coordinator lost), once it is.
    done: (Mutex<Option<String>>, Condvar),
    /// How long the subtasks run on when the coordinator is lost, for a new one to adopt them
    /// (`None`: losing the coordinator ends them at once).
    orphan_timeout: Option<std::time::Duration>,
    /// Counts coordinator losses; with the loss not yet mended by an adoption, `orphaned` holds
    /// its count.
    orphaned: Mutex<(u64, Option<u64>)>,
    /// What a coordinator that adopts the running attempt is sent again.
    log: Mutex<ReportLog>,
    /// The running attempt's watermark alignment groups, when their members span workers.
    alignment: Mutex<Option<Arc<SharedAlignment>>>,
}

/// The running attempt's reports, kept for a coordinator that adopts it: every report but the
/// acknowledgements (a few per subtask), and the sinks' pre-commits of acknowledgements not
/// known complete. Sent reports are kept too: the old coordinator may have died before reading
/// them.
#[derive(Default)]
struct ReportLog {
    attempt: Option<u32>,
    /// The running attempt's graph.
    fingerprint: Option<GraphFingerprint>,
    /// Encoded `ToCoordinator::Report`s, acknowledgements aside, in the order sent.
    reports: Vec<Vec<u8>>,
    /// Encoded acknowledgements holding only their pre-commits, by checkpoint.
    pre_commits: Vec<(u64, Vec<u8>)>,
    /// The highest checkpoint triggered or acknowledged here.
    newest_checkpoint: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl WorkerNode {
    /// Worker `me`, reaching the others through `net`, building jobs with `registry`.
    ///
    /// Losing the coordinator ends everything the worker runs, unless `orphan_timeout` is given:
    /// then its subtasks run on (sending each other data as before) until a new coordinator adopts
    /// them (`ToWorker::Adopt`), the worker is ended ([`Self::end`]), or no coordinator adopted
    /// them for that long; as under the control plane, whose new leader adopts what the old one
    /// drove.
    pub fn new(
        me: NodeId,
        net: Arc<dyn ClusterNet>,
        registry: JobRegistry,
        orphan_timeout: Option<std::time::Duration>,
    ) -> Arc<WorkerNode> {
        assert_ne!(me, COORDINATOR, "node 0 is the coordinator");
        Arc::new(WorkerNode {
            me,
            net,
            registry,
            tasks: Arc::new(LocalTasks::default()),
            done: (Mutex::new(None), Condvar::new()),
            orphan_timeout,
            orphaned: Mutex::new((0, None)),
            log: Mutex::new(ReportLog::default()),
            alignment: Mutex::new(None),
        })
    }

    /// Where the data plane delivers to this worker's subtasks.
    pub fn tasks(&self) -> &Arc<LocalTasks> {
        &self.tasks
    }

    /// Blocks until the coordinator shuts the worker down or is lost; returns which.
    pub fn wait(&self) -> String {
        let mut done = self.done.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while done.is_none() {
            done = self.done.1.wait(done).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        done.clone().expect("checked above")
    }

    fn finish(&self, why: String) {
        let mut done = self.done.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        done.get_or_insert(why);
        self.done.1.notify_all();
    }

    fn send(&self, message: &ToCoordinator) {
        let bytes = protocol::encode(message).expect("control messages always encode");
        self.send_bytes(bytes);
    }

    fn send_bytes(&self, bytes: Vec<u8>) {
        // A coordinator that cannot be reached is reported by the transport (`on_peer_lost`).
        let _ = self.net.send_control(COORDINATOR, bytes);
    }

    /// Sends a subtask's report of `attempt`, keeping what an adopting coordinator needs of it.
    /// Sends the live figures of this worker's subtasks of `attempt` to the coordinator.
    fn send_live(&self, attempt: u32, live: &crate::runtime::live::LiveBoard) {
        let readings = live.readings();
        if readings.is_empty() {
            return;
        }
        let outputs = live.outputs();
        let bytes = protocol::encode(&ToCoordinator::Live { attempt, readings, outputs }).expect("control messages always encode");
        // Under the log's lock, as reports are: an adopting coordinator gets the log first.
        let _log = lock(&self.log);
        self.send_bytes(bytes);
    }

    fn report(&self, attempt: u32, report: WireReport) {
        let mut log = lock(&self.log);
        let keep = log.attempt == Some(attempt);
        let acknowledgement = matches!(report, WireReport::CheckpointAck { .. });
        if let (true, WireReport::CheckpointAck { id, checkpoint, snapshot, .. }) = (keep, &report) {
            log.newest_checkpoint = log.newest_checkpoint.max(*checkpoint);
            if !snapshot.committables.is_empty() {
                let snapshot = protocol::WireSnapshot { committables: snapshot.committables.clone(), ..Default::default() };
                let pre_commits = WireReport::CheckpointAck { id: *id, checkpoint: *checkpoint, alignment_nanos: 0, snapshot };
                let bytes =
                    protocol::encode(&ToCoordinator::Report { attempt, report: pre_commits }).expect("control messages always encode");
                log.pre_commits.push((*checkpoint, bytes));
            }
        }
        let bytes = protocol::encode(&ToCoordinator::Report { attempt, report }).expect("control messages always encode");
        if keep && !acknowledgement {
            log.reports.push(bytes.clone());
        }
        // Under the log's lock: an adopting coordinator gets the log, then what follows it, in order.
        self.send_bytes(bytes);
    }

    /// Ends everything this worker runs and the worker itself, saying `why`.
    pub fn end(&self, why: &str) {
        for actor in self.tasks.all() {
            let _ = actor.send_message(TaskMessage::Cancel);
        }
        self.tasks.reset(None);
        self.finish(why.to_string());
    }

    /// A peer's connection closed. Losing the coordinator ends everything this worker runs, unless
    /// the worker outlives it (see [`Self::new`]); a lost worker peer fails the subtasks that send
    /// to it, by themselves.
    pub fn on_peer_lost(self: &Arc<Self>, node: NodeId, reason: &str) {
        if node != COORDINATOR {
            return;
        }
        let Some(timeout) = self.orphan_timeout else { return self.end(&format!("lost the coordinator: {reason}")) };
        // The subtasks run on until a new coordinator adopts them, for `timeout` at most.
        let loss = {
            let mut orphaned = lock(&self.orphaned);
            orphaned.0 += 1;
            orphaned.1 = Some(orphaned.0);
            orphaned.0
        };
        let worker = Arc::downgrade(self);
        let reason = reason.to_string();
        let _ = std::thread::Builder::new().name(format!("tethys-orphan-{}", self.me)).spawn(move || {
            std::thread::sleep(timeout);
            if let Some(worker) = worker.upgrade() {
                if lock(&worker.orphaned).1 == Some(loss) {
                    worker.end(&format!("lost the coordinator ({reason}) and no coordinator adopted its subtasks within {timeout:?}"));
                }
            }
        });
    }

    /// A new coordinator adopts the running attempt: its next checkpoint is whole (the new
    /// coordinator knows no earlier acknowledgement), and it gets the attempt's reports again.
    fn adopt(&self, fingerprint: &str) {
        let log = lock(&self.log);
        let refused = |reason: String| self.send(&ToCoordinator::AdoptRefused { reason });
        let (Some(attempt), Some(ours)) = (log.attempt, &log.fingerprint) else { return refused("it runs no attempt".to_string()) };
        let theirs: GraphFingerprint = match serde_json::from_str(fingerprint) {
            Ok(theirs) => theirs,
            Err(error) => return refused(format!("the coordinator's graph fingerprint does not parse: {error}")),
        };
        if let Err(error) = ours.check_same(&theirs, "the adopting coordinator") {
            return refused(error.to_string());
        }
        lock(&self.orphaned).1 = None;
        if let Some(alignment) = lock(&self.alignment).as_ref().filter(|shared| shared.attempt() == attempt) {
            alignment.resend();
        }
        for actor in self.tasks.all_of(attempt) {
            let _ = actor.send_message(TaskMessage::Rebase);
        }
        self.send(&ToCoordinator::Adopted { attempt, newest_checkpoint: log.newest_checkpoint });
        for bytes in log.reports.iter().chain(log.pre_commits.iter().map(|(_, bytes)| bytes)) {
            self.send_bytes(bytes.clone());
        }
    }

    /// A control message from the coordinator.
    pub fn on_control(self: &Arc<Self>, from: NodeId, bytes: &[u8]) {
        if from != COORDINATOR {
            return; // workers send each other data only
        }
        let message = match protocol::decode::<ToWorker>(bytes) {
            Ok(message) => message,
            Err(error) => {
                // Nothing sensible can follow a message the coordinator sent that does not decode.
                self.on_peer_lost(COORDINATOR, &format!("it sent a control message that does not decode: {error}"));
                return;
            }
        };
        match message {
            ToWorker::Deploy { attempt, job, config, fingerprint, slots, restore } => {
                // Building the job and its subtasks takes a while: not on the transport's thread.
                let worker = Arc::clone(self);
                let spawned = std::thread::Builder::new().name(format!("tethys-worker-{}-attempt-{attempt}", self.me)).spawn(move || {
                    if let Err(reason) = worker.run_attempt(attempt, &job, &config, &fingerprint, slots, restore) {
                        worker.send(&ToCoordinator::DeployRefused { attempt, reason });
                    }
                });
                if let Err(error) = spawned {
                    self.send(&ToCoordinator::DeployRefused { attempt, reason: format!("cannot start a thread: {error}") });
                }
            }
            ToWorker::Start { attempt, subtask, outputs, inputs } => self.start(attempt, subtask, outputs, inputs),
            ToWorker::TriggerCheckpoint { attempt, subtask, id, unaligned } => {
                let mut log = lock(&self.log);
                if log.attempt == Some(attempt) {
                    log.newest_checkpoint = log.newest_checkpoint.max(id);
                }
                drop(log);
                if let Some(actor) = self.tasks.actor(attempt, (subtask.0 as usize, subtask.1 as usize)) {
                    let _ = actor.send_message(TaskMessage::TriggerCheckpoint { id, unaligned });
                }
            }
            ToWorker::CheckpointComplete { attempt, subtask, id } => {
                if let Some(actor) = self.tasks.actor(attempt, (subtask.0 as usize, subtask.1 as usize)) {
                    let _ = actor.send_message(TaskMessage::CheckpointComplete { id });
                }
            }
            ToWorker::CheckpointCompleted { attempt, id } => {
                let mut log = lock(&self.log);
                if log.attempt == Some(attempt) {
                    log.pre_commits.retain(|(checkpoint, _)| *checkpoint > id);
                }
            }
            ToWorker::Adopt { fingerprint } => self.adopt(&fingerprint),
            ToWorker::Alignment { attempt, seats } => {
                if let Some(alignment) = lock(&self.alignment).as_ref().filter(|shared| shared.attempt() == attempt) {
                    alignment.apply(&seats);
                }
            }
            ToWorker::Cancel { attempt } => {
                for actor in self.tasks.all_of(attempt) {
                    let _ = actor.send_message(TaskMessage::Cancel);
                }
            }
            ToWorker::Shutdown => self.finish("shut down by the coordinator".to_string()),
        }
    }

    /// Connects a spawned subtask to its peers and starts it.
    fn start(&self, attempt: u32, subtask: (u32, u32), outputs: Vec<Vec<(Address, u32)>>, inputs: Vec<(Address, u32, u32)>) {
        let Some(actor) = self.tasks.actor(attempt, (subtask.0 as usize, subtask.1 as usize)) else { return };
        let endpoint = |address: Address| -> Result<Endpoint, String> {
            let task = (address.task as usize, address.subtask as usize);
            if address.node == self.me {
                return self.tasks.actor(attempt, task).map(Endpoint::Local).ok_or_else(|| format!("subtask {task:?} is not here"));
            }
            let link = self.net.data_link(address.node, attempt).map_err(|error| error.to_string())?;
            Ok(Endpoint::Remote { link, task })
        };
        type Wiring = (Vec<Vec<(Endpoint, usize)>>, Vec<(Endpoint, usize, usize)>);
        let wired: Result<Wiring, String> = (|| {
            let outputs = outputs
                .into_iter()
                .map(|channels| {
                    channels.into_iter().map(|(address, gate)| Ok((endpoint(address)?, gate as usize))).collect::<Result<Vec<_>, String>>()
                })
                .collect::<Result<Vec<_>, String>>()?;
            let inputs = inputs
                .into_iter()
                .map(|(address, output, channel)| Ok((endpoint(address)?, output as usize, channel as usize)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok((outputs, inputs))
        })();
        match wired {
            Ok((outputs, inputs)) => {
                let _ = actor.send_message(TaskMessage::Start { outputs, inputs });
            }
            Err(reason) => {
                let failure = crate::base::OperatorFailure::Failed(format!("cannot connect to its peers: {reason}").into());
                let report = TaskReport::Failed { id: (subtask.0 as usize, subtask.1 as usize), position: 0, failure };
                if let Ok(report) = wire::into_wire_report(report) {
                    self.report(attempt, report);
                }
                let _ = actor.send_message(TaskMessage::Cancel);
            }
        }
    }

    /// Builds the job, checks it is the coordinator's, runs the subtasks of `slots` and forwards
    /// their reports until all have stopped. An error is a refusal to run the attempt.
    fn run_attempt(
        &self,
        attempt: u32,
        job: &JobSpec,
        config: &str,
        fingerprint: &str,
        slots: (u32, u32),
        restore: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let config: EngineConfig =
            serde_json::from_str(config).map_err(|error| format!("the engine configuration does not parse: {error}"))?;
        let env = StreamEnvironment::new(config.clone());
        (self.registry)(job, &env).map_err(|error| format!("cannot define job '{}' {:?}: {error}", job.name, job.args))?;
        let graph = env.job_graph();
        let plan = env.plan().map_err(|error| format!("cannot plan job '{}': {error}", job.name))?;
        let theirs: GraphFingerprint =
            serde_json::from_str(fingerprint).map_err(|error| format!("the coordinator's graph fingerprint does not parse: {error}"))?;
        GraphFingerprint::of(&graph).check_same(&theirs, "the coordinator").map_err(|error| error.to_string())?;
        let restore = match restore {
            None => None,
            Some(bytes) => {
                let snapshot: JobSnapshot =
                    crate::base::codec::decode(&bytes).map_err(|error| format!("the checkpoint to restore does not decode: {error}"))?;
                Some(Arc::new(RestoreState::prepare(&snapshot, &graph).map_err(|error| error.to_string())?))
            }
        };
        // Alignment groups whose members run on other workers too share their seats with them.
        let alignment = alignment_groups(&graph);
        let shared_alignment = if plan_is_local_to(&plan, slots) {
            None
        } else {
            let net = Arc::clone(&self.net);
            let send = Box::new(move |bytes| {
                let _ = net.send_control(COORDINATOR, bytes);
            });
            SharedAlignment::start(attempt, &alignment, send).map_err(|error| format!("cannot start a thread: {error}"))?
        };
        if let Some(previous) = std::mem::replace(&mut *lock(&self.alignment), shared_alignment.clone()) {
            previous.end();
        }
        let factories = env.factories();
        *lock(&self.log) = ReportLog { attempt: Some(attempt), fingerprint: Some(GraphFingerprint::of(&graph)), ..Default::default() };
        let live = crate::runtime::live::LiveBoard::new();
        let deployment = Arc::new(Deployment {
            job: job.name.clone(),
            graph,
            factories,
            plan,
            config,
            alignment,
            cluster: None,
            live: Arc::clone(&live),
            attempt: attempt.into(),
        });
        self.tasks.reset(Some(attempt));
        let (reports_tx, reports) = channel();
        let threads = spawn_slots(&deployment, restore, slots.0 as usize..slots.1 as usize, &reports_tx);
        drop(reports_tx);
        // Until every slot thread has ended: their actors have all stopped. Meanwhile the live
        // figures of this worker's subtasks go to the coordinator every `LIVE_INTERVAL`.
        let mut live_sent = std::time::Instant::now();
        loop {
            let report = match reports.recv_timeout(LIVE_INTERVAL) {
                Ok(report) => Some(report),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if live_sent.elapsed() >= LIVE_INTERVAL {
                self.send_live(attempt, &live);
                live_sent = std::time::Instant::now();
            }
            let Some(report) = report else { continue };
            if let TaskReport::Spawned { id, actor, input } = &report {
                if let Some(actor) = actor.local() {
                    self.tasks.register(attempt, *id, actor.clone(), *input);
                }
            }
            let report: WireReport = match wire::into_wire_report(report) {
                Ok(report) => report,
                Err(reason) => {
                    // State that does not encode fails the checkpoint's subtask, as in one process.
                    WireReport::SlotLost { subtasks: Vec::new(), reason }
                }
            };
            self.report(attempt, report);
        }
        self.send_live(attempt, &live);
        for thread in threads {
            let _ = thread.join();
        }
        if let Some(shared) = shared_alignment {
            shared.end();
        }
        Ok(())
    }
}
