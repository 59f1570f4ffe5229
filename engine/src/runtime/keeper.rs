//! What the job driver does with checkpoints across the attempts of one job: collects the
//! subtasks' acknowledgements into a [`JobSnapshot`], writes it into the checkpoint store (on the
//! driver's thread, never a task's slot), keeps the newest for restarts, and runs the sinks'
//! second commit phase.
//!
//! Commit order, as Flink's: a checkpoint's sink pre-commits are committed only after the
//! checkpoint is complete *and* written, so a restore from it can always commit them again
//! (commit is idempotent). Pre-commits of a checkpoint that was abandoned are kept and committed
//! with the next one that completes (they hold data before its barrier). Pre-commits made after
//! `finish` are committed with the first checkpoint triggered after the subtask finished (its
//! sources had finished too, so a restore from it replays nothing into that sink), or when the
//! whole job has finished. When an attempt starts, every sink's
//! committer first commits what the restored checkpoint holds, then aborts everything else its
//! writers began: that data follows the checkpoint and is written again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::checkpoint::SubtaskCheckpoint;
use super::snapshot::{InFlightFrames, JobSnapshot, OperatorSnapshot, RestoreState, SnapshotError};
use super::task::{SubtaskId, TaskSnapshot};
use crate::base::UserError;
use crate::graph::logical::{JobGraph, OperatorKind};
use crate::graph::plan::ExecutionPlan;
use crate::sink::{Committable, SinkCommitter};
use crate::state::OperatorKeyGroupSnapshot;
use tethys_storage::checkpoint_store::{CheckpointKind, CheckpointStore};

/// The version (checkpoint taken in) of each key group, by operator id and key group.
type GroupVersions = HashMap<(String, usize), u64>;

/// Encoded frames.
type Frames = Vec<Vec<u8>>;

/// Why a checkpoint could not be completed or committed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeeperError {
    /// Writing the checkpoint failed.
    #[error("checkpoint {checkpoint} could not be written: {source}")]
    Write { checkpoint: u64, source: SnapshotError },
    /// A sink's committer failed.
    #[error("sink '{sink}' could not commit: {source}")]
    Commit { sink: String, source: UserError },
    /// The checkpoint gate did not let the checkpoint complete.
    #[error("checkpoint {checkpoint} was not let complete: {reason}")]
    Gate { checkpoint: u64, reason: String },
}

/// A checkpoint every subtask acknowledged and that is written, as a [`CheckpointGate`] sees it
/// (serializable: a gate may sit in another process than the job's driver).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointDone {
    /// Its id.
    pub id: u64,
    /// Its directory in the checkpoint store, when the job has one.
    pub location: Option<std::path::PathBuf>,
    /// From its trigger to the last subtask's acknowledgement.
    pub duration: std::time::Duration,
    /// Encoded size of the keyed state it holds, in bytes.
    pub state_bytes: u64,
    /// Bytes it wrote to the store (incremental: only the key groups that changed).
    pub written_bytes: u64,
    /// Each subtask's part, in the order they acknowledged.
    pub subtasks: Vec<SubtaskCheckpoint>,
}

/// Decides whether a checkpoint is complete before any sink commits what it holds: e.g. the
/// control plane commits it through its replicated log first, so a deposed leader's job driver
/// can complete (and commit) nothing. An error fails the attempt and commits nothing.
pub type CheckpointGate = Arc<dyn Fn(&CheckpointDone) -> Result<(), String> + Send + Sync>;

