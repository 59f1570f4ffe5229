//! A seeded simulation of the master group: three masters on an in-memory network that loses and
//! delays messages, masters crashed and restarted from their directories, masters cut off, and
//! clients proposing the commands of a cluster's life (workers joining and lost, jobs submitted,
//! placed by the scheduler, failing, restarting, checkpointed, finished, cancelled). It runs on one
//! thread with tokio's clock paused and openraft's randomness seeded, so a seed replays its run.
//!
//! Checked, for every seed:
//! - at most one leader per term, as every master reports it at every step;
//! - a master's applied state only moves forward: a job it saw in a terminal state stays so;
//! - nothing acknowledged is lost: every command a client saw committed has its effect in the
//!   final state (a worker registered, a job submitted, a deployment of attempt n or later, a
//!   terminal status, a checkpoint as new or newer, a worker lost);
//! - after healing, every master holds the same state, and it passes its invariants.
//!
//! `cargo test -p tethys-control --test simulation` runs `TETHYS_SIM_SEEDS` seeds (default 200, about 10 s);
//! `TETHYS_SIM_SEEDS=3000` is the long run; `TETHYS_SIM_SEED=<n>` replays one seed. A failure
//! names its seed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethys_control::raft::network::{Faults, LocalRouter};
use tethys_control::raft::runtime::seed_this_thread;
use tethys_control::raft::{Applied, Master, MasterConfig, NodeId};
use tethys_control::scheduler::place;
use tethys_control::state::{Artifact, ClusterState, Command, CompletedCheckpoint, JobId, JobSpec, JobStatus, Response};

const MASTERS: u64 = 3;
const STEPS: usize = 150;
const STEP: Duration = Duration::from_millis(20);

/// A directory on a memory file system when there is one (fsyncs are then cheap), removed at the end.
struct SimDir(PathBuf);

impl SimDir {
    fn new(seed: u64, master: u64) -> SimDir {
        let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("tethys-sim-{}-{seed}-{master}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        SimDir(dir)
    }
}

impl Drop for SimDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> MasterConfig {
    MasterConfig {
        heartbeat: Duration::from_millis(30),
        election_timeout: (Duration::from_millis(150), Duration::from_millis(200)),
        snapshot_after_entries: 40,
    }
}

struct Sim {
    seed: u64,
    random: fastrand::Rng,
    router: LocalRouter,
    dirs: Vec<SimDir>,
    running: BTreeMap<NodeId, Master>,
    acknowledged: Arc<Mutex<Vec<(Command, Applied)>>>,
    leaders_by_term: BTreeMap<u64, NodeId>,
    terminal_seen: BTreeMap<(NodeId, JobId), JobStatus>,
}

impl Sim {
    async fn start(&mut self, id: NodeId) {
        let master = Master::start(id, &self.dirs[id as usize].0, &config(), self.router.network_of(id))
            .await
            .unwrap_or_else(|error| panic!("seed {}: master {id} does not start: {error}", self.seed));
        self.router.add(id, master.raft().clone());
        self.running.insert(id, master);
    }

    async fn crash(&mut self, id: NodeId) {
        self.router.remove(id);
        if let Some(master) = self.running.remove(&id) {
            master.shutdown().await;
        }
    }

    fn leader(&self) -> Option<&Master> {
        self.running.values().find(|master| master.is_leader())
    }

