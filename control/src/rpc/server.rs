//! A master as a server: its Raft node, the gRPC services on one listener, and the leader's watch
//! over workers' heartbeats; on request (`MasterNode::serve_http`), the HTTP API and `/metrics` on
//! another (the `http` module).
//!
//! Any master answers a call. One that changes the state (registering a worker) or needs the
//! leader's memory (a heartbeat) is forwarded by a follower to the leader it knows, once: a
//! forwarded call that finds no leader fails with `UNAVAILABLE` and the caller retries. Heartbeats
//! do not go through the log: the leader keeps when it last heard from each worker, and commits
//! only a worker's loss, once it has heard nothing for `worker_timeout`. A new leader gives every
//! worker a full timeout from its election before declaring any lost.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::proto::control_client::ControlClient;
use super::proto::control_server::{Control, ControlServer};
use super::proto::raft_server::{Raft as RaftService, RaftServer};
use super::proto::worker_client::WorkerClient;
use super::proto::{
    AttemptRef, CheckpointRequest, ClusterReply, ClusterRequest, DeleteDraftReply, DeleteDraftRequest, DeleteProgramReply, DraftInfo,
    DraftList, DraftVersionInfo, GetDraftRequest, HeartbeatReply, HeartbeatRequest, JobInfo, JobLiveReply, JobOutputRequest,
    JobPreviewReply, JobRequest, ListDraftsRequest, ListJobsReply, ListJobsRequest, ListProgramsRequest, LogsReply, MasterInfo,
    ProgramChunk, ProgramList, ProgramMessage, ProgramRequest, RaftMessage, RegisterWorkerReply, RegisterWorkerRequest, RescaleRequest,
    SampleTopicReply, SampleTopicRequest, SaveDraftRequest, SavepointReply, SavepointRequest, SubmitJobReply, SubmitJobRequest, WorkerInfo,
    WorkerLogsRequest,
};
use super::raft_network::GrpcNetwork;
use super::{AddSecret, GrpcTls, SecretAuth};
use crate::deployer::{DeployOptions, Deployer};
use crate::http::metrics::MasterCounters;
use crate::http::HttpServer;
use crate::programs::{ProgramError, ProgramStore};
use crate::raft::{Master, MasterConfig, MasterError, NodeId};
use crate::state::{Command, JobId, JobStatus, Refusal, Response as StateResponse, WorkerId};
use crate::submit::{check_submission, job_info, JobValidator};

/// How a master process runs.
#[derive(Clone)]
pub struct MasterOptions {
    /// Its id in the group.
    pub id: NodeId,
    /// Its directory (Raft log, vote, snapshot).
    pub dir: PathBuf,
    /// Every master of the group, itself included: id and gRPC address.
    pub members: BTreeMap<NodeId, String>,
    /// Whether this master forms the group (once, when the group is first created).
    pub bootstrap: bool,
    /// The cluster secret every call carries.
    pub secret: String,
    /// Mutual TLS on the gRPC API, served and dialled (to masters and workers); none: plain.
    pub tls: Option<GrpcTls>,
    /// Raft timing.
    pub raft: MasterConfig,
    /// How often workers send heartbeats.
    pub heartbeat_interval: Duration,
    /// A worker not heard from for this long is lost.
    pub worker_timeout: Duration,
    /// The build id of the program the masters run: jobs built by another are refused.
    pub build_id: String,
    /// Checks that the program defines a submitted job (none: only the spec's bounds are checked).
    pub validator: Option<JobValidator>,
    /// How the leader runs jobs on workers (none: jobs are accepted but not deployed).
    pub deploy: Option<DeployOptions>,
    /// Where uploaded programs are kept, on storage every master reaches (none: `programs` in the
    /// master's directory, which serves only while that master is there).
    pub program_dir: Option<PathBuf>,
    /// The largest program taken, in bytes.
    pub program_bytes_max: u64,
}

impl MasterOptions {
    /// Options with the default timing.
    pub fn new(id: NodeId, dir: PathBuf, members: BTreeMap<NodeId, String>, secret: String) -> MasterOptions {
        MasterOptions {
            id,
            dir,
            members,
            bootstrap: false,
            secret,
            tls: None,
            raft: MasterConfig::default(),
            heartbeat_interval: Duration::from_millis(200),
            worker_timeout: Duration::from_millis(1500),
            build_id: String::new(),
            validator: None,
            deploy: None,
            program_dir: None,
            program_bytes_max: crate::programs::PROGRAM_BYTES_MAX,
        }
    }
}

impl std::fmt::Debug for MasterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterOptions")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("members", &self.members)
            .field("bootstrap", &self.bootstrap)
            .field("tls", &self.tls.is_some())
            .field("raft", &self.raft)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("worker_timeout", &self.worker_timeout)
            .field("build_id", &self.build_id)
            .field("validator", &self.validator.is_some())
            .field("deploy", &self.deploy.is_some())
            .field("program_dir", &self.program_dir)
            .finish_non_exhaustive()
    }
}