/// Checkpoints and commits of one job, over all its attempts.
pub(crate) struct CheckpointKeeper {
    /// Where completed checkpoints are written, if anywhere.
    store: Option<CheckpointStore>,
    /// The newest completed checkpoint (or the snapshot the job was started from).
    latest: Option<Arc<JobSnapshot>>,
    /// Each two-phase-commit sink's committer, by node.
    committers: BTreeMap<usize, Box<dyn SinkCommitter>>,
    /// Pre-commits not committed yet, by sink node: (checkpoint, committable).
    uncommitted: BTreeMap<usize, Vec<(u64, Committable)>>,
    /// Bytes the newest checkpoint wrote (key groups linked from the one before not counted).
    pub(crate) written_bytes: u64,
    /// Source subtasks that finished in this attempt, with their final positions: what
    /// checkpoints taken after they finished record for them.
    finished_sources: BTreeMap<SubtaskId, Option<u64>>,
    /// Every key group's newest snapshot a subtask acknowledged (in any checkpoint, completed or
    /// not): what an acknowledgement that says a group is unchanged refers to. By (node, key
    /// group): the checkpoint it was taken in (its version) and the snapshot.
    acked_groups: HashMap<(usize, usize), (u64, OperatorKeyGroupSnapshot)>,
    /// The newest checkpoint written into `store`, and the version of each key group in it (by
    /// operator id and key group): an unchanged group is linked from it.
    written: Option<(tethys_storage::checkpoint_store::CompletedCheckpoint, GroupVersions)>,
    /// The checkpoint in progress and its acknowledgements so far.
    pending_id: Option<u64>,
    pending: Vec<(SubtaskId, TaskSnapshot)>,
    /// Asked before a checkpoint completes, if set.
    gate: Option<CheckpointGate>,
}

impl CheckpointKeeper {
    pub(crate) fn new(
        store: Option<CheckpointStore>,
        initial: Option<JobSnapshot>,
        committers: BTreeMap<usize, Box<dyn SinkCommitter>>,
    ) -> CheckpointKeeper {
        CheckpointKeeper {
            store,
            latest: initial.map(Arc::new),
            committers,
            uncommitted: BTreeMap::new(),
            written_bytes: 0,
            finished_sources: BTreeMap::new(),
            acked_groups: HashMap::new(),
            written: None,
            pending_id: None,
            pending: Vec::new(),
            gate: None,
        }
    }

    /// Asks `gate` before every checkpoint (not savepoint) completes.
    pub(crate) fn with_gate(mut self, gate: Option<CheckpointGate>) -> CheckpointKeeper {
        if let (Some(store), true) = (&mut self.store, gate.is_some()) {
            store.defer_retention();
        }
        self.gate = gate;
        self
    }

    /// The snapshot a (re)start restores from.
    pub(crate) fn latest(&self) -> Option<&Arc<JobSnapshot>> {
        self.latest.as_ref()
    }

    /// The id the next checkpoint must be above.
    pub(crate) fn newest_id(&self) -> u64 {
        let stored = self.store.as_ref().and_then(|store| store.latest()).map_or(0, |checkpoint| checkpoint.id);
        stored.max(self.latest.as_ref().map_or(0, |snapshot| snapshot.checkpoint))
    }

    /// An attempt starts from `restore` (or from nothing): commits what it holds, aborts the
    /// rest, and forgets what the previous attempt had acknowledged.
    pub(crate) fn begin_attempt(&mut self, graph: &JobGraph, restore: Option<&RestoreState>) -> Result<(), KeeperError> {
        self.pending_id = None;
        self.pending.clear();
        self.uncommitted.clear();
        self.finished_sources.clear();
        // Subtasks start over with every key group changed.
        self.acked_groups.clear();
        for (&node, committer) in &mut self.committers {
            let sink = || graph.nodes[node].name.clone();
            if let Some(restore) = restore {
                committer.commit(restore.committables(node)).map_err(|source| KeeperError::Commit { sink: sink(), source })?;
            }
            committer.abort_uncommitted().map_err(|source| KeeperError::Commit { sink: sink(), source })?;
        }
        Ok(())
    }

    /// This driver adopts an attempt that runs already (its old driver was lost), from `restore`,
    /// the newest checkpoint known complete: commits what it holds again (a commit is
    /// idempotent: the old driver may have committed it or not) and aborts nothing, since the
    /// running subtasks' pre-commits after it are still to be committed. What the old driver
    /// knew of acknowledged key groups is gone: the subtasks take their next checkpoint whole.
    pub(crate) fn begin_adopted(&mut self, graph: &JobGraph, restore: Option<&RestoreState>) -> Result<(), KeeperError> {
        self.pending_id = None;
        self.pending.clear();
        self.uncommitted.clear();
        self.finished_sources.clear();
        self.acked_groups.clear();
        if let Some(restore) = restore {
            for (&node, committer) in &mut self.committers {
                let sink = || graph.nodes[node].name.clone();
                committer.commit(restore.committables(node)).map_err(|source| KeeperError::Commit { sink: sink(), source })?;
            }
        }
        Ok(())
    }

