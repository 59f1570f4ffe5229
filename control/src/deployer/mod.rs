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
//! after (a deposed leader's proposals fail) and stops nothing on the workers, even if it leads
//! again by the time its driver ends: an abandoned attempt is left for the next tick to adopt.
//!
//! The deployer reaches workers through [`WorkerCalls`] and runs attempts through an
//! [`AttemptDriver`]: in a master process, the workers' gRPC service (`grpc`) and the engine's
//! coordinator on the data plane (`engine`); in the control plane's seeded simulation, models of
//! both on one thread with a virtual clock, so the same decisions are checked under faults.

mod engine;
mod grpc;
mod program;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethys_engine::cluster::protocol::JobSpec as EngineJobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::{EngineConfig, JobControls, StreamEnvironment};
use tethys_net::MeshOptions;
use tokio::time::Instant;
use tonic::Status;

use crate::raft::Master;
use crate::rpc::proto::{
    AdoptAttemptReply, AdoptAttemptRequest, PrepareAttemptReply, PrepareAttemptRequest, StartAttemptReply, StartAttemptRequest,
    StopAttemptReply, StopAttemptRequest,
};
use crate::rpc::GrpcTls;
use crate::scheduler::place;
use crate::state::{Command, CompletedCheckpoint, Deployment, JobId, JobRecord, JobSpec, JobStatus, WorkerId};

/// How many checkpoints a rescale's check reads at most, when retention removes the one it reads.
const RESCALE_CHECK_TRIES: u32 = 3;

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
    /// What the processes of uploaded programs (their jobs' coordinators) are told of the data
    /// plane. The program store itself is the master's (`MasterOptions::program_dir`).
    pub program_processes: crate::programs::process::ChildOptions,
}

/// Takes savepoints of a running attempt (the engine's `JobControls`, or the driver's process of
/// an uploaded program).
pub trait SavepointControl: Send + Sync {
    /// Takes a savepoint into `dir` and, with `stop`, stops the job after it: its directory.
    fn savepoint(&self, dir: PathBuf, stop: bool) -> Result<PathBuf, String>;
}

impl SavepointControl for JobControls {
    fn savepoint(&self, dir: PathBuf, stop: bool) -> Result<PathBuf, String> {
        JobControls::savepoint(self, dir, stop).map_err(|error| error.to_string())
    }
}

/// The leader's calls to a worker, by its id (the workers' gRPC service in a master process).
/// Each carries the leader's term; a worker refuses a term older than one it has seen.
#[tonic::async_trait]
pub trait WorkerCalls: Send + Sync + 'static {
    /// Has the worker make ready to run an attempt (it binds a data listener): its address.
    async fn prepare_attempt(&self, worker: WorkerId, request: PrepareAttemptRequest) -> Result<PrepareAttemptReply, Status>;
    /// Starts a prepared attempt, with every node's address.
    async fn start_attempt(&self, worker: WorkerId, request: StartAttemptRequest) -> Result<StartAttemptReply, Status>;
    /// Ends an attempt the worker runs or prepared.
    async fn stop_attempt(&self, worker: WorkerId, request: StopAttemptRequest) -> Result<StopAttemptReply, Status>;
    /// Asks the worker to hand an attempt it runs to this leader: `NotFound` when it does not run
    /// it as deployed.
    async fn adopt_attempt(&self, worker: WorkerId, request: AdoptAttemptRequest) -> Result<AdoptAttemptReply, Status>;
}

/// What ends an attempt's coordinator from outside its driver.
pub trait AttemptControl: Send + Sync {
    /// Ends the attempt: its workers stop, and the driver returns a failure.
    fn close(&self, reason: &str);
    /// Lets the attempt go without stopping it (this master no longer leads): its workers run on
    /// for a new leader to adopt, and the driver returns.
    fn abandon(&self, reason: &str);
}

/// How an attempt ended: a savepoint it stopped with, if any, or why it failed.
pub type AttemptOutcome = Result<Option<PathBuf>, String>;

