//! The Raft state machine of a master: [`ClusterState`] with what Raft needs around it (the last
//! applied entry, the membership of the master group, the current snapshot).
//!
//! The state lives in memory and is shared with the master, which reads it to answer queries. A
//! snapshot is the state as JSON with its Raft metadata; the current one is also written to
//! `snapshot.json` in the master's directory (to a temporary file, synced, then renamed), so a
//! restarted master starts from it and re-applies only the entries after it, which the log kept.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{Entry, Node, NodeId, TypeConfig};
use crate::state::{ClusterState, Refusal, Response};

/// What applying one entry returns to the proposer: the command's response or refusal.
pub type Applied = Result<Response, Refusal>;

/// The replicated state and where it stands in the log; shared between the state machine and the
/// master that reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppliedState {
    /// The cluster state.
    pub state: ClusterState,
    /// The last entry applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The membership of the master group as of the last membership entry applied.
    pub membership: StoredMembership<NodeId, Node>,
}

/// A snapshot as kept in memory and on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    /// The `AppliedState` as JSON.
    data: Vec<u8>,
}

/// The state machine of one master (see the module documentation). Cloning shares it.
#[derive(Clone)]
pub struct StateMachineStore {
    applied: Arc<RwLock<AppliedState>>,
    snapshot: Arc<RwLock<Option<StoredSnapshot>>>,
    snapshot_file: PathBuf,
    /// Snapshots built so far by this process, for unique ids.
    built: Arc<std::sync::atomic::AtomicU64>,
}

fn sm_error(verb: ErrorVerb, error: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(error.to_string())).into()
}

impl StateMachineStore {
    /// Opens the state machine of the master whose directory is `dir`: from its snapshot, if it
    /// has one.
    pub fn open(dir: &Path) -> Result<StateMachineStore, StorageError<NodeId>> {
        let snapshot_file = dir.join("snapshot.json");
        let (applied, snapshot) = match std::fs::read(&snapshot_file) {
            Ok(bytes) => {
                let snapshot: StoredSnapshot = serde_json::from_slice(&bytes)
                    .map_err(|error| sm_error(ErrorVerb::Read, format!("{} does not decode: {error}", snapshot_file.display())))?;
                let applied: AppliedState = serde_json::from_slice(&snapshot.data).map_err(|error| sm_error(ErrorVerb::Read, error))?;
                (applied, Some(snapshot))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (AppliedState::default(), None),
            Err(error) => return Err(sm_error(ErrorVerb::Read, format!("{}: {error}", snapshot_file.display()))),
        };
        Ok(StateMachineStore {
            applied: Arc::new(RwLock::new(applied)),
            snapshot: Arc::new(RwLock::new(snapshot)),
            snapshot_file,
            built: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// The applied state, shared: read it, never hold it across an await.
    pub fn applied(&self) -> Arc<RwLock<AppliedState>> {
        Arc::clone(&self.applied)
    }

    fn save(&self, snapshot: StoredSnapshot) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(&snapshot).map_err(|error| sm_error(ErrorVerb::Write, error))?;
        let temporary = self.snapshot_file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.snapshot_file)?;
            if let Some(dir) = self.snapshot_file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|error| sm_error(ErrorVerb::Write, format!("{}: {error}", self.snapshot_file.display())))?;
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(snapshot);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, AppliedState> {
        self.applied.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, AppliedState> {
        self.applied.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (data, last_applied, membership) = {
            let applied = self.read();
            let data = serde_json::to_vec(&*applied).map_err(|error| sm_error(ErrorVerb::Read, error))?;
            (data, applied.last_applied, applied.membership.clone())
        };
        let number = self.built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(log_id) => format!("{}-{}-{number}", log_id.leader_id, log_id.index),
            None => format!("empty-{number}"),
        };
        let meta = SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        self.save(StoredSnapshot { meta: meta.clone(), data: data.clone() })?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let applied = self.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.write();
        let mut responses = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => Ok(Response::Done),
                EntryPayload::Normal(command) => applied.state.apply(entry.log_id.leader_id.term, command),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                    Ok(Response::Done)
                }
            };
            debug_assert_eq!(applied.state.check_invariants(), Ok(()), "after {entry:?}");
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachineStore {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let mut received: AppliedState = serde_json::from_slice(&data).map_err(|error| {
            sm_error(ErrorVerb::Read, format!("snapshot {} from the leader does not decode: {error}", meta.snapshot_id))
        })?;
        received.last_applied = meta.last_log_id;
        received.membership = meta.last_membership.clone();
        self.save(StoredSnapshot { meta: meta.clone(), data })?;
        *self.write() = received;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let snapshot = self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        Ok(snapshot.map(|stored| Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
    }
}
