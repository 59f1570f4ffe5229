//! A worker process under the masters: its agent (registration and heartbeats) and its service to
//! the leader, which runs the attempts of jobs the leader deploys on it.
//!
//! The leader prepares an attempt (the worker binds a data-plane listener for it and answers its
//! address), then starts it with every node's address: the worker joins the attempt's mesh (the
//! leader's coordinator is node 0) and builds and runs what the coordinator deploys, with the jobs
//! its program knows (`JobRegistry`), until the coordinator ends it or is lost. An attempt of a job
//! of an uploaded program runs in a process of that program instead (`programs::worker`), which
//! the worker fetches from the masters and keeps in its program directory. Each call carries
//! the leader's term; a term lower than one the worker has seen is refused, so a deposed leader
//! can start nothing here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tethys_engine::cluster::JobRegistry;
use tethys_net::cluster::WorkerCloser;
use tethys_net::{ClusterSecret, MeshOptions};
use tonic::{Request, Response, Status};

use crate::agent::{AgentState, WorkerAgent, WorkerProfile};
use crate::http::metrics::WorkerGauges;
use crate::http::HttpServer;
use crate::programs::process::ChildOptions;
use crate::programs::worker::{ChildCloser, PreparedChild};
use crate::programs::ProgramStore;
use crate::rpc::proto::worker_server::{Worker as WorkerRpc, WorkerServer};
use crate::rpc::proto::{
    AdoptAttemptReply, AdoptAttemptRequest, AttemptInfo, InventoryReply, InventoryRequest, LogsReply, LogsRequest, PrepareAttemptReply,
    PrepareAttemptRequest, SampleTopicReply, SampleTopicRequest, StartAttemptReply, StartAttemptRequest, StopAttemptReply,
    StopAttemptRequest,
};
use crate::rpc::{GrpcTls, SecretAuth};

/// How a worker process runs.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The masters' addresses.
    pub masters: Vec<String>,
    /// Slots it offers.
    pub slots: u32,
    /// The cluster secret (the control plane's calls and the data plane's connections).
    pub secret: String,
    /// Mutual TLS on the gRPC API, served and dialled (to the masters); none: plain.
    pub tls: Option<GrpcTls>,
    /// The jobs its program knows.
    pub registry: JobRegistry,
    /// The data plane's options.
    pub mesh: MeshOptions,
    /// How long an attempt runs on without a coordinator (its leader died) for a new leader to
    /// adopt it; then it ends.
    pub orphan_timeout: std::time::Duration,
    /// Where it keeps the uploaded programs it ran.
    pub program_dir: std::path::PathBuf,
    /// What the processes of uploaded programs are told of the data plane (TLS, shared memory).
    pub program_processes: ChildOptions,
}

impl WorkerOptions {
    /// Default of `orphan_timeout`: far above an election and an adoption (a second or two), so
    /// only a worker cut off from every master for long gives its subtasks up.
    pub const ORPHAN_TIMEOUT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(60);

    /// Default of `program_dir`: `tethys-programs` in the system's temporary directory (the
    /// workers of one host may share it: a program's file is named by its hash and written whole).
    pub fn default_program_dir() -> std::path::PathBuf {
        std::env::temp_dir().join("tethys-programs")
    }
}

/// One attempt this worker runs.
struct Running {
    /// The term of the leader that drives it (started or adopted it).
    term: u64,
    node: u32,
    /// Its data-plane listener's address.
    data_addr: SocketAddr,
    /// Set once the attempt's mesh is up.
    closer: Option<AttemptCloser>,
}

/// An attempt prepared: its listener here, or a process of its program listening.
enum Prepared {
    Here(std::net::TcpListener),
    InProgram(PreparedChild),
}

/// Ends a running attempt, in this process or in its program's.
#[derive(Clone)]
enum AttemptCloser {
    Here(WorkerCloser),
    InProgram(ChildCloser),
}

impl AttemptCloser {
    fn close(&self, reason: &str) {
        match self {
            AttemptCloser::Here(closer) => closer.close(reason),
            AttemptCloser::InProgram(closer) => closer.close(reason),
        }
    }

