//! The state backend a job is configured with (`EngineConfig::state_backend`): in memory (the
//! default) or on disk (fjall, for state larger than memory). Keyed operators hold a
//! [`KeyedStateBackend`], which is either and forwards every call, so user code (`open` of a
//! keyed process function) and operators are written once for both.

use std::path::PathBuf;

use super::context::ScopedKey;
use super::descriptor::{StateDescriptor, StateValue};
use super::disk::DISK_CACHE_BYTES_DEFAULT;
use super::handle::{AggregatingState, ListState, MapState, ReducingState, StateHandle, ValueState};
use super::{DiskStateBackend, DiskStateOptions, HeapStateBackend, KeyGroupSnapshot, StateBackend, StateError};
use crate::base::{AggregateFunction, Key};
use crate::key_group::KeyGroupRange;

/// Where keyed state lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StateBackendConfig {
    /// In memory, per key group hash maps (Flink's `hashmap` backend).
    #[default]
    Heap,
    /// On disk in an LSM tree (fjall), each operator subtask in a directory of its own under
    /// `dir`, emptied when the subtask starts (state comes back from checkpoints, not from the
    /// directory). Flink's `rocksdb` backend.
    Disk {
        /// The working directory of the job's disk state.
        dir: PathBuf,
        /// Memory each keyed operator subtask keeps its state in, in bytes (recently used entries,
        /// fjall's memtable and block cache; see `DiskStateOptions::cache_bytes`): state beyond it
        /// lives on disk only. Default [`DISK_CACHE_BYTES_DEFAULT`] (96 MiB); a configuration
        /// accepts `DISK_CACHE_BYTES_MIN` (1 MiB) to `DISK_CACHE_BYTES_MAX` (1 TiB).
        cache_bytes: u64,
    },
}

/// The keyed state of one operator subtask, in the backend the job is configured with.
pub enum KeyedStateBackend<K> {
    /// In memory.
    Heap(HeapStateBackend<K>),
    /// On disk (boxed: the store's buffers and cache make it several times the heap backend's size).
    Disk(Box<DiskStateBackend<K>>),
}

/// Calls `$call` on whichever backend `$self` holds.
macro_rules! forward {
    ($self:expr, $backend:ident => $call:expr) => {
        match $self {
            KeyedStateBackend::Heap($backend) => $call,
            KeyedStateBackend::Disk($backend) => $call,
        }
    };
}

impl<K: Key> KeyedStateBackend<K> {
    /// The backend of the subtask owning `range`: on disk in `state_dir` if the subtask has one
    /// (`SubtaskContext::state_dir`), keeping `cache_bytes` of it in memory
    /// (`SubtaskContext::state_cache_bytes`; `None`: [`DISK_CACHE_BYTES_DEFAULT`]), else in memory.
    pub fn open(
        state_dir: Option<&std::path::Path>,
        cache_bytes: Option<u64>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Result<Self, StateError> {
        Ok(match state_dir {
            None => KeyedStateBackend::Heap(HeapStateBackend::new(range, max_parallelism)),
            Some(dir) => {
                let options = DiskStateOptions { cache_bytes: cache_bytes.unwrap_or(DISK_CACHE_BYTES_DEFAULT) };
                KeyedStateBackend::Disk(Box::new(DiskStateBackend::open_with(dir, range, max_parallelism, options)?))
            }
        })
    }

    /// Replaces the clock TTL reads processing time from (see `HeapStateBackend::set_clock`).
    pub fn set_clock(&mut self, clock: std::sync::Arc<dyn super::Clock>) {
        forward!(self, b => b.set_clock(clock))
    }
}

impl<K: Key> StateBackend<K> for KeyedStateBackend<K> {
    fn key_groups(&self) -> KeyGroupRange {
        forward!(self, b => b.key_groups())
    }

    fn max_parallelism(&self) -> usize {
        forward!(self, b => b.max_parallelism())
    }

    fn register_value<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ValueState<V>, StateError> {
        forward!(self, b => b.register_value(descriptor))
    }

    fn register_list<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ListState<V>, StateError> {
        forward!(self, b => b.register_list(descriptor))
    }

    fn register_map<UK: Key, UV: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<MapState<UK, UV>, StateError> {
        forward!(self, b => b.register_map(descriptor))
    }

    fn register_reducing<V, F>(&mut self, descriptor: &StateDescriptor, reduce: F) -> Result<ReducingState<V>, StateError>
    where
        V: StateValue,
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        forward!(self, b => b.register_reducing(descriptor, reduce))
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
        forward!(self, b => b.register_aggregating(descriptor, function))
    }

    fn value_read<V: StateValue, R>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        forward!(self, b => b.value_read(state, key, read))
    }

    fn value_modify<V: StateValue, R>(
        &mut self,
        state: ValueState<V>,
        key: ScopedKey<'_, K>,
        modify: impl FnOnce(&mut Option<V>) -> R,
    ) -> R {
        forward!(self, b => b.value_modify(state, key, modify))
    }

    fn list_read<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(&[V]) -> R) -> R {
        forward!(self, b => b.list_read(state, key, read))
    }

    fn list_modify<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, modify: impl FnOnce(&mut Vec<V>) -> R) -> R {
        forward!(self, b => b.list_modify(state, key, modify))
    }

    fn map_read<UK: Key, UV: StateValue, R>(
        &mut self,
        state: MapState<UK, UV>,
        key: ScopedKey<'_, K>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R {
        forward!(self, b => b.map_read(state, key, user_key, read))
    }

    fn map_put<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: UK, value: UV) {
        forward!(self, b => b.map_put(state, key, user_key, value))
    }

    fn map_remove<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: &UK) {
        forward!(self, b => b.map_remove(state, key, user_key))
    }

    fn map_for_each<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, visit: impl FnMut(&UK, &UV)) {
        forward!(self, b => b.map_for_each(state, key, visit))
    }

    fn reducing_read<V: StateValue, R>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        forward!(self, b => b.reducing_read(state, key, read))
    }

    fn reducing_add<V: StateValue>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, value: V) {
        forward!(self, b => b.reducing_add(state, key, value))
    }

    fn aggregating_get<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>) -> Option<Out> {
        forward!(self, b => b.aggregating_get(state, key))
    }

    fn aggregating_add<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>, value: In) {
        forward!(self, b => b.aggregating_add(state, key, value))
    }

    fn clear<S: StateHandle>(&mut self, state: S, key: ScopedKey<'_, K>) {
        forward!(self, b => b.clear(state, key))
    }

    fn clear_key(&mut self, key: ScopedKey<'_, K>) {
        forward!(self, b => b.clear_key(key))
    }

    fn keys(&self, key_group: usize) -> Vec<K> {
        forward!(self, b => b.keys(key_group))
    }

    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
        forward!(self, b => b.cleanup_expired(key_group, now_ms))
    }

    fn cleanup_after_record(&mut self) -> usize {
        forward!(self, b => b.cleanup_after_record())
    }

    fn snapshot_key_group(&self, key_group: usize) -> Result<KeyGroupSnapshot<K>, StateError> {
        forward!(self, b => b.snapshot_key_group(key_group))
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::backend::DeferredBackendGroup<K>, StateError> {
        forward!(self, b => b.snapshot_key_group_deferred(key_group))
    }

    fn restore_key_group(&mut self, snapshot: KeyGroupSnapshot<K>) -> Result<(), StateError> {
        forward!(self, b => b.restore_key_group(snapshot))
    }
}
