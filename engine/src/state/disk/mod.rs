//! [`DiskStateBackend`]: keyed state on local disk, in an LSM tree (fjall 2.x, chosen over
//! RocksDB in `bench/RESULTS.md`), for state larger than memory.
//!
//! One store (a fjall keyspace with one partition) per backend, in the subtask's working
//! directory, which `open` empties and the backend deletes when dropped: the directory is a working
//! copy, and state comes back after a failure through `restore_key_group`, as with the heap backend.
//! Entries are laid out so that a key group is one contiguous prefix (`layout`); values are stored
//! with their TTL stamp and read back into a local value that the read closures borrow. States are
//! registered, checked and restored before registration exactly as in the heap backend, and a key
//! group's snapshot is the same bytes format (`state_codec`), so a snapshot of either backend
//! restores into the other; the conformance suite runs on both and checks that.
//!
//! Beyond [`StateBackend`]: [`ChangeTracking`] (the key groups changed since the last checkpoint,
//! for incremental checkpoints) and [`DiskStateBackend::snapshot_view`], a consistent point-in-time
//! view that encodes key groups on another thread while writes go on (`view`). A write-back cache
//! of recently used entries (store bytes, not decoded values) sits in front of fjall (`cache`);
//! every access decodes what it reads and encodes what it writes. Its memory, fjall's block cache
//! and memtable share one budget, [`DiskStateOptions::cache_bytes`].

mod cache;
mod layout;
mod state_codec;
mod store;
mod view;

use std::any::{type_name, TypeId};
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use self::state_codec::{AggregatingCodec, MapCodec, SlotCodec, StateCodec};
use self::store::{Store, StoredState};
pub use self::store::{
    CLEANUP_READ_AHEAD_ENTRIES_MAX, DISK_CACHE_BYTES_DEFAULT, DISK_CACHE_BYTES_MAX, DISK_CACHE_BYTES_MIN, DISK_COMPACTION_WORKERS,
    DISK_FLUSH_WORKERS, DISK_MEMTABLE_BYTES_MAX, DISK_MEMTABLE_BYTES_MIN,
};
pub use self::view::DiskSnapshotView;
use super::backend::{Aggregator, ReduceFn};
use super::backend::{KeyGroupSnapshot, StateBackend, StateSnapshot};
use super::changes::ChangeTracking;
use super::context::ScopedKey;
use super::descriptor::{StateDescriptor, StateKind, StateValue};
use super::handle::{AggregatingState, ListState, MapState, ReducingState, StateHandle, StateId, ValueState};
use super::ttl::{Clock, StateTtlConfig, SystemClock};
use super::StateError;
use crate::base::{codec, AggregateFunction, Key};
use crate::key_group::KeyGroupRange;
use crate::state::backend::{corrupt, foreign_handle};

/// Keyed state of one subtask, on local disk.
pub struct DiskStateBackend<K> {
    range: KeyGroupRange,
    max_parallelism: usize,
    store: Store,
    /// Indexed by `StateId`, which is also the state's id in store keys.
    states: Vec<RegisteredState<K>>,
    ids: FxHashMap<String, StateId>,
    /// Key group snapshots of states not registered yet.
    pending: Vec<(usize, StateSnapshot)>,
    /// States whose TTL runs a cleanup step on every processed record.
    cleaned_every_record: Vec<StateId>,
}

/// How a disk backend is set up, beyond its directory and its key groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStateOptions {
    /// Memory the backend keeps state in, in bytes: half for recently used entries, the rest for
    /// fjall's memtable and block cache (default [`DISK_CACHE_BYTES_DEFAULT`]). Any value works
    /// here, 0 included (nothing cached, the smallest memtable); a job's configuration accepts
    /// [`DISK_CACHE_BYTES_MIN`] to [`DISK_CACHE_BYTES_MAX`].
    pub cache_bytes: u64,
}

impl Default for DiskStateOptions {
    fn default() -> Self {
        DiskStateOptions { cache_bytes: DISK_CACHE_BYTES_DEFAULT }
    }
}

/// What a snapshot of a state needs: its declaration and its codec. Shared with views.
pub(crate) struct StateInfo<K> {
    name: String,
    kind: StateKind,
    ttl: Option<StateTtlConfig>,
    type_name: &'static str,
    /// The state's id in store keys.
    id: u32,
    codec: Arc<dyn StateCodec<K>>,
}