    fn drop_coordinator(&self, reason: &str) {
        match self {
            AttemptCloser::Here(closer) => closer.drop_coordinator(reason),
            AttemptCloser::InProgram(closer) => closer.drop_coordinator(reason),
        }
    }
}

/// What a worker needs to run attempts of uploaded programs.
struct ProgramRuns {
    store: ProgramStore,
    masters: Vec<String>,
    auth: SecretAuth,
    tls: Option<GrpcTls>,
    secret: String,
    processes: ChildOptions,
}

type AttemptKey = (u64, u32);

struct Attempts {
    agent: Arc<AgentState>,
    host: IpAddr,
    secret: ClusterSecret,
    registry: JobRegistry,
    mesh: MeshOptions,
    orphan_timeout: std::time::Duration,
    programs: ProgramRuns,
    prepared: Mutex<HashMap<AttemptKey, Prepared>>,
    running: Arc<Mutex<HashMap<AttemptKey, Running>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Attempts {
    /// Prepares an attempt of an uploaded program's job: the program (fetched from the masters
    /// unless this worker has it) runs the attempt in a process of its own, which listens now.
    async fn prepare_in_program(&self, ask: PrepareAttemptRequest) -> Result<Response<PrepareAttemptReply>, Status> {
        let runs = &self.programs;
        let path = crate::programs::fetch(&runs.store, &ask.program, &runs.masters, &runs.auth, runs.tls.as_ref())
            .await
            .map_err(|error| Status::unavailable(format!("cannot get program {}: {error}", ask.program)))?;
        let (host, orphan_timeout, secret, processes) = (self.host, self.orphan_timeout, runs.secret.clone(), runs.processes.clone());
        let what = format!("attempt {} of job {}", ask.attempt, ask.job_id);
        let child = tokio::task::spawn_blocking(move || {
            crate::programs::worker::prepare_child(&path, host, orphan_timeout, &secret, &processes, &what)
        })
        .await
        .map_err(|error| Status::internal(format!("the program's start: {error}")))?
        .map_err(Status::internal)?;
        let addr = child.data_addr();
        lock(&self.prepared).insert((ask.job_id, ask.attempt), Prepared::InProgram(child));
        tracing::info!(job = ask.job_id, attempt = ask.attempt, program = ask.program, %addr, "attempt prepared in its program's process");
        Ok(Response::new(PrepareAttemptReply { data_addr: addr.to_string() }))
    }

    /// Starts an attempt prepared in its program's process.
    fn start_in_program(&self, ask: StartAttemptRequest, child: PreparedChild) -> Result<Response<StartAttemptReply>, Status> {
        let key = (ask.job_id, ask.attempt);
        let data_addr = child.data_addr();
        lock(&self.running).insert(key, Running { term: ask.term, node: ask.node, data_addr, closer: None });
        let (joined, ended) = (Arc::clone(&self.running), Arc::clone(&self.running));
        child
            .start(
                ask.node,
                &ask.addresses,
                move |closer| {
                    if let Some(entry) = lock(&joined).get_mut(&key) {
                        entry.closer = Some(AttemptCloser::InProgram(closer));
                    }
                },
                move |why| {
                    tracing::info!(job = key.0, attempt = key.1, %why, "attempt ended in its program's process");
                    lock(&ended).remove(&key);
                },
            )
            .map_err(|error| {
                lock(&self.running).remove(&key);
                Status::internal(error)
            })?;
        tracing::info!(
            job = ask.job_id,
            attempt = ask.attempt,
            node = ask.node,
            term = ask.term,
            "attempt started in its program's process"
        );
        Ok(Response::new(StartAttemptReply {}))
    }

    /// Refuses a call from a deposed leader; otherwise remembers its term.
    fn admit(&self, term: u64) -> Result<(), Status> {
        if !self.agent.admits(term) {
            return Err(Status::failed_precondition(format!(
                "term {term} is older than term {} this worker has seen: the call comes from a deposed leader",
                self.agent.term()
            )));
        }
        self.agent.saw_term(term);
        Ok(())
    }

    fn stop_all(&self, reason: &str) {
        for running in lock(&self.running).values() {
            if let Some(closer) = &running.closer {
                closer.close(reason);
            }
        }
    }
}

#[tonic::async_trait]
impl WorkerRpc for Arc<Attempts> {
    async fn prepare_attempt(&self, request: Request<PrepareAttemptRequest>) -> Result<Response<PrepareAttemptReply>, Status> {
        let ask = request.into_inner();
        self.admit(ask.term)?;
        if !ask.program.is_empty() {
            return self.prepare_in_program(ask).await;
        }
        let listener = std::net::TcpListener::bind(SocketAddr::new(self.host, 0))
            .map_err(|error| Status::internal(format!("cannot listen: {error}")))?;
        let addr = listener.local_addr().map_err(|error| Status::internal(error.to_string()))?;
        lock(&self.prepared).insert((ask.job_id, ask.attempt), Prepared::Here(listener));
        Ok(Response::new(PrepareAttemptReply { data_addr: addr.to_string() }))
    }

