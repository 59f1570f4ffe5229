//! A worker: builds the job the coordinator names, runs the subtasks of its slots, connects them
//! to their peers here and elsewhere, and reports to the coordinator.

use std::sync::mpsc::channel;
use std::sync::{Arc, Condvar, Mutex};

use super::protocol::{self, Address, JobSpec, ToCoordinator, ToWorker, WireReport};
use super::{wire, ClusterNet, LocalTasks, NodeId, COORDINATOR};
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
}

impl WorkerNode {
    /// Worker `me`, reaching the others through `net`, building jobs with `registry`.
    pub fn new(me: NodeId, net: Arc<dyn ClusterNet>, registry: JobRegistry) -> Arc<WorkerNode> {
        assert_ne!(me, COORDINATOR, "node 0 is the coordinator");
        Arc::new(WorkerNode { me, net, registry, tasks: Arc::new(LocalTasks::default()), done: (Mutex::new(None), Condvar::new()) })
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
        // A coordinator that cannot be reached is reported by the transport (`on_peer_lost`).
        let _ = self.net.send_control(COORDINATOR, bytes);
    }

    /// A peer's connection closed. Losing the coordinator ends everything this worker runs; a
    /// lost worker peer fails the subtasks that send to it, by themselves.
    pub fn on_peer_lost(&self, node: NodeId, reason: &str) {
        if node == COORDINATOR {
            for actor in self.tasks.all() {
                let _ = actor.send_message(TaskMessage::Cancel);
            }
            self.tasks.reset(None);
            self.finish(format!("lost the coordinator: {reason}"));
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
                if let Some(actor) = self.tasks.actor(attempt, (subtask.0 as usize, subtask.1 as usize)) {
                    let _ = actor.send_message(TaskMessage::TriggerCheckpoint { id, unaligned });
                }
            }
            ToWorker::CheckpointComplete { attempt, subtask, id } => {
                if let Some(actor) = self.tasks.actor(attempt, (subtask.0 as usize, subtask.1 as usize)) {
                    let _ = actor.send_message(TaskMessage::CheckpointComplete { id });
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
                    self.send(&ToCoordinator::Report { attempt, report });
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
        // Watermark alignment groups live in one process: a group whose members run on several
        // workers would wait for members it never hears from, so across workers it is off (each
        // source subtask reads freely; results do not depend on it, only state size does).
        let alignment = if plan_is_local_to(&plan, slots) { alignment_groups(&graph) } else { Default::default() };
        let factories = env.factories();
        let deployment = Arc::new(Deployment { job: job.name.clone(), graph, factories, plan, config, alignment, cluster: None });
        self.tasks.reset(Some(attempt));
        let (reports_tx, reports) = channel();
        let threads = spawn_slots(&deployment, restore, slots.0 as usize..slots.1 as usize, &reports_tx);
        drop(reports_tx);
        // Until every slot thread has ended: their actors have all stopped.
        for report in reports {
            if let TaskReport::Spawned { id, actor } = &report {
                if let Some(actor) = actor.local() {
                    self.tasks.register(attempt, *id, actor.clone());
                }
            }
            let report: WireReport = match wire::into_wire_report(report) {
                Ok(report) => report,
                Err(reason) => {
                    // State that does not encode fails the checkpoint's subtask, as in one process.
                    WireReport::SlotLost { subtasks: Vec::new(), reason }
                }
            };
            self.send(&ToCoordinator::Report { attempt, report });
        }
        for thread in threads {
            let _ = thread.join();
        }
        Ok(())
    }
}
