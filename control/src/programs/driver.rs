//! The coordinator of an attempt of an uploaded program's job, run in a process of that program
//! (`<program> attempt-driver`) for the leader, which cannot run the program's code itself (the
//! sinks' committers, the job's definition). The child listens as node 0 of the attempt's mesh,
//! runs the engine's job driver with the program's jobs, and passes to the leader over its pipes
//! what the leader decides or shows: every completed checkpoint goes through the leader's gate
//! (the masters commit it before any sink does), the job's graph and its live figures every
//! second, savepoints taken on request, and the attempt's end. Told to, it closes the attempt (its
//! workers stop) or abandons it (they run on for the next leader to adopt); when the leader's
//! process goes away it abandons it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::{JobRegistry, WorkerSlots};
use tethys_engine::{CheckpointDone, EngineConfig, JobGraph, OutputSample, RestartStrategy, StreamEnvironment, SubtaskLive};

use super::process::{first_from_parent, follow_parent, ChildOptions, ChildSays, ParentSays, ToParent};

/// The hidden command of every Tethys program that coordinates one attempt of a job for the leader.
pub const ATTEMPT_DRIVER_COMMAND: &str = "attempt-driver";

/// How the attempt is to run: what the leader's own driver would start the engine with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverStart {
    /// The job's name and arguments.
    pub job: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Every node's data-plane address (node 0: this process).
    pub addresses: BTreeMap<u32, SocketAddr>,
    /// Each worker's node and slots, in node order.
    pub workers: Vec<(u32, usize)>,
    /// Whether the workers run the attempt already (a new leader adopts it).
    pub adopt: bool,
    /// How long to wait for the attempt's mesh, in milliseconds.
    pub establish_timeout_ms: u64,
    /// The job's parallelism.
    pub parallelism: usize,
    /// Its checkpoint interval in milliseconds, if it checkpoints.
    pub checkpoint_interval_ms: Option<u64>,
    /// Where its checkpoints go.
    pub checkpoint_dir: Option<PathBuf>,
    /// The checkpoint it restores.
    pub restore_from: Option<PathBuf>,
    /// Restarts within the attempt.
    pub restarts_max: u32,
}

/// What the driver's process says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverChildSays {
    /// It listens for the attempt's mesh here.
    Listening {
        /// The address.
        addr: SocketAddr,
    },
    /// The job runs: its graph (for the leader's live view).
    Running {
        /// The job's graph.
        graph: JobGraph,
    },
    /// A checkpoint is complete and written: may it complete? (answered by `GateAnswer`)
    Gate {
        /// The checkpoint.
        checkpoint: CheckpointDone,
    },
    /// The subtasks' latest figures and the sinks' sampled rows.
    Live {
        /// Figures.
        readings: Vec<SubtaskLive>,
        /// Sampled rows.
        outputs: Vec<OutputSample>,
    },
    /// A savepoint asked for is taken (its directory), or why not.
    SavepointTaken {
        /// The request it answers.
        id: u64,
        /// Its directory, or why not.
        result: Result<PathBuf, String>,
    },
    /// The attempt ended: the savepoint it stopped with, or why it failed.
    Done {
        /// How.
        result: Result<Option<PathBuf>, String>,
    },
}

impl ChildSays for DriverChildSays {}

/// What the leader says to the driver's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverParentSays {
    /// Start (or adopt) the attempt.
    Start(Box<DriverStart>),
    /// The gate's answer to the newest `Gate`.
    GateAnswer {
        /// Whether the checkpoint may complete, or why not.
        result: Result<(), String>,
    },
    /// Take a savepoint into `dir`, and with `stop` stop the job after it.
    Savepoint {
        /// The request's id (its answer names it).
        id: u64,
        /// Where.
        dir: PathBuf,
        /// Whether the job stops after it.
        stop: bool,
    },
    /// End the attempt: its workers stop.
    Close {
        /// Why.
        reason: String,
    },
    /// Leave the attempt: its workers run on, for a new leader to adopt.
    Abandon {
        /// Why.
        reason: String,
    },
}

impl ParentSays for DriverParentSays {}