impl<K> Clone for StateInfo<K> {
    fn clone(&self) -> Self {
        StateInfo {
            name: self.name.clone(),
            kind: self.kind,
            ttl: self.ttl,
            type_name: self.type_name,
            id: self.id,
            codec: Arc::clone(&self.codec),
        }
    }
}

/// A registered state: its declaration, its codec and its place in the store.
struct RegisteredState<K> {
    info: StateInfo<K>,
    /// Concrete type of the codec: a second registration must ask for the same.
    codec_type: TypeId,
    stored: StoredState,
}

impl<K: Key> DiskStateBackend<K> {
    /// An empty backend for the subtask owning `range`, storing in `directory` (created, or
    /// emptied of a store an earlier run left there), with the default options and TTL measured
    /// by the system clock.
    ///
    /// Refuses a directory that holds anything but a state store (`StateError::Storage`): it would
    /// have to delete it. Panics if `range` reaches past `max_parallelism`.
    pub fn open(directory: impl AsRef<Path>, range: KeyGroupRange, max_parallelism: usize) -> Result<DiskStateBackend<K>, StateError> {
        DiskStateBackend::open_with(directory, range, max_parallelism, DiskStateOptions::default())
    }

    /// An empty backend set up by `options`, as [`open`](DiskStateBackend::open).
    pub fn open_with(
        directory: impl AsRef<Path>,
        range: KeyGroupRange,
        max_parallelism: usize,
        options: DiskStateOptions,
    ) -> Result<DiskStateBackend<K>, StateError> {
        DiskStateBackend::build(directory.as_ref(), range, max_parallelism, options, Arc::new(SystemClock))
    }

    /// An empty backend whose TTL reads processing time from `clock`.
    pub fn with_clock(
        directory: impl AsRef<Path>,
        range: KeyGroupRange,
        max_parallelism: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<DiskStateBackend<K>, StateError> {
        DiskStateBackend::build(directory.as_ref(), range, max_parallelism, DiskStateOptions::default(), clock)
    }

    /// What `open`, `open_with` and `with_clock` build.
    fn build(
        directory: &Path,
        range: KeyGroupRange,
        max_parallelism: usize,
        options: DiskStateOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<DiskStateBackend<K>, StateError> {
        assert!(range.end <= max_parallelism && range.start <= range.end, "key group range {range:?} outside 0..{max_parallelism}");
        Ok(DiskStateBackend {
            range,
            max_parallelism,
            store: Store::open(directory, range, clock, options.cache_bytes)?,
            states: Vec::new(),
            ids: FxHashMap::default(),
            pending: Vec::new(),
            cleaned_every_record: Vec::new(),
        })
    }

    /// Replaces the clock TTL reads processing time from; values written before keep their
    /// stamps. Call it in `open`, before state is written.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.store.clock = clock;
    }

    /// The directory the backend stores in.
    pub fn directory(&self) -> &Path {
        self.store.directory()
    }

    /// A consistent view of every key group as it is now, which can encode them later, on another
    /// thread, while this backend goes on changing (see [`DiskSnapshotView`]). It reports the key
    /// groups changed since the last checkpoint as of now; call
    /// [`checkpoint_taken`](ChangeTracking::checkpoint_taken) right after taking it.
    pub fn snapshot_view(&self) -> DiskSnapshotView<K> {
        DiskSnapshotView::new(
            self.store.snapshot(),
            self.store.keyspace().clone(),
            self.states.iter().map(|registered| registered.info.clone()).collect(),
            self.pending.clone(),
            self.range,
            self.max_parallelism,
            self.store.directory().to_path_buf(),
            self.store.changes.key_groups(),
        )
    }

    /// Registers a state with a codec made by `create` unless the name is known; `codec_type`
    /// names the codec's concrete types, which a second registration must ask for again.
    fn register<C: StateCodec<K>>(
        &mut self,
        descriptor: &StateDescriptor,
        kind: StateKind,
        codec_type: TypeId,
        type_name: &'static str,
        create: impl FnOnce() -> C,
    ) -> Result<StateId, StateError> {
        let name = descriptor.name();
        if let Some(&id) = self.ids.get(name) {
            let registered = &self.states[id.index()];
            if registered.info.kind != kind || registered.codec_type != codec_type {
                return Err(StateError::IncompatibleState {
                    name: name.to_string(),
                    registered: registered.info.kind,
                    registered_type: registered.info.type_name,
                    requested: kind,
                    requested_type: type_name,
                });
            }
            if registered.info.ttl != descriptor.ttl() {
                return Err(StateError::TtlMismatch {
                    name: name.to_string(),
                    registered: registered.info.ttl,
                    requested: descriptor.ttl(),
                });
            }
            return Ok(id);
        }

        let id = StateId(u32::try_from(self.states.len()).expect("fewer than 2^32 states"));
        let codec = create();
        // Check and decode every waiting snapshot of the state before restoring any.
        let mut entries = Vec::new();
        let mut groups = Vec::new();
        for (key_group, snapshot) in self.pending.iter().filter(|(_, snapshot)| snapshot.name == name) {
            snapshot.check_restorable(name, kind, type_name, *key_group)?;
            let restamp_ms = self.restamp_ms(snapshot.ttl, descriptor.ttl());
            entries.extend(
                codec.decode_group(*key_group, id.0, &snapshot.data, restamp_ms).map_err(|error| corrupt(name, *key_group, error))?,
            );
            groups.push(*key_group);
        }
        self.store.insert_entries(entries)?;
        self.pending.retain(|(_, snapshot)| snapshot.name != name);
        groups.into_iter().for_each(|key_group| self.store.changes.mark(key_group));

        let ttl = descriptor.ttl();
        self.states.push(RegisteredState {
            info: StateInfo { name: name.to_string(), kind, ttl, type_name, id: id.0, codec: Arc::new(codec) },
            codec_type,
            stored: StoredState::new(id.0, ttl.map(|ttl| ttl.policy())),
        });
        self.ids.insert(name.to_string(), id);
        if ttl.is_some_and(|ttl| ttl.cleanup_on_every_record()) {
            self.cleaned_every_record.push(id);
        }
        Ok(id)
    }

    /// The store, a handle's place in it and its codec, typed.
    ///
    /// Panics if the handle was not made by this backend (its codec has another type).
    #[inline]
    fn state<C: 'static>(&mut self, id: StateId, kind: StateKind) -> (&mut Store, &mut StoredState, &C) {
        let registered = &mut self.states[id.index()];
        debug_assert_eq!(
            registered.info.kind, kind,
            "a {kind:?} state handle used on {:?} state {:?}",
            registered.info.kind, registered.info.name
        );
        match registered.info.codec.as_any().downcast_ref::<C>() {
            Some(codec) => (&mut self.store, &mut registered.stored, codec),
            None => foreign_handle(&registered.info.name, type_name::<C>()),
        }
    }