/// An attempt for an [`AttemptDriver`] to run.
pub struct AttemptRun {
    /// The job, as the masters held it when the attempt was deployed or adopted.
    pub job: JobRecord,
    /// The attempt's deployment.
    pub deployment: Deployment,
    /// The term this leader leads in: the calls to the attempt's workers carry it, so no leader
    /// of an earlier term can reach the attempt after.
    pub term: u64,
    /// The attempt runs already (it is adopted): its workers' data addresses by node.
    pub adopted: Option<BTreeMap<u32, SocketAddr>>,
    /// Where the driver publishes what controls the attempt.
    pub handles: AttemptHandles,
    /// What this master keeps of the job across attempts: the driver's figures and checkpoints go there.
    pub history: Arc<crate::live::JobHistory>,
}

/// Runs attempts: starts them on their workers (or joins them, adopted), coordinates them, and
/// ends when they do.
pub trait AttemptDriver: Send + Sync + 'static {
    /// Runs `run` to its end.
    fn drive(&self, run: AttemptRun) -> Pin<Box<dyn Future<Output = AttemptOutcome> + Send>>;
}

/// What a driver publishes of the attempt it runs, and what the deployer asked of it.
#[derive(Clone, Default)]
pub struct AttemptHandles {
    control: Arc<Mutex<Option<Arc<dyn AttemptControl>>>>,
    controls: Arc<Mutex<Option<Arc<dyn SavepointControl>>>>,
    /// A rescale in progress: the job stops with a savepoint to restart at this parallelism on
    /// that many slots.
    rescale_to: Arc<Mutex<Option<(u32, u32)>>>,
    /// Asked to close (the reason) or abandon, maybe before the control was published.
    ended: Arc<Mutex<Option<Ending>>>,
    /// The running attempt's live figures, once its coordinator runs.
    live: Arc<Mutex<Option<Arc<crate::live::JobLive>>>>,
}

#[derive(Clone)]
enum Ending {
    Closed(String),
    Abandoned(String),
}

impl AttemptHandles {
    /// Publishes the attempt's control once its coordinator runs (none: it ran out). A close or
    /// abandon asked before applies now.
    pub fn set_control(&self, control: Option<Arc<dyn AttemptControl>>) {
        if let Some(control) = &control {
            match lock(&self.ended).clone() {
                Some(Ending::Closed(reason)) => control.close(&reason),
                Some(Ending::Abandoned(reason)) => control.abandon(&reason),
                None => {}
            }
        }
        *lock(&self.control) = control;
    }

    /// Publishes the running attempt's live figures, or none once it ended.
    pub fn set_live(&self, live: Option<Arc<crate::live::JobLive>>) {
        *lock(&self.live) = live;
    }

    /// Publishes the running job's controls (savepoints), or none once it ended.
    pub fn set_job_controls(&self, controls: Option<Arc<dyn SavepointControl>>) {
        *lock(&self.controls) = controls;
    }

    /// Whether the attempt was abandoned.
    pub fn abandoned(&self) -> bool {
        matches!(*lock(&self.ended), Some(Ending::Abandoned(_)))
    }

    fn close(&self, reason: &str) {
        let mut ended = lock(&self.ended);
        if ended.is_none() {
            *ended = Some(Ending::Closed(reason.to_string()));
        }
        drop(ended);
        if let Some(control) = lock(&self.control).clone() {
            control.close(reason);
        }
    }

    fn abandon(&self, reason: &str) {
        let mut ended = lock(&self.ended);
        if !matches!(*ended, Some(Ending::Abandoned(_))) {
            *ended = Some(Ending::Abandoned(reason.to_string()));
            drop(ended);
            if let Some(control) = lock(&self.control).clone() {
                control.abandon(reason);
            }
        }
    }
}

/// A job's driver in this process.
struct Driver {
    attempt: u32,
    handles: AttemptHandles,
    /// Its task, to end it with the process (`Deployer::halt`).
    task: Option<tokio::task::AbortHandle>,
}

