//! Masters with their deployers, running jobs on modelled workers: scheduling, failover and
//! reconciliation under faults.
//!
//! The masters and their deployers are the real code (the deployer's decisions: placing, deploying,
//! adopting a running attempt after a leader change, restarting, fencing by term); the workers
//! and the attempts they run are a model, reached through the deployer's `WorkerCalls` and run
//! through its `AttemptDriver`:
//! - a worker answers the leader's calls as a worker process does (a term older than one it saw
//!   is refused; an attempt it does not run as deployed is `NotFound`; adopting drops the old
//!   coordinator's connection), after a random delay, and loses some requests and some replies;
//! - an attempt makes progress (a position in its input) while every node of it runs, with or
//!   without a coordinator; a coordinator checkpoints it (the positions it took), commits each
//!   checkpoint through the masters, and only then has its sinks commit their output up to it;
//!   an adopting one first commits again the checkpoint the masters recorded, a restarted attempt
//!   recovers from it (committing what its sinks had pending up to it); an attempt with no
//!   coordinator for long ends (the orphan timeout);
//! - workers crash (a new one registers in its place) and are cut off from the masters (their
//!   data plane still works); a leader's monitor declares unreachable workers lost; a worker's
//!   heartbeat reports the attempts it runs, and it stops those the leader's state says ended.
//!
//! Checked, for every seed, beyond the master group's own invariants (one leader per term,
//! terminal jobs stay terminal, no applied deployment lost, the same state everywhere):
//! - **exactly-once output**: every job's committed output is contiguous, each commit beginning
//!   where the last one ended (no record committed twice, none skipped);
//! - **a leader change restarts nothing**: no attempt is stopped while every worker of it runs
//!   it (an attempt fails only when a worker or a task of it ends);
//! - **liveness**: once the faults stop, every job that has not ended runs again, driven by the
//!   leader, on every worker of its deployment, and completes a checkpoint; no earlier attempt of
//!   it, and nothing of a job that ended, runs anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tethys_control::deployer::{launch, AttemptControl, AttemptDriver, AttemptOutcome, AttemptRun, Deployer, WorkerCalls};
use tethys_control::raft::network::Faults;
use tethys_control::raft::{Master, NodeId};
use tethys_control::rpc::proto::{
    AdoptAttemptReply, AdoptAttemptRequest, PrepareAttemptReply, PrepareAttemptRequest, StartAttemptReply, StartAttemptRequest,
    StopAttemptReply, StopAttemptRequest,
};
use tethys_control::state::{Artifact, Command, CompletedCheckpoint, JobId, JobSpec, JobStatus, Response, WorkerId};
use tokio::time::Instant;
use tonic::Status;

use crate::group::{MasterGroup, MASTERS, STEP};

const STEPS: usize = 300;
const WORKERS: usize = 4;
const SLOTS: u32 = 2;
/// How often coordinators checkpoint.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(60);
/// How long an unreachable worker goes before the leader declares it lost.
const WORKER_TIMEOUT: Duration = Duration::from_millis(600);
/// How long an attempt runs on with no coordinator (the workers' default): longer than the run, so
/// an attempt the masters moved on from must be stopped, not left to time out.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Adoptions and restarts over every seed of this run, to show that both paths were taken.
static ADOPTIONS: AtomicU64 = AtomicU64::new(0);
static RESTARTS: AtomicU64 = AtomicU64::new(0);

/// An attempt of a job.
type Key = (u64, u32);

struct SimWorker {
    alive: bool,
    /// Unreachable from the masters (its data plane still works).
    cut_off: bool,
    /// The highest term it has seen.
    term: u64,
    prepared: BTreeSet<Key>,
    /// The attempts it runs, as which node.
    runs: BTreeMap<Key, u32>,
}

impl SimWorker {
    fn new() -> SimWorker {
        SimWorker { alive: true, cut_off: false, term: 0, prepared: BTreeSet::new(), runs: BTreeMap::new() }
    }

    /// It dies (or stops everything, declared lost): what it ran and prepared is gone.
    fn die(&mut self) {
        self.alive = false;
        self.runs.clear();
        self.prepared.clear();
    }

    fn admit(&mut self, term: u64) -> Result<(), Status> {
        if term < self.term {
            return Err(Status::failed_precondition(format!("term {term} is older than term {}", self.term)));
        }
        self.term = term;
        Ok(())
    }
}

