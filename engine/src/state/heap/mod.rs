//! [`HeapStateBackend`]: keyed state in memory, one hash map per state and owned key group.
//!
//! Every state is a typed table (see `table`) behind a type-erased box; a handle's access finds
//! its table by index and downcasts it (one type-id compare), then does one `FxHashMap` lookup in
//! the key's group: no allocation unless a key gets its first entry. Registration is idempotent
//! and checked: a name keeps one kind and one set of types. Snapshots of a key group restored
//! before their state is registered wait in `pending` and are applied by the registration, so a
//! restore can run before `open`, as in Flink. States with TTL clean up incrementally (see
//! `table`): on every access, and on every processed record for those configured so. Every write
//! (and every read that restamps a value) marks its key group in a bitset, for incremental
//! checkpoints ([`ChangeTracking`]).

mod table;

use std::any::{type_name, TypeId};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use self::table::{AggregatingTable, ErasedTable, KeyedTable, MapTable};
use super::backend::{Aggregator, ReduceFn};
use super::backend::{DeferredBackendGroup, KeyGroupSnapshot, StateBackend, StateSnapshot};
use super::changes::{ChangeTracking, KeyGroupChanges};
use super::context::ScopedKey;
use super::descriptor::{StateDescriptor, StateKind, StateValue};
use super::handle::{AggregatingState, ListState, MapState, ReducingState, StateHandle, StateId, ValueState};
use super::ttl::{Clock, StateTtlConfig, SystemClock, TtlPolicy, TtlUpdateType};
use super::StateError;
use crate::base::{AggregateFunction, Key};
use crate::key_group::KeyGroupRange;
use crate::state::backend::{corrupt, foreign_handle};

/// Keyed state of one subtask, in memory.
pub struct HeapStateBackend<K> {
    range: KeyGroupRange,
    max_parallelism: usize,
    clock: Arc<dyn Clock>,
    /// Indexed by `StateId`.
    states: Vec<RegisteredState<K>>,
    ids: FxHashMap<String, StateId>,
    /// Key group snapshots of states not registered yet.
    pending: Vec<(usize, StateSnapshot)>,
    /// States whose TTL runs a cleanup step on every processed record.
    cleaned_every_record: Vec<StateId>,
    /// Key groups changed since the last checkpoint.
    changes: KeyGroupChanges,
}

/// A registered state: its declaration and its table.
struct RegisteredState<K> {
    name: String,
    kind: StateKind,
    ttl: Option<StateTtlConfig>,
    /// Whether a read restamps the value (TTL refreshed on read), and so changes the key group.
    refreshed_on_read: bool,
    /// Concrete type of the table: a second registration must ask for the same.
    table_type: TypeId,
    type_name: &'static str,
    table: Box<dyn ErasedTable<K>>,
}

impl<K: Key> HeapStateBackend<K> {
    /// An empty backend for the subtask owning `range`, with TTL measured by the system clock.
    pub fn new(range: KeyGroupRange, max_parallelism: usize) -> HeapStateBackend<K> {
        HeapStateBackend::with_clock(range, max_parallelism, Arc::new(SystemClock))
    }