/// A running master process's server (see the module documentation).
pub struct MasterNode {
    master: Master,
    addr: SocketAddr,
    plane: Arc<ControlPlane>,
    /// The HTTP API and `/metrics`, once served.
    http: Option<HttpServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MasterNode {
    /// Starts the master of `options` serving on `listener`.
    pub async fn start(options: MasterOptions, listener: tokio::net::TcpListener) -> Result<MasterNode, MasterError> {
        let id = options.id;
        let failed = |reason: String| MasterError::Failed { at: id, reason };
        let auth = SecretAuth::new(&options.secret).map_err(failed)?;
        let addr = listener.local_addr().map_err(|error| failed(error.to_string()))?;
        if options.deploy.is_some() {
            // The data plane's secret has rules of its own: refuse it before anything starts.
            options.secret.parse::<tethys_net::ClusterSecret>().map_err(|error| failed(format!("bad cluster secret: {error}")))?;
        }
        let master = Master::start(id, &options.dir, &options.raft, GrpcNetwork::new(auth.clone(), options.tls.clone())).await?;
        let program_dir = options.program_dir.clone().unwrap_or_else(|| options.dir.join("programs"));
        let programs = ProgramStore::open_with_limit(program_dir, options.program_bytes_max).map_err(|error| failed(error.to_string()))?;
        let deployer = match options.deploy.clone() {
            Some(deploy) => Some(Arc::new(
                Deployer::new(master.clone(), &options.secret, options.tls.clone(), addr.ip(), deploy, programs.clone()).map_err(failed)?,
            )),
            None => None,
        };
        let plane = Arc::new(ControlPlane {
            programs,
            deployer: deployer.clone(),
            master: master.clone(),
            auth: auth.clone(),
            tls: options.tls.clone(),
            heartbeat_interval: options.heartbeat_interval,
            build_id: options.build_id.clone(),
            validator: options.validator.clone(),
            last_heard: Mutex::new(LastHeard::default()),
            leader_clients: Mutex::new(HashMap::new()),
            counters: MasterCounters::default(),
            peers: Arc::new(super::probe::Peers::default()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = super::server_builder(options.tls.as_ref())
            .map_err(failed)?
            .add_service(RaftServer::with_interceptor(Arc::clone(&plane), auth.check()))
            .add_service(ControlServer::with_interceptor(Arc::clone(&plane), auth.check()))
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), async {
                let _ = stopped.await;
            });
        let serving = tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(master = id, %error, "the gRPC server stopped");
            }
        });
        if options.bootstrap {
            master.initialize(options.members.clone()).await?;
        }
        let watching = tokio::spawn(watch_workers(Arc::clone(&plane), options.worker_timeout));
        let probing =
            tokio::spawn(super::probe::probe_masters(master.clone(), Arc::clone(&plane.peers), auth.clone(), options.tls.clone()));
        let mirroring = tokio::spawn(mirror_histories(Arc::clone(&plane)));
        let mut tasks = vec![serving, watching, probing, mirroring];
        if let Some(deployer) = deployer {
            tasks.push(tokio::spawn(deployer.run()));
        }
        tracing::info!(master = id, %addr, "master serving");
        Ok(MasterNode { master, addr, plane, http: None, stop: Some(stop), tasks })
    }

    /// Its Raft member.
    pub fn master(&self) -> &Master {
        &self.master
    }

    /// Where it serves.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the HTTP API and `/metrics` (the `http` module) on `listener` too, with the same
    /// cluster secret; where.
    pub fn serve_http(&mut self, listener: tokio::net::TcpListener) -> Result<SocketAddr, MasterError> {
        self.serve_http_with(listener, None)
    }

    /// As [`MasterNode::serve_http`], with the console's `pages` on the paths outside the API.
    pub fn serve_http_with(
        &mut self,
        listener: tokio::net::TcpListener,
        pages: Option<crate::http::Pages>,
    ) -> Result<SocketAddr, MasterError> {
        let router = crate::http::api::router(Arc::clone(&self.plane))
            .merge(crate::http::events::router(Arc::clone(&self.plane)))
            .merge(crate::http::openapi::router())
            .merge(crate::http::workbench::router(Arc::clone(&self.plane)))
            .merge(crate::http::drafts::router(Arc::clone(&self.plane)))
            .merge(crate::http::programs::router(Arc::clone(&self.plane)))
            .merge(crate::http::output::router(Arc::clone(&self.plane)))
            .merge(crate::http::metrics::master_router(self.master.clone(), self.plane.counters.clone(), self.plane.live_views()));
        let server = HttpServer::start(listener, router, self.plane.auth.clone(), pages)
            .map_err(|error| MasterError::Failed { at: self.master.id(), reason: error.to_string() })?;
        let addr = server.addr();
        self.http = Some(server);
        Ok(addr)
    }

    /// Where it serves HTTP, if it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::addr)
    }

    /// Stops serving and stops its Raft node.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(http) = self.http.take() {
            http.stop();
        }
        for task in &self.tasks {
            task.abort();
        }
        self.master.shutdown().await;
    }
}

/// A draft's version as the API shows it, with its texts or without.
fn draft_version_info(name: &str, version: &crate::state::DraftVersion, texts: bool) -> DraftVersionInfo {
    DraftVersionInfo {
        name: name.to_string(),
        version: version.version,
        saved_at_ms: version.saved_at_ms,
        note: version.note.clone(),
        script: if texts { version.script.clone() } else { String::new() },
        test_case: if texts { version.test_case.clone() } else { String::new() },
    }
}

/// How often a follower mirrors the leader's history of each running job.
const MIRROR_INTERVAL: Duration = Duration::from_secs(2);

/// A follower's copy of what the leader keeps of each running job (its figures' last minutes,
/// its checkpoints), taken every [`MIRROR_INTERVAL`]: if this master becomes the leader, the
/// jobs' views go on from that history. Every master forgets the histories of ended jobs.
async fn mirror_histories(plane: Arc<ControlPlane>) {
    let Some(deployer) = plane.deployer.clone() else { return };
    let mut ticks = tokio::time::interval(MIRROR_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        deployer.forget_ended_histories();
        if plane.master.is_leader() {
            continue;
        }
        let Some(leader) = plane.leader_client() else { continue };
        let running: Vec<u64> =
            plane.master.read(|state| state.jobs().filter(|job| job.status == JobStatus::Running).map(|job| job.id.0).collect());
        for job_id in running {
            let asked = tokio::time::timeout(MIRROR_INTERVAL, leader.clone().job_live(JobRequest { job_id })).await;
            let Ok(Ok(reply)) = asked else { continue };
            match serde_json::from_str::<crate::live::JobLiveView>(&reply.get_ref().json) {
                Ok(view) => deployer.history(JobId(job_id)).absorb(&view),
                Err(error) => tracing::warn!(job = job_id, %error, "the leader's live view does not parse"),
            }
        }
    }
}