struct SimAttempt {
    /// Its nodes' workers, as started.
    nodes: BTreeMap<u32, WorkerId>,
    /// How many nodes it has.
    expected: usize,
    /// Its coordinator deployed its tasks (restored them): it processes.
    deployed: bool,
    /// The coordinator connected to it.
    coordinator: Option<u64>,
    orphaned_at: Option<Instant>,
    /// Where it is in its input.
    position: u64,
    /// Checkpoints taken and not yet committed by its sinks: id -> position.
    pending: BTreeMap<u64, u64>,
    /// The highest checkpoint id it took.
    last_id: u64,
    /// Its sinks committed output up to here.
    committed: u64,
}

struct World {
    random: fastrand::Rng,
    call_loss: f64,
    call_delay_ms: u64,
    workers: BTreeMap<WorkerId, SimWorker>,
    attempts: BTreeMap<Key, SimAttempt>,
    coordinators: u64,
    /// Each job's committed output ends here.
    output_end: BTreeMap<u64, u64>,
    /// Each job's checkpoints committed by sinks (and recoveries).
    output_commits: BTreeMap<u64, u64>,
    /// Workers whose registration got no answer, to register again.
    registrations_owed: usize,
    /// Slots of jobs being submitted.
    submitting: u32,
    /// Workers the masters declared lost.
    declared_lost: BTreeSet<WorkerId>,
    /// Jobs the masters hold as ended (finished, failed, cancelled).
    ended_jobs: BTreeSet<u64>,
    violations: Vec<String>,
}

impl World {
    fn fully_runs(&self, key: Key) -> bool {
        self.attempts.get(&key).is_some_and(|attempt| {
            attempt.nodes.len() == attempt.expected
                && attempt
                    .nodes
                    .iter()
                    .all(|(node, worker)| self.workers.get(worker).is_some_and(|sim| sim.alive && sim.runs.get(&key) == Some(node)))
        })
    }

    /// Commits output `(from, to]` of `job`.
    fn output(&mut self, job: u64, from: u64, to: u64, by: &str) {
        let end = self.output_end.entry(job).or_insert(0);
        if from != *end {
            let what = if from < *end { "twice" } else { "with a gap" };
            self.violations.push(format!("job {job}: {by} committed ({from}, {to}] after output ended at {end}: output {what}"));
        }
        *end = (*end).max(to);
        *self.output_commits.entry(job).or_insert(0) += 1;
    }

    /// The sinks of attempt `key` commit what they hold up to checkpoint `id`.
    fn commit(&mut self, key: Key, id: u64) {
        let Some(attempt) = self.attempts.get_mut(&key) else { return };
        let Some(position) = attempt.pending.range(..=id).next_back().map(|(_, position)| *position) else { return };
        attempt.pending.retain(|pending, _| *pending > id);
        let from = attempt.committed;
        if position > from {
            attempt.committed = position;
            self.output(key.0, from, position, &format!("attempt {} committing checkpoint {id}", key.1));
        }
    }

    /// Worker `worker` stops attempt `key` (told by a leader, or by its heartbeat's answer).
    fn stop_on(&mut self, worker: WorkerId, key: Key, reason: &str) {
        // Nothing here fails an attempt but a worker or a task of it ending, the masters declaring
        // a worker of it lost, or its job ending (a user cancelled it): a leader change alone
        // must stop nothing.
        let declared_lost =
            self.attempts.get(&key).is_some_and(|attempt| attempt.nodes.values().any(|worker| self.declared_lost.contains(worker)));
        let ended = self.ended_jobs.contains(&key.0);
        if self.fully_runs(key) && self.attempts.get(&key).is_some_and(|attempt| attempt.deployed) && !declared_lost && !ended {
            self.violations
                .push(format!("job {} attempt {}: stopped though every worker runs it and nothing of it failed ({reason})", key.0, key.1));
        }
        if let Some(sim) = self.workers.get_mut(&worker) {
            sim.prepared.remove(&key);
            sim.runs.remove(&key);
        }
    }

    /// Attempt `key` ends on every worker that runs it.
    fn end_attempt(&mut self, key: Key) {
        for worker in self.workers.values_mut() {
            worker.runs.remove(&key);
            worker.prepared.remove(&key);
        }
    }