    /// An empty backend whose TTL reads processing time from `clock`.
    ///
    /// Panics if `range` reaches past `max_parallelism`.
    pub fn with_clock(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> HeapStateBackend<K> {
        assert!(range.end <= max_parallelism && range.start <= range.end, "key group range {range:?} outside 0..{max_parallelism}");
        HeapStateBackend {
            range,
            max_parallelism,
            clock,
            states: Vec::new(),
            ids: FxHashMap::default(),
            pending: Vec::new(),
            cleaned_every_record: Vec::new(),
            changes: KeyGroupChanges::all_changed(range),
        }
    }

    /// Replaces the clock TTL reads processing time from (a test's manual clock, say); values
    /// written before keep their stamps. Call it in `open`, before state is written.
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// Registers a state with a table of type `T`, made by `create` unless the name is known.
    fn register<T: ErasedTable<K> + 'static>(
        &mut self,
        descriptor: &StateDescriptor,
        kind: StateKind,
        table_type: TypeId,
        type_name: &'static str,
        create: impl FnOnce(KeyGroupRange, Option<TtlPolicy>) -> T,
    ) -> Result<StateId, StateError> {
        let name = descriptor.name();
        if let Some(&id) = self.ids.get(name) {
            let registered = &self.states[id.index()];
            if registered.kind != kind || registered.table_type != table_type {
                return Err(StateError::IncompatibleState {
                    name: name.to_string(),
                    registered: registered.kind,
                    registered_type: registered.type_name,
                    requested: kind,
                    requested_type: type_name,
                });
            }
            if registered.ttl != descriptor.ttl() {
                return Err(StateError::TtlMismatch { name: name.to_string(), registered: registered.ttl, requested: descriptor.ttl() });
            }
            return Ok(id);
        }

        let mut table = create(self.range, descriptor.ttl().map(|ttl| ttl.policy()));
        // Check and decode every waiting snapshot of the state before restoring any.
        let mut decoded = Vec::new();
        for (key_group, snapshot) in self.pending.iter().filter(|(_, snapshot)| snapshot.name == name) {
            snapshot.check_restorable(name, kind, type_name, *key_group)?;
            let data = table.decode_group(&snapshot.data).map_err(|error| corrupt(name, *key_group, error))?;
            decoded.push((*key_group, self.restamp_ms(snapshot.ttl, descriptor.ttl()), data));
        }
        self.pending.retain(|(_, snapshot)| snapshot.name != name);
        for (key_group, restamp_ms, data) in decoded {
            table.restore_group(key_group, data, restamp_ms);
            self.changes.mark(key_group);
        }

        let id = StateId(u32::try_from(self.states.len()).expect("fewer than 2^32 states"));
        self.states.push(RegisteredState {
            name: name.to_string(),
            kind,
            ttl: descriptor.ttl(),
            refreshed_on_read: descriptor.ttl().is_some_and(|ttl| ttl.update_type() == TtlUpdateType::OnReadAndWrite),
            table_type,
            type_name,
            table: Box::new(table),
        });
        self.ids.insert(name.to_string(), id);
        if descriptor.ttl().is_some_and(|ttl| ttl.cleanup_on_every_record()) {
            self.cleaned_every_record.push(id);
        }
        Ok(id)
    }

    /// The table of a handle, typed, and the clock.
    ///
    /// Panics if the handle was not made by this backend (its table has another type).
    #[inline]
    fn table<T: 'static>(&mut self, id: StateId) -> (&mut T, &dyn Clock) {
        let registered = &mut self.states[id.index()];
        match registered.table.as_any_mut().downcast_mut::<T>() {
            Some(table) => (table, &*self.clock),
            None => foreign_handle(&registered.name, type_name::<T>()),
        }
    }

    /// Values restored into a state with TTL from a snapshot without one have no meaningful stamp:
    /// their life starts at the restore.
    fn restamp_ms(&self, snapshot_ttl: Option<StateTtlConfig>, ttl: Option<StateTtlConfig>) -> Option<i64> {
        (snapshot_ttl.is_none() && ttl.is_some()).then(|| self.clock.now_ms())
    }

    fn check_owned(&self, key_group: usize) {
        assert!(self.range.contains(key_group), "key group {key_group} is not in this subtask's range {:?}", self.range);
    }

    /// Marks the key's group changed by a read, if reads of the state restamp values.
    #[inline]
    fn mark_read(&mut self, id: StateId, key: ScopedKey<'_, K>) {
        if self.states[id.index()].refreshed_on_read {
            self.changes.mark(key.key_group());
        }
    }
}

impl<K: Key> StateBackend<K> for HeapStateBackend<K> {
    fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    fn max_parallelism(&self) -> usize {
        self.max_parallelism
    }

    fn register_value<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ValueState<V>, StateError> {
        type Table<K, V> = KeyedTable<K, V>;
        let id = self.register(descriptor, StateKind::Value, TypeId::of::<Table<K, V>>(), type_name::<V>(), |range, ttl| {
            Table::<K, V>::new(range, ttl, ())
        })?;
        Ok(ValueState::new(id))
    }

    fn register_list<V: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<ListState<V>, StateError> {
        type Table<K, V> = KeyedTable<K, Vec<V>>;
        let id = self.register(descriptor, StateKind::List, TypeId::of::<Table<K, V>>(), type_name::<V>(), |range, ttl| {
            Table::<K, V>::new(range, ttl, ())
        })?;
        Ok(ListState::new(id))
    }

    fn register_map<UK: Key, UV: StateValue>(&mut self, descriptor: &StateDescriptor) -> Result<MapState<UK, UV>, StateError> {
        type Table<K, UK, UV> = MapTable<K, UK, UV>;
        let id =
            self.register(descriptor, StateKind::Map, TypeId::of::<Table<K, UK, UV>>(), type_name::<(UK, UV)>(), Table::<K, UK, UV>::new)?;
        Ok(MapState::new(id))
    }

