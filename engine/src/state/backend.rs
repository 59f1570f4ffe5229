//! The [`StateBackend`] trait: keyed state of one operator subtask, stored per owned key group,
//! and the [`KeyGroupSnapshot`] that carries one key group's state between backends.
//!
//! A backend owns a fixed [`KeyGroupRange`]; every access names its key as a [`ScopedKey`] whose
//! group lies in that range, so the key is hashed once per record, not once per access. Reads lend
//! references through closures (`value_read(.., |v| ..)`) rather than returning them: the heap
//! backend lends its own entry, a disk backend will lend a value it just decoded, and neither
//! clones on the hot path. Writes that depend on the old value go through `*_modify` in one lookup.
//!
//! Invariants every implementation keeps, and the conformance suite checks: a key's state is
//! visible only through that key; a state never holds an empty list or an empty map for a key
//! (emptying one removes the key); expired values are never returned, and expired values of keys
//! never read again are removed incrementally as other keys are accessed; a snapshot of a key group
//! restored into any backend owning that group gives back exactly that group's state.

use std::fmt;
use std::marker::PhantomData;

use super::context::ScopedKey;
use super::descriptor::{StateDescriptor, StateKind, StateValue};
use super::handle::{AggregatingState, ListState, MapState, ReducingState, StateHandle, ValueState};
use super::ttl::{StateTtlConfig, TtlValue};
use super::StateError;
use crate::base::{AggregateFunction, Key};
use crate::key_group::KeyGroupRange;