    /// Checkpoint `checkpoint` was triggered: acknowledgements of an older one are void (their
    /// sinks' pre-commits are kept).
    pub(crate) fn checkpoint_triggered(&mut self, checkpoint: u64) {
        self.keep_pending_committables();
        self.pending_id = Some(checkpoint);
    }

    /// A subtask acknowledged `checkpoint`. An acknowledgement of a checkpoint no longer in
    /// progress (abandoned when a task finished) still carries pre-commits: they are kept for the
    /// next checkpoint that completes, or the job's end.
    pub(crate) fn acknowledged(&mut self, checkpoint: u64, subtask: SubtaskId, mut snapshot: TaskSnapshot) -> Result<(), KeeperError> {
        // The changed key groups replace what the subtask acknowledged before, whether or not
        // this checkpoint completes: the subtask's next acknowledgement is relative to this one.
        // Their encoding, deferred by the operators, runs here, off the task's slot.
        for (node, groups) in std::mem::take(&mut snapshot.operators) {
            let mut changed = Vec::with_capacity(groups.len());
            for deferred in groups {
                let group = deferred().map_err(|error| KeeperError::Write { checkpoint, source: SnapshotError::State(error) })?;
                changed.push(group.key_group());
                self.acked_groups.insert((node, group.key_group()), (checkpoint, group));
            }
            snapshot.unchanged.push((node, changed));
        }
        if self.pending_id == Some(checkpoint) {
            self.pending.push((subtask, snapshot));
        } else {
            self.keep_committables(checkpoint, snapshot);
        }
        Ok(())
    }

    /// The checkpoint in progress was abandoned: its sinks' pre-commits wait for the next one.
    pub(crate) fn abandoned(&mut self) {
        self.keep_pending_committables();
    }

    /// Moves pre-commits out of the pending acknowledgements into `uncommitted` and drops the rest.
    fn keep_pending_committables(&mut self) {
        let checkpoint = self.pending_id.take().unwrap_or(0);
        for (_, snapshot) in std::mem::take(&mut self.pending) {
            self.keep_committables(checkpoint, snapshot);
        }
    }

    fn keep_committables(&mut self, checkpoint: u64, snapshot: TaskSnapshot) {
        for (node, committable) in snapshot.committables {
            self.uncommitted.entry(node).or_default().push((checkpoint, committable));
        }
    }

    /// `subtask` finished with these pre-commits (made after `finish`) and, for a source, this
    /// final position. `next_checkpoint` is the first checkpoint triggered after it finished:
    /// the pre-commits belong to it (an earlier one may still be replayed into this sink after a
    /// restore), or to the job's end.
    pub(crate) fn finished(
        &mut self,
        subtask: SubtaskId,
        source_position: Option<u64>,
        committables: Vec<(usize, Committable)>,
        next_checkpoint: u64,
        is_source: bool,
    ) {
        if is_source {
            self.finished_sources.insert(subtask, source_position);
        }
        for (node, committable) in committables {
            self.uncommitted.entry(node).or_default().push((next_checkpoint, committable));
        }
    }

