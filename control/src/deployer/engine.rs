//! The attempt driver of a master process: the job's coordinator runs in the leader, as node 0
//! of the attempt's mesh on the data plane, with the engine's own job driver (checkpoints,
//! restarts within the attempt, sinks' commits), on a thread of its own.
//!
//! A checkpoint completes, and sinks commit it, only once the masters committed it
//! (`CompleteCheckpoint`, through the engine's checkpoint gate), so a deposed leader's
//! coordinator completes nothing.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::cluster::protocol::JobSpec as EngineJobSpec;
use tethys_engine::cluster::WorkerSlots;
use tethys_engine::{CheckpointDone, EngineConfig, RestartStrategy, StreamEnvironment};
use tethys_net::cluster::Coordinator;
use tethys_net::ClusterSecret;

use super::{
    deployment_nodes, job_checkpoint_dir, launch, now_ms, AttemptControl, AttemptDriver, AttemptOutcome, AttemptRun, DeployOptions,
    WorkerCalls,
};
use crate::raft::Master;
use crate::state::{Command, CompletedCheckpoint};

/// How long the coordinator waits for the attempt's mesh. Its workers bound their listeners when
/// they prepared it, so a peer that cannot be reached for this long is gone (it died, or dropped
/// the attempt); the driver, which nothing can interrupt while it waits, fails the attempt then.
const ATTEMPT_MESH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct EngineDriver {
    pub(super) master: Master,
    pub(super) calls: Arc<dyn WorkerCalls>,
    pub(super) secret: ClusterSecret,
    /// Where coordinators listen.
    pub(super) host: IpAddr,
    pub(super) options: DeployOptions,
    /// How jobs of uploaded programs are driven (in processes of their programs).
    pub(super) programs: super::program::UploadedPrograms,
}

impl AttemptControl for Coordinator {
    fn close(&self, reason: &str) {
        Coordinator::close(self, reason);
    }

    fn abandon(&self, reason: &str) {
        Coordinator::abandon(self, reason);
    }
}

impl AttemptDriver for EngineDriver {
    fn drive(&self, run: AttemptRun) -> Pin<Box<dyn Future<Output = AttemptOutcome> + Send>> {
        let this = EngineDriver {
            master: self.master.clone(),
            calls: Arc::clone(&self.calls),
            secret: self.secret.clone(),
            host: self.host,
            options: self.options.clone(),
            programs: self.programs.clone(),
        };
        let handle = tokio::runtime::Handle::current();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let name = format!("tethys-driver-{}", run.job.id.0);
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let _ = done.send(this.drive_blocking(&run, &handle));
        });
        Box::pin(async move {
            spawned.map_err(|error| format!("cannot start the job's driver: {error}"))?;
            outcome.await.map_err(|_| "the job's driver ended without an outcome".to_string())?
        })
    }
}

impl EngineDriver {
    /// Runs one attempt to its end, on the calling thread.
    fn drive_blocking(&self, run: &AttemptRun, handle: &tokio::runtime::Handle) -> AttemptOutcome {
        if let Some(program) = &run.job.artifact.program {
            return self.drive_in_program(run, handle, program);
        }
        let (job, deployment) = (&run.job, &run.deployment);
        let nodes = deployment_nodes(deployment);
        let attempt = deployment.attempt;
        let listener = std::net::TcpListener::bind(SocketAddr::new(self.host, 0)).map_err(|error| format!("cannot listen: {error}"))?;
        let coordinator_addr = listener.local_addr().map_err(|error| error.to_string())?;
        let addresses: BTreeMap<u32, SocketAddr> = match &run.adopted {
            Some(adopted) => {
                let mut addresses = adopted.clone();
                addresses.insert(0, coordinator_addr);
                addresses
            }
            None => handle.block_on(launch(self.calls.as_ref(), run, coordinator_addr))?,
        };
        let spec = EngineJobSpec { name: job.spec.name.clone(), args: job.spec.args.clone() };
        let workers: Vec<WorkerSlots> =
            nodes.iter().enumerate().map(|(index, (_, slots))| WorkerSlots { node: index as u32 + 1, slots: *slots }).collect();
        let secret = self.secret.clone();
        let mesh = self.mesh_options();
        let coordinator = match run.adopted.is_some() {
            true => Coordinator::adopt(listener, &addresses, secret, spec.clone(), workers, mesh),
            false => Coordinator::start(listener, &addresses, secret, spec.clone(), workers, mesh),
        }
        .map_err(|error| format!("the attempt's cluster did not form: {error}"))?;
        let coordinator = Arc::new(coordinator);
        let (master, job_id, gate_handle) = (self.master.clone(), job.id, handle.clone());
        let history = Arc::clone(&run.history);
        coordinator.cluster().set_checkpoint_gate(Arc::new(move |done: &CheckpointDone| {
            complete_checkpoint(&master, &gate_handle, job_id, attempt, &history, done)
        }));
        run.handles.set_control(Some(Arc::clone(&coordinator) as Arc<dyn AttemptControl>));
        let (checkpoint_dir, restore_from) = self.checkpoint_dirs(run)?;
        let config = EngineConfig {
            parallelism: job.spec.parallelism as usize,
            slots: nodes.iter().map(|(_, slots)| slots).sum(),
            checkpoint_interval: (job.spec.checkpoint_interval_ms > 0).then(|| Duration::from_millis(job.spec.checkpoint_interval_ms)),
            checkpoint_dir,
            restore_from,
            restart_strategy: Some(RestartStrategy::FixedDelay { attempts: self.options.restarts_max, delay: Duration::from_millis(200) }),
            ..EngineConfig::default()
        };
        let env = StreamEnvironment::new(config);
        (self.options.registry)(&spec, &env)?;
        let client = env.execute_on_cluster_async(&job.spec.name, coordinator.cluster()).map_err(|error| error.to_string())?;
        run.handles.set_job_controls(Some(Arc::new(client.controls())));
        // Its live figures, sampled every second while it runs (for GET /api/jobs/{id}/live).
        let sampling = match env.plan() {
            Ok(plan) => {
                let (board, history) = (coordinator.cluster().live_board(), Arc::clone(&run.history));
                let live = crate::live::JobLive::new(job.id.0, attempt, &env.job_graph(), &plan, board, history);
                run.handles.set_live(Some(Arc::clone(&live)));
                Some(Sampler::start(live))
            }
            Err(_) => None,
        };
        let result = client.wait();
        drop(sampling);
        run.handles.set_live(None);
        run.handles.set_job_controls(None);
        run.handles.set_control(None);
        result.map(|result| result.stopped_with_savepoint).map_err(|error| error.to_string())
    }
}