/// How long a master waits for a worker's log.
const WORKER_LOGS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a worker may take to answer whether it holds a topic, with the sample.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// When the leader last heard from each worker, as of the term it leads in.
#[derive(Default)]
struct LastHeard {
    term: u64,
    since_election: Option<Instant>,
    workers: HashMap<WorkerId, Instant>,
}

type ForwardClient = ControlClient<InterceptedService<Channel, AddSecret>>;

pub(crate) struct ControlPlane {
    master: Master,
    /// Uploaded programs' files.
    programs: ProgramStore,
    /// The deployer, when this master runs jobs (it acts while this master leads).
    deployer: Option<Arc<Deployer>>,
    auth: SecretAuth,
    tls: Option<GrpcTls>,
    heartbeat_interval: Duration,
    build_id: String,
    validator: Option<JobValidator>,
    last_heard: Mutex<LastHeard>,
    leader_clients: Mutex<HashMap<String, ForwardClient>>,
    /// What `/metrics` counts: submissions, forwarded calls.
    counters: MasterCounters,
    /// What this master last heard from the others.
    peers: Arc<super::probe::Peers>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

fn status_of(error: MasterError) -> Status {
    match error {
        MasterError::NotLeader { .. } => Status::unavailable(error.to_string()),
        MasterError::Failed { .. } => Status::internal(error.to_string()),
    }
}

impl ControlPlane {
    /// The deployer, which runs jobs' drivers; an error when these masters run no jobs.
    /// The live views of the running jobs this master drives (none unless it leads).
    fn live_views(&self) -> crate::http::metrics::LiveViews {
        let deployer = self.deployer.clone();
        Arc::new(move || deployer.as_ref().map(|deployer| deployer.live_views()).unwrap_or_default())
    }

    fn deployer(&self) -> Result<&Arc<Deployer>, Status> {
        self.deployer.as_ref().ok_or_else(|| Status::failed_precondition("these masters run no jobs (no deployment)"))
    }

    fn heard_from(&self, worker: WorkerId) {
        self.last_heard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).workers.insert(worker, Instant::now());
    }

    /// The client of the leader a follower forwards to, or why the call cannot be forwarded.
    fn forward_to<T>(&self, request: &Request<T>, error: MasterError) -> Result<ForwardClient, Status> {
        let MasterError::NotLeader { leader: Some((_, addr)), .. } = &error else {
            return Err(status_of(error));
        };
        if request.metadata().contains_key(super::FORWARDED_HEADER) {
            return Err(Status::unavailable(format!("{error}; the call was forwarded once already")));
        }
        self.counters.forwarded();
        let mut clients = self.leader_clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(addr) {
            return Ok(client.clone());
        }
        let channel = super::lazy_channel(addr, self.tls.as_ref()).map_err(Status::internal)?;
        let client = ControlClient::with_interceptor(channel, self.auth.add_forwarded());
        clients.insert(addr.clone(), client.clone());
        Ok(client)
    }

    /// A client of the leader this master knows (none: it leads, or knows no leader), for this
    /// master's own calls.
    fn leader_client(&self) -> Option<ForwardClient> {
        let MasterError::NotLeader { leader: Some((_, addr)), .. } = self.not_leader() else { return None };
        if self.master.is_leader() {
            return None;
        }
        let mut clients = self.leader_clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&addr) {
            return Some(client.clone());
        }
        let channel = super::lazy_channel(&addr, self.tls.as_ref()).ok()?;
        let client = ControlClient::with_interceptor(channel, self.auth.add_forwarded());
        clients.insert(addr, client.clone());
        Some(client)
    }

    /// A follower's client to the leader for a read: reads are the leader's, so a client sees its
    /// own writes whichever master it asks. None on the leader, for a call forwarded already, or
    /// with no leader known (the follower then answers from its own state).
    fn leader_for_read<T>(&self, request: &Request<T>) -> Option<ForwardClient> {
        if self.master.is_leader() {
            return None;
        }
        self.forward_to(request, self.not_leader()).ok()
    }

    /// That this master does not lead, naming the leader it knows: what `forward_to` forwards by.
    fn not_leader(&self) -> MasterError {
        let leader = self.master.leader().and_then(|id| self.master.member_addr(id).map(|addr| (id, addr)));
        MasterError::NotLeader { at: self.master.id(), leader }
    }

    async fn raft_call<Req, Resp, E>(
        &self,
        message: RaftMessage,
        call: impl AsyncFnOnce(Req) -> Result<Resp, E>,
    ) -> Result<Response<RaftMessage>, Status>
    where
        Req: serde::de::DeserializeOwned,
        Resp: serde::Serialize,
        E: serde::Serialize,
    {
        let request: Req =
            serde_json::from_slice(&message.json).map_err(|error| Status::invalid_argument(format!("bad Raft message: {error}")))?;
        let result = call(request).await;
        let json = serde_json::to_vec(&result).map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(RaftMessage { json }))
    }
}

#[tonic::async_trait]
impl RaftService for Arc<ControlPlane> {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let raft = self.master.raft().clone();
        self.raft_call(request.into_inner(), async move |rpc| raft.append_entries(rpc).await).await
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let raft = self.master.raft().clone();
        self.raft_call(request.into_inner(), async move |rpc| raft.vote(rpc).await).await
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let raft = self.master.raft().clone();
        self.raft_call(request.into_inner(), async move |rpc| raft.install_snapshot(rpc).await).await
    }
}