    /// Every subtask acknowledged `checkpoint`: builds its snapshot, writes it (into the job's
    /// store, or as a savepoint into the store at `savepoint_dir`), keeps it as the newest, and
    /// commits the sinks' pre-commits up to it. Returns the snapshot's state and in-flight sizes
    /// and, for a savepoint, its directory.
    pub(crate) fn complete(
        &mut self,
        checkpoint: u64,
        graph: &JobGraph,
        plan: &ExecutionPlan,
        savepoint_dir: Option<&std::path::Path>,
        duration: std::time::Duration,
        subtasks: &[SubtaskCheckpoint],
    ) -> Result<(u64, u64, Option<std::path::PathBuf>), KeeperError> {
        debug_assert_eq!(self.pending_id, Some(checkpoint), "only the checkpoint in progress completes");
        self.pending_id = None;
        let acknowledged = std::mem::take(&mut self.pending);
        let mut operators = empty_operators(graph);
        // In-flight frames per (consuming node, subtask, gate channel): those the consumer
        // recorded (they came first), then those its producer's barrier overtook.
        let mut in_flight: BTreeMap<(usize, usize, usize), (Frames, Frames)> = BTreeMap::new();
        // A source that finished before this checkpoint's barrier records its final position.
        for (&(task, subtask), position) in &self.finished_sources {
            if !acknowledged.iter().any(|(acked, _)| *acked == (task, subtask)) {
                operators[plan.tasks[task].nodes[0]].source_positions[subtask] = *position;
            }
        }
        for ((task, subtask), snapshot) in acknowledged {
            let nodes = &plan.tasks[task].nodes;
            if graph.nodes[nodes[0]].kind == OperatorKind::Source {
                operators[nodes[0]].source_positions[subtask] = snapshot.source_position;
            }
            for (channel, frame) in snapshot.input_in_flight {
                in_flight.entry((nodes[0], subtask, channel)).or_default().0.push(frame);
            }
            for (output, channel, frame) in snapshot.output_in_flight {
                let consumer = plan.tasks[task].outputs[output].to_task;
                let (consumer_subtask, gate_channel) = plan.output_channels(task, subtask, output)[channel];
                in_flight.entry((plan.tasks[consumer].nodes[0], consumer_subtask, gate_channel)).or_default().1.push(frame);
            }
            // Every key group the subtask owns, changed or not, from what it acknowledged.
            for (node, groups) in snapshot.unchanged {
                for group in groups {
                    let (_, acked) = self.acked_groups.get(&(node, group)).ok_or_else(|| KeeperError::Write {
                        checkpoint,
                        source: SnapshotError::Inconsistent(format!("key group {group} of node {node} was never acknowledged")),
                    })?;
                    operators[node].key_groups.push(acked.clone());
                }
            }
            for (node, committable) in snapshot.committables {
                self.uncommitted.entry(node).or_default().push((checkpoint, committable));
            }
            for (node, state) in snapshot.operator_states {
                operators[node].operator_states.push((subtask as u32, state));
            }
        }
        for (&node, committables) in &self.uncommitted {
            operators[node].committables = committables.iter().map(|(_, committable)| committable.clone()).collect();
        }
        for ((node, subtask, channel), (recorded, overtaken)) in in_flight {
            let frames = recorded.into_iter().chain(overtaken).collect();
            operators[node].in_flight.push(InFlightFrames { subtask: subtask as u32, channel: channel as u32, frames });
        }
        for operator in &mut operators {
            operator.key_groups.sort_by_key(|group| group.key_group());
        }
        operators.retain(|operator| {
            !operator.key_groups.is_empty()
                || operator.source_positions.iter().any(Option::is_some)
                || !operator.committables.is_empty()
                || !operator.in_flight.is_empty()
                || !operator.operator_states.is_empty()
        });
        let snapshot = JobSnapshot { checkpoint, max_parallelism: graph.max_parallelism as u32, operators };
        let (bytes, in_flight_bytes) = (snapshot.state_bytes(), snapshot.in_flight_bytes());
        // Each key group's version: the checkpoint its snapshot was taken in.
        let ids = graph.operator_ids();
        let versions: GroupVersions =
            self.acked_groups.iter().map(|(&(node, group), (version, _))| ((ids[node].clone(), group), *version)).collect();
        let write_error = |source| KeeperError::Write { checkpoint, source };
        let (base, base_versions) = match &self.written {
            Some((base, base_versions)) => (Some(base), Some(base_versions)),
            None => (None, None),
        };
        let unchanged = |id: &str, group: usize| {
            let key = (id.to_string(), group);
            base_versions.and_then(|base| base.get(&key)).is_some_and(|version| versions.get(&key) == Some(version))
        };
        let mut savepoint = None;
        let mut location = None;
        let mut written_bytes = 0;
        if let Some(dir) = savepoint_dir {
            let mut store = CheckpointStore::open(dir, 1).map_err(|error| write_error(error.into()))?;
            let (published, _) = snapshot.write(&mut store, CheckpointKind::Savepoint, base, &unchanged).map_err(write_error)?;
            savepoint = Some(published.path);
        } else if let Some(store) = &mut self.store {
            let (published, written) = snapshot.write(store, CheckpointKind::Checkpoint, base, &unchanged).map_err(write_error)?;
            self.written_bytes = written;
            written_bytes = written;
            location = Some(published.path.clone());
            self.written = Some((published, versions));
        }
        if let (Some(gate), None) = (&self.gate, savepoint_dir) {
            let published = location.is_some();
            let done =
                CheckpointDone { id: checkpoint, location, duration, state_bytes: bytes, written_bytes, subtasks: subtasks.to_vec() };
            if let Err(reason) = gate(&done) {
                // Not complete: gone from the store, which keeps the one confirmed before it.
                if let (Some(store), true) = (&mut self.store, published) {
                    self.written = None;
                    let _ = store.delete(checkpoint);
                }
                return Err(KeeperError::Gate { checkpoint, reason });
            }
            if let (Some(store), true) = (&mut self.store, published) {
                // Only now may the checkpoints before it retire.
                store.retire().map_err(|error| write_error(error.into()))?;
            }
        }
        self.latest = Some(Arc::new(snapshot));
        self.commit(graph, |id| id <= checkpoint)?;
        Ok((bytes, in_flight_bytes, savepoint))
    }