/// The leader's deployer (see the module documentation).
pub struct Deployer {
    master: Master,
    calls: Arc<dyn WorkerCalls>,
    driver: Arc<dyn AttemptDriver>,
    /// Restarts a job may make after its first attempt failed.
    restarts_max: u32,
    /// Where jobs keep their checkpoints and savepoints, if on shared storage.
    checkpoint_root: Option<PathBuf>,
    /// The jobs the program knows, to check a rescale before anything stops.
    registry: Option<JobRegistry>,
    /// Uploaded programs, to check a rescale of one's job.
    programs: Option<crate::programs::ProgramStore>,
    drivers: Arc<Mutex<HashMap<JobId, Driver>>>,
    /// What this master keeps of each job that has not ended, across attempts and leaders.
    histories: Mutex<HashMap<JobId, Arc<crate::live::JobHistory>>>,
    /// Jobs waiting for slots, with the reason last logged.
    waiting: Mutex<HashMap<JobId, String>>,
    /// Why each job's last attempt driven here failed.
    last_failure: Arc<Mutex<HashMap<JobId, String>>>,
    /// When a job whose attempt failed may be deployed again: a failure's cause (a worker dead
    /// but not yet declared lost) often outlives an immediate retry.
    retry_at: Arc<Mutex<HashMap<JobId, Instant>>>,
    /// Attempts this deployer asked their workers to stop.
    stopped: Mutex<HashSet<(JobId, u32)>>,
    /// Stops a worker has not acknowledged yet (the call was lost, or timed out), asked again
    /// every tick while the worker lives: attempt, worker, why.
    unstopped: Mutex<HashMap<(JobId, u32, WorkerId), String>>,
}

/// The wait before a job's attempt `attempt + 1` when attempt `attempt` failed: 0.5 s, doubling,
/// at most 5 s (so the masters' worker timeout passes before the restart budget is spent).
fn restart_delay(attempt: u32) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(attempt.saturating_sub(1).min(8))).min(Duration::from_secs(5))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the leader waits for a worker's answer when adopting an attempt.
const WORKER_CALL_TIMEOUT: Duration = Duration::from_secs(3);

impl Deployer {
    /// The deployer of a master process: workers over gRPC (with the cluster secret and TLS if
    /// on), attempts run by the engine on the data plane, coordinators listening on `host`.
    pub(crate) fn new(
        master: Master,
        secret_text: &str,
        tls: Option<GrpcTls>,
        host: IpAddr,
        options: DeployOptions,
        programs: crate::programs::ProgramStore,
    ) -> Result<Deployer, String> {
        let calls: Arc<dyn WorkerCalls> = Arc::new(grpc::GrpcWorkers::new(master.clone(), secret_text, tls.clone())?);
        let secret = secret_text.parse().map_err(|error| format!("bad cluster secret: {error}"))?;
        let uploaded = program::UploadedPrograms {
            store: programs.clone(),
            auth: crate::rpc::SecretAuth::new(secret_text)?,
            tls,
            secret_text: secret_text.to_string(),
            processes: options.program_processes.clone(),
        };
        let driver = engine::EngineDriver {
            master: master.clone(),
            calls: Arc::clone(&calls),
            secret,
            host,
            options: options.clone(),
            programs: uploaded,
        };
        let mut deployer = Deployer::with_parts(master, calls, Arc::new(driver), options.restarts_max);
        deployer.checkpoint_root = options.checkpoint_root;
        deployer.registry = Some(options.registry);
        deployer.programs = Some(programs);
        Ok(deployer)
    }

    /// A deployer over any workers and attempt driver (the simulation's models), with no shared
    /// checkpoint storage: savepoints need a directory, rescales are not checked against a
    /// program.
    pub fn with_parts(master: Master, calls: Arc<dyn WorkerCalls>, driver: Arc<dyn AttemptDriver>, restarts_max: u32) -> Deployer {
        Deployer {
            master,
            calls,
            driver,
            restarts_max,
            checkpoint_root: None,
            registry: None,
            programs: None,
            drivers: Arc::new(Mutex::new(HashMap::new())),
            histories: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            last_failure: Arc::new(Mutex::new(HashMap::new())),
            retry_at: Arc::new(Mutex::new(HashMap::new())),
            stopped: Mutex::new(HashSet::new()),
            unstopped: Mutex::new(HashMap::new()),
        }
    }

