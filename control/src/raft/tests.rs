//! The master group in one process: openraft's own conformance suite on our stores, then three
//! masters electing, replicating, failing over and restarting from their directories.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use tethys_storage::test_dir::TestDir;

use super::log_store::LogStore;
use super::network::LocalRouter;
use super::state_machine::StateMachineStore;
use super::*;
use crate::state::{Artifact, JobSpec, Response, WorkerId};

struct DirStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TestDir> for DirStores {
    async fn build(&self) -> Result<(TestDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = TestDir::new("raft-suite");
        let log = LogStore::open(&dir.path().join("log"))?;
        let state_machine = StateMachineStore::open(dir.path())?;
        Ok((dir, log, state_machine))
    }
}

#[test]
fn our_stores_pass_openraft_s_storage_suite() -> Result<(), StorageError<NodeId>> {
    Suite::test_all(DirStores)
}

const WAIT: Duration = Duration::from_secs(10);

fn fast() -> MasterConfig {
    MasterConfig {
        heartbeat: Duration::from_millis(20),
        election_timeout: (Duration::from_millis(100), Duration::from_millis(200)),
        snapshot_after_entries: 20,
    }
}

fn register(slots: u32) -> Command {
    Command::RegisterWorker { control_addr: "127.0.0.1:1".into(), data_addr: "127.0.0.1:2".into(), slots, at_ms: 0 }
}

/// Three masters on a router, each with its own directory.
struct Group {
    router: LocalRouter,
    dirs: Vec<TestDir>,
    masters: BTreeMap<NodeId, Master>,
}

impl Group {
    async fn start() -> Group {
        let router = LocalRouter::new();
        let dirs: Vec<TestDir> = (0..3).map(|_| TestDir::new("master")).collect();
        let mut group = Group { router, dirs, masters: BTreeMap::new() };
        for id in 0..3 {
            group.start_master(id).await;
        }
        let members = (0..3).map(|id| (id, format!("master-{id}"))).collect();
        group.masters[&0].initialize(members).await.unwrap();
        group
    }

    async fn start_master(&mut self, id: NodeId) {
        let master = Master::start(id, self.dirs[id as usize].path(), &fast(), self.router.network_of(id)).await.unwrap();
        self.router.add(id, master.raft().clone());
        self.masters.insert(id, master);
    }

    async fn stop_master(&mut self, id: NodeId) {
        self.router.remove(id);
        self.masters.remove(&id).unwrap().shutdown().await;
    }

