//! Keyed state that operators hold themselves (window contents, rolling aggregates, join buffers,
//! and a process function's backend and timers), snapshotted and restored one key group at a time
//! through one trait, so a checkpoint can write every keyed operator alike and a rescale can move
//! whole key groups between subtasks of any keyed operator.
//!
//! A snapshot is an owned copy of one key group's data, typed inside (the operator that wrote it
//! reads it back); encoding it for storage comes with checkpoints. Restoring checks that the
//! snapshot belongs to this kind of operator, this number of key groups and a key group the
//! subtask owns. What fires on time versus late is part of the state (windows remember whether
//! they have fired), so a restored window never fires twice on time.

use std::any::Any;

use super::StateError;
use crate::key_group::KeyGroupRange;

/// One key group of one operator's keyed state.
pub struct OperatorKeyGroupSnapshot {
    key_group: usize,
    max_parallelism: usize,
    data: Box<dyn Any + Send>,
}

impl std::fmt::Debug for OperatorKeyGroupSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OperatorKeyGroupSnapshot(key group {} of {})", self.key_group, self.max_parallelism)
    }
}

impl OperatorKeyGroupSnapshot {
    pub(crate) fn new<T: Send + 'static>(key_group: usize, max_parallelism: usize, data: T) -> Self {
        OperatorKeyGroupSnapshot { key_group, max_parallelism, data: Box::new(data) }
    }

    /// The key group the snapshot holds.
    pub fn key_group(&self) -> usize {
        self.key_group
    }

    /// Opens the snapshot for a subtask owning `range` of `max_parallelism` key groups.
    pub(crate) fn into_data<T: 'static>(self, range: KeyGroupRange, max_parallelism: usize) -> Result<(usize, T), StateError> {
        if self.max_parallelism != max_parallelism {
            return Err(StateError::MaxParallelismMismatch { snapshot: self.max_parallelism, subtask: max_parallelism });
        }
        if !range.contains(self.key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group: self.key_group, range });
        }
        let key_group = self.key_group;
        self.data
            .downcast::<T>()
            .map(|data| (key_group, *data))
            .map_err(|_| StateError::ForeignOperatorSnapshot { key_group, expected: std::any::type_name::<T>() })
    }
}

/// An operator's keyed state, by key group.
pub trait KeyGroupedState {
    /// Copies the state of `key_group` (owned by this subtask).
    fn snapshot_key_group(&self, key_group: usize) -> OperatorKeyGroupSnapshot;
    /// Adds the state of a key group this subtask now owns.
    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError>;
}