impl EngineDriver {
    /// Where the attempt's checkpoints go, and the checkpoint it restores: only the one the
    /// masters recorded as complete (sinks committed up to it and no further, so starting from
    /// anything else, an older one or nothing, would repeat output).
    pub(super) fn checkpoint_dirs(&self, run: &AttemptRun) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
        let job = &run.job;
        let checkpoint_dir =
            (job.spec.checkpoint_interval_ms > 0).then(|| job_checkpoint_dir(self.options.checkpoint_root.as_deref(), job.id)).flatten();
        let restore_from = match &job.last_checkpoint {
            Some(checkpoint) if PathBuf::from(&checkpoint.location).is_dir() => Some(PathBuf::from(&checkpoint.location)),
            Some(checkpoint) => {
                return Err(format!(
                    "checkpoint {} the masters recorded is not at {:?}; the job cannot restart exactly once without it",
                    checkpoint.id, checkpoint.location
                ))
            }
            None => None,
        };
        if let Some(dir) = &restore_from {
            tracing::info!(job = %job.id, attempt = run.deployment.attempt, dir = %dir.display(), "restoring from the newest checkpoint");
        }
        Ok((checkpoint_dir, restore_from))
    }

    /// How long a coordinator waits for its attempt's mesh.
    pub(super) fn mesh_options(&self) -> tethys_net::MeshOptions {
        let establish_timeout = self.options.mesh.establish_timeout.min(ATTEMPT_MESH_TIMEOUT);
        tethys_net::MeshOptions { establish_timeout, ..self.options.mesh.clone() }
    }
}

/// The checkpoint gate of a leader's attempt: `done` completes only once the masters committed it
/// (`CompleteCheckpoint`, proposed in this leader's term: a deposed leader's commits nothing), and
/// is then kept in the job's history.
pub(super) fn complete_checkpoint(
    master: &Master,
    handle: &tokio::runtime::Handle,
    job_id: crate::state::JobId,
    attempt: u32,
    history: &crate::live::JobHistory,
    done: &CheckpointDone,
) -> Result<(), String> {
    let checkpoint = CompletedCheckpoint {
        id: done.id,
        attempt,
        location: done.location.as_ref().map(|path| path.display().to_string()).unwrap_or_default(),
        completed_at_ms: now_ms(),
    };
    let completed_at_ms = checkpoint.completed_at_ms;
    match handle.block_on(master.propose(Command::CompleteCheckpoint { job: job_id, checkpoint })) {
        Ok(Ok(_)) => {
            let millis = |duration: Duration| duration.as_secs_f64() * 1e3;
            let parts: Vec<crate::live::SubtaskCheckpointView> = done
                .subtasks
                .iter()
                .map(|part| crate::live::SubtaskCheckpointView {
                    task: part.task,
                    subtask: part.subtask,
                    acknowledged_ms: millis(part.acknowledged_after),
                    alignment_ms: millis(part.alignment),
                    sync_ms: millis(part.sync),
                    key_groups: part.key_groups,
                })
                .collect();
            let checkpoint = crate::live::CheckpointView {
                id: done.id,
                attempt,
                completed_at_ms,
                duration_ms: done.duration.as_millis() as u64,
                state_bytes: done.state_bytes,
                written_bytes: done.written_bytes,
                location: done.location.as_ref().map(|path| path.display().to_string()),
                subtasks: parts.len() as u32,
                alignment_max_ms: parts.iter().map(|part| part.alignment_ms).fold(0.0, f64::max),
                sync_max_ms: parts.iter().map(|part| part.sync_ms).fold(0.0, f64::max),
            };
            history.checkpoints().record(checkpoint, Some(parts));
            Ok(())
        }
        Ok(Err(refusal)) => Err(format!("the masters refused it: {refusal}")),
        Err(error) => Err(error.to_string()),
    }
}

/// A thread that samples a running attempt's live figures every `SAMPLE_INTERVAL`, until dropped.
pub(super) struct Sampler {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub(super) fn start(live: Arc<crate::live::JobLive>) -> Sampler {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tethys-live-sampler".into())
            .spawn(move || {
                live.sample();
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(crate::live::SAMPLE_INTERVAL) {
                    live.sample();
                }
            })
            .ok();
        Sampler { stop: Some(stop), thread }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
