//! A completed checkpoint as the job keeps it, writes it and restores from it: the state of every
//! operator, found by operator id, independent of the parallelism it was taken at.
//!
//! [`JobSnapshot`] is built from the subtasks' acknowledgements: per operator (by its id, the
//! user's `uid` or the derived one), the source positions per subtask, every key group's keyed
//! state and the sinks' pre-commits not committed yet. It is written into a `CheckpointStore`
//! checkpoint (published atomically, checked against its manifest when read back), encoded with
//! the engine's codec: each key group of each operator in a file of its own,
//! `kg-<operator id hash>-<key group>`, holding the operator id and the group's snapshot; the rest
//! in the file `state`. **Incremental**: a key group unchanged since the checkpoint written before
//! is hard-linked from it instead of written again (`JobSnapshot::write`'s `unchanged`).
//!
//! Restoring ([`RestoreState::prepare`]) maps it onto the job about to run and refuses, naming
//! what differs, a snapshot taken with another max parallelism (key group numbers would mean
//! other keys), state of an operator id the job does not have (a changed or missing `uid`), or a
//! source whose parallelism changed (a source subtask's position means nothing to another
//! subtask). Keyed state is redistributed by key group, so keyed operators may run at any
//! parallelism; a state of another type is refused by the operator when it restores
//! (`StateError::ForeignOperatorSnapshot`, `IncompatibleSnapshot`).

use std::collections::HashMap;
use std::path::Path;

use crate::base::codec::{self, CodecError};
use crate::graph::logical::{JobGraph, OperatorKind};
use crate::key_group::KeyGroupRange;
use crate::sink::Committable;
use crate::state::OperatorKeyGroupSnapshot;
use tethys_storage::checkpoint_store::{CheckpointKind, CheckpointStore, CheckpointStoreError, CompletedCheckpoint};

/// Name of the file holding the encoded `JobSnapshot` (without its key groups) in a checkpoint
/// directory.
pub const STATE_FILE: &str = "state";

/// Prefix of the files holding one key group of one operator.
pub const KEY_GROUP_FILE_PREFIX: &str = "kg-";

/// The file of key group `key_group` of operator `id`: named by the operator id's hash (ids are
/// the user's text), stable across checkpoints so an unchanged group can be linked.
fn key_group_file(id: &str, key_group: usize) -> String {
    format!("{KEY_GROUP_FILE_PREFIX}{:016x}-{key_group}", crate::base::key::key_hash(id))
}

/// Everything one completed checkpoint (or savepoint) holds.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct JobSnapshot {
    /// The checkpoint's id.
    pub checkpoint: u64,
    /// Number of key groups of the job: fixed for its life.
    pub max_parallelism: u32,
    /// State per operator that has any.
    pub operators: Vec<OperatorSnapshot>,
}

/// One operator's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OperatorSnapshot {
    /// The operator's id (`JobGraph::operator_ids`).
    pub id: String,
    /// Its name, for messages.
    pub name: String,
    /// The parallelism it ran at.
    pub parallelism: u32,
    /// A source's reader position per subtask (`None` where a reader reported none).
    pub source_positions: Vec<Option<u64>>,
    /// Keyed state, one entry per key group with state, in key group order.
    pub key_groups: Vec<OperatorKeyGroupSnapshot>,
    /// A sink's pre-commits that were not committed when the checkpoint completed: committed on
    /// restore (again, idempotently).
    pub committables: Vec<Committable>,
    /// Unaligned checkpoints: the records in flight towards this operator's subtasks (frames
    /// encoded with the codec), replayed into them on restore before any input.
    pub in_flight: Vec<InFlightFrames>,
    /// Non-keyed operator state per subtask (e.g. async I/O's requests in flight), dealt
    /// round-robin to the subtasks of the job restoring it.
    pub operator_states: Vec<(u32, Vec<u8>)>,
}

/// The frames in flight on one input channel of one subtask, in channel order.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct InFlightFrames {
    /// The consuming subtask.
    pub subtask: u32,
    /// Its gate channel.
    pub channel: u32,
    /// The frames, oldest first.
    pub frames: Vec<Vec<u8>>,
}