    fn orphan(&mut self, key: Key, coordinator: Option<u64>) {
        if let Some(attempt) = self.attempts.get_mut(&key) {
            if coordinator.is_none() || attempt.coordinator == coordinator {
                if attempt.coordinator.is_some() {
                    attempt.orphaned_at = Some(Instant::now());
                }
                attempt.coordinator = None;
            }
        }
    }
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn data_addr(worker: WorkerId) -> String {
    format!("127.0.0.1:{}", 10_000 + worker.0)
}

/// The workers as the deployer reaches them.
struct SimCalls {
    world: Arc<Mutex<World>>,
}

impl SimCalls {
    /// One call to `worker`: delayed, maybe lost on the way there or back; `apply` is what the
    /// worker does.
    async fn call<T>(&self, worker: WorkerId, apply: impl FnOnce(&mut World, WorkerId) -> Result<T, Status>) -> Result<T, Status> {
        let (delay, lose_request, lose_reply) = {
            let mut world = lock(&self.world);
            let most = world.call_delay_ms;
            let delay = world.random.u64(0..=most);
            let loss = world.call_loss;
            (Duration::from_millis(delay), world.random.f64() < loss, world.random.f64() < loss)
        };
        tokio::time::sleep(delay).await;
        let mut world = lock(&self.world);
        let reachable = world.workers.get(&worker).map(|sim| sim.alive && !sim.cut_off);
        match reachable {
            None => return Err(Status::not_found(format!("{worker} is unknown"))),
            Some(false) => return Err(Status::unavailable(format!("{worker} does not answer"))),
            Some(true) if lose_request => return Err(Status::unavailable("the request was lost")),
            Some(true) => {}
        }
        let reply = apply(&mut world, worker);
        if lose_reply {
            return Err(Status::unavailable("the reply was lost"));
        }
        reply
    }
}

fn worker_mut(world: &mut World, worker: WorkerId) -> &mut SimWorker {
    world.workers.get_mut(&worker).expect("a reachable worker is known")
}

#[tonic::async_trait]
impl WorkerCalls for SimCalls {
    async fn prepare_attempt(&self, worker: WorkerId, request: PrepareAttemptRequest) -> Result<PrepareAttemptReply, Status> {
        self.call(worker, |world, worker| {
            let sim = worker_mut(world, worker);
            sim.admit(request.term)?;
            sim.prepared.insert((request.job_id, request.attempt));
            Ok(PrepareAttemptReply { data_addr: data_addr(worker) })
        })
        .await
    }

    async fn start_attempt(&self, worker: WorkerId, request: StartAttemptRequest) -> Result<StartAttemptReply, Status> {
        self.call(worker, |world, worker| {
            let key = (request.job_id, request.attempt);
            let sim = worker_mut(world, worker);
            sim.admit(request.term)?;
            if !sim.prepared.remove(&key) {
                return Err(Status::failed_precondition("not prepared here"));
            }
            sim.runs.insert(key, request.node);
            let expected = request.addresses.split(',').count() - 1;
            let attempt = world.attempts.entry(key).or_insert(SimAttempt {
                nodes: BTreeMap::new(),
                expected,
                deployed: false,
                coordinator: None,
                orphaned_at: Some(Instant::now()),
                position: 0,
                pending: BTreeMap::new(),
                last_id: 0,
                committed: 0,
            });
            attempt.nodes.insert(request.node, worker);
            Ok(StartAttemptReply {})
        })
        .await
    }

    async fn stop_attempt(&self, worker: WorkerId, request: StopAttemptRequest) -> Result<StopAttemptReply, Status> {
        self.call(worker, |world, worker| {
            worker_mut(world, worker).admit(request.term)?;
            world.stop_on(worker, (request.job_id, request.attempt), &request.reason);
            Ok(StopAttemptReply {})
        })
        .await
    }

    async fn adopt_attempt(&self, worker: WorkerId, request: AdoptAttemptRequest) -> Result<AdoptAttemptReply, Status> {
        self.call(worker, |world, worker| {
            let key = (request.job_id, request.attempt);
            worker_mut(world, worker).admit(request.term)?;
            let runs = worker_mut(world, worker).runs.get(&key) == Some(&request.node);
            if !runs || !world.attempts.get(&key).is_some_and(|attempt| attempt.deployed) {
                return Err(Status::not_found(format!("attempt {} of job {} does not run here", key.1, key.0)));
            }
            world.orphan(key, None);
            Ok(AdoptAttemptReply { data_addr: data_addr(worker) })
        })
        .await
    }
}

/// A coordinator's hold on its attempt, given up when its driver ends or its master dies.
struct Seat {
    world: Arc<Mutex<World>>,
    key: Key,
    coordinator: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        lock(&self.world).orphan(self.key, Some(self.coordinator));
    }
}