#[tonic::async_trait]
impl Control for Arc<ControlPlane> {
    async fn register_worker(&self, request: Request<RegisterWorkerRequest>) -> Result<Response<RegisterWorkerReply>, Status> {
        let ask = request.get_ref();
        if ask.slots == 0 {
            return Err(Status::invalid_argument("a worker must offer at least one slot"));
        }
        let command = Command::RegisterWorker {
            control_addr: ask.control_addr.clone(),
            data_addr: ask.data_addr.clone(),
            slots: ask.slots,
            at_ms: now_ms(),
        };
        match self.master.propose(command).await {
            Ok(Ok(StateResponse::WorkerRegistered(worker))) => {
                self.heard_from(worker);
                tracing::info!(master = self.master.id(), %worker, addr = %ask.control_addr, slots = ask.slots, "worker registered");
                Ok(Response::new(RegisterWorkerReply {
                    worker_id: worker.0,
                    heartbeat_interval_ms: self.heartbeat_interval.as_millis() as u64,
                    term: self.master.term(),
                }))
            }
            Ok(other) => Err(Status::internal(format!("registering answered {other:?}"))),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.register_worker(request.into_inner()).await
            }
        }
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatReply>, Status> {
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.heartbeat(request.into_inner()).await;
        }
        let worker = WorkerId(request.get_ref().worker_id);
        let known = self.master.read(|state| state.worker(worker).is_some_and(|record| record.alive));
        if known {
            self.heard_from(worker);
        }
        // Which of its attempts the masters ended, judged only on a state that holds every entry
        // of this leader's log (a new leader still applying could otherwise stop an attempt it
        // is about to adopt); else at a later heartbeat.
        let running: Vec<(JobId, u32)> = request.get_ref().running.iter().map(|attempt| (JobId(attempt.job_id), attempt.attempt)).collect();
        let stale = match running.is_empty() || !self.master.applied_all_of_its_log() {
            true => Vec::new(),
            false => self.master.read(|state| state.stale_attempts(&running)),
        };
        let stale = stale.into_iter().map(|(job, attempt)| AttemptRef { job_id: job.0, attempt }).collect();
        Ok(Response::new(HeartbeatReply { term: self.master.term(), known, stale }))
    }

    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<SubmitJobReply>, Status> {
        let program = request.get_ref().program.clone();
        let (spec, artifact) = match program.is_empty() {
            true => check_submission(request.get_ref(), &self.build_id, self.validator.as_ref()),
            false => self.check_program_submission(request.get_ref()).await.map(|(spec, artifact, _)| (spec, artifact)),
        }
        .map_err(|reason| {
            self.counters.submission_refused();
            Status::invalid_argument(reason)
        })?;
        let name = spec.name.clone();
        let savepoint = request.get_ref().restore_from.clone();
        let command = if savepoint.is_empty() {
            Command::SubmitJob { spec, artifact, at_ms: now_ms() }
        } else if !program.is_empty() {
            // The program's own check took the savepoint in.
            Command::SubmitJobFromSavepoint { spec, artifact, at_ms: now_ms(), savepoint }
        } else {
            if let Err(reason) = self.deployer()?.check_restore(&spec, &savepoint).await {
                self.counters.submission_refused();
                return Err(Status::invalid_argument(format!("the job cannot start from {savepoint}: {reason}")));
            }
            Command::SubmitJobFromSavepoint { spec, artifact, at_ms: now_ms(), savepoint }
        };
        match self.master.propose(command).await {
            Ok(Ok(StateResponse::JobSubmitted(job))) => {
                self.counters.submission_accepted();
                tracing::info!(master = self.master.id(), %job, name, "job submitted");
                Ok(Response::new(SubmitJobReply { job_id: job.0 }))
            }
            Ok(Ok(other)) => Err(Status::internal(format!("submitting answered {other:?}"))),
            Ok(Err(refusal)) => {
                self.counters.submission_refused();
                Err(refusal_status(refusal))
            }
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.submit_job(request.into_inner()).await
            }
        }
    }

    async fn list_jobs(&self, request: Request<ListJobsRequest>) -> Result<Response<ListJobsReply>, Status> {
        if let Some(mut leader) = self.leader_for_read(&request) {
            if let Ok(reply) = leader.list_jobs(ListJobsRequest {}).await {
                return Ok(reply);
            }
        }
        Ok(Response::new(ListJobsReply { jobs: self.read(|state| state.jobs().map(job_info).collect()).await }))
    }

    async fn job_status(&self, request: Request<JobRequest>) -> Result<Response<JobInfo>, Status> {
        if let Some(mut leader) = self.leader_for_read(&request) {
            match leader.job_status(*request.get_ref()).await {
                Ok(reply) => return Ok(reply),
                Err(status) if status.code() == tonic::Code::NotFound => return Err(status),
                Err(_) => {} // the leader did not answer: this master's own state
            }
        }
        self.job(request.get_ref().job_id).await.map(Response::new)
    }

    async fn cancel_job(&self, request: Request<JobRequest>) -> Result<Response<JobInfo>, Status> {
        let job = JobId(request.get_ref().job_id);
        match self.master.propose(Command::Transition { job, attempt: None, to: JobStatus::Cancelled }).await {
            Ok(Ok(_)) => {
                tracing::info!(master = self.master.id(), %job, "job cancelled");
                self.job(job.0).await.map(Response::new)
            }
            Ok(Err(refusal)) => Err(refusal_status(refusal)),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.cancel_job(request.into_inner()).await
            }
        }
    }

    async fn savepoint(&self, request: Request<SavepointRequest>) -> Result<Response<SavepointReply>, Status> {
        // The job's driver runs on the leader: a follower forwards.
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.savepoint(request.into_inner()).await;
        }
        let ask = request.into_inner();
        let job = JobId(ask.job_id);
        let deployer = self.deployer()?;
        let dir = (!ask.dir.is_empty()).then(|| PathBuf::from(&ask.dir));
        let path = deployer.savepoint(job, ask.stop, dir).await?;
        match self.master.propose(Command::RecordSavepoint { job, location: path.clone() }).await {
            Ok(Ok(_)) => {}
            Ok(Err(refusal)) => return Err(refusal_status(refusal)),
            Err(error) => return Err(status_of(error)),
        }
        tracing::info!(master = self.master.id(), %job, path, stop = ask.stop, "savepoint taken");
        let job = self.job(job.0).await?;
        Ok(Response::new(SavepointReply { path, job: Some(job) }))
    }

    async fn rescale(&self, request: Request<RescaleRequest>) -> Result<Response<JobInfo>, Status> {
        // The job's driver runs on the leader: a follower forwards.
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.rescale(request.into_inner()).await;
        }
        let ask = request.into_inner();
        let job = JobId(ask.job_id);
        let deployer = self.deployer()?;
        deployer.rescale(job, ask.parallelism, self.validator.as_ref()).await?;
        tracing::info!(master = self.master.id(), %job, parallelism = ask.parallelism, "job stopped with a savepoint to rescale");
        self.job(job.0).await.map(Response::new)
    }

    async fn job_live(&self, request: Request<JobRequest>) -> Result<Response<JobLiveReply>, Status> {
        // The job's driver runs on the leader: a follower forwards.
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.job_live(request.into_inner()).await;
        }
        let job = self.job(request.get_ref().job_id).await?;
        if job.status != "running" {
            return Err(Status::failed_precondition(format!("job {} is {}: only a running job has live figures", job.id, job.status)));
        }
        let live = self
            .deployer()?
            .live(JobId(job.id))
            .ok_or_else(|| Status::failed_precondition(format!("job {} runs, and its first figures are not in yet", job.id)))?;
        let json = serde_json::to_string(&live.view()).map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(JobLiveReply { json }))
    }

    async fn preview_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<JobPreviewReply>, Status> {
        let ask = request.into_inner();
        let estimate = match ask.program.is_empty() {
            true => {
                let (spec, _) = check_submission(&ask, &self.build_id, None).map_err(Status::invalid_argument)?;
                let validator = self.validator.as_ref().ok_or_else(|| Status::failed_precondition("these masters do not build jobs"))?;
                validator(&spec.name, &spec.args, spec.parallelism)
                    .map_err(|reason| Status::invalid_argument(format!("job {:?}: {reason}", spec.name)))?
            }
            false => self.check_program_submission(&ask).await.map_err(Status::invalid_argument)?.2,
        };
        let slots = if ask.slots == 0 { ask.parallelism } else { ask.slots };
        let placed = self.read(|state| crate::scheduler::place(slots as usize, &state.free_slots())).await;
        let (workers, problem) = match placed {
            Ok(placements) => {
                let mut workers: Vec<crate::http::api::WorkerShare> = Vec::new();
                for placement in placements {
                    match workers.iter_mut().find(|share| share.worker == placement.worker.0) {
                        Some(share) => share.slots += 1,
                        None => workers.push(crate::http::api::WorkerShare { worker: placement.worker.0, slots: 1 }),
                    }
                }
                (workers, None)
            }
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        let state_bytes = (!ask.restore_from.is_empty()).then(|| directory_bytes(std::path::Path::new(&ask.restore_from)));
        let preview = crate::http::api::JobPreview {
            slots,
            tasks: estimate.tasks,
            workers,
            fits: problem.is_none(),
            problem,
            buffer_bytes: estimate.buffer_bytes,
            state_bytes,
            memory_bytes: estimate.buffer_bytes + state_bytes.unwrap_or(0),
        };
        let json = serde_json::to_string(&preview).map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(JobPreviewReply { json }))
    }

    async fn upload_program(&self, request: Request<tonic::Streaming<ProgramChunk>>) -> Result<Response<ProgramMessage>, Status> {
        let chunks = request.into_inner().map(|chunk| chunk.map(|chunk| bytes::Bytes::from(chunk.data)));
        self.upload(chunks).await.map(Response::new)
    }

    async fn register_program(&self, request: Request<ProgramMessage>) -> Result<Response<ProgramMessage>, Status> {
        let program = program_record(request.get_ref().clone());
        let id = program.id.clone();
        match self.master.propose(Command::RegisterProgram { program }).await {
            Ok(Ok(_)) => {
                let registered = self.read(|state| state.program(&id).map(program_message)).await;
                registered.map(Response::new).ok_or_else(|| Status::internal("the program just registered is not in the state"))
            }
            Ok(Err(refusal)) => Err(refusal_status(refusal)),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.register_program(request.into_inner()).await
            }
        }
    }

    async fn list_programs(&self, request: Request<ListProgramsRequest>) -> Result<Response<ProgramList>, Status> {
        if let Some(mut leader) = self.leader_for_read(&request) {
            if let Ok(reply) = leader.list_programs(ListProgramsRequest {}).await {
                return Ok(reply);
            }
        }
        let programs = self.read(|state| state.programs().map(program_message).collect()).await;
        Ok(Response::new(ProgramList { programs }))
    }

    async fn delete_program(&self, request: Request<ProgramRequest>) -> Result<Response<DeleteProgramReply>, Status> {
        let id = request.get_ref().id.clone();
        crate::programs::check_id(&id).map_err(program_status)?;
        match self.master.propose(Command::DeleteProgram { id: id.clone() }).await {
            Ok(Ok(_)) => {
                if let Err(error) = self.programs.remove(&id) {
                    tracing::warn!(program = id, %error, "the program's file stays in the store");
                }
                tracing::info!(master = self.master.id(), program = id, "program deleted");
                Ok(Response::new(DeleteProgramReply {}))
            }
            Ok(Err(refusal)) => Err(refusal_status(refusal)),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.delete_program(request.into_inner()).await
            }
        }
    }

    type FetchProgramStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ProgramChunk, Status>> + Send>>;

    async fn fetch_program(&self, request: Request<ProgramRequest>) -> Result<Response<Self::FetchProgramStream>, Status> {
        let id = &request.get_ref().id;
        let path = self
            .programs
            .find(id)
            .map_err(program_status)?
            .ok_or_else(|| Status::not_found(format!("master {} has no copy of program {id}", self.master.id())))?;
        let file =
            tokio::fs::File::open(&path).await.map_err(|error| Status::internal(format!("cannot open {}: {error}", path.display())))?;
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut data = Vec::with_capacity(crate::programs::CHUNK_BYTES);
            let read = (&mut file).take(crate::programs::CHUNK_BYTES as u64).read_to_end(&mut data).await;
            match read {
                Ok(0) => Ok(None),
                Ok(_) => Ok(Some((ProgramChunk { data }, file))),
                Err(error) => Err(Status::internal(format!("cannot read the program: {error}"))),
            }
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn save_draft(&self, request: Request<SaveDraftRequest>) -> Result<Response<DraftVersionInfo>, Status> {
        let ask = request.get_ref().clone();
        let command =
            Command::SaveDraft { name: ask.name.clone(), script: ask.script, test_case: ask.test_case, note: ask.note, at_ms: now_ms() };
        match self.master.propose(command).await {
            Ok(Ok(applied)) => {
                let StateResponse::DraftSaved(version) = applied else {
                    return Err(Status::internal("a saved draft answers its version"));
                };
                let info = self
                    .read(|state| state.draft(&ask.name).and_then(|draft| draft.versions.iter().find(|v| v.version == version)).cloned())
                    .await
                    .ok_or_else(|| Status::internal("the draft just saved is not in the state"))?;
                Ok(Response::new(draft_version_info(&ask.name, &info, false)))
            }
            Ok(Err(refusal)) => Err(refusal_status(refusal)),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.save_draft(request.into_inner()).await
            }
        }
    }

    async fn list_drafts(&self, request: Request<ListDraftsRequest>) -> Result<Response<DraftList>, Status> {
        if let Some(mut leader) = self.leader_for_read(&request) {
            if let Ok(reply) = leader.list_drafts(ListDraftsRequest {}).await {
                return Ok(reply);
            }
        }
        let drafts = self
            .read(|state| {
                state
                    .drafts()
                    .map(|draft| DraftInfo {
                        name: draft.name.clone(),
                        versions: draft.versions.iter().map(|version| draft_version_info(&draft.name, version, false)).collect(),
                    })
                    .collect()
            })
            .await;
        Ok(Response::new(DraftList { drafts }))
    }

    async fn get_draft(&self, request: Request<GetDraftRequest>) -> Result<Response<DraftVersionInfo>, Status> {
        if let Some(mut leader) = self.leader_for_read(&request) {
            match leader.get_draft(request.get_ref().clone()).await {
                Ok(reply) => return Ok(reply),
                Err(status) if status.code() == tonic::Code::NotFound => return Err(status),
                Err(_) => {}
            }
        }
        let ask = request.into_inner();
        let found = self
            .read(|state| {
                let draft = state.draft(&ask.name)?;
                match ask.version {
                    0 => draft.versions.last().cloned(),
                    version => draft.versions.iter().find(|v| v.version == version).cloned(),
                }
            })
            .await;
        match found {
            Some(version) => Ok(Response::new(draft_version_info(&ask.name, &version, true))),
            None => Err(Status::not_found(match ask.version {
                0 => format!("no draft named {}", ask.name),
                version => format!("draft {} has no version {version} (kept: the newest {})", ask.name, crate::state::DRAFT_VERSIONS_KEPT),
            })),
        }
    }

    async fn delete_draft(&self, request: Request<DeleteDraftRequest>) -> Result<Response<DeleteDraftReply>, Status> {
        match self.master.propose(Command::DeleteDraft { name: request.get_ref().name.clone() }).await {
            Ok(Ok(_)) => Ok(Response::new(DeleteDraftReply {})),
            Ok(Err(refusal)) => Err(refusal_status(refusal)),
            Err(error) => {
                let mut leader = self.forward_to(&request, error)?;
                leader.delete_draft(request.into_inner()).await
            }
        }
    }

    async fn checkpoint_details(&self, request: Request<CheckpointRequest>) -> Result<Response<JobLiveReply>, Status> {
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.checkpoint_details(request.into_inner()).await;
        }
        let ask = request.into_inner();
        let job = self.job(ask.job_id).await?;
        let details = self.deployer()?.history(JobId(job.id)).checkpoints().details(ask.checkpoint_id).ok_or_else(|| {
            Status::not_found(format!(
                "checkpoint {} of job {} is not kept with its subtasks' parts here (the leader keeps the newest {} it completed)",
                ask.checkpoint_id,
                job.id,
                crate::live::CHECKPOINT_DETAILS_KEPT
            ))
        })?;
        let json = serde_json::to_string(&details).map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(JobLiveReply { json }))
    }

    async fn job_output(&self, request: Request<JobOutputRequest>) -> Result<Response<JobLiveReply>, Status> {
        if !self.master.is_leader() {
            let mut leader = self.forward_to(&request, self.not_leader())?;
            return leader.job_output(request.into_inner()).await;
        }
        let ask = request.into_inner();
        let job = self.job(ask.job_id).await?;
        let sink = (!ask.sink.is_empty()).then_some(ask.sink.as_str());
        let limit = (ask.limit > 0).then_some(ask.limit as usize);
        let outputs = self.deployer()?.history(JobId(job.id));
        let view = outputs.outputs().view(job.id, ask.after, sink, limit);
        if let Some(sink) = sink {
            if view.sinks.is_empty() {
                let known = outputs.outputs().sinks();
                return Err(Status::not_found(if known.is_empty() {
                    format!("job {} has no sampled rows of sink {sink} (none of any sink yet)", job.id)
                } else {
                    format!("job {} has no sink {sink} with sampled rows (sinks: {})", job.id, known.join(", "))
                }));
            }
        }
        let json = serde_json::to_string(&view).map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(JobLiveReply { json }))
    }

    async fn sample_topic(&self, request: Request<SampleTopicRequest>) -> Result<Response<SampleTopicReply>, Status> {
        let ask = request.into_inner();
        let workers: Vec<(WorkerId, String)> = self
            .master
            .read(|state| state.workers().filter(|record| record.alive).map(|record| (record.id, record.control_addr.clone())).collect());
        // Every worker asked at once; the one whose process holds the topic answers with rows.
        let asks = workers.into_iter().map(|(worker, addr)| {
            let ask = ask.clone();
            async move {
                let channel = super::lazy_channel(&addr, self.tls.as_ref()).map_err(|error| format!("{worker}: {error}"))?;
                let mut client = WorkerClient::with_interceptor(channel, self.auth.add());
                match tokio::time::timeout(SAMPLE_TIMEOUT, client.sample_topic(ask)).await {
                    Ok(Ok(reply)) => Ok(Ok(reply.into_inner())),
                    Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => Ok(Err(status)),
                    Ok(Err(status)) => Err(format!("{worker}: {}", super::status_reason(&status))),
                    Err(_) => Err(format!("{worker}: no answer within {SAMPLE_TIMEOUT:?}")),
                }
            }
        });
        let mut silent = Vec::new();
        for answer in futures_util::future::join_all(asks).await {
            match answer {
                Ok(Ok(reply)) if reply.held => return Ok(Response::new(reply)),
                Ok(Ok(_)) => {}
                Ok(Err(refusal)) => return Err(refusal),
                Err(why) => silent.push(why),
            }
        }
        // No worker holds the topic: it is read here (a worker that did not answer may hold it,
        // and then the topic is locked: said below).
        match crate::worker_node::sample_here(ask, false).await? {
            Ok(rows) => {
                Ok(Response::new(SampleTopicReply { held: false, rows: tethys_sql::sample::encode_rows(&rows.unwrap_or_default()) }))
            }
            Err(error) if silent.is_empty() => Err(Status::invalid_argument(error.to_string())),
            Err(error) => Err(Status::unavailable(format!("{error} (workers that did not answer: {})", silent.join("; ")))),
        }
    }

    async fn worker_logs(&self, request: Request<WorkerLogsRequest>) -> Result<Response<LogsReply>, Status> {
        let ask = request.into_inner();
        let worker = WorkerId(ask.worker_id);
        let addr = self
            .master
            .read(|state| state.worker(worker).map(|record| record.control_addr.clone()))
            .ok_or_else(|| Status::not_found(format!("{worker} is unknown")))?;
        let channel = super::lazy_channel(&addr, self.tls.as_ref()).map_err(Status::unavailable)?;
        let mut client = WorkerClient::with_interceptor(channel, self.auth.add());
        let query = ask.query.unwrap_or_default();
        match tokio::time::timeout(WORKER_LOGS_TIMEOUT, client.logs(query)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => Err(status),
            Ok(Err(status)) => Err(Status::unavailable(format!("{worker} at {addr} did not answer: {}", super::status_reason(&status)))),
            Err(_) => Err(Status::unavailable(format!("{worker} at {addr} did not answer within {WORKER_LOGS_TIMEOUT:?}"))),
        }
    }

    async fn cluster(&self, _request: Request<ClusterRequest>) -> Result<Response<ClusterReply>, Status> {
        let leader = self.master.leader();
        let masters: Vec<MasterInfo> = self
            .master
            .member_addrs()
            .into_iter()
            .map(|(id, addr)| match id == self.master.id() {
                true => MasterInfo {
                    id,
                    addr,
                    reachable: true,
                    seen_ms_ago: Some(0),
                    term: self.master.term(),
                    leader_id: leader,
                    applied_index: self.master.applied_index(),
                    error: String::new(),
                },
                false => self.peers.info(id, addr),
            })
            .collect();
        let leader_addr =
            leader.and_then(|id| masters.iter().find(|master| master.id == id)).map(|master| master.addr.clone()).unwrap_or_default();
        let workers = self.master.read(|state| {
            state
                .workers()
                .map(|worker| WorkerInfo {
                    id: worker.id.0,
                    control_addr: worker.control_addr.clone(),
                    data_addr: worker.data_addr.clone(),
                    slots: worker.slots,
                    slots_used: state.used_slots(worker.id).len() as u32,
                    alive: worker.alive,
                })
                .collect()
        });
        Ok(Response::new(ClusterReply {
            leader_id: leader.unwrap_or(u64::MAX),
            leader_addr,
            term: self.master.term(),
            masters,
            workers,
            answered_by: self.master.id(),
            applied_index: self.master.applied_index(),
        }))
    }
}

