//! Rolling keyed operators (reduce, sum, count, aggregate) and the per-key-group state they keep.
//!
//! A keyed subtask owns a contiguous range of key groups (see `key_group`); its state is one hash
//! map per owned key group, so a later checkpoint can write, and a rescale can move, each key
//! group on its own. Every input record updates its key's state and emits the updated result, as
//! Flink's rolling `reduce`/`sum` on a `KeyedStream` do.
//!
//! With the disk state backend configured, the state is a value state of the subtask's
//! `KeyedStateBackend` instead (`RollingState::Backend`); snapshots have the same form either way
//! (each key with its state), so a savepoint moves between backends.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::base::UserError;

use super::{FrameOperator, Output};
use crate::base::Key;
use crate::frame::Record;
use crate::key_group::{assign_key_group, KeyGroupRange};
use crate::state::cow::CowGroups;
use crate::state::{KeyGroupedState, KeyedStateBackend, OperatorKeyGroupSnapshot, StateBackend, StateError, StateValue, ValueState};

/// Values held per key, one map per key group of the subtask's range.
pub(crate) struct KeyedStateMap<K, S> {
    range: KeyGroupRange,
    pub(crate) max_parallelism: usize,
    groups: CowGroups<K, S>,
    /// Key groups changed since `take_changes` (by any method taking `&mut self`), if tracked.
    changes: Option<crate::state::KeyGroupChanges>,
}

impl<K: Key, S: Clone> KeyedStateMap<K, S> {
    pub(crate) fn new(range: KeyGroupRange, max_parallelism: usize) -> Self {
        Self::with_capacity(range, max_parallelism, 0)
    }

    /// A map expecting about `keys` keys in all, sized up front so it does not rehash as it fills.
    pub(crate) fn with_capacity(range: KeyGroupRange, max_parallelism: usize, keys: usize) -> Self {
        let per_group = keys.div_ceil(range.len().max(1));
        KeyedStateMap { range, max_parallelism, groups: CowGroups::new(range.len(), per_group), changes: None }
    }

    /// The same map, tracking which key groups change (for incremental checkpoints).
    pub(crate) fn tracking_changes(mut self) -> Self {
        self.changes = Some(crate::state::KeyGroupChanges::all_changed(self.range));
        self
    }

    /// The key groups changed since the last call (all of them the first time), if tracked.
    pub(crate) fn take_changes(&mut self) -> Option<Vec<usize>> {
        let changes = self.changes.as_mut()?;
        let changed = changes.key_groups();
        changes.clear();
        Some(changed)
    }

    /// Runs `update` on the state of `key`, created with `init` on first use, and returns its result.
    ///
    /// Panics if the key's group is not owned by this subtask: the hash partitioner routed the
    /// record to the wrong subtask, which would split a key's state.
    #[inline]
    pub(crate) fn update<R>(&mut self, key: K, init: impl FnOnce() -> S, update: impl FnOnce(&K, &mut S) -> R) -> R {
        self.update_in_group(key, init, update).1
    }

    /// `update`, also returning the key's group.
    #[inline]
    pub(crate) fn update_in_group<R>(&mut self, key: K, init: impl FnOnce() -> S, update: impl FnOnce(&K, &mut S) -> R) -> (usize, R) {
        let group = assign_key_group(&key, self.max_parallelism);
        assert!(self.range.contains(group), "key group {group} routed to subtask owning {:?}", self.range);
        if let Some(changes) = &mut self.changes {
            changes.mark(group);
        }
        let map = self.groups.get_mut(group - self.range.start);
        if let Some(state) = map.get_mut(&key) {
            return (group, update(&key, state));
        }
        let mut state = init();
        let result = update(&key, &mut state);
        map.insert(key, state);
        (group, result)
    }

    /// `update_in_group` for a borrowed key whose group (owned by this subtask) the caller worked
    /// out; the key is copied only when it gets state (a record added to several windows of one
    /// key copies its key for the windows new to it alone).
    #[inline]
    pub(crate) fn update_borrowed_in_group<R>(
        &mut self,
        group: usize,
        key: &K,
        init: impl FnOnce() -> S,
        update: impl FnOnce(&K, &mut S) -> R,
    ) -> R
    where
        K: Clone,
    {
        debug_assert_eq!(group, assign_key_group(key, self.max_parallelism), "the key's group");
        debug_assert!(self.range.contains(group), "key group {group} routed to subtask owning {:?}", self.range);
        if let Some(changes) = &mut self.changes {
            changes.mark(group);
        }
        let map = self.groups.get_mut(group - self.range.start);
        if let Some(state) = map.get_mut(key) {
            return update(key, state);
        }
        let mut state = init();
        let result = update(key, &mut state);
        map.insert(key.clone(), state);
        result
    }