impl JobSnapshot {
    /// Encoded size of the keyed state, in bytes.
    pub fn state_bytes(&self) -> u64 {
        self.operators.iter().flat_map(|o| &o.key_groups).map(|g| g.encoded_bytes() as u64).sum()
    }

    /// Encoded size of the in-flight records (unaligned checkpoints), in bytes.
    pub fn in_flight_bytes(&self) -> u64 {
        self.operators.iter().flat_map(|o| &o.in_flight).flat_map(|f| &f.frames).map(|frame| frame.len() as u64).sum()
    }

    /// Writes the snapshot into `store` as checkpoint `self.checkpoint` (or a savepoint) and
    /// publishes it. A key group for which `unchanged(operator id, key group)` is true is linked
    /// from checkpoint `base` (written before, with the same bytes for it) instead of written.
    /// Returns the published checkpoint and the bytes written (links not counted).
    pub fn write(
        &self,
        store: &mut CheckpointStore,
        kind: CheckpointKind,
        base: Option<&CompletedCheckpoint>,
        unchanged: &dyn Fn(&str, usize) -> bool,
    ) -> Result<(CompletedCheckpoint, u64), SnapshotError> {
        let mut rest = self.clone();
        let mut writer = store.begin(self.checkpoint, kind)?;
        let mut written = 0;
        for operator in &mut rest.operators {
            for group in std::mem::take(&mut operator.key_groups) {
                let name = key_group_file(&operator.id, group.key_group());
                match base.filter(|base| unchanged(&operator.id, group.key_group()) && base.file_names().any(|file| file == name)) {
                    Some(base) => writer.link(&name, base)?,
                    None => {
                        let bytes = codec::encode(&(operator.id.clone(), group))?;
                        written += bytes.len() as u64;
                        writer.put(&name, &bytes)?;
                    }
                }
            }
        }
        let bytes = codec::encode(&rest)?;
        written += bytes.len() as u64;
        writer.put(STATE_FILE, &bytes)?;
        Ok((writer.publish()?, written))
    }

    /// Reads the snapshot of a published checkpoint.
    pub fn read(checkpoint: &CompletedCheckpoint) -> Result<JobSnapshot, SnapshotError> {
        let mut snapshot: JobSnapshot = codec::decode(&checkpoint.read(STATE_FILE)?)?;
        for name in checkpoint.file_names().filter(|name| name.starts_with(KEY_GROUP_FILE_PREFIX)) {
            let (id, group): (String, OperatorKeyGroupSnapshot) = codec::decode(&checkpoint.read(name)?)?;
            let operator = snapshot.operators.iter_mut().find(|operator| operator.id == id).ok_or_else(|| {
                SnapshotError::Inconsistent(format!("file {name} holds state of operator {id}, which the checkpoint does not list"))
            })?;
            operator.key_groups.push(group);
        }
        for operator in &mut snapshot.operators {
            operator.key_groups.sort_by_key(|group| group.key_group());
        }
        Ok(snapshot)
    }

    /// Reads what `path` names: one published `chk-<id>` / `svp-<id>` directory, or a checkpoint
    /// store directory (its newest checkpoint or savepoint). Either is only read: a running job
    /// may be writing and retiring checkpoints in the store meanwhile, and a checkpoint retired
    /// under the reader is an error (`NotFound`), never an empty directory made in its place.
    pub fn read_path(path: &Path) -> Result<JobSnapshot, SnapshotError> {
        if CheckpointStore::names_published(path) {
            if !path.is_dir() {
                return Err(SnapshotError::NotFound(path.to_path_buf()));
            }
            let checkpoint = CheckpointStore::read_published(path)?.expect("named as a published checkpoint");
            return JobSnapshot::read(&checkpoint);
        }
        JobSnapshot::read_latest(path)?.ok_or_else(|| SnapshotError::NotFound(path.to_path_buf()))
    }