    /// A command that fits the leader's state most of the time (and sometimes not).
    fn command(&mut self, state: &ClusterState) -> Command {
        let jobs: Vec<_> = state.jobs().cloned().collect();
        let workers: Vec<_> = state.workers().filter(|worker| worker.alive).map(|worker| worker.id).collect();
        let random = &mut self.random;
        let job = (!jobs.is_empty()).then(|| jobs[random.usize(..jobs.len())].clone());
        match random.u8(0..10) {
            0 => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: random.u32(1..4), at_ms: 0 },
            1 => Command::SubmitJob {
                spec: JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: random.u32(1..4), checkpoint_interval_ms: 10 },
                artifact: Artifact { build_id: "sim".into() },
                at_ms: 0,
            },
            2 if !workers.is_empty() && random.u8(0..4) == 0 => Command::WorkerLost { worker: workers[random.usize(..workers.len())] },
            3..=4 => match job {
                Some(job) => match place(job.spec.slots as usize, &state.free_slots()) {
                    Ok(placements) => Command::Deploy {
                        job: job.id,
                        attempt: job.attempt + 1,
                        placements,
                        restore_from: job.last_checkpoint.as_ref().map(|checkpoint| checkpoint.id),
                    },
                    Err(_) => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 2, at_ms: 0 },
                },
                None => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 2, at_ms: 0 },
            },
            5..=6 => match job {
                Some(job) => Command::CompleteCheckpoint {
                    job: job.id,
                    checkpoint: CompletedCheckpoint {
                        id: job.last_checkpoint.as_ref().map_or(1, |checkpoint| checkpoint.id + 1),
                        attempt: job.attempt,
                        location: "cp".into(),
                        completed_at_ms: 0,
                    },
                },
                None => Command::SubmitJob {
                    spec: JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: 1, checkpoint_interval_ms: 10 },
                    artifact: Artifact { build_id: "sim".into() },
                    at_ms: 0,
                },
            },
            _ => match job {
                Some(job) => {
                    let to = match random.u8(0..6) {
                        0 => JobStatus::Failing { reason: "a task failed".into() },
                        1 => JobStatus::Restarting,
                        2 => JobStatus::Finished,
                        3 => JobStatus::Cancelled,
                        4 => JobStatus::Failed { reason: "gave up".into() },
                        _ => JobStatus::Restarting,
                    };
                    Command::Transition { job: job.id, attempt: random.bool().then_some(job.attempt), to }
                }
                None => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 1, at_ms: 0 },
            },
        }
    }

    /// Proposes a command on the leader, in the background; what it returns, if it is committed,
    /// is recorded.
    fn propose(&mut self) {
        let Some(leader) = self.leader().cloned() else { return };
        let command = leader.read(|state| state.clone());
        let command = self.command(&command);
        let acknowledged = Arc::clone(&self.acknowledged);
        tokio::spawn(async move {
            if let Ok(applied) = leader.propose(command.clone()).await {
                acknowledged.lock().unwrap().push((command, applied));
            }
        });
    }

    /// Checks what every running master says now.
    fn observe(&mut self) {
        for master in self.running.values() {
            if master.is_leader() {
                let term = master.term();
                let leader = *self.leaders_by_term.entry(term).or_insert(master.id());
                assert_eq!(leader, master.id(), "seed {}: masters {leader} and {} both lead term {term}", self.seed, master.id());
            }
            let id = master.id();
            let jobs: Vec<(JobId, JobStatus)> = master.read(|state| state.jobs().map(|job| (job.id, job.status.clone())).collect());
            for (job, status) in jobs {
                if let Some(terminal) = self.terminal_seen.get(&(id, job)) {
                    assert_eq!(
                        &status,
                        terminal,
                        "seed {}: master {id} saw {job} {} and now {}",
                        self.seed,
                        terminal.name(),
                        status.name()
                    );
                } else if status.is_terminal() {
                    self.terminal_seen.insert((id, job), status);
                }
            }
        }
    }
}