    /// The state of `key`, if it has any.
    pub(crate) fn get(&self, key: &K) -> Option<&S> {
        let group = assign_key_group(key, self.max_parallelism);
        self.range.contains(group).then(|| self.groups.get(group - self.range.start).get(key))?
    }

    /// Whether `key` has state.
    pub(crate) fn contains(&self, key: &K) -> bool {
        let group = assign_key_group(key, self.max_parallelism);
        self.range.contains(group) && self.groups.get(group - self.range.start).contains_key(key)
    }

    /// Every key with its state, key group by key group.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.groups.iter().flatten()
    }

    /// Number of key groups the map holds (its range's length).
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The keys and states of the `index`-th key group of the range, in a stable order while the
    /// map is not changed.
    pub(crate) fn iter_group(&self, index: usize) -> impl Iterator<Item = (&K, &S)> {
        self.groups.get(index).iter()
    }

    /// The map of `key`'s group, to change (the group counts as changed), if owned here.
    fn group_of_mut(&mut self, key: &K) -> Option<&mut FxHashMap<K, S>> {
        let group = assign_key_group(key, self.max_parallelism);
        if !self.range.contains(group) {
            return None;
        }
        if let Some(changes) = &mut self.changes {
            changes.mark(group);
        }
        Some(self.groups.get_mut(group - self.range.start))
    }

    /// Removes the state of `key`.
    pub(crate) fn remove(&mut self, key: &K) -> Option<S> {
        self.group_of_mut(key)?.remove(key)
    }

    /// Runs `f` on the state of `key` if it has one.
    pub(crate) fn with_existing<R>(&mut self, key: &K, f: impl FnOnce(&mut S) -> R) -> Option<R> {
        self.group_of_mut(key)?.get_mut(key).map(f)
    }

    /// The key groups this map holds.
    pub(crate) fn range(&self) -> KeyGroupRange {
        self.range
    }

    /// Copies the entries of one key group.
    pub(crate) fn snapshot_group(&self, key_group: usize) -> Vec<(K, S)> {
        entries_of(&self.share_group(key_group))
    }

    /// One key group's map as it is now, unchanged by later writes (constant time: see
    /// `CowGroups`).
    pub(crate) fn share_group(&self, key_group: usize) -> Arc<FxHashMap<K, S>> {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        self.groups.share(key_group - self.range.start)
    }

    /// One key group's snapshot, taken now in constant time and encoded (as `Vec<(K, S)>`, what
    /// `snapshot_group` gives) when the returned closure runs.
    pub(crate) fn snapshot_group_deferred(&self, key_group: usize) -> crate::state::DeferredKeyGroup
    where
        K: Sync,
        S: StateValue + Sync,
    {
        let shared = self.share_group(key_group);
        let max_parallelism = self.max_parallelism;
        Box::new(move || OperatorKeyGroupSnapshot::new(key_group, max_parallelism, &entries_of(&shared)))
    }

    /// Puts restored entries of one key group in place (replacing entries of the same keys).
    pub(crate) fn restore_group(&mut self, key_group: usize, entries: Vec<(K, S)>) {
        assert!(self.range.contains(key_group), "key group {key_group} is not in {:?}", self.range);
        if let Some(changes) = &mut self.changes {
            changes.mark(key_group);
        }
        let group = self.groups.get_mut(key_group - self.range.start);
        for (key, state) in entries {
            debug_assert_eq!(assign_key_group(&key, self.max_parallelism), key_group, "restored key in the wrong key group");
            group.insert(key, state);
        }
    }

    /// Number of keys with state.
    pub(crate) fn len(&self) -> usize {
        self.groups.iter().map(|g| g.len()).sum()
    }
}

/// A group's entries, copied out of its map.
fn entries_of<K: Clone, S: Clone>(group: &FxHashMap<K, S>) -> Vec<(K, S)> {
    group.iter().map(|(key, state)| (key.clone(), state.clone())).collect()
}