    /// Runs the deployer's ticks until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        loop {
            ticks.tick().await;
            if self.master.is_leader() {
                self.tick().await;
            } else {
                for driver in lock(&self.drivers).values() {
                    driver.handles.abandon("this master no longer leads");
                }
            }
        }
    }

    /// Ends every driver here at once, as the process's end would: nothing is committed or
    /// stopped.
    pub fn halt(&self) {
        for (_, driver) in lock(&self.drivers).drain() {
            if let Some(task) = driver.task {
                task.abort();
            }
        }
    }

    /// The jobs this deployer drives an attempt of, with the attempt.
    pub fn driving(&self) -> Vec<(JobId, u32)> {
        let mut driving: Vec<(JobId, u32)> = lock(&self.drivers).iter().map(|(job, driver)| (*job, driver.attempt)).collect();
        driving.sort();
        driving
    }

    async fn tick(self: &Arc<Self>) {
        self.retry_stops().await;
        let jobs: Vec<JobRecord> = self.master.read(|state| state.jobs().cloned().collect());
        for job in jobs {
            let driven = lock(&self.drivers).get(&job.id).map(|driver| driver.attempt);
            match (&job.status, driven) {
                (JobStatus::Created | JobStatus::Restarting, None) => {
                    let waiting = lock(&self.retry_at).get(&job.id).is_some_and(|at| Instant::now() < *at);
                    if !waiting {
                        self.deploy(&job).await;
                    }
                }
                (JobStatus::Running, None) => self.adopt(&job).await,
                (JobStatus::Failing { .. }, None) => self.restart_orphan(&job, "it was failing when its coordinator was lost").await,
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
            driver.handles.close(reason);
        }
    }

    fn checkpoint_dir(&self, job: JobId) -> Option<PathBuf> {
        job_checkpoint_dir(self.checkpoint_root.as_deref(), job)
    }

    async fn deploy(self: &Arc<Self>, job: &JobRecord) {
        if job.attempt > self.restarts_max {
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
        if job.attempt > 0 && !lock(&self.stopped).contains(&(job.id, job.attempt)) {
            // Its last attempt ended without this deployer stopping it (a worker of it was lost,
            // or an earlier leader drove it): what may still run of it elsewhere stops now,
            // rather than at the workers' orphan timeout.
            self.stop_everywhere(job.id, job.attempt).await;
        }
        let attempt = job.attempt + 1;
        let handles = AttemptHandles::default();
        lock(&self.drivers).insert(job.id, Driver { attempt, handles: handles.clone(), task: None });
        let deploy = Command::Deploy { job: job.id, attempt, placements, restore_from: None };
        let deployment = match self.master.propose(deploy).await {
            Ok(Ok(_)) => self.master.read(|state| state.job(job.id).and_then(|record| record.deployment.clone())),
            outcome => {
                tracing::warn!(job = %job.id, attempt, ?outcome, "deploying was not committed");
                None
            }
        };
        // Committed, maybe in a later term than the one it was proposed in: the workers hear of
        // the term this master leads in now.
        let (Some(deployment), Some(term)) = (deployment, self.master.leading_term()) else {
            lock(&self.drivers).remove(&job.id);
            return;
        };
        // The job as it runs now (its status, the checkpoint it restores from).
        let job = self.master.read(|state| state.job(job.id).cloned()).unwrap_or_else(|| job.clone());
        self.spawn_driver(job, deployment, term, handles, None);
    }

    /// Starts the task that drives `deployment` of `job` to its end (the attempt driver) and
    /// commits how it ended. `adopted`: the attempt runs already, its workers' data addresses by node.
    fn spawn_driver(
        self: &Arc<Self>,
        job: JobRecord,
        deployment: Deployment,
        term: u64,
        handles: AttemptHandles,
        adopted: Option<BTreeMap<u32, SocketAddr>>,
    ) {
        let this = Arc::clone(self);
        let (job_id, attempt) = (job.id, deployment.attempt);
        let history = self.history(job_id);
        let run = AttemptRun { job: job.clone(), deployment: deployment.clone(), term, adopted, handles: handles.clone(), history };
        let driving = self.driver.drive(run);
        let task = tokio::spawn(async move {
            let outcome = driving.await;
            this.attempt_ended(&job, &deployment, &handles, outcome).await;
        });
        if let Some(driver) = lock(&self.drivers).get_mut(&job_id).filter(|driver| driver.attempt == attempt) {
            driver.task = Some(task.abort_handle());
        }
    }

    /// Commits how an attempt driven here ended: restarted from its savepoint (a rescale),
    /// finished, or failing (then it is stopped and restarts after a delay). An abandoned attempt
    /// commits nothing: the next leader, this master included, adopts it.
    async fn attempt_ended(&self, job: &JobRecord, deployment: &Deployment, handles: &AttemptHandles, outcome: AttemptOutcome) {
        let job_id = job.id;
        let attempt = deployment.attempt;
        let rescale_to = *lock(&handles.rescale_to);
        if handles.abandoned() {
            tracing::info!(job = %job_id, attempt, "the attempt was left to the next leader");
        } else if let (Ok(Some(savepoint)), Some((parallelism, job_slots))) = (&outcome, rescale_to) {
            // Stopped with a savepoint for a rescale: the job restarts from it at its new size.
            let location = savepoint.display().to_string();
            let id = savepoint_id(savepoint);
            let savepoint = CompletedCheckpoint { id, attempt, location, completed_at_ms: now_ms() };
            let rescale = Command::Rescale { job: job_id, attempt, parallelism, slots: job_slots, savepoint };
            let committed = self.master.propose(rescale).await;
            tracing::info!(job = %job_id, parallelism, ?committed, "rescaling: the job restarts from its savepoint");
        } else {
            let to = match outcome {
                Ok(_) => JobStatus::Finished,
                Err(reason) => {
                    lock(&self.last_failure).insert(job_id, reason.clone());
                    JobStatus::Failing { reason }
                }
            };
            match &to {
                JobStatus::Failing { reason } => tracing::warn!(job = %job_id, attempt, %reason, "attempt failed"),
                _ => tracing::info!(job = %job_id, attempt, status = to.name(), "attempt ended"),
            }
            let failed = matches!(to, JobStatus::Failing { .. });
            let committed = self.master.propose(Command::Transition { job: job_id, attempt: Some(attempt), to }).await;
            // A deposed leader commits nothing and stops nothing: the new one adopts the attempt.
            if failed && matches!(committed, Ok(Ok(_))) {
                // Its attempt is over: stop what may still run, then restart (a later tick
                // deploys, after a delay that grows with the attempts).
                lock(&self.retry_at).insert(job_id, Instant::now() + restart_delay(attempt));
                self.stop_attempt(job, deployment, "the attempt failed").await;
                let restarting = Command::Transition { job: job_id, attempt: Some(attempt), to: JobStatus::Restarting };
                let _ = self.master.propose(restarting).await;
            }
        }
        let mut drivers = lock(&self.drivers);
        if drivers.get(&job_id).is_some_and(|driver| driver.attempt == attempt) {
            drivers.remove(&job_id);
        }
    }

    /// A running job whose coordinator died with an earlier leader: adopt its attempt where every
    /// worker of its deployment still runs it; else restart it (see the module documentation).
    async fn adopt(self: &Arc<Self>, job: &JobRecord) {
        let Some(deployment) = job.deployment.clone() else { return self.restart_orphan(job, "it runs with no deployment").await };
        let Some(term) = self.master.leading_term() else { return };
        let mut addresses = BTreeMap::new();
        for (index, (worker, _)) in deployment_nodes(&deployment).into_iter().enumerate() {
            let node = index as u32 + 1;
            let request = AdoptAttemptRequest { job_id: job.id.0, attempt: deployment.attempt, term, node };
            // Whether the worker does not run the attempt as deployed (restart the job), or could
            // not say now (ask again on a later tick: a worker that is gone is declared lost,
            // which restarts the job; one that saw a newer term means this master is deposed).
            let answer = match tokio::time::timeout(WORKER_CALL_TIMEOUT, self.calls.adopt_attempt(worker, request)).await {
                Ok(Ok(reply)) => reply.data_addr.parse::<SocketAddr>().map_err(|error| (true, format!("a bad address: {error}"))),
                Ok(Err(status)) => Err((status.code() == tonic::Code::NotFound, status.message().to_string())),
                Err(_) => Err((false, format!("no answer within {WORKER_CALL_TIMEOUT:?}"))),
            };
            match answer {
                Ok(addr) => {
                    addresses.insert(node, addr);
                }
                Err((true, reason)) => {
                    tracing::warn!(job = %job.id, attempt = deployment.attempt, %worker, %reason, "cannot adopt the running attempt; restarting the job");
                    return self.restart_orphan(job, &format!("{worker} does not run it as deployed ({reason})")).await;
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
        if self.master.leading_term() != Some(term) {
            // Committed in a later term than the workers heard of: a leader of the term they
            // know could take the attempt back. A later tick adopts it again, in this term.
            tracing::info!(job = %job.id, attempt = deployment.attempt, term, "the adoption outlived its term; adopting again");
            return;
        }
        tracing::info!(job = %job.id, attempt = deployment.attempt, term, "adopted the running attempt: nothing restarts");
        let handles = AttemptHandles::default();
        lock(&self.drivers).insert(job.id, Driver { attempt: deployment.attempt, handles: handles.clone(), task: None });
        let job = self.master.read(|state| state.job(job.id).cloned()).unwrap_or_else(|| job.clone());
        self.spawn_driver(job, deployment, term, handles, Some(addresses));
    }

    /// A running or failing job whose coordinator is gone with an earlier leader, which cannot be
    /// adopted (`why`): stop its attempt and restart it.
    async fn restart_orphan(&self, job: &JobRecord, why: &str) {
        let reason = format!("its coordinator is gone with an earlier leader, and {why}");
        if let Some(deployment) = &job.deployment {
            self.stop_attempt(job, deployment, &reason).await;
        }
        if matches!(job.status, JobStatus::Running) {
            let failing = Command::Transition { job: job.id, attempt: Some(job.attempt), to: JobStatus::Failing { reason } };
            let _ = self.master.propose(failing).await;
        }
        let _ = self.master.propose(Command::Transition { job: job.id, attempt: Some(job.attempt), to: JobStatus::Restarting }).await;
    }

    /// Asks every live worker to stop attempt `attempt` of `job` (a worker that does not run it
    /// ignores it).
    async fn stop_everywhere(&self, job: JobId, attempt: u32) {
        let workers: Vec<WorkerId> = self.master.read(|state| state.workers().filter(|w| w.alive).map(|w| w.id).collect());
        let stops = workers.into_iter().map(|worker| (job, attempt, worker, "a newer attempt of the job starts".to_string()));
        self.stop(stops.collect()).await;
    }

    async fn stop_attempt(&self, job: &JobRecord, deployment: &Deployment, reason: &str) {
        let workers = deployment_nodes(deployment).into_iter().map(|(worker, _)| worker);
        self.stop(workers.map(|worker| (job.id, deployment.attempt, worker, reason.to_string())).collect()).await;
    }

    /// Asks each worker to stop its attempt, all at once, with this leader's term; a stop not
    /// acknowledged is asked again on later ticks (`retry_stops`), so no attempt the masters
    /// ended runs on until the workers' orphan timeout.
    async fn stop(&self, stops: Vec<(JobId, u32, WorkerId, String)>) {
        let Some(term) = self.master.leading_term() else { return };
        let mut calls = tokio::task::JoinSet::new();
        for (job, attempt, worker, reason) in stops {
            lock(&self.stopped).insert((job, attempt));
            let calls_to = Arc::clone(&self.calls);
            let request = StopAttemptRequest { job_id: job.0, attempt, term, reason: reason.clone() };
            calls.spawn(async move {
                let answered = tokio::time::timeout(WORKER_CALL_TIMEOUT, calls_to.stop_attempt(worker, request)).await;
                ((job, attempt, worker), reason, matches!(answered, Ok(Ok(_))))
            });
        }
        while let Some(Ok((key, reason, acknowledged))) = calls.join_next().await {
            let mut unstopped = lock(&self.unstopped);
            match acknowledged {
                true => unstopped.remove(&key),
                false => unstopped.insert(key, reason),
            };
        }
    }

    /// Asks again the stops not acknowledged yet, of workers still alive, for attempts the masters
    /// do not run (any more: one a leader adopted meanwhile runs on).
    async fn retry_stops(&self) {
        let pending: Vec<((JobId, u32, WorkerId), String)> = lock(&self.unstopped).drain().collect();
        let still_due = |state: &crate::state::ClusterState, (job, attempt, worker): &(JobId, u32, WorkerId)| {
            let runs = state.job(*job).is_some_and(|record| record.attempt == *attempt && record.status == JobStatus::Running);
            state.worker(*worker).is_some_and(|record| record.alive) && !runs
        };
        let stops: Vec<_> = self.master.read(|state| pending.into_iter().filter(|(key, _)| still_due(state, key)).collect());
        self.stop(stops.into_iter().map(|((job, attempt, worker), reason)| (job, attempt, worker, reason)).collect()).await;
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
        match (&record.artifact.program, validator) {
            (Some(program), _) => self
                .check_in_program(program, &JobSpec { parallelism, ..record.spec.clone() }, None)
                .await
                .map(drop)
                .map_err(Status::invalid_argument)?,
            (None, Some(validator)) => {
                validator(&record.spec.name, &record.spec.args, parallelism).map(drop).map_err(Status::invalid_argument)?
            }
            (None, None) => {}
        }
        // Its newest checkpoint must restore into the job at the new parallelism (the savepoint
        // will hold the same operators and sources).
        // The job goes on checkpointing meanwhile, and retention may remove the checkpoint being
        // read: a failed check is tried again on the newer checkpoint, if there is one.
        let rescaled = JobSpec { parallelism, slots, ..record.spec.clone() };
        let (mut checkpoint, mut tries) = (record.last_checkpoint.clone(), 0);
        while let Some(checked) = checkpoint {
            tries += 1;
            let checked_restore = match &record.artifact.program {
                Some(program) => self.check_in_program(program, &rescaled, Some(&checked.location)).await.map(drop),
                None => self.check_restore(&rescaled, &checked.location).await,
            };
            match checked_restore {
                Ok(()) => break,
                Err(reason) => {
                    let newest = self.master.read(|state| state.job(job).and_then(|record| record.last_checkpoint.clone()));
                    match newest {
                        // A newer one there (retention may be removing the one read, which can
                        // fail half-way): that one, a few times at most.
                        Some(newer) if newer.id > checked.id && tries < RESCALE_CHECK_TRIES => checkpoint = Some(newer),
                        _ => return Err(Status::failed_precondition(format!("{job} cannot run at parallelism {parallelism}: {reason}"))),
                    }
                }
            }
        }
        let rescale_to = lock(&self.drivers).get(&job).map(|driver| Arc::clone(&driver.handles.rescale_to));
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
    /// Whether the job of `spec` (as the program defines it, at its parallelism) can start from
    /// the checkpoint or savepoint at `location`; else why not. Without the program's registry
    /// (masters that run no jobs), only that the location is a directory.
    pub(crate) async fn check_restore(&self, spec: &JobSpec, location: &str) -> Result<(), String> {
        let path = PathBuf::from(location);
        if !path.is_dir() {
            return Err(format!("{location} is not a directory the masters can read"));
        }
        let Some(registry) = &self.registry else { return Ok(()) };
        let (registry, spec) = (Arc::clone(registry), spec.clone());
        tokio::task::spawn_blocking(move || {
            let env = StreamEnvironment::new(EngineConfig {
                parallelism: spec.parallelism as usize,
                slots: spec.slots as usize,
                ..EngineConfig::default()
            });
            registry(&EngineJobSpec { name: spec.name.clone(), args: spec.args.clone() }, &env)?;
            env.check_restore(&path)
        })
        .await
        .map_err(|error| format!("the check's thread: {error}"))?
    }

    /// Whether uploaded program `program` defines the job of `spec` at its parallelism (and can
    /// start it from `restore_from`), asked of a process of the program.
    async fn check_in_program(
        &self,
        program: &str,
        spec: &JobSpec,
        restore_from: Option<&str>,
    ) -> Result<crate::submit::JobEstimate, String> {
        let store = self.programs.as_ref().ok_or("these masters keep no programs")?;
        let path = store
            .find(program)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("this master has no copy of program {program} in {}", store.dir().display()))?;
        crate::programs::check_job(&path, &spec.name, &spec.args, spec.parallelism, restore_from).await
    }

    /// The live figures of job `job`'s running attempt, if this leader drives one.
    pub(crate) fn live(&self, job: JobId) -> Option<Arc<crate::live::JobLive>> {
        lock(&self.drivers).get(&job).and_then(|driver| lock(&driver.handles.live).clone())
    }

    /// What this master keeps of `job` (kept from now on, until the job ends).
    pub(crate) fn history(&self, job: JobId) -> Arc<crate::live::JobHistory> {
        Arc::clone(lock(&self.histories).entry(job).or_default())
    }

    /// Forgets the histories of jobs that ended or are gone.
    pub(crate) fn forget_ended_histories(&self) {
        let ended: Vec<JobId> = {
            let histories = lock(&self.histories);
            self.master.read(|state| {
                histories.keys().copied().filter(|job| state.job(*job).is_none_or(|record| record.status.is_terminal())).collect()
            })
        };
        let mut histories = lock(&self.histories);
        for job in ended {
            histories.remove(&job);
        }
    }

    /// The live views of every running attempt this leader drives.
    pub(crate) fn live_views(&self) -> Vec<crate::live::JobLiveView> {
        let lives: Vec<_> = lock(&self.drivers).values().filter_map(|driver| lock(&driver.handles.live).clone()).collect();
        lives.iter().map(|live| live.view()).collect()
    }

    pub(crate) async fn savepoint(&self, job: JobId, stop: bool, dir: Option<PathBuf>) -> Result<String, tonic::Status> {
        let controls = lock(&self.drivers).get(&job).and_then(|driver| lock(&driver.handles.controls).clone());
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
        let path = taken.map_err(tonic::Status::failed_precondition)?;
        Ok(path.display().to_string())
    }
}

/// The id of the savepoint in directory `path` (the checkpoint store names it by its id).
fn savepoint_id(path: &std::path::Path) -> u64 {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let digits: String = name.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    digits.parse().unwrap_or(0)
}

/// Where job `job` keeps its checkpoints (and, by default, savepoints) under `root`.
fn job_checkpoint_dir(root: Option<&std::path::Path>, job: JobId) -> Option<PathBuf> {
    root.map(|root| root.join(format!("job-{}", job.0)))
}

/// The workers of a deployment in node order (node `i + 1` is the `i`-th), with their slots.
pub fn deployment_nodes(deployment: &Deployment) -> Vec<(WorkerId, usize)> {
    let mut nodes: Vec<(WorkerId, usize)> = Vec::new();
    for placement in &deployment.placements {
        match nodes.iter_mut().find(|(worker, _)| *worker == placement.worker) {
            Some((_, slots)) => *slots += 1,
            None => nodes.push((placement.worker, 1)),
        }
    }
    nodes
}

/// Starts a new attempt on its workers: prepares it on each (each binds a data listener), then
/// starts it with every node's address, the coordinator's (node 0) at `coordinator`. The
/// addresses by node.
pub async fn launch(calls: &dyn WorkerCalls, run: &AttemptRun, coordinator: SocketAddr) -> Result<BTreeMap<u32, SocketAddr>, String> {
    let (job_id, attempt, term) = (run.job.id.0, run.deployment.attempt, run.term);
    let program = run.job.artifact.program.clone().unwrap_or_default();
    let nodes = deployment_nodes(&run.deployment);
    let mut addresses = BTreeMap::from([(0, coordinator)]);
    for (index, (worker, _)) in nodes.iter().enumerate() {
        let prepared = calls
            .prepare_attempt(*worker, PrepareAttemptRequest { job_id, attempt, term, program: program.clone() })
            .await
            .map_err(|status| format!("{worker} did not prepare the attempt: {}", status.message()))?;
        let addr: SocketAddr = prepared.data_addr.parse().map_err(|error| format!("{worker} answered a bad address: {error}"))?;
        addresses.insert(index as u32 + 1, addr);
    }
    let line = addresses.iter().map(|(node, addr)| format!("{node}={addr}")).collect::<Vec<_>>().join(",");
    for (index, (worker, _)) in nodes.iter().enumerate() {
        let request = StartAttemptRequest { job_id, attempt, term, node: index as u32 + 1, addresses: line.clone() };
        calls
            .start_attempt(*worker, request)
            .await
            .map_err(|status| format!("{worker} did not start the attempt: {}", status.message()))?;
    }
    Ok(addresses)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn restarts_wait_longer_and_longer_up_to_a_bound() {
        let delays: Vec<u128> = (1..=6).map(|attempt| super::restart_delay(attempt).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(super::restart_delay(u32::MAX).as_millis(), 5000);
    }
}