    /// The job stopped without finishing (cancelled, stopped with a savepoint, failed for good):
    /// what its sinks began and did not commit is aborted, so it never becomes visible and holds
    /// no reader back.
    pub(crate) fn job_stopped(&mut self, graph: &JobGraph) -> Result<(), KeeperError> {
        self.pending_id = None;
        self.pending.clear();
        self.uncommitted.clear();
        for (&node, committer) in &mut self.committers {
            committer.abort_uncommitted().map_err(|source| KeeperError::Commit { sink: graph.nodes[node].name.clone(), source })?;
        }
        Ok(())
    }

    /// The job finished: commits everything still uncommitted, the final pre-commits included.
    pub(crate) fn job_finished(&mut self, graph: &JobGraph) -> Result<(), KeeperError> {
        self.keep_pending_committables();
        self.commit(graph, |_| true)
    }

    /// Commits the uncommitted pre-commits of checkpoints `due` says, per sink.
    fn commit(&mut self, graph: &JobGraph, due: impl Fn(u64) -> bool) -> Result<(), KeeperError> {
        for (node, committables) in &mut self.uncommitted {
            let (now, later): (Vec<_>, Vec<_>) = committables.drain(..).partition(|(id, _)| due(*id));
            *committables = later;
            if now.is_empty() {
                continue;
            }
            let Some(committer) = self.committers.get_mut(node) else { continue };
            let now: Vec<Committable> = now.into_iter().map(|(_, committable)| committable).collect();
            committer.commit(&now).map_err(|source| KeeperError::Commit { sink: graph.nodes[*node].name.clone(), source })?;
        }
        Ok(())
    }
}

/// One empty `OperatorSnapshot` per node of `graph`.
fn empty_operators(graph: &JobGraph) -> Vec<OperatorSnapshot> {
    let ids = graph.operator_ids();
    graph
        .nodes
        .iter()
        .map(|node| {
            let parallelism = graph.parallelism_of(node.id);
            OperatorSnapshot {
                id: ids[node.id].clone(),
                name: node.name.clone(),
                parallelism: parallelism as u32,
                source_positions: if node.kind == OperatorKind::Source { vec![None; parallelism] } else { Vec::new() },
                key_groups: Vec::new(),
                committables: Vec::new(),
                in_flight: Vec::new(),
                operator_states: Vec::new(),
            }
        })
        .collect()
}