    async fn start_attempt(&self, request: Request<StartAttemptRequest>) -> Result<Response<StartAttemptReply>, Status> {
        let ask = request.into_inner();
        self.admit(ask.term)?;
        let key = (ask.job_id, ask.attempt);
        let prepared = lock(&self.prepared)
            .remove(&key)
            .ok_or_else(|| Status::failed_precondition(format!("attempt {} of job {} was not prepared here", ask.attempt, ask.job_id)))?;
        let addresses = tethys_net::launcher::parse_addresses(&ask.addresses)
            .map_err(|error| Status::invalid_argument(format!("bad addresses: {error}")))?;
        if !addresses.contains_key(&ask.node) || ask.node == 0 {
            return Err(Status::invalid_argument(format!("node {} is not a worker of the addresses given", ask.node)));
        }
        let listener = match prepared {
            Prepared::Here(listener) => listener,
            Prepared::InProgram(child) => return self.start_in_program(ask, child),
        };
        let data_addr = listener.local_addr().map_err(|error| Status::internal(error.to_string()))?;
        lock(&self.running).insert(key, Running { term: ask.term, node: ask.node, data_addr, closer: None });
        let (running, secret, registry, mesh) =
            (Arc::clone(&self.running), self.secret.clone(), Arc::clone(&self.registry), self.mesh.clone());
        let orphan_timeout = self.orphan_timeout;
        let spawned = std::thread::Builder::new().name(format!("tethys-job-{}-{}", ask.job_id, ask.attempt)).spawn(move || {
            // Its subtasks outlive the coordinator: a new leader adopts them (`adopt_attempt`).
            match tethys_net::cluster::Worker::start_adoptable(ask.node, listener, &addresses, secret, registry, mesh, orphan_timeout) {
                Ok(worker) => {
                    if let Some(entry) = lock(&running).get_mut(&key) {
                        entry.closer = Some(AttemptCloser::Here(worker.closer()));
                    }
                    let why = worker.wait();
                    tracing::info!(job = ask.job_id, attempt = ask.attempt, %why, "attempt ended");
                }
                Err(error) => tracing::warn!(job = ask.job_id, attempt = ask.attempt, %error, "attempt could not join its cluster"),
            }
            lock(&running).remove(&key);
        });
        spawned.map_err(|error| Status::internal(format!("cannot start the attempt's thread: {error}")))?;
        tracing::info!(job = ask.job_id, attempt = ask.attempt, node = ask.node, term = ask.term, "attempt started");
        Ok(Response::new(StartAttemptReply {}))
    }

    async fn stop_attempt(&self, request: Request<StopAttemptRequest>) -> Result<Response<StopAttemptReply>, Status> {
        let ask = request.into_inner();
        self.admit(ask.term)?;
        lock(&self.prepared).remove(&(ask.job_id, ask.attempt));
        if let Some(closer) = lock(&self.running).get(&(ask.job_id, ask.attempt)).and_then(|running| running.closer.clone()) {
            closer.close(&ask.reason);
        }
        Ok(Response::new(StopAttemptReply {}))
    }