struct SimControl {
    world: Arc<Mutex<World>>,
    key: Key,
    coordinator: u64,
    ended: Mutex<Option<String>>,
}

impl AttemptControl for SimControl {
    fn close(&self, reason: &str) {
        self.ended.lock().unwrap().get_or_insert_with(|| reason.to_string());
        let mut world = lock(&self.world);
        // Its connections tell the workers to stop, if it still holds them.
        if world.attempts.get(&self.key).is_some_and(|attempt| attempt.coordinator == Some(self.coordinator)) {
            world.end_attempt(self.key);
        }
    }

    fn abandon(&self, reason: &str) {
        self.ended.lock().unwrap().get_or_insert_with(|| reason.to_string());
        lock(&self.world).orphan(self.key, Some(self.coordinator));
    }
}

/// Runs attempts on the modelled workers (see the module documentation).
struct SimDriver {
    world: Arc<Mutex<World>>,
    master: Master,
    calls: Arc<SimCalls>,
}

impl AttemptDriver for SimDriver {
    fn drive(&self, run: AttemptRun) -> Pin<Box<dyn Future<Output = AttemptOutcome> + Send>> {
        let (world, master, calls) = (Arc::clone(&self.world), self.master.clone(), Arc::clone(&self.calls));
        Box::pin(drive(world, master, calls, run))
    }
}

async fn drive(world: Arc<Mutex<World>>, master: Master, calls: Arc<SimCalls>, run: AttemptRun) -> AttemptOutcome {
    let job = run.job.id;
    let key = (job.0, run.deployment.attempt);
    let coordinator = {
        let mut world = lock(&world);
        world.coordinators += 1;
        world.coordinators
    };
    let _seat = Seat { world: Arc::clone(&world), key, coordinator };
    if run.adopted.is_none() {
        let here: SocketAddr = "127.0.0.1:1".parse().unwrap();
        launch(calls.as_ref(), &run, here).await?;
    }
    {
        let mut world = lock(&world);
        let deployed = world.attempts.get(&key).is_some_and(|attempt| attempt.deployed);
        if !world.fully_runs(key) || deployed == run.adopted.is_none() {
            return Err("the attempt's cluster did not form".into());
        }
        if run.adopted.is_none() {
            // Its tasks restore the checkpoint the masters recorded; recovering, its sinks commit
            // what was pending up to it.
            let restored: u64 = run.job.last_checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.location.parse().unwrap());
            let end = world.output_end.get(&job.0).copied().unwrap_or(0);
            if end > restored {
                world
                    .violations
                    .push(format!("job {}: attempt {} restores position {restored}, but output was committed up to {end}", job.0, key.1));
            } else if end < restored {
                world.output(job.0, end, restored, &format!("attempt {} recovering", key.1));
            }
            let attempt = world.attempts.get_mut(&key).unwrap();
            attempt.deployed = true;
            attempt.position = restored;
            attempt.committed = restored;
        }
        let attempt = world.attempts.get_mut(&key).unwrap();
        attempt.coordinator = Some(coordinator);
        attempt.orphaned_at = None;
        if run.adopted.is_some() {
            // The adopting coordinator commits again the checkpoint the masters recorded.
            if let Some(recorded) = run.job.last_checkpoint.as_ref().filter(|checkpoint| checkpoint.attempt == key.1) {
                world.commit(key, recorded.id);
            }
        }
    }
    let control = Arc::new(SimControl { world: Arc::clone(&world), key, coordinator, ended: Mutex::new(None) });
    run.handles.set_control(Some(Arc::clone(&control) as Arc<dyn AttemptControl>));
    let bounded: Option<u64> = run.job.spec.args.iter().find_map(|arg| arg.strip_prefix("checkpoints=")).map(|n| n.parse().unwrap());
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if let Some(reason) = control.ended.lock().unwrap().clone() {
            return Err(reason);
        }
        let recorded = master.read(|state| state.job(job).and_then(|record| record.last_checkpoint.as_ref().map(|last| last.id)));
        let (id, position) = {
            let mut world = lock(&world);
            let holds = world.attempts.get(&key).is_some_and(|attempt| attempt.coordinator == Some(coordinator));
            if !holds || !world.fully_runs(key) {
                return Err("a worker of the attempt is gone, or its connection".into());
            }
            let attempt = world.attempts.get_mut(&key).unwrap();
            let id = attempt.last_id.max(recorded.unwrap_or(0)) + 1;
            attempt.last_id = id;
            attempt.pending.insert(id, attempt.position);
            (id, attempt.position)
        };
        let checkpoint = CompletedCheckpoint { id, attempt: key.1, location: position.to_string(), completed_at_ms: 0 };
        if let Ok(Ok(_)) = master.propose(Command::CompleteCheckpoint { job, checkpoint }).await {
            let mut world = lock(&world);
            // Sinks hear of it over the coordinator's connections, if it still holds them.
            if world.attempts.get(&key).is_some_and(|attempt| attempt.coordinator == Some(coordinator)) {
                world.commit(key, id);
            }
            if bounded.is_some_and(|bound| id >= bound) {
                // Its input ended: its tasks finish on every worker.
                world.end_attempt(key);
                return Ok(None);
            }
        }
    }
}