/// Stores the keyed state of one operator subtask, organised by key group.
///
/// Registration happens in `open` (and is idempotent: the same name, kind and types give the same
/// handle). Every access is for one key; handles passed in must come from this backend's own
/// `register_*` calls, anything else is a bug and panics.
pub trait StateBackend<K: Key>: Send + 'static {
    /// The key groups this subtask owns.
    fn key_groups(&self) -> KeyGroupRange;

    /// Number of key groups of the job.
    fn max_parallelism(&self) -> usize;

    /// `key` with its key group.
    ///
    /// Panics if the group is not owned here: the record was routed to the wrong subtask.
    #[inline]
    fn scope<'k>(&self, key: &'k K) -> ScopedKey<'k, K> {
        let key = ScopedKey::new(key, self.max_parallelism());
        let range = self.key_groups();
        assert!(range.contains(key.key_group()), "key group {} routed to subtask owning {range:?}", key.key_group());
        key
    }

    /// Declares a value state.
    fn register_value<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ValueState<V>, StateError>;

    /// Declares a list state.
    fn register_list<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ListState<V>, StateError>;

    /// Declares a map state.
    fn register_map<UK: Key, UV: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<MapState<UK, UV>, StateError>;

    /// Declares a reducing state that folds added values with `reduce(accumulated, added)`.
    fn register_reducing<V, F>(&mut self, descriptor: &StateDescriptor, reduce: F) -> Result<ReducingState<V>, StateError>
    where
        V: StateValue,
        F: Fn(V, V) -> V + Send + Sync + 'static;

    /// Declares an aggregating state that keeps an `Acc` per key, fed and read by `function`.
    fn register_aggregating<In, Acc, Out, A>(
        &mut self,
        descriptor: &StateDescriptor,
        function: A,
    ) -> Result<AggregatingState<In, Out>, StateError>
    where
        In: 'static,
        Acc: StateValue,
        Out: 'static,
        A: AggregateFunction<In, Acc, Out>;

    /// Runs `read` on the key's value.
    fn value_read<V: StateValue, R>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R;

    /// Runs `modify` on the key's value in place; `None` in means absent, `None` out removes it.
    /// Counts as a write for TTL.
    fn value_modify<V: StateValue, R>(
        &mut self,
        state: ValueState<V>,
        key: ScopedKey<'_, K>,
        modify: impl FnOnce(&mut Option<V>) -> R,
    ) -> R;

    /// Sets the key's value.
    fn value_put<V: StateValue>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, value: V) {
        self.value_modify(state, key, |slot| *slot = Some(value));
    }

    /// Runs `read` on the key's list (empty if it has none).
    fn list_read<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(&[V]) -> R) -> R;

    /// Runs `modify` on the key's list in place; leaving it empty removes it. A write for TTL.
    fn list_modify<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, modify: impl FnOnce(&mut Vec<V>) -> R) -> R;

    /// Appends `value` to the key's list.
    fn list_append<V: StateValue>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, value: V) {
        self.list_modify(state, key, |list| list.push(value));
    }

    /// Runs `read` on the value of `user_key` in the key's map.
    fn map_read<UK: Key, UV: StateValue, R>(
        &mut self,
        state: MapState<UK, UV>,
        key: ScopedKey<'_, K>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R;

    /// Sets the value of `user_key` in the key's map.
    fn map_put<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: UK, value: UV);

    /// Removes `user_key` from the key's map.
    fn map_remove<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: &UK);

    /// Calls `visit` with every live entry of the key's map, in no particular order.
    fn map_for_each<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, visit: impl FnMut(&UK, &UV));

    /// Runs `read` on the key's reduced value.
    fn reducing_read<V: StateValue, R>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R;

    /// Folds `value` into the key's value.
    fn reducing_add<V: StateValue>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, value: V);

    /// The aggregate function's result for the key's accumulator, `None` if it has none.
    fn aggregating_get<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>) -> Option<Out>;

    /// Adds `value` to the key's accumulator.
    fn aggregating_add<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>, value: In);

    /// Removes the key's entry of one state, of any kind.
    fn clear<S: StateHandle>(&mut self, state: S, key: ScopedKey<'_, K>);

    /// Removes every state of the key.
    fn clear_key(&mut self, key: ScopedKey<'_, K>);

    /// Every key with state in `key_group` (in any registered state), in no particular order.
    /// Values that expired but were not cleaned up yet still count; run `cleanup_expired` first to
    /// leave them out.
    fn keys(&self, key_group: usize) -> Vec<K>;

    /// Removes every value (and map entry) of `key_group` that has expired at `now_ms`; returns
    /// how many it removed.
    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize;

    /// Runs one incremental cleanup step on every state whose TTL cleans up on every record
    /// ([`StateTtlConfig::with_incremental_cleanup`]): visits its next few entries and drops the
    /// expired ones. Keyed operators call it once per record they process; it costs nothing when
    /// no state asks for it. Returns how many values (and map entries) it removed.
    fn cleanup_after_record(&mut self) -> usize;

    /// Every state of `key_group`, encoded: what a checkpoint writes for it.
    fn snapshot_key_group(&self, key_group: usize) -> Result<KeyGroupSnapshot<K>, StateError> {
        self.snapshot_key_group_deferred(key_group)?()
    }

    /// Every state of `key_group` as it is now, encoded when the returned closure runs, on any
    /// thread, while this backend goes on changing: what a checkpoint takes at its barrier. Taking
    /// it copies nothing (the heap backend shares its maps copy-on-write, the disk backend pins an
    /// MVCC snapshot), so a checkpoint's synchronous part does not grow with the state.
    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<DeferredBackendGroup<K>, StateError>;

    /// Replaces the state of the snapshot's key group with the snapshot's. States the snapshot
    /// names that are not registered yet are kept and restored when they are registered (a restore
    /// happens before `open`, as in Flink). A snapshot that does not fit (another kind or type of
    /// a state, bytes that do not decode) is refused and the group is left as it was.
    fn restore_key_group(&mut self, snapshot: KeyGroupSnapshot<K>) -> Result<(), StateError>;
}

/// A key group's state taken at one point, to encode later (see
/// [`StateBackend::snapshot_key_group_deferred`]).
pub type DeferredBackendGroup<K> = Box<dyn FnOnce() -> Result<KeyGroupSnapshot<K>, StateError> + Send>;

/// The state of one key group, owned and detached from any backend.
///
/// Each state's entries are encoded with the engine's codec in a backend-neutral form (a `Vec` of
/// entries with their TTL stamps), so any backend restores what another wrote, in this process or
/// from a checkpoint. The snapshot itself is encoded the same way.
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct KeyGroupSnapshot<K> {
    key_group: u32,
    max_parallelism: u32,
    states: Vec<StateSnapshot>,
    _keys: PhantomData<fn() -> K>,
}

impl<K: Key> KeyGroupSnapshot<K> {
    /// A snapshot of `key_group` holding `states`.
    pub(crate) fn new(key_group: usize, max_parallelism: usize, states: Vec<StateSnapshot>) -> KeyGroupSnapshot<K> {
        KeyGroupSnapshot { key_group: key_group as u32, max_parallelism: max_parallelism as u32, states, _keys: PhantomData }
    }
}

impl<K> KeyGroupSnapshot<K> {
    /// The key group.
    pub fn key_group(&self) -> usize {
        self.key_group as usize
    }

    /// Number of key groups of the job the snapshot was taken in.
    pub fn max_parallelism(&self) -> usize {
        self.max_parallelism as usize
    }

    /// The snapshot of each non-empty state of the group.
    pub fn states(&self) -> &[StateSnapshot] {
        &self.states
    }

    /// Whether the group held no state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub(crate) fn into_states(self) -> Vec<StateSnapshot> {
        self.states
    }
}