    async fn adopt_attempt(&self, request: Request<AdoptAttemptRequest>) -> Result<Response<AdoptAttemptReply>, Status> {
        let ask = request.into_inner();
        self.admit(ask.term)?;
        let mut running = lock(&self.running);
        let attempt = running
            .get_mut(&(ask.job_id, ask.attempt))
            .ok_or_else(|| Status::not_found(format!("attempt {} of job {} does not run here", ask.attempt, ask.job_id)))?;
        if attempt.node != ask.node {
            // Not the attempt the masters deployed here: as good as absent.
            return Err(Status::not_found(format!(
                "attempt {} of job {} runs here as node {}, not {}",
                ask.attempt, ask.job_id, attempt.node, ask.node
            )));
        }
        let Some(closer) = &attempt.closer else {
            return Err(Status::failed_precondition(format!("attempt {} of job {} is still joining its mesh", ask.attempt, ask.job_id)));
        };
        // A deposed leader's coordinator may still hold its connection: it gives way.
        closer.drop_coordinator("a new leader adopts the attempt");
        attempt.term = ask.term;
        tracing::info!(job = ask.job_id, attempt = ask.attempt, term = ask.term, "a new leader adopts the attempt");
        Ok(Response::new(AdoptAttemptReply { data_addr: attempt.data_addr.to_string() }))
    }

    async fn inventory(&self, _request: Request<InventoryRequest>) -> Result<Response<InventoryReply>, Status> {
        let mut attempts: Vec<AttemptInfo> = lock(&self.running)
            .iter()
            .map(|((job_id, attempt), running)| AttemptInfo {
                job_id: *job_id,
                attempt: *attempt,
                term: running.term,
                node: running.node,
                data_addr: running.data_addr.to_string(),
            })
            .collect();
        attempts.sort_by_key(|attempt| (attempt.job_id, attempt.attempt));
        Ok(Response::new(InventoryReply { worker_id: self.agent.worker_id().unwrap_or(u64::MAX), attempts }))
    }

