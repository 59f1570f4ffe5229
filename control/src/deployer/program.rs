//! The leader's side of an attempt of an uploaded program's job: its coordinator runs in a process
//! of the program (`crate::programs::driver`), and the leader does here what it does for a job of
//! its own program in process: launches the attempt on its workers, lets each checkpoint complete
//! once the masters committed it, shows the attempt's live figures, takes savepoints through it,
//! and closes or abandons it when the deployer says so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tethys_engine::{ExecutionPlan, LiveBoard};

use super::engine::{complete_checkpoint, EngineDriver, Sampler};
use super::{deployment_nodes, launch, AttemptControl, AttemptOutcome, AttemptRun, SavepointControl};
use crate::programs::driver::{driver_args, DriverChildSays, DriverParentSays, DriverStart};
use crate::programs::process::{ChildOptions, ChildProcess, ToChild, READY_TIMEOUT};
use crate::programs::ProgramStore;
use crate::rpc::{GrpcTls, SecretAuth};

/// What the leader needs to drive jobs of uploaded programs.
#[derive(Clone)]
pub(super) struct UploadedPrograms {
    /// The masters' program store.
    pub(super) store: ProgramStore,
    /// To fetch a program from another master when this one has no copy.
    pub(super) auth: SecretAuth,
    pub(super) tls: Option<GrpcTls>,
    /// The secret the driver's process gets (in its environment).
    pub(super) secret_text: String,
    /// What the driver's process is told of the data plane.
    pub(super) processes: ChildOptions,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The attempt's controls, through the driver's process.
struct ProgramAttempt {
    to_child: ToChild<DriverParentSays>,
    next_savepoint: AtomicU64,
    /// Savepoints asked for and not answered yet.
    savepoints: Mutex<HashMap<u64, mpsc::Sender<Result<PathBuf, String>>>>,
}

impl AttemptControl for ProgramAttempt {
    fn close(&self, reason: &str) {
        self.to_child.send(&DriverParentSays::Close { reason: reason.to_string() });
    }