async fn simulate(seed: u64) {
    seed_this_thread(seed);
    let router = LocalRouter::new();
    let mut random = fastrand::Rng::with_seed(seed);
    let faults = Faults { loss: random.f64() * 0.15, max_delay: Duration::from_millis(random.u64(0..25)) };
    router.set_faults(faults, seed);
    let dirs = (0..MASTERS).map(|id| SimDir::new(seed, id)).collect();
    let mut sim = Sim {
        seed,
        random,
        router,
        dirs,
        running: BTreeMap::new(),
        acknowledged: Arc::new(Mutex::new(Vec::new())),
        leaders_by_term: BTreeMap::new(),
        terminal_seen: BTreeMap::new(),
    };
    for id in 0..MASTERS {
        sim.start(id).await;
    }
    let members = (0..MASTERS).map(|id| (id, format!("master-{id}"))).collect();
    sim.running[&0].initialize(members).await.unwrap();
    let mut down: Option<(NodeId, usize)> = None;
    let mut cut: Option<(NodeId, usize)> = None;
    for step in 0..STEPS {
        match sim.random.u8(0..20) {
            0 if down.is_none() && cut.is_none() => {
                let id = sim.random.u64(0..MASTERS);
                sim.crash(id).await;
                down = Some((id, step + sim.random.usize(5..30)));
            }
            1 if cut.is_none() && down.is_none() => {
                let id = sim.random.u64(0..MASTERS);
                sim.router.set_cut_off(id, true);
                cut = Some((id, step + sim.random.usize(5..30)));
            }
            _ => {
                for _ in 0..sim.random.usize(0..3) {
                    sim.propose();
                }
            }
        }
        if let Some((id, until)) = down {
            if step >= until {
                sim.start(id).await;
                down = None;
            }
        }
        if let Some((id, until)) = cut {
            if step >= until {
                sim.router.set_cut_off(id, false);
                cut = None;
            }
        }
        tokio::time::sleep(STEP).await;
        sim.observe();
    }

    // Heal: every master up, no faults; the group settles and commits one more command.
    if let Some((id, _)) = down {
        sim.start(id).await;
    }
    if let Some((id, _)) = cut {
        sim.router.set_cut_off(id, false);
    }
    sim.router.set_faults(Faults::default(), seed);
    let mut settled = false;
    for _ in 0..500 {
        tokio::time::sleep(STEP).await;
        sim.observe();
        let Some(leader) = sim.leader().cloned() else { continue };
        if leader.propose(Command::RegisterWorker { control_addr: "last".into(), data_addr: "d".into(), slots: 1, at_ms: 0 }).await.is_err()
        {
            continue;
        }
        let target = leader.applied_index();
        if sim.running.values().all(|master| master.applied_index() >= target) {
            settled = true;
            break;
        }
    }
    assert!(settled, "seed {seed}: the group did not settle after healing");
    let states: Vec<ClusterState> = sim.running.values().map(|master| master.read(Clone::clone)).collect();
    let state = states[0].clone();
    for (id, other) in states.iter().enumerate() {
        assert_eq!(&state, other, "seed {seed}: master {id} holds another state");
    }
    state.check_invariants().unwrap_or_else(|broken| panic!("seed {seed}: {broken}"));

    for (command, applied) in sim.acknowledged.lock().unwrap().iter() {
        let lost = match (command, applied) {
            (Command::RegisterWorker { .. }, Ok(Response::WorkerRegistered(worker))) => {
                state.worker(*worker).is_none().then_some("the worker is gone")
            }
            (Command::SubmitJob { .. }, Ok(Response::JobSubmitted(job))) => state.job(*job).is_none().then_some("the job is gone"),
            (Command::Deploy { job, attempt, .. }, Ok(_)) => {
                state.job(*job).is_none_or(|record| record.attempt < *attempt).then_some("the deployment is lost")
            }
            (Command::Transition { job, to, .. }, Ok(_)) if to.is_terminal() => {
                state.job(*job).is_none_or(|record| record.status != *to).then_some("the job left its terminal status")
            }
            (Command::CompleteCheckpoint { job, checkpoint }, Ok(_)) => state
                .job(*job)
                .is_none_or(|record| record.last_checkpoint.as_ref().is_none_or(|last| last.id < checkpoint.id))
                .then_some("the checkpoint is lost"),
            (Command::WorkerLost { worker }, Ok(_)) => {
                state.worker(*worker).is_none_or(|record| record.alive).then_some("the worker is alive again")
            }
            _ => None,
        };
        if let Some(what) = lost {
            panic!("seed {seed}: acknowledged {command:?} ({applied:?}) but {what}");
        }
    }
    if std::env::var_os("TETHYS_SIM_VERBOSE").is_some() {
        let acknowledged = sim.acknowledged.lock().unwrap();
        let refused = acknowledged.iter().filter(|(_, applied)| applied.is_err()).count();
        println!(
            "seed {seed}: {faults:?}; {} terms with a leader; {} commands committed ({refused} refused); {} workers, {} jobs ({} ended)",
            sim.leaders_by_term.len(),
            acknowledged.len(),
            state.workers().count(),
            state.jobs().count(),
            state.jobs().filter(|job| job.status.is_terminal()).count()
        );
    }
    for master in sim.running.values() {
        master.shutdown().await;
    }
}

fn run_seed(seed: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    runtime.block_on(simulate(seed));
}

#[test]
fn the_master_group_keeps_its_invariants_under_loss_delay_crashes_and_partitions() {
    if let Some(seed) = std::env::var("TETHYS_SIM_SEED").ok().and_then(|seed| seed.parse().ok()) {
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("TETHYS_SIM_SEEDS").ok().and_then(|seeds| seeds.parse().ok()).unwrap_or(200);
    for seed in 0..seeds {
        if std::panic::catch_unwind(|| run_seed(seed)).is_err() {
            panic!("the simulation failed for seed {seed}; replay it with TETHYS_SIM_SEED={seed}");
        }
    }
}