/// A master with its deployer.
struct Member {
    deployer: Arc<Deployer>,
    task: tokio::task::JoinHandle<()>,
}

struct Sim {
    group: MasterGroup,
    random: fastrand::Rng,
    world: Arc<Mutex<World>>,
    calls: Arc<SimCalls>,
    members: BTreeMap<NodeId, Member>,
    /// Workers to register (replacements of crashed ones), at these steps.
    to_register: Vec<usize>,
    /// Workers the leader has not heard from, since when.
    unheard: BTreeMap<WorkerId, Instant>,
}

impl Sim {
    async fn start_master(&mut self, id: NodeId) {
        let master = self.group.start(id).await;
        let driver = SimDriver { world: Arc::clone(&self.world), master: master.clone(), calls: Arc::clone(&self.calls) };
        let calls = Arc::clone(&self.calls) as Arc<dyn WorkerCalls>;
        let deployer = Arc::new(Deployer::with_parts(master, calls, Arc::new(driver), 10));
        let task = tokio::spawn(Arc::clone(&deployer).run());
        self.members.insert(id, Member { deployer, task });
    }

    async fn crash_master(&mut self, id: NodeId) {
        if let Some(member) = self.members.remove(&id) {
            member.task.abort();
            member.deployer.halt();
        }
        self.group.crash(id).await;
    }

    /// Registers the workers due at `step`, and those whose registration got no answer.
    fn register_due(&mut self, step: usize) {
        let owed = std::mem::take(&mut lock(&self.world).registrations_owed);
        self.to_register.extend(std::iter::repeat_n(step, owed));
        let due: Vec<usize> = self.to_register.iter().copied().filter(|at| *at <= step).collect();
        self.to_register.retain(|at| *at > step);
        for at in due {
            if !self.register_worker() {
                self.to_register.push(at);
            }
        }
    }

    /// Registers a new worker through the leader, in the background.
    fn register_worker(&mut self) -> bool {
        let Some(leader) = self.group.leader().cloned() else { return false };
        let world = Arc::clone(&self.world);
        tokio::spawn(async move {
            let register = Command::RegisterWorker { control_addr: "sim".into(), data_addr: "sim".into(), slots: SLOTS, at_ms: 0 };
            let mut world_now = match leader.propose(register).await {
                Ok(Ok(Response::WorkerRegistered(id))) => {
                    let mut world = lock(&world);
                    world.workers.insert(id, SimWorker::new());
                    return;
                }
                _ => lock(&world),
            };
            // No answer: it tries again.
            world_now.registrations_owed += 1;
        });
        true
    }

    /// Submits a job, if the cluster's workers have slots for it beside the jobs that have not
    /// ended (a job waiting for slots is no failure to run).
    fn submit_job(&mut self) {
        let Some(leader) = self.group.leader().cloned() else { return };
        let taken: u32 = leader.read(|state| state.jobs().filter(|job| !job.status.is_terminal()).map(|job| job.spec.slots).sum());
        let slots = self.random.u32(1..=2);
        if taken + lock(&self.world).submitting + slots > (WORKERS as u32 - 1) * SLOTS {
            return;
        }
        lock(&self.world).submitting += slots;
        let args = if self.random.bool() { vec![format!("checkpoints={}", self.random.u64(5..40))] } else { vec![] };
        let world = Arc::clone(&self.world);
        tokio::spawn(async move {
            let spec = JobSpec { name: "count".into(), args, parallelism: slots, slots, checkpoint_interval_ms: 60 };
            let _ =
                leader.propose(Command::SubmitJob { spec, artifact: Artifact { build_id: "sim".into(), program: None }, at_ms: 0 }).await;
            lock(&world).submitting -= slots;
        });
    }

