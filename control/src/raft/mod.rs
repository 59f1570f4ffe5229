//! The master group: openraft over our durable log store and state machine.
//!
//! A [`Master`] is one member: its Raft node (elections, replication, commitment are openraft's),
//! its durable log (`log_store`), its state machine (`state_machine`) and a network to the other
//! masters (`network`: in one process for tests; over gRPC between processes). Commands are
//! proposed to the leader ([`Master::propose`]); a follower answers with where the leader is.
//! What a command returns is what the state machine said when it applied the committed entry.

pub mod log_store;
pub mod network;
pub mod runtime;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};

use crate::state::{ClusterState, Command};
pub use state_machine::{Applied, AppliedState};

/// A master's id in the group.
pub type NodeId = u64;
/// A master's address, as the group's membership records it.
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// The Raft types of the master group.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = runtime::SeededTokio,
);

/// An entry of the masters' log.
pub type Entry = openraft::Entry<TypeConfig>;

/// Timing of the master group.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// A snapshot is taken after this many entries since the last one (and the log before it is purged).
    pub snapshot_after_entries: u64,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            heartbeat: Duration::from_millis(50),
            // A narrow range: openraft's followers refuse votes for `election_timeout_max` after
            // they last heard a leader (its lease), so the first candidate is usually refused and
            // wins at its second try, about max + min after the leader died (measured: 300-600 ms
            // gave failovers of 2.3 s at p50, 250-350 ms 0.7 s; RESULTS.md).
            election_timeout: (Duration::from_millis(200), Duration::from_millis(250)),
            snapshot_after_entries: 1000,
        }
    }
}

/// Why a master could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterError {
    /// This master is not the leader; the leader, if it knows one.
    #[error("master {at} is not the leader{}", leader.as_ref().map(|(id, addr)| format!("; master {id} at {addr} is")).unwrap_or_default())]
    NotLeader {
        /// The master asked.
        at: NodeId,
        /// The leader's id and address, if known.
        leader: Option<(NodeId, String)>,
    },
    /// Its storage or Raft failed.
    #[error("master {at}: {reason}")]
    Failed {
        /// The master.
        at: NodeId,
        /// What failed.
        reason: String,
    },
}

/// One member of the master group (see the module documentation).
#[derive(Clone)]
pub struct Master {
    id: NodeId,
    raft: openraft::Raft<TypeConfig>,
    applied: Arc<RwLock<AppliedState>>,
}