    async fn sample_topic(&self, request: Request<SampleTopicRequest>) -> Result<Response<SampleTopicReply>, Status> {
        let sampled = sample_here(request.into_inner(), true).await?.map_err(|error| Status::invalid_argument(error.to_string()))?;
        Ok(Response::new(match sampled {
            Some(rows) => SampleTopicReply { held: true, rows: tethys_sql::sample::encode_rows(&rows) },
            None => SampleTopicReply { held: false, rows: Vec::new() },
        }))
    }

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<LogsReply>, Status> {
        let Some(book) = crate::logs::LogBook::installed() else {
            return Ok(Response::new(LogsReply::default()));
        };
        let reply = book.search(request.get_ref()).map_err(|error| Status::invalid_argument(error.to_string()))?;
        Ok(Response::new(reply))
    }
}

/// The sample `ask` says, taken in this process on a blocking thread (`held_only`: only of a topic
/// this process holds); the outer error is the request's, the inner the sample's.
pub(crate) async fn sample_here(
    ask: SampleTopicRequest,
    held_only: bool,
) -> Result<Result<Option<Vec<tethys_sql::value::Row>>, tethys_sql::sample::SampleError>, Status> {
    let spec = serde_json::from_str(&ask.spec_json).map_err(|error| Status::invalid_argument(format!("bad sample: {error}")))?;
    tokio::task::spawn_blocking(move || tethys_sql::sample::sample_table(&ask.script, &ask.table, &spec, held_only))
        .await
        .map_err(|error| Status::internal(format!("the sample's thread: {error}")))
}

/// A running worker process (see the module documentation).
pub struct WorkerProcess {
    agent: WorkerAgent,
    attempts: Arc<Attempts>,
    addr: SocketAddr,
    slots: u32,
    auth: SecretAuth,
    /// `/metrics`, once served.
    http: Option<HttpServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WorkerProcess {
    /// Starts serving on `listener` (its address is the worker's control address; data listeners
    /// bind on the same host) and registers with the masters.
    pub async fn start(options: WorkerOptions, listener: tokio::net::TcpListener) -> Result<WorkerProcess, String> {
        let auth = SecretAuth::new(&options.secret)?;
        let secret: ClusterSecret = options.secret.parse().map_err(|error| format!("bad cluster secret: {error}"))?;
        let addr = listener.local_addr().map_err(|error| format!("cannot read the listening address: {error}"))?;
        let profile = WorkerProfile { control_addr: addr.to_string(), data_addr: addr.ip().to_string(), slots: options.slots };
        let agent = WorkerAgent::start(options.masters.clone(), auth.clone(), options.tls.as_ref(), profile)?;
        let attempts = Arc::new(Attempts {
            agent: Arc::clone(agent.state()),
            host: addr.ip(),
            secret,
            registry: options.registry,
            mesh: options.mesh,
            orphan_timeout: options.orphan_timeout,
            programs: ProgramRuns {
                store: ProgramStore::open(&options.program_dir).map_err(|error| error.to_string())?,
                masters: options.masters.clone(),
                auth: auth.clone(),
                tls: options.tls.clone(),
                secret: options.secret.clone(),
                processes: options.program_processes.clone(),
            },
            prepared: Mutex::new(HashMap::new()),
            running: Arc::new(Mutex::new(HashMap::new())),
        });
        // Declared lost, the worker's attempts were failed by the masters and run elsewhere now.
        let lost = Arc::downgrade(&attempts);
        agent.state().on_declared_lost(move || {
            if let Some(attempts) = lost.upgrade() {
                attempts.stop_all("the masters declared this worker lost");
            }
        });
        // Its heartbeats report the attempts it runs; those the masters ended stop.
        let (reported, stale) = (Arc::downgrade(&attempts), Arc::downgrade(&attempts));
        agent.state().report_attempts(
            move || reported.upgrade().map(|attempts| lock(&attempts.running).keys().copied().collect()).unwrap_or_default(),
            move |ended| {
                let Some(attempts) = stale.upgrade() else { return };
                for key in ended {
                    let closer = lock(&attempts.running).get(&key).and_then(|running| running.closer.clone());
                    if let Some(closer) = closer {
                        tracing::info!(job = key.0, attempt = key.1, "the masters ended this attempt; stopping it");
                        closer.close("the masters ended this attempt");
                    }
                }
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = crate::rpc::server_builder(options.tls.as_ref())?
            .add_service(WorkerServer::with_interceptor(Arc::clone(&attempts), auth.check()))
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the worker's gRPC server stopped");
            }
        });
        tracing::info!(%addr, slots = options.slots, "worker serving");
        Ok(WorkerProcess { agent, attempts, addr, slots: options.slots, auth, http: None, stop: Some(stop) })
    }

    /// Its control address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What its agent knows (its id, the term it has seen).
    pub fn agent(&self) -> &Arc<AgentState> {
        self.agent.state()
    }

    /// The attempts it runs: (job, attempt).
    pub fn attempts(&self) -> Vec<(u64, u32)> {
        let mut attempts: Vec<(u64, u32)> = lock(&self.attempts.running).keys().copied().collect();
        attempts.sort();
        attempts
    }

    /// Serves `/metrics` (the `http` module) on `listener` too, with the cluster secret; where.
    pub fn serve_http(&mut self, listener: tokio::net::TcpListener) -> Result<SocketAddr, String> {
        let (attempts, slots) = (Arc::clone(&self.attempts), self.slots);
        let router = crate::http::metrics::worker_router(move || WorkerGauges {
            worker_id: attempts.agent.worker_id(),
            slots,
            attempts_running: lock(&attempts.running).len(),
            registrations: attempts.agent.registrations(),
            heartbeats_sent: attempts.agent.heartbeats_sent(),
            heartbeats_failed: attempts.agent.heartbeats_failed(),
            term: attempts.agent.term(),
        });
        let server = HttpServer::start(listener, router, self.auth.clone(), None).map_err(|error| error.to_string())?;
        let addr = server.addr();
        self.http = Some(server);
        Ok(addr)
    }

    /// Where it serves `/metrics`, if it does.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::addr)
    }

    /// Stops serving and ends every attempt it runs.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(http) = self.http.take() {
            http.stop();
        }
        self.attempts.stop_all("the worker stops");
    }
}