    fn cancel_job(&mut self) {
        let Some(leader) = self.group.leader().cloned() else { return };
        let jobs: Vec<JobId> = leader.read(|state| state.jobs().filter(|job| !job.status.is_terminal()).map(|job| job.id).collect());
        if jobs.is_empty() {
            return;
        }
        let job = jobs[self.random.usize(..jobs.len())];
        tokio::spawn(async move {
            let _ = leader.propose(Command::Transition { job, attempt: None, to: JobStatus::Cancelled }).await;
        });
    }

    /// The world moves on one step: attempts progress, orphans time out, the leader's monitor
    /// declares workers it cannot reach lost, and cut-off workers that were declared lost learn
    /// it when they reach the masters again.
    fn world_step(&mut self) {
        let leader = self.group.leader().cloned();
        let mut world = lock(&self.world);
        let keys: Vec<Key> = world.attempts.keys().copied().collect();
        for key in keys {
            if world.fully_runs(key) && world.attempts[&key].deployed {
                let advance = world.random.u64(1..5);
                world.attempts.get_mut(&key).unwrap().position += advance;
            }
            // Now and then a task fails, which ends the attempt on its worker.
            if world.fully_runs(key) && world.random.u16(0..2000) == 0 {
                let (_, worker) = world.attempts[&key].nodes.first_key_value().map(|(node, worker)| (*node, *worker)).unwrap();
                world.workers.get_mut(&worker).unwrap().runs.remove(&key);
            }
            let orphaned_long = world.attempts[&key].orphaned_at.is_some_and(|since| since.elapsed() > ORPHAN_TIMEOUT);
            if orphaned_long && world.workers.values().any(|worker| worker.runs.contains_key(&key)) {
                world.end_attempt(key);
            }
        }
        drop(world);
        // The leader's monitor: a worker it has not heard from for long is lost (one it does
        // not reach, or one whose registration's answer was lost: it registered again).
        let Some(leader) = leader else { return };
        let now = Instant::now();
        let registered: Vec<WorkerId> = leader.read(|state| state.workers().filter(|w| w.alive).map(|w| w.id).collect());
        // A worker the masters declared lost learns it when it reaches them: it stops what it
        // runs and registers anew.
        let declared_lost: Vec<WorkerId> = leader.read(|state| state.workers().filter(|w| !w.alive).map(|w| w.id).collect());
        lock(&self.world).declared_lost.extend(declared_lost.iter().copied());
        for worker in declared_lost {
            let mut world = lock(&self.world);
            if let Some(sim) = world.workers.get_mut(&worker).filter(|sim| sim.alive && !sim.cut_off) {
                sim.die();
                world.registrations_owed += 1;
            }
        }
        // Heartbeats: each reachable worker reports what it runs; what the masters ended stops.
        let ended: Vec<u64> = leader.read(|state| state.jobs().filter(|job| job.status.is_terminal()).map(|job| job.id.0).collect());
        lock(&self.world).ended_jobs.extend(ended);
        if leader.applied_all_of_its_log() {
            let reports: Vec<(WorkerId, Vec<(JobId, u32)>)> = {
                let world = lock(&self.world);
                let reachable = world.workers.iter().filter(|(_, sim)| sim.alive && !sim.cut_off);
                reachable.map(|(id, sim)| (*id, sim.runs.keys().map(|(job, attempt)| (JobId(*job), *attempt)).collect())).collect()
            };
            for (worker, running) in reports {
                let stale = leader.read(|state| state.stale_attempts(&running));
                let mut world = lock(&self.world);
                for (job, attempt) in stale {
                    world.stop_on(worker, (job.0, attempt), "the masters ended this attempt (heartbeat)");
                }
            }
        }
        for worker in registered {
            let heard = lock(&self.world).workers.get(&worker).is_some_and(|sim| sim.alive && !sim.cut_off);
            if heard {
                self.unheard.remove(&worker);
            } else if now.duration_since(*self.unheard.entry(worker).or_insert(now)) > WORKER_TIMEOUT {
                // Known as lost from now: a leader may act on it before the next step looks.
                lock(&self.world).declared_lost.insert(worker);
                let leader = leader.clone();
                tokio::spawn(async move {
                    let _ = leader.propose(Command::WorkerLost { worker }).await;
                });
            }
        }
    }