    /// The leader that every running master agrees on.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: Vec<Option<NodeId>> = self.masters.values().map(Master::leader).collect();
            if let Some(Some(leader)) = leaders.first() {
                if leaders.iter().all(|known| *known == Some(*leader))
                    && self.masters.contains_key(leader)
                    && self.masters[leader].is_leader()
                {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader within {WAIT:?}: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every running master has applied `workers` registrations.
    async fn wait_applied(&self, workers: usize) {
        let deadline = Instant::now() + WAIT;
        while !self.masters.values().all(|master| master.read(|state| state.workers().count()) == workers) {
            assert!(Instant::now() < deadline, "not every master applied {workers} workers within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_masters_elect_one_leader_and_replicate_what_it_commits() {
    let group = Group::start().await;
    let leader = group.leader().await;
    for expected in 0..5u64 {
        let applied = group.masters[&leader].propose(register(2)).await.unwrap();
        assert_eq!(applied, Ok(Response::WorkerRegistered(WorkerId(expected))));
    }
    group.wait_applied(5).await;
    let follower = (0..3).find(|id| *id != leader).unwrap();
    match group.masters[&follower].propose(register(1)).await {
        Err(MasterError::NotLeader { at, leader: Some((id, addr)) }) => {
            assert_eq!((at, id), (follower, leader));
            assert_eq!(addr, format!("master-{leader}"));
        }
        other => panic!("a follower must point at the leader: {other:?}"),
    }
    let refusal = group.masters[&leader].propose(Command::WorkerLost { worker: WorkerId(42) }).await.unwrap();
    assert!(refusal.is_err(), "a refused command is committed and refused alike everywhere");
    let states: Vec<ClusterState> = group.masters.values().map(|master| master.read(Clone::clone)).collect();
    assert!(states.windows(2).all(|pair| pair[0] == pair[1]), "every master holds the same state");
    assert_eq!(group.masters[&leader].read_linearizable(|state| state.workers().count()).await, Ok(5));
    assert!(matches!(group.masters[&follower].read_linearizable(|_| ()).await, Err(MasterError::NotLeader { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_and_nothing_committed_is_lost() {
    let mut group = Group::start().await;
    let first = group.leader().await;
    for _ in 0..3 {
        group.masters[&first].propose(register(1)).await.unwrap().unwrap();
    }
    let first_term = group.masters[&first].term();
    group.stop_master(first).await;
    let second = group.leader().await;
    assert_ne!(second, first);
    assert!(group.masters[&second].term() > first_term, "a new leader is in a later term");
    // A linearizable read: a new leader may not have applied every committed entry yet.
    assert_eq!(group.masters[&second].read_linearizable(|state| state.workers().count()).await, Ok(3));
    assert_eq!(group.masters[&second].propose(register(1)).await.unwrap(), Ok(Response::WorkerRegistered(WorkerId(3))));
    // The old leader comes back from its directory, follows, and catches up.
    group.start_master(first).await;
    group.wait_applied(4).await;
    assert_eq!(group.leader().await, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_cut_off_cannot_commit_and_rejoins() {
    let group = Group::start().await;
    let leader = group.leader().await;
    group.masters[&leader].propose(register(1)).await.unwrap().unwrap();
    group.router.set_cut_off(leader, true);
    // The deposed leader's proposals never commit; the other two elect a leader and go on.
    let stale = group.masters[&leader].clone();
    let stale_write = tokio::spawn(async move { stale.propose(register(7)).await });
    let deadline = Instant::now() + WAIT;
    let new_leader = loop {
        let others: Vec<&Master> = group.masters.values().filter(|master| master.id() != leader).collect();
        if let Some(master) = others.iter().find(|master| master.is_leader()) {
            break master.id();
        }
        assert!(Instant::now() < deadline, "the majority elected no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    group.masters[&new_leader].propose(register(2)).await.unwrap().unwrap();
    group.router.set_cut_off(leader, false);
    group.wait_applied(2).await;
    // What the deposed leader proposed while cut off was not committed.
    let slots: Vec<u32> = group.masters[&new_leader].read(|state| state.workers().map(|worker| worker.slots).collect());
    assert_eq!(slots, vec![1, 2]);
    let outcome = tokio::time::timeout(WAIT, stale_write).await.expect("the stale proposal ends").expect("no panic");
    assert!(outcome.is_err(), "a deposed leader's proposal fails: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_restart_from_their_directories_after_snapshots_purged_the_log() {
    let mut group = Group::start().await;
    let leader = group.leader().await;
    // More entries than the snapshot threshold: every master snapshots and purges its log.
    for _ in 0..45 {
        group.masters[&leader].propose(register(1)).await.unwrap().unwrap();
    }
    let job = Command::SubmitJob {
        spec: JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: 1, checkpoint_interval_ms: 0 },
        artifact: Artifact { build_id: "b".into(), program: None },
        at_ms: 1,
    };
    group.masters[&leader].propose(job).await.unwrap().unwrap();
    group.wait_applied(45).await;
    let before = group.masters[&leader].read(Clone::clone);
    for id in 0..3 {
        group.stop_master(id).await;
    }
    for id in 0..3 {
        group.start_master(id).await;
    }
    let leader = group.leader().await;
    group.wait_applied(45).await;
    let deadline = Instant::now() + WAIT;
    while group.masters.values().any(|master| master.read(|state| state.jobs().count()) != 1) {
        assert!(Instant::now() < deadline, "the job did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = group.masters[&leader].read(Clone::clone);
    assert_eq!(after.workers().collect::<Vec<_>>(), before.workers().collect::<Vec<_>>());
    assert_eq!(after.jobs().collect::<Vec<_>>(), before.jobs().collect::<Vec<_>>());
    assert!(group.dirs.iter().all(|dir| dir.path().join("snapshot.json").exists()), "every master took a snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_can_be_removed_and_added() {
    let mut group = Group::start().await;
    let leader = group.leader().await;
    let leaving = (0..3).find(|id| *id != leader).unwrap();
    group.masters[&leader].remove_member(leaving).await.unwrap();
    group.stop_master(leaving).await;
    assert_eq!(group.masters[&leader].members().len(), 2);
    group.masters[&leader].propose(register(1)).await.unwrap().unwrap();
    // A new master (id 3) joins and catches up.
    group.dirs.push(TestDir::new("master"));
    group.start_master(3).await;
    group.masters[&leader].add_member(3, "master-3".into()).await.unwrap();
    group.wait_applied(1).await;
    let mut members = group.masters[&leader].members();
    members.sort();
    let mut expected: Vec<NodeId> = (0..4).filter(|id| *id != leaving).collect();
    expected.sort();
    assert_eq!(members, expected);
}