    /// Reads the newest checkpoint or savepoint of the store at `dir`, if it has one (the store
    /// is only read, see [`CheckpointStore::read_newest`]).
    pub fn read_latest(dir: &Path) -> Result<Option<JobSnapshot>, SnapshotError> {
        CheckpointStore::read_newest(dir)?.as_ref().map(JobSnapshot::read).transpose()
    }
}

/// A checkpoint could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The checkpoint store failed (I/O, a file that does not match its manifest).
    #[error(transparent)]
    Store(#[from] CheckpointStoreError),
    /// An operator's state could not be encoded.
    #[error("keyed state cannot be encoded: {0}")]
    State(#[from] crate::state::StateError),
    /// The checkpoint's files do not agree with each other.
    #[error("checkpoint is inconsistent: {0}")]
    Inconsistent(String),
    /// No published checkpoint or savepoint there.
    #[error("no completed checkpoint or savepoint at {0}")]
    NotFound(std::path::PathBuf),
    /// The state file does not decode.
    #[error("checkpoint state does not decode: {0}")]
    Codec(#[from] CodecError),
}

/// Why a snapshot cannot be restored into this job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// Max parallelism differs: key group numbers would mean other keys.
    #[error(
        "checkpoint {checkpoint} was taken with max parallelism {snapshot}, the job has {job}: max parallelism is fixed for a job's life"
    )]
    MaxParallelismChanged {
        /// The checkpoint.
        checkpoint: u64,
        /// Max parallelism in the snapshot.
        snapshot: u32,
        /// Max parallelism of the job.
        job: usize,
    },
    /// The snapshot has state of an operator the job does not have.
    #[error("checkpoint {checkpoint} has state of operator '{name}' (id {id}), which this job does not have: give the operator the same `uid` as before")]
    UnknownOperator {
        /// The checkpoint.
        checkpoint: u64,
        /// The operator's id in the snapshot.
        id: String,
        /// Its name in the snapshot.
        name: String,
    },
    /// Records were in flight towards an operator that now runs at another parallelism.
    #[error("checkpoint {checkpoint} is unaligned with records in flight to '{name}', which ran with parallelism {snapshot} and has {job} now: restore it at the same parallelism, or rescale from a savepoint (savepoints are aligned)")]
    InFlightRescaled {
        /// The checkpoint.
        checkpoint: u64,
        /// The operator.
        name: String,
        /// Its parallelism in the snapshot.
        snapshot: u32,
        /// Its parallelism now.
        job: usize,
    },
    /// A source runs at another parallelism than in the snapshot.
    #[error("source '{name}' ran with parallelism {snapshot} in checkpoint {checkpoint} and has {job} now: a source keeps its parallelism across restores")]
    SourceParallelismChanged {
        /// The checkpoint.
        checkpoint: u64,
        /// The source.
        name: String,
        /// Its parallelism in the snapshot.
        snapshot: u32,
        /// Its parallelism now.
        job: usize,
    },
}

/// A snapshot mapped onto the nodes of the job about to run.
#[derive(Debug)]
pub(crate) struct RestoreState {
    pub checkpoint: u64,
    /// By node id.
    nodes: HashMap<usize, OperatorSnapshot>,
}

impl RestoreState {
    /// Maps `snapshot` onto `graph`, refusing what cannot be restored (see the module doc).
    pub(crate) fn prepare(snapshot: &JobSnapshot, graph: &JobGraph) -> Result<RestoreState, RestoreError> {
        let checkpoint = snapshot.checkpoint;
        if snapshot.max_parallelism as usize != graph.max_parallelism {
            return Err(RestoreError::MaxParallelismChanged { checkpoint, snapshot: snapshot.max_parallelism, job: graph.max_parallelism });
        }
        let ids: HashMap<String, usize> = graph.operator_ids().into_iter().enumerate().map(|(node, id)| (id, node)).collect();
        let mut nodes = HashMap::new();
        for operator in &snapshot.operators {
            let Some(&node) = ids.get(&operator.id) else {
                return Err(RestoreError::UnknownOperator { checkpoint, id: operator.id.clone(), name: operator.name.clone() });
            };
            let parallelism = graph.parallelism_of(node);
            let has_positions = operator.source_positions.iter().any(Option::is_some);
            if graph.nodes[node].kind == OperatorKind::Source && has_positions && operator.parallelism as usize != parallelism {
                return Err(RestoreError::SourceParallelismChanged {
                    checkpoint,
                    name: graph.nodes[node].name.clone(),
                    snapshot: operator.parallelism,
                    job: parallelism,
                });
            }
            if !operator.in_flight.is_empty() && operator.parallelism as usize != parallelism {
                return Err(RestoreError::InFlightRescaled {
                    checkpoint,
                    name: graph.nodes[node].name.clone(),
                    snapshot: operator.parallelism,
                    job: parallelism,
                });
            }
            nodes.insert(node, operator.clone());
        }
        Ok(RestoreState { checkpoint, nodes })
    }