    fn crash_worker(&mut self, step: usize) {
        let mut world = lock(&self.world);
        let alive: Vec<WorkerId> = world.workers.iter().filter(|(_, worker)| worker.alive).map(|(id, _)| *id).collect();
        if alive.len() <= 1 {
            return;
        }
        let id = alive[world.random.usize(..alive.len())];
        world.workers.get_mut(&id).unwrap().die();
        drop(world);
        self.to_register.push(step + self.random.usize(10..40));
    }

    fn set_worker_cut_off(&mut self, cut_off: bool) -> Option<WorkerId> {
        let mut world = lock(&self.world);
        let candidates: Vec<WorkerId> =
            world.workers.iter().filter(|(_, worker)| worker.alive && worker.cut_off != cut_off).map(|(id, _)| *id).collect();
        if candidates.is_empty() {
            return None;
        }
        let id = candidates[world.random.usize(..candidates.len())];
        world.workers.get_mut(&id).unwrap().cut_off = cut_off;
        Some(id)
    }

    /// A cut-off worker reaches the masters again (if they declared it lost meanwhile, it learns
    /// so at the next step).
    fn reconnect_worker(&mut self, id: WorkerId) {
        lock(&self.world).workers.get_mut(&id).unwrap().cut_off = false;
    }
}