    fn register_reducing<V, F>(&mut self, descriptor: &StateDescriptor, reduce: F) -> Result<ReducingState<V>, StateError>
    where
        V: StateValue,
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        type Table<K, V> = KeyedTable<K, V, ReduceFn<V>>;
        let create = |range, ttl| Table::<K, V>::new(range, ttl, ReduceFn(Box::new(reduce)));
        let id = self.register(descriptor, StateKind::Reducing, TypeId::of::<Table<K, V>>(), type_name::<V>(), create)?;
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
        type Inner<K, In, Acc, Out, A> = KeyedTable<K, Acc, Aggregator<A, In, Out>>;
        let create = |range, ttl| AggregatingTable::<K, In, Out> {
            inner: Box::new(Inner::<K, In, Acc, Out, A>::new(range, ttl, Aggregator::new(function))),
        };
        let id = self.register(
            descriptor,
            StateKind::Aggregating,
            TypeId::of::<Inner<K, In, Acc, Out, A>>(),
            type_name::<(In, Acc, Out)>(),
            create,
        )?;
        Ok(AggregatingState::new(id))
    }

    #[inline]
    fn value_read<V: StateValue, R>(&mut self, state: ValueState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<KeyedTable<K, V>>(state.id());
        table.slots.access(key, clock, false, |slot| read(slot.as_ref()))
    }

    #[inline]
    fn value_modify<V: StateValue, R>(
        &mut self,
        state: ValueState<V>,
        key: ScopedKey<'_, K>,
        modify: impl FnOnce(&mut Option<V>) -> R,
    ) -> R {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<KeyedTable<K, V>>(state.id());
        table.slots.access(key, clock, true, modify)
    }

    #[inline]
    fn list_read<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(&[V]) -> R) -> R {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<KeyedTable<K, Vec<V>>>(state.id());
        table.slots.access(key, clock, false, |slot| read(slot.as_deref().unwrap_or_default()))
    }

    #[inline]
    fn list_modify<V: StateValue, R>(&mut self, state: ListState<V>, key: ScopedKey<'_, K>, modify: impl FnOnce(&mut Vec<V>) -> R) -> R {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<KeyedTable<K, Vec<V>>>(state.id());
        table.slots.access(key, clock, true, |slot| {
            let list = slot.get_or_insert_with(Vec::new);
            let result = modify(list);
            if list.is_empty() {
                *slot = None;
            }
            result
        })
    }

    #[inline]
    fn map_read<UK: Key, UV: StateValue, R>(
        &mut self,
        state: MapState<UK, UV>,
        key: ScopedKey<'_, K>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<MapTable<K, UK, UV>>(state.id());
        table.read(key, user_key, clock, read)
    }

    #[inline]
    fn map_put<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: UK, value: UV) {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<MapTable<K, UK, UV>>(state.id());
        table.put(key, user_key, value, clock);
    }

    #[inline]
    fn map_remove<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, user_key: &UK) {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<MapTable<K, UK, UV>>(state.id());
        table.remove(key, user_key, clock);
    }

    fn map_for_each<UK: Key, UV: StateValue>(&mut self, state: MapState<UK, UV>, key: ScopedKey<'_, K>, visit: impl FnMut(&UK, &UV)) {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<MapTable<K, UK, UV>>(state.id());
        table.for_each(key, clock, visit);
    }

    #[inline]
    fn reducing_read<V: StateValue, R>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, read: impl FnOnce(Option<&V>) -> R) -> R {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<KeyedTable<K, V, ReduceFn<V>>>(state.id());
        table.slots.access(key, clock, false, |slot| read(slot.as_ref()))
    }

    #[inline]
    fn reducing_add<V: StateValue>(&mut self, state: ReducingState<V>, key: ScopedKey<'_, K>, value: V) {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<KeyedTable<K, V, ReduceFn<V>>>(state.id());
        let reduce = &table.function.0;
        table.slots.access(key, clock, true, |slot| {
            let reduced = match slot.take() {
                Some(accumulated) => reduce(accumulated, value),
                None => value,
            };
            *slot = Some(reduced);
        });
    }

    #[inline]
    fn aggregating_get<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>) -> Option<Out> {
        self.mark_read(state.id(), key);
        let (table, clock) = self.table::<AggregatingTable<K, In, Out>>(state.id());
        table.inner.get(key, clock)
    }

    #[inline]
    fn aggregating_add<In: 'static, Out: 'static>(&mut self, state: AggregatingState<In, Out>, key: ScopedKey<'_, K>, value: In) {
        self.changes.mark(key.key_group());
        let (table, clock) = self.table::<AggregatingTable<K, In, Out>>(state.id());
        table.inner.add(key, clock, value);
    }

    fn clear<S: StateHandle>(&mut self, state: S, key: ScopedKey<'_, K>) {
        let registered = &mut self.states[state.id().index()];
        assert_eq!(registered.kind, S::KIND, "a {:?} state handle used on {:?} state {:?}", S::KIND, registered.kind, registered.name);
        registered.table.clear_key(key);
        self.changes.mark(key.key_group());
    }

    fn clear_key(&mut self, key: ScopedKey<'_, K>) {
        for registered in &mut self.states {
            registered.table.clear_key(key);
        }
        self.changes.mark(key.key_group());
    }

    fn keys(&self, key_group: usize) -> Vec<K> {
        self.check_owned(key_group);
        let mut keys = FxHashSet::default();
        for registered in &self.states {
            registered.table.collect_keys(key_group, &mut keys);
        }
        keys.into_iter().collect()
    }

    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
        self.check_owned(key_group);
        self.states.iter_mut().map(|registered| registered.table.cleanup_expired(key_group, now_ms)).sum()
    }

    #[inline]
    fn cleanup_after_record(&mut self) -> usize {
        if self.cleaned_every_record.is_empty() {
            return 0;
        }
        let now_ms = self.clock.now_ms();
        self.cleaned_every_record.iter().map(|id| self.states[id.index()].table.cleanup_step(now_ms)).sum()
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<DeferredBackendGroup<K>, StateError> {
        self.check_owned(key_group);
        let taken: Vec<_> = self
            .states
            .iter()
            .map(|registered| {
                let declared = (registered.name.clone(), registered.kind, registered.ttl, registered.type_name);
                (declared, registered.table.snapshot_group(key_group))
            })
            .collect();
        // Restored but not yet registered: still this group's state, so it goes into the next checkpoint.
        let pending: Vec<StateSnapshot> =
            self.pending.iter().filter(|(group, _)| *group == key_group).map(|(_, snapshot)| snapshot.clone()).collect();
        let max_parallelism = self.max_parallelism;
        Ok(Box::new(move || {
            let mut states = Vec::new();
            for ((name, kind, ttl, type_name), deferred) in taken {
                let group = deferred().map_err(|error| corrupt(&name, key_group, error))?;
                if group.entries > 0 {
                    let type_name = type_name.to_string();
                    states.push(StateSnapshot { name, kind, ttl, type_name, entries: group.entries as u64, data: group.bytes });
                }
            }
            states.extend(pending);
            Ok(KeyGroupSnapshot::new(key_group, max_parallelism, states))
        }))
    }

    fn restore_key_group(&mut self, snapshot: KeyGroupSnapshot<K>) -> Result<(), StateError> {
        if snapshot.max_parallelism() != self.max_parallelism {
            return Err(StateError::MaxParallelismMismatch { snapshot: snapshot.max_parallelism(), subtask: self.max_parallelism });
        }
        let key_group = snapshot.key_group();
        if !self.range.contains(key_group) {
            return Err(StateError::KeyGroupNotOwned { key_group, range: self.range });
        }
        // Check and decode everything before changing anything: a failed restore leaves the group
        // as it was.
        let mut decoded = Vec::new();
        let mut waiting = Vec::new();
        for state in snapshot.into_states() {
            match self.ids.get(&state.name) {
                Some(&id) => {
                    let registered = &self.states[id.index()];
                    state.check_restorable(&registered.name, registered.kind, registered.type_name, key_group)?;
                    let data = registered.table.decode_group(&state.data).map_err(|error| corrupt(&state.name, key_group, error))?;
                    decoded.push((id, self.restamp_ms(state.ttl, registered.ttl), data));
                }
                None => waiting.push((key_group, state)),
            }
        }
        for registered in &mut self.states {
            registered.table.clear_group(key_group);
        }
        self.pending.retain(|(group, _)| *group != key_group);
        self.pending.extend(waiting);
        for (id, restamp_ms, data) in decoded {
            self.states[id.index()].table.restore_group(key_group, data, restamp_ms);
        }
        self.changes.mark(key_group);
        Ok(())
    }
}

impl<K: Key> ChangeTracking for HeapStateBackend<K> {
    fn changed_key_groups(&self) -> Vec<usize> {
        self.changes.key_groups()
    }

    fn checkpoint_taken(&mut self) {
        self.changes.clear();
    }

    fn mark_changed(&mut self, key_groups: &[usize]) {
        for &key_group in key_groups {
            self.check_owned(key_group);
            self.changes.mark(key_group);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::HeapStateBackend;
    use crate::key_group::KeyGroupRange;
    use crate::state::ttl::Clock;

    fn heap_backend(range: KeyGroupRange, max_parallelism: usize, clock: Arc<dyn Clock>) -> HeapStateBackend<u64> {
        HeapStateBackend::with_clock(range, max_parallelism, clock)
    }

    crate::state::conformance::state_backend_conformance!(heap_backend);
}
