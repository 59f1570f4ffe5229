//! Keyed state that operators hold themselves (window contents, rolling aggregates, join buffers,
//! and a process function's backend and timers), snapshotted and restored one key group at a time
//! through one trait, so a checkpoint can write every keyed operator alike and a rescale can move
//! whole key groups between subtasks of any keyed operator.
//!
//! A snapshot is one key group's data encoded with the engine's codec, tagged with the type it
//! holds, so it can be written into a checkpoint and read back by a later run. Restoring checks
//! that the snapshot belongs to this kind of operator (and types), this number of key groups and a
//! key group the subtask owns. What fires on time versus late is part of the state (windows
//! remember whether they have fired), so a restored window never fires twice on time.

use super::StateError;
use crate::base::codec::{self, Codec};
use crate::key_group::KeyGroupRange;

/// One key group of one operator's keyed state, encoded.
#[derive(Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OperatorKeyGroupSnapshot {
    key_group: u32,
    max_parallelism: u32,
    /// The encoded type, as Rust names it: a snapshot is read back only as that type.
    type_name: String,
    data: Vec<u8>,
}

impl std::fmt::Debug for OperatorKeyGroupSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKeyGroupSnapshot(key group {} of {}, {} bytes)", self.key_group, self.max_parallelism, self.data.len())
    }
}

impl OperatorKeyGroupSnapshot {
    /// Encodes `data`, the state of `key_group`.
    pub(crate) fn new<T: Codec>(key_group: usize, max_parallelism: usize, data: &T) -> Result<Self, StateError> {
        let type_name = std::any::type_name::<T>();
        let data = codec::encode(data).map_err(|error| StateError::CorruptSnapshot {
            name: type_name.to_string(),
            key_group,
            reason: error.to_string(),
        })?;
        Ok(OperatorKeyGroupSnapshot {
            key_group: u32::try_from(key_group).expect("key groups fit u32"),
            max_parallelism: u32::try_from(max_parallelism).expect("max parallelism fits u32"),
            type_name: type_name.to_string(),
            data,
        })
    }

    /// The key group the snapshot holds.
    pub fn key_group(&self) -> usize {
        self.key_group as usize
    }

    /// Number of key groups of the job it was taken in.
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism as usize
    }

    /// Size of the encoded state in bytes.
    pub fn encoded_bytes(&self) -> usize {
        self.data.len()
    }

    /// Opens the snapshot for a subtask owning `range` of `max_parallelism` key groups.
    pub(crate) fn into_data<T: Codec>(self, range: KeyGroupRange, max_parallelism: usize) -> Result<(usize, T), StateError> {
        let key_group = self.key_group();
        if self.max_parallelism() != max_parallelism {
            return Err(StateError::MaxParallelismMismatch { snapshot: self.max_parallelism(), subtask: max_parallelism });
        }
        if !range.contains(key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group, range });
        }
        let expected = std::any::type_name::<T>();
        if self.type_name != expected {
            return Err(StateError::ForeignOperatorSnapshot { key_group, expected, found: self.type_name });
        }
        let data = codec::decode::<T>(&self.data).map_err(|error| StateError::CorruptSnapshot {
            name: expected.to_string(),
            key_group,
            reason: error.to_string(),
        })?;
        Ok((key_group, data))
    }
}

/// A key group's snapshot whose data was taken at the barrier and is encoded later.
pub type DeferredKeyGroup = Box<dyn FnOnce() -> Result<OperatorKeyGroupSnapshot, StateError> + Send>;

/// An operator's keyed state, by key group.
pub trait KeyGroupedState {
    /// Encodes the state of `key_group` (owned by this subtask).
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError>;
    /// Adds the state of a key group this subtask now owns.
    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError>;

    /// The state of `key_group` taken now and encoded later, off the task's slot (what a
    /// checkpoint does). Every built-in keyed operator takes it without copying its state
    /// (copy-on-write maps, MVCC views); the default encodes now.
    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<DeferredKeyGroup, StateError> {
        let snapshot = self.snapshot_key_group(key_group)?;
        Ok(Box::new(move || Ok(snapshot)))
    }

    /// The key groups whose state changed since the last call (every group on the first call, or
    /// after a restore), for incremental checkpoints; `None` (the default) if the operator does
    /// not track them, and every group is written each time.
    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        None
    }
}