async fn simulate(seed: u64) {
    let mut random = fastrand::Rng::with_seed(seed);
    let faults = Faults { loss: random.f64() * 0.1, max_delay: Duration::from_millis(random.u64(0..20)) };
    let world = World {
        random: fastrand::Rng::with_seed(seed ^ 0x5eed),
        call_loss: random.f64() * 0.1,
        call_delay_ms: random.u64(0..30),
        workers: BTreeMap::new(),
        attempts: BTreeMap::new(),
        coordinators: 0,
        output_end: BTreeMap::new(),
        output_commits: BTreeMap::new(),
        registrations_owed: 0,
        submitting: 0,
        declared_lost: BTreeSet::new(),
        ended_jobs: BTreeSet::new(),
        violations: Vec::new(),
    };
    let world = Arc::new(Mutex::new(world));
    let group = MasterGroup::new("cluster", seed, faults);
    let calls = Arc::new(SimCalls { world: Arc::clone(&world) });
    let mut sim = Sim { group, random, world, calls, members: BTreeMap::new(), to_register: vec![0; WORKERS], unheard: BTreeMap::new() };
    for id in 0..MASTERS {
        sim.start_master(id).await;
    }
    sim.group.initialize().await;
    let mut down: Option<(NodeId, usize)> = None;
    let mut cut: Option<(NodeId, usize)> = None;
    let mut worker_cut: Option<(WorkerId, usize)> = None;
    for step in 0..STEPS {
        match sim.random.u8(0..40) {
            0 | 1 if down.is_none() && cut.is_none() => {
                // The leader, most often: that is where reconciliation happens.
                let leader = sim.group.leader().map(Master::id);
                let id = leader.filter(|_| sim.random.u8(0..4) != 0).unwrap_or_else(|| sim.random.u64(0..MASTERS));
                sim.crash_master(id).await;
                down = Some((id, step + sim.random.usize(5..40)));
            }
            2 if cut.is_none() && down.is_none() => {
                let id = sim.random.u64(0..MASTERS);
                sim.group.router.set_cut_off(id, true);
                cut = Some((id, step + sim.random.usize(5..40)));
            }
            3 => sim.crash_worker(step),
            4 if worker_cut.is_none() => {
                if let Some(id) = sim.set_worker_cut_off(true) {
                    worker_cut = Some((id, step + sim.random.usize(5..60)));
                }
            }
            5..=7 => sim.submit_job(),
            8 => sim.cancel_job(),
            _ => {}
        }
        if down.is_some_and(|(_, until)| step >= until) {
            sim.start_master(down.take().unwrap().0).await;
        }
        if cut.is_some_and(|(_, until)| step >= until) {
            sim.group.router.set_cut_off(cut.take().unwrap().0, false);
        }
        if worker_cut.is_some_and(|(_, until)| step >= until) {
            sim.reconnect_worker(worker_cut.take().unwrap().0);
        }
        sim.register_due(step);
        sim.world_step();
        tokio::time::sleep(STEP).await;
        sim.group.observe();
    }

    // Heal: every master up, the network whole, every worker reachable; the group settles.
    if let Some((id, _)) = down {
        sim.start_master(id).await;
    }
    if let Some((id, _)) = worker_cut {
        sim.reconnect_worker(id);
    }
    {
        let mut world = lock(&sim.world);
        world.call_loss = 0.0;
    }
    let _ = sim.group.settle(None).await;
    let committed_before: BTreeMap<JobId, u64> =
        sim.group.leader().unwrap().read(|state| state.jobs().map(|job| (job.id, job.checkpoints_completed)).collect());

    // Liveness: every job that has not ended runs again on all its workers, driven by the
    // leader, and completes a checkpoint.
    let mut waiting = String::new();
    for step in STEPS..STEPS + 1500 {
        sim.register_due(step);
        sim.world_step();
        tokio::time::sleep(STEP).await;
        sim.group.observe();
        let Some(leader) = sim.group.leader().cloned() else { continue };
        let driving = sim.members[&leader.id()].deployer.driving();
        let jobs: Vec<_> = leader.read(|state| state.jobs().cloned().collect());
        let world = lock(&sim.world);
        waiting = jobs
            .iter()
            .filter(|job| {
                let key = (job.id.0, job.attempt);
                if job.status.is_terminal() {
                    // Ended: nothing of it runs anywhere.
                    return world.workers.values().any(|worker| worker.runs.keys().any(|(id, _)| *id == job.id.0));
                }
                let runs = job.status == JobStatus::Running
                    && driving.contains(&(job.id, job.attempt))
                    && world.fully_runs(key)
                    && world.attempts[&key].coordinator.is_some()
                    && job.checkpoints_completed > committed_before.get(&job.id).copied().unwrap_or(0);
                // No earlier attempt of it runs on anything still.
                let strays =
                    world.workers.values().any(|worker| worker.runs.keys().any(|(id, attempt)| *id == job.id.0 && *attempt != job.attempt));
                !runs || strays
            })
            .map(|job| format!("{} ({} attempt {})", job.id, job.status.name(), job.attempt))
            .collect::<Vec<_>>()
            .join(", ");
        if waiting.is_empty() {
            break;
        }
    }
    if !waiting.is_empty() {
        let leader = sim.group.leader().cloned();
        let driving = leader.as_ref().map(|leader| sim.members[&leader.id()].deployer.driving());
        let free = leader.as_ref().map(|leader| leader.read(|state| state.free_slots()));
        let workers: Vec<String> = lock(&sim.world)
            .workers
            .iter()
            .map(|(id, worker)| format!("{id} alive {} cut off {} runs {:?}", worker.alive, worker.cut_off, worker.runs))
            .collect();
        panic!(
            "seed {seed}: after healing these jobs do not run: {waiting}; the leader drives {driving:?}; free slots {free:?}; \
             workers {workers:?}; to register {:?}",
            sim.to_register
        );
    }
    let state = sim.group.leader().unwrap().read(Clone::clone);
    let (violations, sink_commits, workers) = {
        let world = lock(&sim.world);
        (world.violations.clone(), world.output_commits.values().sum::<u64>(), world.workers.len())
    };
    assert!(violations.is_empty(), "seed {seed}: {}", violations.join("; "));
    let adoptions: u64 = state.jobs().map(|job| job.adoptions).sum();
    let restarts: u64 = state.jobs().map(|job| u64::from(job.attempt.saturating_sub(1))).sum();
    ADOPTIONS.fetch_add(adoptions, Ordering::Relaxed);
    RESTARTS.fetch_add(restarts, Ordering::Relaxed);
    if crate::verbose() {
        println!(
            "seed {seed}: {} terms with a leader; {} jobs ({} ended), {adoptions} adoptions, {restarts} restarts, {sink_commits} sink commits; {workers} workers",
            sim.group.leaders_by_term.len(),
            state.jobs().count(),
            state.jobs().filter(|job| job.status.is_terminal()).count(),
        );
    }
    for member in sim.members.values() {
        member.task.abort();
        member.deployer.halt();
    }
    sim.group.shutdown().await;
}

#[test]
fn deployers_reconcile_and_restart_jobs_exactly_once_under_master_and_worker_faults() {
    crate::for_each_seed(100, |seed| crate::on_paused_clock(simulate(seed)));
    if std::env::var_os("TETHYS_SIM_SEED").is_none() {
        // The seeds took both ways a job survives a fault.
        assert!(ADOPTIONS.load(Ordering::Relaxed) > 0, "no seed adopted a running attempt");
        assert!(RESTARTS.load(Ordering::Relaxed) > 0, "no seed restarted a job");
    }
}