/// A refusal of the state machine as the API's status.
fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::UnknownJob(_) | Refusal::UnknownWorker(_) => Status::not_found(refusal.to_string()),
        Refusal::UnknownDraft(_) | Refusal::UnknownProgram(_) => Status::not_found(refusal.to_string()),
        Refusal::BadSpec(_) | Refusal::BadDraft(_) => Status::invalid_argument(refusal.to_string()),
        _ => Status::failed_precondition(refusal.to_string()),
    }
}

/// The bytes of the files under `dir` (a savepoint's size), 0 when it cannot be read.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |meta| meta.len()),
            Err(_) => 0,
        })
        .sum()
}

/// The status of a program that could not be taken.
fn program_status(error: ProgramError) -> Status {
    match error {
        ProgramError::TooLarge { .. } => Status::resource_exhausted(error.to_string()),
        ProgramError::Io { .. } => Status::internal(error.to_string()),
        _ => Status::invalid_argument(error.to_string()),
    }
}

/// An uploaded program as the API shows it.
fn program_message(program: &crate::state::ProgramRecord) -> ProgramMessage {
    ProgramMessage {
        id: program.id.clone(),
        program: program.info.program.clone(),
        tethys_version: program.info.tethys_version.clone(),
        build_id: program.info.build_id.clone(),
        size: program.size,
        uploaded_at_ms: program.uploaded_at_ms,
        jobs: program
            .info
            .jobs
            .iter()
            .map(|job| crate::rpc::proto::ProgramJobMessage { name: job.name.clone(), about: job.about.clone(), builtin: job.builtin })
            .collect(),
    }
}