    fn abandon(&self, reason: &str) {
        self.to_child.send(&DriverParentSays::Abandon { reason: reason.to_string() });
    }
}

impl SavepointControl for ProgramAttempt {
    fn savepoint(&self, dir: PathBuf, stop: bool) -> Result<PathBuf, String> {
        let id = self.next_savepoint.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = mpsc::channel();
        lock(&self.savepoints).insert(id, answer);
        if !self.to_child.send(&DriverParentSays::Savepoint { id, dir, stop }) {
            lock(&self.savepoints).remove(&id);
            return Err("the job's driver has ended".to_string());
        }
        answered.recv().unwrap_or_else(|_| Err("the job's driver ended before the savepoint completed".to_string()))
    }
}

impl EngineDriver {
    /// Runs one attempt of a job of uploaded program `program` to its end, on the calling thread
    /// (see the module documentation).
    pub(super) fn drive_in_program(&self, run: &AttemptRun, handle: &tokio::runtime::Handle, program: &str) -> AttemptOutcome {
        let (job, deployment) = (&run.job, &run.deployment);
        let attempt = deployment.attempt;
        let programs = &self.programs;
        let me = self.master.id();
        let peers: Vec<String> = self.master.member_addrs().into_iter().filter(|(id, _)| *id != me).map(|(_, addr)| addr).collect();
        let path = handle.block_on(crate::programs::fetch(&programs.store, program, &peers, &programs.auth, programs.tls.as_ref()))?;
        let (checkpoint_dir, restore_from) = self.checkpoint_dirs(run)?;
        let what = format!("the driver of attempt {attempt} of {}", job.id);
        let mut process = ChildProcess::spawn(&path, &driver_args(self.host, &programs.processes), &programs.secret_text, what.clone())?;
        let coordinator_addr = match process.next_within::<DriverChildSays>(READY_TIMEOUT)? {
            DriverChildSays::Listening { addr } => addr,
            other => return Err(format!("{what} said {other:?} before it listened")),
        };
        let addresses = match &run.adopted {
            Some(adopted) => {
                let mut addresses = adopted.clone();
                addresses.insert(0, coordinator_addr);
                addresses
            }
            None => handle.block_on(launch(self.calls.as_ref(), run, coordinator_addr))?,
        };
        let nodes = deployment_nodes(deployment);
        let start = DriverStart {
            job: job.spec.name.clone(),
            args: job.spec.args.clone(),
            addresses,
            workers: nodes.iter().enumerate().map(|(index, (_, slots))| (index as u32 + 1, *slots)).collect(),
            adopt: run.adopted.is_some(),
            establish_timeout_ms: self.mesh_options().establish_timeout.as_millis() as u64,
            parallelism: job.spec.parallelism as usize,
            checkpoint_interval_ms: (job.spec.checkpoint_interval_ms > 0).then_some(job.spec.checkpoint_interval_ms),
            checkpoint_dir,
            restore_from,
            restarts_max: self.options.restarts_max,
        };
        let to_child = process.sender::<DriverParentSays>();
        if !to_child.send(&DriverParentSays::Start(Box::new(start))) {
            return Err(format!("{what} ended before the attempt started"));
        }
        let control = Arc::new(ProgramAttempt {
            to_child: to_child.clone(),
            next_savepoint: AtomicU64::new(1),
            savepoints: Mutex::new(HashMap::new()),
        });
        run.handles.set_control(Some(Arc::clone(&control) as Arc<dyn AttemptControl>));
        run.handles.set_job_controls(Some(Arc::clone(&control) as Arc<dyn SavepointControl>));
        let (outcome, ended) = mpsc::channel::<AttemptOutcome>();
        let board = LiveBoard::new();
        let sampler: Arc<Mutex<Option<Sampler>>> = Arc::new(Mutex::new(None));
        let (master, gate_handle, job_id, history, handles) =
            (self.master.clone(), handle.clone(), job.id, Arc::clone(&run.history), run.handles.clone());
        let slots: usize = nodes.iter().map(|(_, slots)| slots).sum();
        let (sampling, answering, finished, gone_control) = (Arc::clone(&sampler), Arc::clone(&control), outcome.clone(), control);
        process.follow(
            move |said: DriverChildSays| match said {
                DriverChildSays::Running { graph } => match ExecutionPlan::build(&graph, slots) {
                    Ok(plan) => {
                        let live = crate::live::JobLive::new(job_id.0, attempt, &graph, &plan, Arc::clone(&board), Arc::clone(&history));
                        handles.set_live(Some(Arc::clone(&live)));
                        *lock(&sampling) = Some(Sampler::start(live));
                    }
                    Err(error) => tracing::warn!(job = %job_id, attempt, %error, "the program's job graph does not plan here"),
                },
                DriverChildSays::Gate { checkpoint } => {
                    let result = complete_checkpoint(&master, &gate_handle, job_id, attempt, &history, &checkpoint);
                    to_child.send(&DriverParentSays::GateAnswer { result });
                }
                DriverChildSays::Live { readings, outputs } => {
                    for reading in readings {
                        board.publish(reading);
                    }
                    for output in outputs {
                        board.publish_output(output);
                    }
                }
                DriverChildSays::SavepointTaken { id, result } => {
                    if let Some(answer) = lock(&answering.savepoints).remove(&id) {
                        let _ = answer.send(result);
                    }
                }
                DriverChildSays::Done { result } => {
                    let _ = finished.send(result);
                }
                DriverChildSays::Listening { .. } => {}
            },
            move |how| {
                // Savepoints still waiting are answered (their senders go).
                lock(&gone_control.savepoints).clear();
                let _ = outcome.send(Err(format!("the job's driver process ended without saying how the attempt ended: {how}")));
            },
        )?;
        let result = ended.recv().unwrap_or_else(|_| Err("the job's driver process was lost".to_string()));
        lock(&sampler).take();
        run.handles.set_live(None);
        run.handles.set_job_controls(None);
        run.handles.set_control(None);
        result
    }
}