    /// Values restored into a state with TTL from a snapshot without one have no meaningful stamp:
    /// their life starts at the restore.
    fn restamp_ms(&self, snapshot_ttl: Option<StateTtlConfig>, ttl: Option<StateTtlConfig>) -> Option<i64> {
        (snapshot_ttl.is_none() && ttl.is_some()).then(|| self.store.clock.now_ms())
    }

    fn check_owned(&self, key_group: usize) {
        assert!(self.range.contains(key_group), "key group {key_group} is not in this subtask's range {:?}", self.range);
    }
}

impl<K: Key> StateBackend<K> for DiskStateBackend<K> {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    fn register_value<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ValueState<V>, StateError> {
        type Codec<K, V> = SlotCodec<K, V>;
        let id = self.register(descriptor, StateKind::Value, TypeId::of::<Codec<K, V>>(), type_name::<V>(), || Codec::<K, V>::new(()))?;
        Ok(ValueState::new(id))
    }

    fn register_list<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ListState<V>, StateError> {
        type Codec<K, V> = SlotCodec<K, Vec<V>>;
        let id = self.register(descriptor, StateKind::List, TypeId::of::<Codec<K, V>>(), type_name::<V>(), || Codec::<K, V>::new(()))?;
        Ok(ListState::new(id))
    }

    fn register_map<UK: Key, UV: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<MapState<UK, UV>, StateError> {
        type Codec<K, UK, UV> = MapCodec<K, UK, UV>;
        let codec_type = TypeId::of::<Codec<K, UK, UV>>();
        let id = self.register(descriptor, StateKind::Map, codec_type, type_name::<(UK, UV)>(), Codec::<K, UK, UV>::new)?;
        Ok(MapState::new(id))
    }