/// The record of a program as a registration carries it.
fn program_record(message: ProgramMessage) -> crate::state::ProgramRecord {
    let jobs =
        message.jobs.into_iter().map(|job| crate::programs::JobAbout { name: job.name, about: job.about, builtin: job.builtin }).collect();
    let info =
        crate::programs::ProgramInfo { program: message.program, tethys_version: message.tethys_version, build_id: message.build_id, jobs };
    crate::state::ProgramRecord { id: message.id, info, size: message.size, uploaded_at_ms: message.uploaded_at_ms }
}

impl ControlPlane {
    /// The spec and artifact of a submitted job of an uploaded program, or why not: the program
    /// is registered and this master has its file, and the program itself defines the job so
    /// (and takes in the savepoint it is to start from).
    async fn check_program_submission(
        &self,
        request: &SubmitJobRequest,
    ) -> Result<(crate::state::JobSpec, crate::state::Artifact, crate::submit::JobEstimate), String> {
        let id = request.program.clone();
        let Some(program) = self.read(|state| state.program(&id).cloned()).await else {
            return Err(format!("no program {id} was uploaded"));
        };
        let (spec, mut artifact) = check_submission(request, &program.info.build_id, None)?;
        let path = self
            .programs
            .find(&id)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("master {} has no copy of program {id} in {}", self.master.id(), self.programs.dir().display()))?;
        let restore_from = (!request.restore_from.is_empty()).then_some(request.restore_from.as_str());
        let estimate = crate::programs::check_job(&path, &spec.name, &spec.args, spec.parallelism, restore_from)
            .await
            .map_err(|reason| format!("job {:?} of program {}: {reason}", spec.name, program.info.program))?;
        artifact.program = Some(id);
        Ok((spec, artifact, estimate))
    }

    /// Takes a program's bytes (an upload, over gRPC or HTTP) into the store, asks it what it is (a
    /// file that is not a program is removed again, unless registered before) and registers it.
    pub(crate) async fn upload<S, E>(self: &Arc<Self>, chunks: S) -> Result<ProgramMessage, Status>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let received = self.programs.receive(chunks).await.map_err(program_status)?;
        let info = match crate::programs::inspect(&received.path).await {
            Ok(info) => info,
            Err(error) => {
                if self.master.read(|state| state.program(&received.id).is_none()) {
                    let _ = self.programs.remove(&received.id);
                }
                return Err(program_status(error));
            }
        };
        tracing::info!(master = self.master.id(), program = info.program, id = received.id, size = received.size, "program uploaded");
        let record = crate::state::ProgramRecord { id: received.id, info, size: received.size, uploaded_at_ms: now_ms() };
        Control::register_program(self, Request::new(program_message(&record))).await.map(Response::into_inner)
    }

    /// Reads the state: on the leader, as of every command committed before the call; on a
    /// follower, as far as it has applied (it may lag the leader by a heartbeat).
    async fn read<R>(&self, read: impl Fn(&crate::state::ClusterState) -> R) -> R {
        if self.master.is_leader() {
            if let Ok(value) = self.master.read_linearizable(&read).await {
                return value;
            }
        }
        self.master.read(read)
    }

    async fn job(&self, id: u64) -> Result<JobInfo, Status> {
        self.read(|state| state.job(JobId(id)).map(job_info)).await.ok_or_else(|| Status::not_found(format!("job {id} does not exist")))
    }
}

