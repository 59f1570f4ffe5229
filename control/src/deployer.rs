//! The leader's deployer: it places jobs on workers and runs their attempts.
//!
//! Every tick, on the leader only, it looks at the replicated jobs:
//! - a created or restarting job with no driver here is placed (`scheduler::place` on the live
//!   workers' free slots), its next attempt committed as `Deploy` (with the leader's term), and a
//!   *driver* thread started: it prepares the attempt on each placed worker (each binds a data
//!   listener), starts it with every node's address, and runs the job's coordinator as node 0 of
//!   that mesh, with the engine's own job driver (checkpoints, restarts within the attempt, sinks'
//!   commits); a checkpoint completes, and sinks commit it, only once the masters committed it
//!   (`CompleteCheckpoint`, through the engine's checkpoint gate); the attempt's end is committed
//!   as `Finished` or `Failed`;
//! - a running job with no driver here lost its coordinator with an earlier leader: this leader
//!   **adopts** its attempt (reconciliation). Each worker of the deployment is asked to adopt it
//!   (`AdoptAttempt`, with this leader's term: the worker drops the old coordinator's connection
//!   if it still has one and answers its data address); if every one runs it as deployed, the
//!   adoption is committed (`Adopt`) and a driver started whose coordinator joins the running
//!   mesh as node 0 and takes the job over where it is (the engine's adopting coordinator: the
//!   workers resend their reports, nothing restarts, checkpoints go on above the last). A worker
//!   that does not run it as deployed (lost, restarted, another attempt) makes the job restart
//!   instead, as does a failing job with no driver: its attempt is stopped on its workers and
//!   the job restarts from the checkpoint the masters recorded as complete;
//! - a job that ended (a user cancelled it) while its driver runs has its coordinator closed.
//!
//! A master that no longer leads abandons the coordinators it runs (their connections close, the
//! workers are not stopped), so the new leader can adopt what they drove; it commits nothing
//! after (a deposed leader's proposals fail) and stops nothing on the workers.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethys_engine::cluster::protocol::JobSpec as EngineJobSpec;
use tethys_engine::cluster::{JobRegistry, WorkerSlots};
use tethys_engine::{CheckpointDone, EngineConfig, JobControls, RestartStrategy, StreamEnvironment};
use tethys_net::cluster::Coordinator;
use tethys_net::{ClusterSecret, MeshOptions};

use crate::raft::Master;
use crate::rpc::proto::worker_client::WorkerClient;
use crate::rpc::proto::{AdoptAttemptRequest, PrepareAttemptRequest, StartAttemptRequest, StopAttemptRequest};
use crate::rpc::{GrpcTls, SecretAuth};
use crate::scheduler::place;
use crate::state::{Command, CompletedCheckpoint, Deployment, JobId, JobRecord, JobStatus, WorkerId};

/// What the leader needs to run jobs.
#[derive(Clone)]
pub struct DeployOptions {
    /// The jobs the program knows.
    pub registry: JobRegistry,
    /// Where jobs keep their checkpoints (`<root>/job-<id>`), on storage every master reaches; none:
    /// jobs checkpoint in memory and restart from scratch after a leader change.
    pub checkpoint_root: Option<PathBuf>,
    /// The data plane's options.
    pub mesh: MeshOptions,
    /// Restarts a job may make after its first attempt failed, over its life.
    pub restarts_max: u32,
}

/// A job's driver in this process.
struct Driver {
    attempt: u32,
    /// The attempt's coordinator, once its mesh is up (to close it), and the job's controls once
    /// it runs (to take savepoints).
    slots: DriverSlots,
}

/// What a driver thread publishes of the attempt it drives.
#[derive(Clone, Default)]
struct DriverSlots {
    coordinator: Arc<Mutex<Option<Arc<Coordinator>>>>,
    controls: Arc<Mutex<Option<JobControls>>>,
    /// A rescale in progress: the job stops with a savepoint to restart at this parallelism on
    /// that many slots.
    rescale_to: Arc<Mutex<Option<(u32, u32)>>>,
}

pub(crate) struct Deployer {
    master: Master,
    auth: SecretAuth,
    /// Mutual TLS to the workers' gRPC API, if on.
    tls: Option<GrpcTls>,
    secret: ClusterSecret,
    host: IpAddr,
    options: DeployOptions,
    drivers: Arc<Mutex<HashMap<JobId, Driver>>>,
    /// Jobs waiting for slots, with the reason last logged.
    waiting: Mutex<HashMap<JobId, String>>,
    /// Why each job's last attempt driven here failed.
    last_failure: Arc<Mutex<HashMap<JobId, String>>>,
    /// When a job whose attempt failed may be deployed again: a failure's cause (a worker dead
    /// but not yet declared lost) often outlives an immediate retry.
    retry_at: Arc<Mutex<HashMap<JobId, std::time::Instant>>>,
}