/// How long [`Master::propose`] waits for its command to be committed.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Master {
    /// Starts master `id` on its directory `dir` (its log, vote and snapshot; created if missing),
    /// reaching the others through `network`. A master that ran before resumes from what it stored.
    pub async fn start<N>(id: NodeId, dir: &Path, config: &MasterConfig, network: N) -> Result<Master, MasterError>
    where
        N: openraft::RaftNetworkFactory<TypeConfig>,
    {
        let failed = |reason: String| MasterError::Failed { at: id, reason };
        std::fs::create_dir_all(dir).map_err(|error| failed(format!("creating {}: {error}", dir.display())))?;
        // A master restarted in this process (tests, simulations) may find its predecessor's tasks
        // still letting go of the log; another process holding it is refused by the open below.
        for _ in 0..100 {
            if !tethys_storage::Log::in_use(dir.join("log")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let log_store = log_store::LogStore::open(&dir.join("log")).map_err(|error| failed(error.to_string()))?;
        let state_machine = state_machine::StateMachineStore::open(dir).map_err(|error| failed(error.to_string()))?;
        let applied = state_machine.applied();
        let raft_config = Config {
            cluster_name: "tethys-masters".to_string(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: 0,
            ..Config::default()
        }
        .validate()
        .map_err(|error| failed(format!("bad timing: {error}")))?;
        let raft = openraft::Raft::new(id, Arc::new(raft_config), network, log_store, state_machine)
            .await
            .map_err(|error| failed(error.to_string()))?;
        Ok(Master { id, raft, applied })
    }

    /// Its id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Its Raft node, for the network to hand it requests.
    pub fn raft(&self) -> &openraft::Raft<TypeConfig> {
        &self.raft
    }

    /// Forms the group of `members` (id and address each) with this master in it. Done once, on
    /// one master, when the group is first created; a group that exists already is left as it is.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), MasterError> {
        let members: BTreeMap<NodeId, Node> = members.into_iter().map(|(id, addr)| (id, BasicNode::new(addr))).collect();
        match self.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(MasterError::Failed { at: self.id, reason: error.to_string() }),
        }
    }

    /// Proposes `command`; once committed and applied, what the state machine said (the response
    /// or why it refused). Only the leader accepts: any other master says where the leader is.
    ///
    /// A proposal that is not committed within [`PROPOSE_TIMEOUT`] fails with an unknown outcome
    /// (it may be committed later): a leader cut off from the others, or deposed, may otherwise
    /// hold it forever.
    pub async fn propose(&self, command: Command) -> Result<Applied, MasterError> {
        let written = tokio::time::timeout(PROPOSE_TIMEOUT, self.raft.client_write(command)).await.map_err(|_| MasterError::Failed {
            at: self.id,
            reason: format!("not committed within {PROPOSE_TIMEOUT:?} (it may be, later)"),
        })?;
        match written {
            Ok(written) => Ok(written.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(MasterError::NotLeader { at: self.id, leader: forward.leader_id.zip(forward.leader_node.map(|node| node.addr)) })
            }
            Err(error) => Err(MasterError::Failed { at: self.id, reason: error.to_string() }),
        }
    }

    /// Reads the applied state (possibly behind the leader's; see [`Master::read_linearizable`]).
    pub fn read<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> R {
        read(&self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner()).state)
    }

    /// The applied state with the index of the last entry in it, read together.
    pub fn applied_state(&self) -> (u64, ClusterState) {
        let applied = self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        (applied.last_applied.map_or(0, |log_id| log_id.index), applied.state.clone())
    }

    /// Reads the state as of every command committed before the call: only on the leader, which
    /// confirms it still leads with a quorum first.
    pub async fn read_linearizable<R>(&self, read: impl FnOnce(&ClusterState) -> R) -> Result<R, MasterError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(self.read(read)),
            Err(error) => match error.forward_to_leader() {
                Some(forward) => Err(MasterError::NotLeader {
                    at: self.id,
                    leader: forward.leader_id.zip(forward.leader_node.clone().map(|node| node.addr)),
                }),
                None => Err(MasterError::Failed { at: self.id, reason: error.to_string() }),
            },
        }
    }

    /// The leader as this master knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this master leads now (as far as it knows).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The index of the last entry this master applied.
    pub fn applied_index(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |log_id| log_id.index)
    }

    /// The term this master leads in, if it leads (as far as it knows). Calls that fence by term
    /// carry this, never [`Master::term`]: a deposed leader has already seen its successor's term
    /// and, sending that, would pass as the new leader.
    pub fn leading_term(&self) -> Option<u64> {
        let metrics = self.raft.metrics().borrow().clone();
        (metrics.state == ServerState::Leader).then_some(metrics.current_term)
    }

    /// Whether the applied state holds every entry in this master's log (nothing appended is
    /// waiting to be committed or applied): on a leader, it then reflects all that was committed.
    pub fn applied_all_of_its_log(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        metrics.last_applied.map(|log_id| log_id.index) == metrics.last_log_index
    }

    /// The Raft term this master is in.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Waits until this master knows a leader (up to `timeout`); that leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, MasterError> {
        let metrics = self
            .raft
            .wait(Some(timeout))
            .metrics(|metrics| metrics.current_leader.is_some(), "a leader")
            .await
            .map_err(|error| MasterError::Failed { at: self.id, reason: format!("no leader: {error}") })?;
        Ok(metrics.current_leader.expect("waited for one"))
    }

    /// Adds master `id` at `addr` to the group (as a learner first, then a voter). On the leader.
    pub async fn add_member(&self, id: NodeId, addr: String) -> Result<(), MasterError> {
        let failed = |error: RaftError<NodeId, ClientWriteError<NodeId, Node>>| match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
                MasterError::NotLeader { at: self.id, leader: forward.leader_id.zip(forward.leader_node.map(|node| node.addr)) }
            }
            other => MasterError::Failed { at: self.id, reason: other.to_string() },
        };
        self.raft.add_learner(id, BasicNode::new(addr), true).await.map_err(failed)?;
        self.raft.change_membership(openraft::ChangeMembers::AddVoterIds([id].into()), false).await.map_err(failed)?;
        Ok(())
    }

    /// Removes master `id` from the group. On the leader.
    pub async fn remove_member(&self, id: NodeId) -> Result<(), MasterError> {
        match self.raft.change_membership(openraft::ChangeMembers::RemoveVoters([id].into()), false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(MasterError::NotLeader { at: self.id, leader: forward.leader_id.zip(forward.leader_node.map(|node| node.addr)) })
            }
            Err(error) => Err(MasterError::Failed { at: self.id, reason: error.to_string() }),
        }
    }

    /// Every member of the group (voters and learners) with its address, as this master knows.
    pub fn member_addrs(&self) -> Vec<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.nodes().map(|(id, node)| (*id, node.addr.clone())).collect()
    }

    /// The address of member `id`, as this master knows.
    pub fn member_addr(&self, id: NodeId) -> Option<String> {
        self.member_addrs().into_iter().find(|(member, _)| *member == id).map(|(_, addr)| addr)
    }

    /// The voting members of the group, as this master's applied state says.
    pub fn members(&self) -> Vec<NodeId> {
        self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner()).membership.membership().voter_ids().collect()
    }

    /// Stops this master's Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

#[cfg(test)]
mod tests;