/// The arguments of the hidden command, for a driver listening on `host`.
pub fn driver_args(host: IpAddr, options: &ChildOptions) -> Vec<String> {
    let mut args = vec![ATTEMPT_DRIVER_COMMAND.to_string(), "--host".to_string(), host.to_string()];
    args.extend(options.args());
    args
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The child's side: coordinates one attempt for the leader that started this process (see the
/// module documentation), with the program's `registry`. Returns once the attempt ended.
pub fn run_attempt_driver(host: IpAddr, options: &ChildOptions, registry: JobRegistry) -> Result<(), String> {
    let secret = super::process::secret_from_parent()?;
    let listener = std::net::TcpListener::bind(SocketAddr::new(host, 0)).map_err(|error| format!("cannot listen on {host}: {error}"))?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let to_parent = ToParent::<DriverChildSays>::stdout();
    to_parent.send(&DriverChildSays::Listening { addr });
    let start = match first_from_parent::<DriverParentSays>()? {
        Some(DriverParentSays::Start(start)) => *start,
        None | Some(DriverParentSays::Close { .. } | DriverParentSays::Abandon { .. }) => return Ok(()),
        Some(other) => return Err(format!("told {other:?} before the attempt started")),
    };
    let done = |result: Result<Option<PathBuf>, String>| {
        to_parent.send(&DriverChildSays::Done { result: result.clone() });
        result.map(drop)
    };
    let spec = JobSpec { name: start.job.clone(), args: start.args.clone() };
    let workers: Vec<WorkerSlots> = start.workers.iter().map(|&(node, slots)| WorkerSlots { node, slots }).collect();
    let mut mesh = options.mesh()?;
    mesh.establish_timeout = Duration::from_millis(start.establish_timeout_ms);
    let coordinator = match start.adopt {
        true => tethys_net::cluster::Coordinator::adopt(listener, &start.addresses, secret, spec.clone(), workers, mesh),
        false => tethys_net::cluster::Coordinator::start(listener, &start.addresses, secret, spec.clone(), workers, mesh),
    };
    let coordinator = match coordinator {
        Ok(coordinator) => Arc::new(coordinator),
        Err(error) => return done(Err(format!("the attempt's cluster did not form: {error}"))),
    };
    // The leader's answers to the gate, and the job's controls once it runs.
    let (gate_answers, gate_answered) = mpsc::channel::<Result<(), String>>();
    let gate_answered = Mutex::new(gate_answered);
    let asking = to_parent.clone();
    coordinator.cluster().set_checkpoint_gate(Arc::new(move |checkpoint: &CheckpointDone| {
        let answered = lock(&gate_answered);
        asking.send(&DriverChildSays::Gate { checkpoint: checkpoint.clone() });
        answered.recv().unwrap_or_else(|_| Err("the leader is gone".to_string()))
    }));
    let controls: Arc<Mutex<Option<tethys_engine::JobControls>>> = Arc::new(Mutex::new(None));
    let (told, gone, answering) = (Arc::clone(&coordinator), Arc::clone(&coordinator), to_parent.clone());
    let savepoint_controls = Arc::clone(&controls);
    follow_parent(
        move |said: DriverParentSays| match said {
            DriverParentSays::GateAnswer { result } => {
                let _ = gate_answers.send(result);
            }
            DriverParentSays::Savepoint { id, dir, stop } => {
                let controls = lock(&savepoint_controls).clone();
                let answering = answering.clone();
                std::thread::spawn(move || {
                    let result = match controls {
                        Some(controls) => controls.savepoint(dir, stop).map_err(|error| error.to_string()),
                        None => Err("the job is not running yet".to_string()),
                    };
                    answering.send(&DriverChildSays::SavepointTaken { id, result });
                });
            }
            DriverParentSays::Close { reason } => told.close(&reason),
            DriverParentSays::Abandon { reason } => told.abandon(&reason),
            DriverParentSays::Start(_) => tracing::warn!("told to start an attempt that started"),
        },
        // The leader's process is gone: the workers run on for the next leader.
        move |why| gone.abandon(&why),
    );
    let config = EngineConfig {
        parallelism: start.parallelism,
        slots: start.workers.iter().map(|(_, slots)| slots).sum(),
        checkpoint_interval: start.checkpoint_interval_ms.map(Duration::from_millis),
        checkpoint_dir: start.checkpoint_dir.clone(),
        restore_from: start.restore_from.clone(),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: start.restarts_max, delay: Duration::from_millis(200) }),
        ..EngineConfig::default()
    };
    let env = StreamEnvironment::new(config);
    if let Err(error) = registry(&spec, &env) {
        coordinator.close(&error);
        return done(Err(error));
    }
    let client = match env.execute_on_cluster_async(&start.job, coordinator.cluster()) {
        Ok(client) => client,
        Err(error) => {
            coordinator.close(&error.to_string());
            return done(Err(error.to_string()));
        }
    };
    *lock(&controls) = Some(client.controls());
    to_parent.send(&DriverChildSays::Running { graph: env.job_graph() });
    // The figures, every second while the job runs.
    let (stop_sampling, sampling_stopped) = mpsc::channel::<()>();
    let (board, sampling) = (coordinator.cluster().live_board(), to_parent.clone());
    let sampler = std::thread::spawn(move || loop {
        sampling.send(&DriverChildSays::Live { readings: board.readings(), outputs: board.outputs() });
        if !matches!(sampling_stopped.recv_timeout(crate::live::SAMPLE_INTERVAL), Err(mpsc::RecvTimeoutError::Timeout)) {
            break;
        }
    });
    let result = client.wait();
    drop(stop_sampling);
    let _ = sampler.join();
    *lock(&controls) = None;
    done(result.map(|result| result.stopped_with_savepoint).map_err(|error| error.to_string()))
}