/// The wait before a job's attempt `attempt + 1` when attempt `attempt` failed: 0.5 s, doubling,
/// at most 5 s (so the masters' worker timeout passes before the restart budget is spent).
fn restart_delay(attempt: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1).min(8))).min(Duration::from_secs(5))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Deployer {
    pub(crate) fn new(
        master: Master,
        secret_text: &str,
        tls: Option<GrpcTls>,
        host: IpAddr,
        options: DeployOptions,
    ) -> Result<Deployer, String> {
        Ok(Deployer {
            master,
            auth: SecretAuth::new(secret_text)?,
            tls,
            secret: secret_text.parse().map_err(|error| format!("bad cluster secret: {error}"))?,
            host,
            options,
            drivers: Arc::new(Mutex::new(HashMap::new())),
            waiting: Mutex::new(HashMap::new()),
            last_failure: Arc::new(Mutex::new(HashMap::new())),
            retry_at: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Runs the deployer's ticks until the task is dropped.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            if self.master.is_leader() {
                self.tick().await;
            } else {
                for driver in lock(&self.drivers).values() {
                    if let Some(coordinator) = lock(&driver.slots.coordinator).as_ref() {
                        coordinator.abandon("this master no longer leads");
                    }
                }
            }
        }
    }

    async fn tick(self: &Arc<Self>) {
        let jobs: Vec<JobRecord> = self.master.read(|state| state.jobs().cloned().collect());
        for job in jobs {
            let driven = lock(&self.drivers).get(&job.id).map(|driver| driver.attempt);
            match (&job.status, driven) {
                (JobStatus::Created | JobStatus::Restarting, None) => {
                    let waiting = lock(&self.retry_at).get(&job.id).is_some_and(|at| std::time::Instant::now() < *at);
                    if !waiting {
                        self.deploy(&job).await;
                    }
                }
                (JobStatus::Running, None) => self.adopt(&job).await,
                (JobStatus::Failing { .. }, None) => self.restart_orphan(&job).await,
                (JobStatus::Restarting, Some(attempt)) if attempt == job.attempt => {
                    // The masters failed the attempt under its driver (a worker of it was lost):
                    // it ends, and a later tick deploys the next one.
                    self.close_coordinator(job.id, "the masters failed the attempt: a worker of it was lost");
                }
                (status, Some(_)) if status.is_terminal() => {
                    self.close_coordinator(job.id, &format!("the job is {}", status.name()));
                }
                _ => {}
            }
        }
    }

    /// Ends the attempt job `job`'s driver here runs (its workers told to stop), if it runs one.
    fn close_coordinator(&self, job: JobId, reason: &str) {
        if let Some(driver) = lock(&self.drivers).get(&job) {
            if let Some(coordinator) = lock(&driver.slots.coordinator).as_ref() {
                coordinator.close(reason);
            }
        }
    }

    fn checkpoint_dir(&self, job: JobId) -> Option<PathBuf> {
        self.options.checkpoint_root.as_ref().map(|root| root.join(format!("job-{}", job.0)))
    }

    async fn deploy(self: &Arc<Self>, job: &JobRecord) {
        if job.attempt > self.options.restarts_max {
            let last = lock(&self.last_failure).remove(&job.id).map(|reason| format!("; the last: {reason}")).unwrap_or_default();
            let reason = format!("{} attempts failed{last}", job.attempt);
            let _ = self
                .master
                .propose(Command::Transition { job: job.id, attempt: Some(job.attempt), to: JobStatus::Failed { reason } })
                .await;
            return;
        }
        let placements = match self.master.read(|state| place(job.spec.slots as usize, &state.free_slots())) {
            Ok(placements) => placements,
            Err(error) => {
                let reason = error.to_string();
                if lock(&self.waiting).insert(job.id, reason.clone()).as_ref() != Some(&reason) {
                    tracing::warn!(job = %job.id, %reason, "the job waits for slots");
                }
                return;
            }
        };
        lock(&self.waiting).remove(&job.id);
        let attempt = job.attempt + 1;
        let slots = DriverSlots::default();
        lock(&self.drivers).insert(job.id, Driver { attempt, slots: slots.clone() });
        let deploy = Command::Deploy { job: job.id, attempt, placements, restore_from: None };
        let deployment = match self.master.propose(deploy).await {
            Ok(Ok(_)) => self.master.read(|state| state.job(job.id).and_then(|record| record.deployment.clone())),
            outcome => {
                tracing::warn!(job = %job.id, attempt, ?outcome, "deploying was not committed");
                None
            }
        };
        let Some(deployment) = deployment else {
            lock(&self.drivers).remove(&job.id);
            return;
        };
        self.spawn_driver(job, deployment, slots, None);
    }

    /// Starts the thread that drives `deployment` of `job` to its end (see `drive`) and commits
    /// how it ended. `adopted`: the attempt runs already, its workers' data addresses by node.
    fn spawn_driver(
        self: &Arc<Self>,
        job: &JobRecord,
        deployment: Deployment,
        slots: DriverSlots,
        adopted: Option<BTreeMap<u32, SocketAddr>>,
    ) {
        let this = Arc::clone(self);
        let job_id = job.id;
        let job = job.clone();
        let handle = tokio::runtime::Handle::current();
        let spawned = std::thread::Builder::new().name(format!("tethys-driver-{}", job.id.0)).spawn(move || {
            let outcome = this.drive(&job, &deployment, &slots, &handle, adopted);
            // Stopped with a savepoint for a rescale: the job restarts from it at its new size.
            if let (Ok(Some(savepoint)), Some((parallelism, job_slots))) = (&outcome, *lock(&slots.rescale_to)) {
                let location = savepoint.display().to_string();
                let id = savepoint_id(savepoint);
                let savepoint = CompletedCheckpoint { id, attempt: deployment.attempt, location, completed_at_ms: now_ms() };
                let rescale = Command::Rescale { job: job.id, attempt: deployment.attempt, parallelism, slots: job_slots, savepoint };
                let committed = handle.block_on(this.master.propose(rescale));
                tracing::info!(job = %job.id, parallelism, ?committed, "rescaling: the job restarts from its savepoint");
                lock(&this.drivers).remove(&job.id);
                return;
            }
            let to = match outcome {
                Ok(_) => JobStatus::Finished,
                Err(reason) => {
                    lock(&this.last_failure).insert(job.id, reason.clone());
                    JobStatus::Failing { reason }
                }
            };
            tracing::info!(job = %job.id, attempt = deployment.attempt, status = to.name(), "attempt ended");
            let failed = matches!(to, JobStatus::Failing { .. });
            let committed =
                handle.block_on(this.master.propose(Command::Transition { job: job.id, attempt: Some(deployment.attempt), to }));
            // A deposed leader commits nothing and stops nothing: the new one adopts the attempt.
            if failed && matches!(committed, Ok(Ok(_))) {
                // Its attempt is over: stop what may still run, then restart (a later tick deploys,
                // after a delay that grows with the attempts).
                lock(&this.retry_at).insert(job.id, std::time::Instant::now() + restart_delay(deployment.attempt));
                handle.block_on(this.stop_attempt(&job, &deployment, "the attempt failed"));
                let _ = handle.block_on(this.master.propose(Command::Transition {
                    job: job.id,
                    attempt: Some(deployment.attempt),
                    to: JobStatus::Restarting,
                }));
            }
            lock(&this.drivers).remove(&job.id);
        });
        if let Err(error) = spawned {
            tracing::error!(job = %job_id, %error, "cannot start the job's driver");
            lock(&self.drivers).remove(&job_id);
        }
    }

    /// A running job whose coordinator died with an earlier leader: adopt its attempt where every
    /// worker of its deployment still runs it; else restart it (see the module documentation).
    async fn adopt(self: &Arc<Self>, job: &JobRecord) {
        let Some(deployment) = job.deployment.clone() else { return self.restart_orphan(job).await };
        let term = self.master.term();
        let mut addresses = BTreeMap::new();
        for (index, (worker, _)) in Self::nodes(&deployment).into_iter().enumerate() {
            let node = index as u32 + 1;
            let request = AdoptAttemptRequest { job_id: job.id.0, attempt: deployment.attempt, term, node };
            // Whether the worker does not run the attempt as deployed (restart the job), or could
            // not say now (ask again on a later tick: a worker that is gone is declared lost,
            // which restarts the job; one that saw a newer term means this master is deposed).
            let answer = match self.worker_client(worker).await {
                Ok(mut client) => match tokio::time::timeout(WORKER_CALL_TIMEOUT, client.adopt_attempt(request)).await {
                    Ok(Ok(reply)) => {
                        reply.into_inner().data_addr.parse::<SocketAddr>().map_err(|error| (true, format!("a bad address: {error}")))
                    }
                    Ok(Err(status)) => Err((status.code() == tonic::Code::NotFound, status.message().to_string())),
                    Err(_) => Err((false, format!("no answer within {WORKER_CALL_TIMEOUT:?}"))),
                },
                Err(error) => Err((true, error)),
            };
            match answer {
                Ok(addr) => {
                    addresses.insert(node, addr);
                }
                Err((true, reason)) => {
                    tracing::warn!(job = %job.id, attempt = deployment.attempt, %worker, %reason, "cannot adopt the running attempt; restarting the job");
                    return self.restart_orphan(job).await;
                }
                Err((false, reason)) => {
                    tracing::debug!(job = %job.id, attempt = deployment.attempt, %worker, %reason, "cannot adopt the running attempt yet");
                    return;
                }
            }
        }
        match self.master.propose(Command::Adopt { job: job.id, attempt: deployment.attempt }).await {
            Ok(Ok(_)) => {}
            outcome => {
                // Not leading any more, or the job moved on: a later tick looks again.
                tracing::warn!(job = %job.id, attempt = deployment.attempt, ?outcome, "the adoption was not committed");
                return;
            }
        }
        tracing::info!(job = %job.id, attempt = deployment.attempt, term, "adopted the running attempt: nothing restarts");
        let slots = DriverSlots::default();
        lock(&self.drivers).insert(job.id, Driver { attempt: deployment.attempt, slots: slots.clone() });
        self.spawn_driver(job, deployment, slots, Some(addresses));
    }

    /// A running or failing job whose coordinator is gone with an earlier leader: stop its
    /// attempt and restart it.
    async fn restart_orphan(&self, job: &JobRecord) {
        if let Some(deployment) = &job.deployment {
            self.stop_attempt(job, deployment, "its coordinator is gone (the leader changed)").await;
        }
        if matches!(job.status, JobStatus::Running) {
            let reason = "its coordinator is gone (the leader changed)".to_string();
            let _ = self
                .master
                .propose(Command::Transition { job: job.id, attempt: Some(job.attempt), to: JobStatus::Failing { reason } })
                .await;
        }
        let _ = self.master.propose(Command::Transition { job: job.id, attempt: Some(job.attempt), to: JobStatus::Restarting }).await;
    }

    /// The workers of a deployment in node order (node `i + 1` is the `i`-th), with their slots.
    fn nodes(deployment: &Deployment) -> Vec<(WorkerId, usize)> {
        let mut nodes: Vec<(WorkerId, usize)> = Vec::new();
        for placement in &deployment.placements {
            match nodes.iter_mut().find(|(worker, _)| *worker == placement.worker) {
                Some((_, slots)) => *slots += 1,
                None => nodes.push((placement.worker, 1)),
            }
        }
        nodes
    }

    async fn worker_client(
        &self,
        worker: WorkerId,
    ) -> Result<WorkerClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, crate::rpc::AddSecret>>, String>
    {
        let addr = self
            .master
            .read(|state| state.worker(worker).map(|record| record.control_addr.clone()))
            .ok_or_else(|| format!("{worker} is unknown"))?;
        let channel = crate::rpc::lazy_channel(&addr, self.tls.as_ref())?;
        Ok(WorkerClient::with_interceptor(channel, self.auth.add()))
    }

    async fn stop_attempt(&self, job: &JobRecord, deployment: &Deployment, reason: &str) {
        let term = self.master.term();
        for (worker, _) in Self::nodes(deployment) {
            if let Ok(mut client) = self.worker_client(worker).await {
                let request = StopAttemptRequest { job_id: job.id.0, attempt: deployment.attempt, term, reason: reason.to_string() };
                let _ = client.stop_attempt(request).await;
            }
        }
    }

    /// Runs one attempt to its end (see the module documentation); `adopted`: it runs already,
    /// with its workers' data addresses by node.
    fn drive(
        &self,
        job: &JobRecord,
        deployment: &Deployment,
        slots: &DriverSlots,
        handle: &tokio::runtime::Handle,
        adopted: Option<BTreeMap<u32, SocketAddr>>,
    ) -> Result<Option<PathBuf>, String> {
        let nodes = Self::nodes(deployment);
        let (job_id, attempt, term) = (job.id.0, deployment.attempt, deployment.term);
        let adopting = adopted.is_some();
        let mut addresses: BTreeMap<u32, SocketAddr> = adopted.unwrap_or_default();
        let listener = std::net::TcpListener::bind(SocketAddr::new(self.host, 0)).map_err(|error| format!("cannot listen: {error}"))?;
        addresses.insert(0, listener.local_addr().map_err(|error| error.to_string())?);
        handle.block_on(async {
            if adopting {
                return Ok(());
            }
            let mut clients = Vec::with_capacity(nodes.len());
            for (worker, _) in &nodes {
                clients.push(self.worker_client(*worker).await?);
            }
            for (index, ((worker, _), client)) in nodes.iter().zip(&mut clients).enumerate() {
                let prepared = client
                    .prepare_attempt(PrepareAttemptRequest { job_id, attempt, term })
                    .await
                    .map_err(|status| format!("{worker} did not prepare the attempt: {}", status.message()))?;
                let addr: SocketAddr =
                    prepared.into_inner().data_addr.parse().map_err(|error| format!("{worker} answered a bad address: {error}"))?;
                addresses.insert(index as u32 + 1, addr);
            }
            let line = addresses.iter().map(|(node, addr)| format!("{node}={addr}")).collect::<Vec<_>>().join(",");
            for (index, ((worker, _), client)) in nodes.iter().zip(&mut clients).enumerate() {
                let request = StartAttemptRequest { job_id, attempt, term, node: index as u32 + 1, addresses: line.clone() };
                client
                    .start_attempt(request)
                    .await
                    .map_err(|status| format!("{worker} did not start the attempt: {}", status.message()))?;
            }
            Ok::<(), String>(())
        })?;
        let spec = EngineJobSpec { name: job.spec.name.clone(), args: job.spec.args.clone() };
        let workers: Vec<WorkerSlots> =
            nodes.iter().enumerate().map(|(index, (_, slots))| WorkerSlots { node: index as u32 + 1, slots: *slots }).collect();
        let (secret, mesh) = (self.secret.clone(), self.options.mesh.clone());
        let coordinator = match adopting {
            true => Coordinator::adopt(listener, &addresses, secret, spec.clone(), workers, mesh),
            false => Coordinator::start(listener, &addresses, secret, spec.clone(), workers, mesh),
        }
        .map_err(|error| format!("the attempt's cluster did not form: {error}"))?;
        let coordinator = Arc::new(coordinator);
        // A checkpoint is complete once the masters committed it: only then do sinks commit, and a
        // deposed leader's driver completes nothing.
        let (master, job_id, gate_handle) = (self.master.clone(), job.id, handle.clone());
        coordinator.cluster().set_checkpoint_gate(Arc::new(move |done: &CheckpointDone| {
            let checkpoint = CompletedCheckpoint {
                id: done.id,
                attempt,
                location: done.location.as_ref().map(|path| path.display().to_string()).unwrap_or_default(),
                completed_at_ms: now_ms(),
            };
            match gate_handle.block_on(master.propose(Command::CompleteCheckpoint { job: job_id, checkpoint })) {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(refusal)) => Err(format!("the masters refused it: {refusal}")),
                Err(error) => Err(error.to_string()),
            }
        }));
        *lock(&slots.coordinator) = Some(Arc::clone(&coordinator));
        let checkpoint_dir = (job.spec.checkpoint_interval_ms > 0).then(|| self.checkpoint_dir(job.id)).flatten();
        // Only the checkpoint the masters recorded as complete: sinks committed up to it and no
        // further, so starting from anything else (an older one, or nothing) would repeat output.
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
            tracing::info!(job = %job.id, attempt, dir = %dir.display(), "restoring from the newest checkpoint");
        }
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
        *lock(&slots.controls) = Some(client.controls());
        let result = client.wait();
        *lock(&slots.controls) = None;
        *lock(&slots.coordinator) = None;
        result.map(|result| result.stopped_with_savepoint).map_err(|error| error.to_string())
    }

    /// Rescales running job `job` to `parallelism` (see the `Rescale` call): checks first, with
    /// `validator` (the program defines the job so) and `free_slots` (of live workers), then stops
    /// the job with a savepoint; its driver then commits the restart at the new size.
    pub(crate) async fn rescale(
        &self,
        job: JobId,
        parallelism: u32,
        validator: Option<&crate::submit::JobValidator>,
    ) -> Result<(), tonic::Status> {
        use tonic::Status;
        let record = self.master.read(|state| state.job(job).cloned()).ok_or_else(|| Status::not_found(format!("{job} does not exist")))?;
        if record.status != JobStatus::Running {
            return Err(Status::failed_precondition(format!("{job} is {}: only a running job is rescaled", record.status.name())));
        }
        if !(1..=crate::submit::PARALLELISM_MAX).contains(&parallelism) {
            return Err(Status::invalid_argument(format!(
                "parallelism {parallelism} is out of range 1..={}",
                crate::submit::PARALLELISM_MAX
            )));
        }
        if parallelism == record.spec.parallelism {
            return Err(Status::invalid_argument(format!("{job} runs at parallelism {parallelism} already")));
        }
        // Slots as the job asked them: its parallelism, unless it asked for more.
        let slots = if record.spec.slots == record.spec.parallelism { parallelism } else { record.spec.slots.max(parallelism) };
        let (free, own) = self.master.read(|state| {
            let free: usize = state.free_slots().iter().map(|(_, slots)| slots.len()).sum();
            (free, record.deployment.as_ref().map_or(0, |deployment| deployment.placements.len()))
        });
        if free + own < slots as usize {
            return Err(Status::failed_precondition(format!(
                "{job} would need {slots} slots; the cluster has {} (its {own} and {free} free)",
                free + own
            )));
        }
        if let Some(validator) = validator {
            validator(&record.spec.name, &record.spec.args, parallelism).map_err(Status::invalid_argument)?;
        }
        // Its newest checkpoint must restore into the job at the new parallelism (the savepoint
        // will hold the same operators and sources).
        if let Some(checkpoint) = &record.last_checkpoint {
            let (registry, spec, path) = (Arc::clone(&self.options.registry), record.spec.clone(), PathBuf::from(&checkpoint.location));
            let checked = tokio::task::spawn_blocking(move || {
                let env = StreamEnvironment::new(EngineConfig {
                    parallelism: parallelism as usize,
                    slots: slots as usize,
                    ..EngineConfig::default()
                });
                registry(&EngineJobSpec { name: spec.name.clone(), args: spec.args.clone() }, &env)?;
                env.check_restore(&path)
            })
            .await
            .map_err(|error| Status::internal(format!("the check's thread: {error}")))?;
            checked.map_err(|reason| Status::failed_precondition(format!("{job} cannot run at parallelism {parallelism}: {reason}")))?;
        }
        let rescale_to = lock(&self.drivers).get(&job).map(|driver| Arc::clone(&driver.slots.rescale_to));
        let rescale_to = rescale_to.ok_or_else(|| Status::failed_precondition(format!("{job} is not running")))?;
        *lock(&rescale_to) = Some((parallelism, slots));
        if let Err(status) = self.savepoint(job, true, None).await {
            *lock(&rescale_to) = None;
            return Err(status);
        }
        Ok(())
    }

    /// Takes a savepoint of running job `job` into `dir` (default: `savepoints` in the job's
    /// checkpoint directory) and, with `stop`, stops the job once it is complete. Its directory.
    pub(crate) async fn savepoint(&self, job: JobId, stop: bool, dir: Option<PathBuf>) -> Result<String, tonic::Status> {
        let controls = lock(&self.drivers).get(&job).and_then(|driver| lock(&driver.slots.controls).clone());
        let controls = controls.ok_or_else(|| tonic::Status::failed_precondition(format!("{job} is not running")))?;
        let dir = match dir.or_else(|| self.checkpoint_dir(job).map(|dir| dir.join("savepoints"))) {
            Some(dir) => dir,
            None => {
                return Err(tonic::Status::failed_precondition("the masters keep no checkpoints (--checkpoint-root): give a directory"))
            }
        };
        let taken = tokio::task::spawn_blocking(move || controls.savepoint(dir, stop))
            .await
            .map_err(|error| tonic::Status::internal(format!("the savepoint's thread: {error}")))?;
        let path = taken.map_err(|error| tonic::Status::failed_precondition(error.to_string()))?;
        Ok(path.display().to_string())
    }
}

/// The id of the savepoint in directory `path` (the checkpoint store names it by its id).
fn savepoint_id(path: &std::path::Path) -> u64 {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let digits: String = name.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    digits.parse().unwrap_or(0)
}

/// How long the leader waits for a worker's answer when adopting an attempt.
const WORKER_CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    #[test]
    fn restarts_wait_longer_and_longer_up_to_a_bound() {
        let delays: Vec<u128> = (1..=6).map(|attempt| super::restart_delay(attempt).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(super::restart_delay(u32::MAX).as_millis(), 5000);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