/// Keeps state `S` per key; for each record, updates the key's state and emits what `update`
/// returns.
pub(crate) struct RollingKeyedOperator<K, S, KeyFn, InitFn, UpdateFn> {
    pub key_fn: KeyFn,
    pub init: InitFn,
    pub update: UpdateFn,
    pub state: RollingState<K, S>,
}

/// Name of a rolling operator's value state in a backend.
const ROLLING_STATE: &str = "rolling";

/// Where a rolling operator keeps its state.
pub(crate) enum RollingState<K, S> {
    /// In its own maps (the heap backend).
    Memory(KeyedStateMap<K, S>),
    /// In a value state of the configured backend (the disk backend), with the key groups
    /// changed since the last checkpoint.
    Backend { backend: Box<KeyedStateBackend<K>>, state: ValueState<S>, changes: crate::state::KeyGroupChanges },
}

impl<K: Key, S: StateValue> RollingState<K, S> {
    /// The state of the subtask owning `range`: on disk in `state_dir` if there is one, keeping
    /// `cache_bytes` of it in memory (see `KeyedStateBackend::open`).
    pub(crate) fn open(
        state_dir: Option<&std::path::Path>,
        cache_bytes: Option<u64>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Result<Self, StateError> {
        if state_dir.is_none() {
            return Ok(RollingState::Memory(KeyedStateMap::new(range, max_parallelism).tracking_changes()));
        }
        let mut backend = Box::new(KeyedStateBackend::open(state_dir, cache_bytes, range, max_parallelism)?);
        let state = backend.register_value(&crate::state::StateDescriptor::new(ROLLING_STATE))?;
        Ok(RollingState::Backend { backend, state, changes: crate::state::KeyGroupChanges::all_changed(range) })
    }

    fn range_and_max_parallelism(&self) -> (KeyGroupRange, usize) {
        match self {
            RollingState::Memory(map) => (map.range(), map.max_parallelism),
            RollingState::Backend { backend, .. } => (backend.key_groups(), backend.max_parallelism()),
        }
    }
}

impl<In, Out, K, S, KeyFn, InitFn, UpdateFn> FrameOperator<In, Out> for RollingKeyedOperator<K, S, KeyFn, InitFn, UpdateFn>
where
    In: Record,
    Out: Record,
    K: Key,
    S: StateValue,
    KeyFn: Fn(&In) -> K + Send + 'static,
    InitFn: Fn() -> S + Send + 'static,
    UpdateFn: FnMut(&K, &mut S, In) -> Out + Send + 'static,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        let (init, update) = (&self.init, &mut self.update);
        match &mut self.state {
            RollingState::Memory(map) => {
                for record in frame {
                    out.emit(map.update((self.key_fn)(&record), init, |key, state| update(key, state, record)));
                }
            }
            RollingState::Backend { backend, state, changes } => {
                for record in frame {
                    let key = (self.key_fn)(&record);
                    let scoped = backend.scope(&key);
                    changes.mark(scoped.key_group());
                    let result = backend.value_modify(*state, scoped, |slot| update(&key, slot.get_or_insert_with(init), record));
                    out.emit(result);
                }
            }
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        match &self.state {
            RollingState::Memory(map) => vec![("state_keys", map.len() as u64)],
            // Counting keys on disk would scan them; the backend's figures are its own.
            RollingState::Backend { .. } => Vec::new(),
        }
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K: Key, S: StateValue, KeyFn, InitFn, UpdateFn> KeyGroupedState for RollingKeyedOperator<K, S, KeyFn, InitFn, UpdateFn> {
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        self.snapshot_key_group_deferred(key_group)?()
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        match &self.state {
            RollingState::Memory(map) => Ok(map.snapshot_group_deferred(key_group)),
            RollingState::Backend { backend, .. } => {
                let max_parallelism = backend.max_parallelism();
                let taken = backend.snapshot_key_group_deferred(key_group)?;
                Ok(Box::new(move || {
                    // The same form as the in-memory state's: each key with its state, read from
                    // the backend's snapshot of the group.
                    let group = taken()?;
                    let entries: Vec<(K, S)> = match group.states().iter().find(|state| state.name() == ROLLING_STATE) {
                        None => Vec::new(),
                        Some(state) => crate::base::codec::decode::<crate::state::backend::SlotEntries<K, S>>(&state.data)
                            .map_err(|error| StateError::CorruptSnapshot {
                                name: ROLLING_STATE.to_string(),
                                key_group,
                                reason: error.to_string(),
                            })?
                            .into_iter()
                            .map(|(key, stamped)| (key, stamped.value))
                            .collect(),
                    };
                    OperatorKeyGroupSnapshot::new(key_group, max_parallelism, &entries)
                }))
            }
        }
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        match &mut self.state {
            RollingState::Memory(map) => map.take_changes(),
            RollingState::Backend { changes, .. } => {
                let changed = changes.key_groups();
                changes.clear();
                Some(changed)
            }
        }
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (range, max_parallelism) = self.state.range_and_max_parallelism();
        let (key_group, entries) = snapshot.into_data::<Vec<(K, S)>>(range, max_parallelism)?;
        match &mut self.state {
            RollingState::Memory(map) => map.restore_group(key_group, entries),
            RollingState::Backend { backend, state, changes } => {
                changes.mark(key_group);
                for (key, value) in entries {
                    let scoped = backend.scope(&key);
                    backend.value_put(*state, scoped, value);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_found_again_by_key_and_kept_per_group() {
        let mut state = KeyedStateMap::<i64, u64>::new(KeyGroupRange::for_subtask(0, 1, 16), 16);
        for key in [1i64, 2, 1, 1, 3] {
            state.update(key, || 0, |_, count| *count += 1);
        }
        assert_eq!(state.update(1, || 0, |_, count| *count), 3);
        assert_eq!(state.len(), 3);
    }

    #[test]
    fn a_deferred_group_snapshot_holds_the_state_at_the_barrier_and_every_change_is_tracked() {
        let range = KeyGroupRange::for_subtask(0, 1, 16);
        let mut state = KeyedStateMap::<i64, u64>::new(range, 16).tracking_changes();
        let keys: Vec<i64> = (0..).filter(|key| assign_key_group(key, 16) == 5).take(3).collect();
        for &key in &keys[..2] {
            state.update(key, || 7, |_, _| ());
        }
        assert_eq!(state.take_changes().map(|groups| groups.len()), Some(16), "every group at first");
        let taken = state.snapshot_group_deferred(5);
        // After the barrier: a change, a removal and a new key, each tracked.
        state.with_existing(&keys[0], |value| *value = 8);
        assert_eq!(state.take_changes(), Some(vec![5]));
        state.remove(&keys[1]);
        assert_eq!(state.take_changes(), Some(vec![5]));
        state.update(keys[2], || 9, |_, _| ());
        let snapshot = taken().unwrap();
        let (_, mut entries) = snapshot.into_data::<Vec<(i64, u64)>>(range, 16).unwrap();
        entries.sort();
        let mut expected = vec![(keys[0], 7), (keys[1], 7)];
        expected.sort();
        assert_eq!(entries, expected);
        assert_eq!(state.get(&keys[0]), Some(&8));
        assert_eq!(state.len(), 2);
    }

    #[test]
    #[should_panic(expected = "routed to subtask")]
    fn a_key_outside_the_owned_range_is_a_routing_bug() {
        let range = KeyGroupRange::for_subtask(0, 2, 16);
        let mut state = KeyedStateMap::<i64, u64>::new(range, 16);
        let foreign = (0..1000i64).find(|k| !range.contains(assign_key_group(k, 16))).unwrap();
        state.update(foreign, || 0, |_, _| ());
    }
}

#[cfg(test)]
mod rescale_tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};

    /// The same moves with the state in the memory maps and on the disk backend.
    #[test]
    fn rolling_sums_moved_by_key_group_continue_where_they_were() {
        static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!("tethys-rolling-{}", std::process::id()));
        for on_disk in [false, true] {
            let records: Vec<(i64, i64)> = (0..2_000i64).map(|i| (i % 13, i)).collect();
            let frames: Vec<(Vec<(i64, i64)>, i64)> = records.chunks(100).map(|c| (c.to_vec(), 0)).collect();
            assert_rescale_keeps_results::<_, (i64, i64)>(
                |subtask, parallelism| {
                    let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
                    let dir = on_disk.then(|| base.join(DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string()));
                    let operator = RollingKeyedOperator {
                        key_fn: |r: &(i64, i64)| r.0,
                        init: || 0i64,
                        update: |key: &i64, sum: &mut i64, r: (i64, i64)| {
                            *sum += r.1;
                            (*key, *sum)
                        },
                        state: RollingState::open(dir.as_deref(), None, range, MAX_PARALLELISM).unwrap(),
                    };
                    OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
                },
                &frames,
                |r| assign_key_group(&r.0, MAX_PARALLELISM),
            );
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