    fn register_reducing<V, F>(&mut self, descriptor: &StateDescriptor, reduce: F) -> Result<ReducingState<V>, StateError>
    where
        V: StateValue,
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        type Codec<K, V> = SlotCodec<K, V, ReduceFn<V>>;
        let create = || Codec::<K, V>::new(ReduceFn(Box::new(reduce)));
        let id = self.register(descriptor, StateKind::Reducing, TypeId::of::<Codec<K, V>>(), type_name::<V>(), create)?;
        Ok(ReducingState::new(id))
    }

    fn register_aggregating<In, Acc, Out, A>(
        &mut self,
        descriptor: &StateDescriptor,
        function: A,
    ) -> Result<AggregatingState<In, Out>, StateError>
    where
        In: 'static,
        Acc: StateValue,
        Out: 'static,
        A: AggregateFunction<In, Acc, Out>,
    {
        // Checked by the typed codec inside, not the wrapper that erases the accumulator type.
        type Inner<K, In, Acc, Out, A> = SlotCodec<K, Acc, Aggregator<A, In, Out>>;
        let create = || AggregatingCodec::<K, In, Out> { inner: Box::new(Inner::<K, In, Acc, Out, A>::new(Aggregator::new(function))) };
        let codec_type = TypeId::of::<Inner<K, In, Acc, Out, A>>();
        let id = self.register(descriptor, StateKind::Aggregating, codec_type, type_name::<(In, Acc, Out)>(), create)?;
        Ok(AggregatingState::new(id))
    }

    fn value_read<V: StateValue, R>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        let (store, stored, _) = self.state::<SlotCodec<K, V>>(state.id(), StateKind::Value);
        store.access_slot(stored, key, false, |slot: &mut Option<V>| read(slot.as_ref()))
    }

    fn value_modify<V: StateValue, R>(
        &mut self,
        state: ValueState<V>,
        key: ScopedKey<'_, K>,
        modify: impl FnOnce(&mut Option<V>) -> R,
    ) -> R {
        let (store, stored, _) = self.state::<SlotCodec<K, V>>(state.id(), StateKind::Value);
        store.access_slot(stored, key, true, modify)
    }

    fn value_put<V: StateValue>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, value: V) {
        let (store, stored, _) = self.state::<SlotCodec<K, V>>(state.id(), StateKind::Value);
        store.put_slot(stored, key, &value);
    }

    fn list_read<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(&[V]) -> R) -> R {
        let (store, stored, _) = self.state::<SlotCodec<K, Vec<V>>>(state.id(), StateKind::List);
        store.access_slot(stored, key, false, |slot: &mut Option<Vec<V>>| read(slot.as_deref().unwrap_or_default()))
    }

    fn list_modify<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, modify: impl FnOnce(&mut Vec<V>) -> R) -> R {
        let (store, stored, _) = self.state::<SlotCodec<K, Vec<V>>>(state.id(), StateKind::List);
        store.access_slot(stored, key, true, |slot| {
            let list = slot.get_or_insert_with(Vec::new);
            let result = modify(list);
            if list.is_empty() {
                *slot = None;
            }
            result
        })
    }

    fn map_read<UK: Key, UV: StateValue, R>(
        &mut self,
        state: MapState<UK, UV>,
        key: ScopedKey<'_, K>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R {
        let (store, stored, _) = self.state::<MapCodec<K, UK, UV>>(state.id(), StateKind::Map);
        store.map_read(stored, key, user_key, read)
    }

    fn map_put<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: UK, value: UV) {
        let (store, stored, _) = self.state::<MapCodec<K, UK, UV>>(state.id(), StateKind::Map);
        store.map_put(stored, key, &user_key, &value);
    }

    fn map_remove<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: &UK) {
        let (store, stored, _) = self.state::<MapCodec<K, UK, UV>>(state.id(), StateKind::Map);
        store.map_remove(stored, key, user_key);
    }

    fn map_for_each<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, visit: impl FnMut(&UK, &UV)) {
        let (store, stored, _) = self.state::<MapCodec<K, UK, UV>>(state.id(), StateKind::Map);
        store.map_for_each(stored, key, visit);
    }

    fn reducing_read<V: StateValue, R>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        let (store, stored, _) = self.state::<SlotCodec<K, V, ReduceFn<V>>>(state.id(), StateKind::Reducing);
        store.access_slot(stored, key, false, |slot: &mut Option<V>| read(slot.as_ref()))
    }

    fn reducing_add<V: StateValue>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, value: V) {
        let (store, stored, codec) = self.state::<SlotCodec<K, V, ReduceFn<V>>>(state.id(), StateKind::Reducing);
        let reduce = &codec.function.0;
        store.access_slot(stored, key, true, |slot| {
            let reduced = match slot.take() {
                Some(accumulated) => reduce(accumulated, value),
                None => value,
            };
            *slot = Some(reduced);
        });
    }

    fn aggregating_get<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>) -> Option<Out> {
        let (store, stored, codec) = self.state::<AggregatingCodec<K, In, Out>>(state.id(), StateKind::Aggregating);
        codec.inner.get(store, stored, key)
    }

    fn aggregating_add<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>, value: In) {
        let (store, stored, codec) = self.state::<AggregatingCodec<K, In, Out>>(state.id(), StateKind::Aggregating);
        codec.inner.add(store, stored, key, value);
    }

    fn clear<S: StateHandle>(&mut self, state: S, key: ScopedKey<'_, K>) {
        let registered = &self.states[state.id().index()];
        let kind = registered.info.kind;
        assert_eq!(kind, S::KIND, "a {:?} state handle used on {:?} state {:?}", S::KIND, kind, registered.info.name);
        match kind {
            StateKind::Map => self.store.clear_map(&registered.stored, key),
            _ => self.store.remove_slot(&registered.stored, key),
        }
    }

    fn clear_key(&mut self, key: ScopedKey<'_, K>) {
        for registered in &self.states {
            match registered.info.kind {
                StateKind::Map => self.store.clear_map(&registered.stored, key),
                _ => self.store.remove_slot(&registered.stored, key),
            }
        }
    }

    fn keys(&self, key_group: usize) -> Vec<K> {
        self.check_owned(key_group);
        let decode = |bytes: Vec<u8>| {
            codec::decode::<K>(&bytes)
                .unwrap_or_else(|error| panic!("a key stored in {} does not decode: {error}", self.directory().display()))
        };
        self.store.keys(key_group).into_iter().map(decode).collect()
    }

    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
        self.check_owned(key_group);
        self.states.iter().map(|registered| self.store.cleanup_expired(&registered.stored, key_group, now_ms)).sum()
    }

    fn cleanup_after_record(&mut self) -> usize {
        if self.cleaned_every_record.is_empty() {
            return 0;
        }
        let now_ms = self.store.clock.now_ms();
        let mut removed = 0;
        for id in &self.cleaned_every_record {
            let stored = &mut self.states[id.index()].stored;
            let policy = stored.ttl.expect("only states with TTL clean up on every record");
            removed += self.store.cleanup_step(stored, policy, now_ms);
        }
        removed
    }

    fn snapshot_key_group(&self, key_group: usize) -> Result<KeyGroupSnapshot<K>, StateError> {
        self.check_owned(key_group);
        let snapshot = self.store.snapshot();
        let states = self.states.iter().map(|registered| &registered.info);
        view::encode_key_group(&snapshot, states, &self.pending, key_group, self.max_parallelism, self.directory())
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::backend::DeferredBackendGroup<K>, StateError> {
        self.check_owned(key_group);
        let view = self.snapshot_view();
        Ok(Box::new(move || view.snapshot_key_group(key_group)))
    }

    fn restore_key_group(&mut self, snapshot: KeyGroupSnapshot<K>) -> Result<(), StateError> {
        if snapshot.max_parallelism() != self.max_parallelism {
            return Err(StateError::MaxParallelismMismatch { snapshot: snapshot.max_parallelism(), subtask: self.max_parallelism });
        }
        let key_group = snapshot.key_group();
        if !self.range.contains(key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group, range: self.range });
        }
        // Check and decode everything before changing anything: a snapshot that does not fit
        // leaves the group as it was.
        let mut entries = Vec::new();
        let mut waiting = Vec::new();
        for state in snapshot.into_states() {
            match self.ids.get(&state.name) {
                Some(&id) => {
                    let info = &self.states[id.index()].info;
                    state.check_restorable(&info.name, info.kind, info.type_name, key_group)?;
                    let restamp_ms = self.restamp_ms(state.ttl, info.ttl);
                    let decoded = info.codec.decode_group(key_group, info.id, &state.data, restamp_ms);
                    entries.extend(decoded.map_err(|error| corrupt(&state.name, key_group, error))?);
                }
                None => waiting.push((key_group, state)),
            }
        }
        self.store.replace_group(key_group, entries)?;
        self.pending.retain(|(group, _)| *group != key_group);
        self.pending.extend(waiting);
        self.store.changes.mark(key_group);
        Ok(())
    }
}

impl<K: Key> ChangeTracking for DiskStateBackend<K> {
    fn changed_key_groups(&self) -> Vec<usize> {
        self.store.changes.key_groups()
    }

    fn checkpoint_taken(&mut self) {
        self.store.changes.clear();
    }

    fn mark_changed(&mut self, key_groups: &[usize]) {
        for &key_group in key_groups {
            self.check_owned(key_group);
            self.store.changes.mark(key_group);
        }
    }
}

#[cfg(test)]
mod tests;