impl<K> fmt::Debug for KeyGroupSnapshot<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyGroupSnapshot")
            .field("key_group", &self.key_group)
            .field("max_parallelism", &self.max_parallelism)
            .field("states", &self.states)
            .finish()
    }
}

/// Snapshot form of a value, list, reducing or aggregating state's entries in one key group:
/// each key with its stamped value (a list state's value is its `Vec`). Every backend writes and
/// reads this form, so a snapshot of one restores into another.
pub(crate) type SlotEntries<K, T> = Vec<(K, TtlValue<T>)>;

/// Snapshot form of a map state's entries in one key group: each key with its stamped map entries
/// (never an empty map).
pub(crate) type MapEntries<K, UK, UV> = Vec<(K, Vec<(UK, TtlValue<UV>)>)>;

/// One state's entries in one key group.
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StateSnapshot {
    pub(crate) name: String,
    pub(crate) kind: StateKind,
    pub(crate) ttl: Option<StateTtlConfig>,
    /// The state's types as Rust names them (`std::any::type_name`): a restore into a state of
    /// other types is refused naming both.
    pub(crate) type_name: String,
    pub(crate) entries: u64,
    /// The entries, encoded as the state's table defines (`heap::table`).
    pub(crate) data: Vec<u8>,
}

impl StateSnapshot {
    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state's kind.
    pub fn kind(&self) -> StateKind {
        self.kind
    }

    /// The TTL the state had when the snapshot was taken.
    pub fn ttl(&self) -> Option<StateTtlConfig> {
        self.ttl
    }

    /// Number of keys with state (for a map state, of map entries).
    pub fn entries(&self) -> usize {
        self.entries as usize
    }

    /// Size of the encoded entries in bytes.
    pub fn encoded_bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether the snapshot can be restored into the state registered as `name`, `kind`, with
    /// types named `type_name`.
    pub(crate) fn check_restorable(
        &self,
        name: &str,
        kind: StateKind,
        type_name: &'static str,
        key_group: usize,
    ) -> Result<(), StateError> {
        if self.kind != kind || self.type_name != type_name {
            return Err(StateError::IncompatibleSnapshot {
                name: name.to_string(),
                key_group,
                kind,
                state_type: type_name,
                snapshot_kind: self.kind,
                snapshot_type: self.type_name.clone(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for StateSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSnapshot")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("ttl", &self.ttl)
            .field("type", &self.type_name)
            .field("entries", &self.entries)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Panics: a handle was used on a backend (or state) other than the one that made it.
#[cold]
#[inline(never)]
pub(crate) fn foreign_handle(name: &str, expected: &str) -> ! {
    panic!("a state handle used on state {name:?} was made for a {expected}: handles work only with the backend that made them")
}

/// A snapshot's entries did not decode as the registered state's.
pub(crate) fn corrupt(name: &str, key_group: usize, error: crate::base::CodecError) -> StateError {
    StateError::CorruptSnapshot { name: name.to_string(), key_group, reason: error.to_string() }
}

/// The reduce function of a reducing state (either backend).
pub(crate) struct ReduceFn<V>(pub Box<dyn Fn(V, V) -> V + Send + Sync>);

/// An aggregate function whose input and output types are fixed (either backend).
pub(crate) struct Aggregator<A, In, Out> {
    pub(crate) function: A,
    _types: PhantomData<fn(In) -> Out>,
}

impl<A, In, Out> Aggregator<A, In, Out> {
    pub fn new(function: A) -> Aggregator<A, In, Out> {
        Aggregator { function, _types: PhantomData }
    }
}