    /// The position the reader of `subtask` of source `node` goes on from.
    pub(crate) fn source_position(&self, node: usize, subtask: usize) -> Option<u64> {
        self.nodes.get(&node)?.source_positions.get(subtask).copied().flatten()
    }

    /// The keyed state of `node` in the key groups of `range`.
    pub(crate) fn key_groups(&self, node: usize, range: KeyGroupRange) -> Vec<OperatorKeyGroupSnapshot> {
        let Some(operator) = self.nodes.get(&node) else { return Vec::new() };
        operator.key_groups.iter().filter(|group| range.contains(group.key_group())).cloned().collect()
    }

    /// The non-keyed operator states for `subtask` of `parallelism` subtasks of `node`: the
    /// states of the checkpoint's subtasks `j` with `j mod parallelism == subtask`.
    pub(crate) fn operator_states(&self, node: usize, subtask: usize, parallelism: usize) -> Vec<Vec<u8>> {
        let Some(operator) = self.nodes.get(&node) else { return Vec::new() };
        operator.operator_states.iter().filter(|(old, _)| *old as usize % parallelism == subtask).map(|(_, state)| state.clone()).collect()
    }

    /// The in-flight frames to replay into `subtask` of `node`, channel after channel.
    pub(crate) fn in_flight(&self, node: usize, subtask: usize) -> impl Iterator<Item = &[u8]> {
        self.nodes
            .get(&node)
            .into_iter()
            .flat_map(|operator| &operator.in_flight)
            .filter(move |frames| frames.subtask as usize == subtask)
            .flat_map(|frames| frames.frames.iter().map(Vec::as_slice))
    }

    /// The pre-commits of sink `node` to commit before the job starts.
    pub(crate) fn committables(&self, node: usize) -> &[Committable] {
        self.nodes.get(&node).map_or(&[], |operator| &operator.committables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::discard::DiscardSink;
    use crate::{EngineConfig, StreamEnvironment};

    fn graph(source_parallelism: usize, max_parallelism: usize, uid: &str) -> JobGraph {
        let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 2, max_parallelism, ..EngineConfig::default() });
        env.from_collection(vec![1u64, 2, 3])
            .parallelism(source_parallelism)
            .uid("numbers")
            .key_by(|n: &u64| *n)
            .count()
            .uid(uid)
            .sink("out", DiscardSink::new());
        env.job_graph()
    }

    fn snapshot_of(graph: &JobGraph) -> JobSnapshot {
        let ids = graph.operator_ids();
        let operators = graph
            .nodes
            .iter()
            .map(|node| OperatorSnapshot {
                id: ids[node.id].clone(),
                name: node.name.clone(),
                parallelism: graph.parallelism_of(node.id) as u32,
                source_positions: if node.kind == OperatorKind::Source { vec![Some(1); graph.parallelism_of(node.id)] } else { vec![] },
                key_groups: vec![],
                committables: vec![],
                in_flight: vec![],
                operator_states: vec![],
            })
            .collect();
        JobSnapshot { checkpoint: 7, max_parallelism: graph.max_parallelism as u32, operators }
    }