/// The leader's watch: declares lost (through the log) every live worker it has not heard from for
/// `worker_timeout`, counting from its election at the earliest.
async fn watch_workers(plane: Arc<ControlPlane>, worker_timeout: Duration) {
    let mut ticks = tokio::time::interval(plane.heartbeat_interval.min(worker_timeout / 4).max(Duration::from_millis(10)));
    loop {
        ticks.tick().await;
        if !plane.master.is_leader() {
            continue;
        }
        let term = plane.master.term();
        let now = Instant::now();
        let alive: Vec<WorkerId> =
            plane.master.read(|state| state.workers().filter(|worker| worker.alive).map(|worker| worker.id).collect());
        let silent: Vec<WorkerId> = {
            let mut heard = plane.last_heard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if heard.term != term {
                tracing::info!(master = plane.master.id(), term, "leading");
                // Elected in a new term: what an earlier leadership heard is stale, and workers get a
                // full timeout from now.
                *heard = LastHeard { term, since_election: Some(now), workers: HashMap::new() };
            }
            let since_election = heard.since_election.unwrap_or(now);
            alive
                .into_iter()
                .filter(|worker| now.duration_since(*heard.workers.get(worker).unwrap_or(&since_election)) > worker_timeout)
                .collect()
        };
        for worker in silent {
            match plane.master.propose(Command::WorkerLost { worker }).await {
                Ok(Ok(StateResponse::WorkerLost { failed_jobs })) => {
                    tracing::warn!(master = plane.master.id(), %worker, ?failed_jobs, "worker lost: no heartbeat for {worker_timeout:?}");
                }
                Ok(other) => tracing::warn!(master = plane.master.id(), %worker, ?other, "declaring a worker lost"),
                Err(error) => tracing::warn!(master = plane.master.id(), %worker, %error, "declaring a worker lost"),
            }
        }
    }
}
