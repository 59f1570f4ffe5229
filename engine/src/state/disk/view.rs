//! [`DiskSnapshotView`]: a point-in-time view of a disk backend, which encodes key groups on
//! another thread while the task goes on writing: the synchronous part of an asynchronous
//! checkpoint is taking it.
//!
//! fjall keeps versions of keys (MVCC); a snapshot pins a sequence number, and reads through it see
//! the store exactly as it was then, whatever is written after. Taking one reads a counter and
//! registers it (no copy), so the task takes the view at the barrier and hands it over; the view
//! encodes each key group into the same [`KeyGroupSnapshot`] as `snapshot_key_group` would have
//! then (the backend's own `snapshot_key_group` goes through the same code). The view keeps the
//! store open, and its directory in place, until it is dropped, even past the backend; while it
//! lives, compaction keeps the old versions it sees, so drop it once the checkpoint is written.

use std::path::{Path, PathBuf};

use super::state_codec::GroupReadError;
use super::store::storage_error;
use super::{layout, StateInfo};
use crate::base::Key;
use crate::key_group::KeyGroupRange;
use crate::state::backend::{KeyGroupSnapshot, StateSnapshot};
use crate::state::StateError;

/// A disk backend's keyed state as it was when the view was taken (see the module documentation).
pub struct DiskSnapshotView<K> {
    snapshot: fjall::Snapshot,
    /// Keeps the store open (fields drop in order: the snapshot first).
    _keyspace: fjall::Keyspace,
    states: Vec<StateInfo<K>>,
    /// Restored snapshots of states not registered when the view was taken.
    pending: Vec<(usize, StateSnapshot)>,
    range: KeyGroupRange,
    max_parallelism: usize,
    directory: PathBuf,
    changed: Vec<usize>,
}

impl<K: Key> DiskSnapshotView<K> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        snapshot: fjall::Snapshot,
        keyspace: fjall::Keyspace,
        states: Vec<StateInfo<K>>,
        pending: Vec<(usize, StateSnapshot)>,
        range: KeyGroupRange,
        max_parallelism: usize,
        directory: PathBuf,
        changed: Vec<usize>,
    ) -> DiskSnapshotView<K> {
        DiskSnapshotView { snapshot, _keyspace: keyspace, states, pending, range, max_parallelism, directory, changed }
    }

    /// The key groups of the backend the view was taken of.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// Number of key groups of the job.
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    /// The key groups that had changed since the last checkpoint when the view was taken, in
    /// ascending order: what an incremental checkpoint encodes (see `ChangeTracking`).
    pub fn changed_key_groups(&self) -> &[usize] {
        &self.changed
    }

    /// Every state of `key_group` as it was when the view was taken, encoded.
    pub fn snapshot_key_group(&self, key_group: usize) -> Result<KeyGroupSnapshot<K>, StateError> {
        if !self.range.contains(key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group, range: self.range });
        }
        encode_key_group(&self.snapshot, &self.states, &self.pending, key_group, self.max_parallelism, &self.directory)
    }
}

/// Every state of `key_group` read through `snapshot`, encoded in the backend-neutral form, with
/// the waiting snapshots of states not registered yet.
pub(crate) fn encode_key_group<'a, K: Key>(
    snapshot: &fjall::Snapshot,
    states: impl IntoIterator<Item = &'a StateInfo<K>>,
    pending: &[(usize, StateSnapshot)],
    key_group: usize,
    max_parallelism: usize,
    directory: &Path,
) -> Result<KeyGroupSnapshot<K>, StateError> {
    let mut encoded = Vec::new();
    for state in states {
        // Consumed whole, with no other store call in between (see `store`'s lock discipline).
        let mut entries = snapshot.prefix(layout::state_prefix(key_group, state.id)).map(|entry| entry.map_err(fjall::Error::from));
        let (count, data) = state.codec.encode_group(&mut entries).map_err(|error| match error {
            GroupReadError::Encode(error) => StateError::CorruptSnapshot { name: state.name.clone(), key_group, reason: error.to_string() },
            other => storage_error(directory, "read a key group for its snapshot", &other),
        })?;
        if count > 0 {
            encoded.push(StateSnapshot {
                name: state.name.clone(),
                kind: state.kind,
                ttl: state.ttl,
                type_name: state.type_name.to_string(),
                entries: count as u64,
                data,
            });
        }
    }
    // Restored but not yet registered: still this group's state, so it goes into the checkpoint.
    encoded.extend(pending.iter().filter(|(group, _)| *group == key_group).map(|(_, snapshot)| snapshot.clone()));
    Ok(KeyGroupSnapshot::new(key_group, max_parallelism, encoded))
}