    #[test]
    fn a_snapshot_round_trips_through_the_store() {
        let dir = std::env::temp_dir().join(format!("tethys-snapshot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let snapshot = snapshot_of(&graph(1, 128, "counts"));
        let mut store = CheckpointStore::open(&dir, 2).unwrap();
        snapshot.write(&mut store, CheckpointKind::Checkpoint, None, &|_, _| false).unwrap();
        assert_eq!(JobSnapshot::read_latest(&dir).unwrap(), Some(snapshot));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_incremental_checkpoint_links_the_key_groups_that_did_not_change() {
        let dir = std::env::temp_dir().join(format!("tethys-snapshot-incremental-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut first = snapshot_of(&graph(1, 128, "counts"));
        let group =
            |key_group: usize, value: u64| OperatorKeyGroupSnapshot::new(key_group, 128, &vec![(key_group as u64, value); 100]).unwrap();
        let counts = first.operators.iter_mut().find(|operator| operator.id == "counts").unwrap();
        counts.key_groups = (0..128).map(|key_group| group(key_group, 1)).collect();
        let mut store = CheckpointStore::open(&dir, 1).unwrap();
        let (base, full) = first.write(&mut store, CheckpointKind::Checkpoint, None, &|_, _| false).unwrap();

        let mut second = first.clone();
        second.checkpoint = 8;
        let counts = second.operators.iter_mut().find(|operator| operator.id == "counts").unwrap();
        counts.key_groups[5] = group(5, 2);
        let (_, incremental) =
            second.write(&mut store, CheckpointKind::Checkpoint, Some(&base), &|id, key_group| id == "counts" && key_group != 5).unwrap();
        assert!(incremental * 20 < full, "one changed group of 128 writes a fraction: {incremental} of {full} bytes");
        // Retention removed the first checkpoint; the second reads back whole.
        assert!(!base.path.exists());
        assert_eq!(JobSnapshot::read_latest(&dir).unwrap(), Some(second));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reading_a_retired_checkpoint_is_not_found_and_leaves_its_store_as_it_was() {
        let dir = std::env::temp_dir().join(format!("tethys-snapshot-retired-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = CheckpointStore::open(&dir, 1).unwrap();
        let first = snapshot_of(&graph(1, 128, "counts"));
        let (retired, _) = first.write(&mut store, CheckpointKind::Checkpoint, None, &|_, _| false).unwrap();
        let second = JobSnapshot { checkpoint: 8, ..first.clone() };
        second.write(&mut store, CheckpointKind::Checkpoint, None, &|_, _| false).unwrap();
        assert!(!retired.path.exists());

        // A reader holding the retired checkpoint's path (as the masters' rescale check may).
        let error = JobSnapshot::read_path(&retired.path).unwrap_err();
        assert!(matches!(&error, SnapshotError::NotFound(path) if *path == retired.path), "{error}");
        assert!(!retired.path.exists(), "nothing is made in its place");
        assert_eq!(CheckpointStore::open(&dir, 1).unwrap().latest().map(|checkpoint| checkpoint.id), Some(8));
        // The store's directory reads as its newest checkpoint; a missing one as nothing.
        assert_eq!(JobSnapshot::read_path(&dir).unwrap(), second);
        assert_eq!(JobSnapshot::read_latest(&dir.join("absent")).unwrap(), None);
        assert!(!dir.join("absent").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn restoring_names_what_differs() {
        let snapshot = snapshot_of(&graph(1, 128, "counts"));
        assert!(RestoreState::prepare(&snapshot, &graph(1, 128, "counts")).is_ok());
        let error = RestoreState::prepare(&snapshot, &graph(1, 256, "counts")).unwrap_err();
        assert!(matches!(error, RestoreError::MaxParallelismChanged { snapshot: 128, job: 256, .. }), "{error}");
        let error = RestoreState::prepare(&snapshot, &graph(1, 128, "totals")).unwrap_err();
        assert!(error.to_string().contains("id counts"), "{error}");
        let error = RestoreState::prepare(&snapshot, &graph(2, 128, "counts")).unwrap_err();
        assert!(matches!(error, RestoreError::SourceParallelismChanged { snapshot: 1, job: 2, .. }), "{error}");
    }
}
