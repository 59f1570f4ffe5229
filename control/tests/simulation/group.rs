//! The simulated master group: three masters on the in-memory router, each with its directory,
//! crashed and restarted, with what every master reports checked at every step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use tethys_control::raft::network::{Faults, LocalRouter};
use tethys_control::raft::runtime::seed_this_thread;
use tethys_control::raft::{Master, MasterConfig, NodeId};
use tethys_control::state::{ClusterState, Command, JobId, JobStatus};

pub const MASTERS: u64 = 3;
/// One simulation step.
pub const STEP: Duration = Duration::from_millis(20);

/// A directory on a memory file system when there is one (fsyncs are then cheap), removed at the end.
struct SimDir(PathBuf);

impl SimDir {
    fn new(simulation: &str, seed: u64, master: u64) -> SimDir {
        let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("tethys-sim-{simulation}-{}-{seed}-{master}", std::process::id()));
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

pub struct MasterGroup {
    pub seed: u64,
    pub router: LocalRouter,
    dirs: Vec<SimDir>,
    pub running: BTreeMap<NodeId, Master>,
    pub leaders_by_term: BTreeMap<u64, NodeId>,
    terminal_seen: BTreeMap<(NodeId, JobId), JobStatus>,
    /// The highest attempt of each job any master applied.
    attempts_seen: BTreeMap<JobId, u32>,
}

impl MasterGroup {
    /// Three masters' directories (named for `simulation`) and their network, with the network's
    /// faults as given; none started yet.
    pub fn new(simulation: &str, seed: u64, faults: Faults) -> MasterGroup {
        seed_this_thread(seed);
        let router = LocalRouter::new();
        router.set_faults(faults, seed);
        MasterGroup {
            seed,
            router,
            dirs: (0..MASTERS).map(|id| SimDir::new(simulation, seed, id)).collect(),
            running: BTreeMap::new(),
            leaders_by_term: BTreeMap::new(),
            terminal_seen: BTreeMap::new(),
            attempts_seen: BTreeMap::new(),
        }
    }

    /// Makes the started masters a group, through master 0.
    pub async fn initialize(&self) {
        let members = (0..MASTERS).map(|id| (id, format!("master-{id}"))).collect();
        self.running[&0].initialize(members).await.unwrap();
    }

    /// Starts master `id` from its directory.
    pub async fn start(&mut self, id: NodeId) -> Master {
        let master = Master::start(id, &self.dirs[id as usize].0, &config(), self.router.network_of(id))
            .await
            .unwrap_or_else(|error| panic!("seed {}: master {id} does not start: {error}", self.seed));
        self.router.add(id, master.raft().clone());
        self.running.insert(id, master.clone());
        master
    }

    pub async fn crash(&mut self, id: NodeId) {
        self.router.remove(id);
        if let Some(master) = self.running.remove(&id) {
            master.shutdown().await;
        }
    }

    pub fn leader(&self) -> Option<&Master> {
        self.running.values().find(|master| master.is_leader())
    }

    /// Checks what every running master says now: at most one leader per term, a terminal job
    /// stays so on every master.
    pub fn observe(&mut self) {
        for master in self.running.values() {
            if master.is_leader() {
                let term = master.term();
                let leader = *self.leaders_by_term.entry(term).or_insert(master.id());
                assert_eq!(leader, master.id(), "seed {}: masters {leader} and {} both lead term {term}", self.seed, master.id());
            }
            let id = master.id();
            let jobs: Vec<(JobId, JobStatus, u32)> =
                master.read(|state| state.jobs().map(|job| (job.id, job.status.clone(), job.attempt)).collect());
            for (job, status, attempt) in jobs {
                let seen = self.attempts_seen.entry(job).or_insert(attempt);
                *seen = (*seen).max(attempt);
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

    /// Heals the network (every master up, no faults) and waits until the group commits a
    /// command and every master applied it; then checks that they hold the same state, that it
    /// passes its invariants and that no deployment any master applied is lost. That state.
    pub async fn settle(&mut self, down: Option<NodeId>) -> ClusterState {
        if let Some(id) = down {
            self.start(id).await;
        }
        for id in 0..MASTERS {
            self.router.set_cut_off(id, false);
        }
        self.router.set_faults(Faults::default(), self.seed);
        let seed = self.seed;
        let mut settled = false;
        for _ in 0..500 {
            tokio::time::sleep(STEP).await;
            self.observe();
            let Some(leader) = self.leader().cloned() else { continue };
            // Committed and applied, though refused: it changes nothing.
            let marker = Command::RecordSavepoint { job: JobId(u64::MAX), location: "settled".into() };
            if leader.propose(marker).await.is_err() {
                continue;
            }
            let target = leader.applied_index();
            if self.running.values().all(|master| master.applied_index() >= target) {
                settled = true;
                break;
            }
        }
        assert!(settled, "seed {seed}: the group did not settle after healing");
        // Deployers may be committing still: compare the masters when they applied the same.
        let mut states: Vec<(u64, ClusterState)> = Vec::new();
        for _ in 0..5000 {
            states = self.running.values().map(Master::applied_state).collect();
            if states.windows(2).all(|pair| pair[0].0 == pair[1].0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let applied: Vec<u64> = states.iter().map(|(index, _)| *index).collect();
        assert!(applied.windows(2).all(|pair| pair[0] == pair[1]), "seed {seed}: the masters never applied the same: {applied:?}");
        let states: Vec<ClusterState> = states.into_iter().map(|(_, state)| state).collect();
        let state = states[0].clone();
        for (id, other) in states.iter().enumerate() {
            assert_eq!(&state, other, "seed {seed}: master {id} holds another state");
        }
        state.check_invariants().unwrap_or_else(|broken| panic!("seed {seed}: {broken}"));
        for (job, attempt) in &self.attempts_seen {
            let now = state.job(*job).map_or(0, |record| record.attempt);
            assert!(now >= *attempt, "seed {seed}: {job} was deployed as attempt {attempt} and is at attempt {now} now");
        }
        state
    }

    pub async fn shutdown(&mut self) {
        for master in self.running.values() {
            master.shutdown().await;
        }
    }
}
