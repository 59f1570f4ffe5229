//! The heap backend's tables: one per registered state, one hash map per owned key group.
//!
//! [`Slots`] is the storage of value, list, reducing and aggregating states: per key group, key ->
//! stamped value. Its single access path, [`Slots::access`], drops an expired value, lends the rest
//! as `&mut Option<T>`, and stores, stamps or removes according to what the caller left; so every
//! kind gets TTL and the "no empty entry" invariant in one place, in one lookup. [`MapTable`] nests
//! a map per key and stamps each entry, as Flink's TTL does for map state.
//!
//! Tables are reached through the object-safe [`ErasedTable`] (what the backend does to all
//! states alike: clear a key, list keys, clean up, snapshot and restore a group) and downcast to
//! their concrete type for typed access. Snapshot data is a `Vec` of entries encoded with the
//! engine's codec, independent of the table's function types, so a reducing state restores
//! whatever reduce function is registered, and any backend can read what another wrote.
//!
//! A table with TTL also cleans up incrementally (Flink's heap `cleanupIncrementally`): every
//! access, and [`ErasedTable::cleanup_step`], visits the next few keys of a [`CleanupCursor`] that
//! goes round the key groups, and drops expired values. The cursor holds a copy of the keys of the
//! group it is in, taken on entering it (one clone per key per round, so the cost per visited key
//! stays constant); a copied key that left or was rewritten since is simply looked up again, so
//! the cursor never needs to follow changes to the maps.

use std::any::Any;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::base::codec::{self, CodecError};
use crate::base::{AggregateFunction, Key};
use crate::key_group::KeyGroupRange;
use crate::state::backend::Aggregator;
use crate::state::backend::{MapEntries, SlotEntries};
use crate::state::context::ScopedKey;
use crate::state::cow::CowGroups;
use crate::state::descriptor::StateValue;
use crate::state::ttl::{Clock, TtlPolicy, TtlValue};

/// What the backend does to every state alike, whatever its kind and types.
pub(crate) trait ErasedTable<K>: Send {
    /// The table as `Any`, to downcast for typed access.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Removes the key's entry.
    fn clear_key(&mut self, key: ScopedKey<'_, K>);
    /// Adds every key with an entry in `key_group` to `keys`.
    fn collect_keys(&self, key_group: usize, keys: &mut FxHashSet<K>);
    /// Removes expired values (map entries) of `key_group`; returns how many.
    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize;
    /// One incremental cleanup step at `now_ms`: visits the next few keys (the TTL's step size)
    /// and removes their expired values; returns how many. Nothing without TTL.
    fn cleanup_step(&mut self, now_ms: i64) -> usize;
    /// Removes every entry of `key_group`.
    fn clear_group(&mut self, key_group: usize);
    /// `key_group`'s entries as they are now, encoded when the returned closure runs (on any
    /// thread, while the table goes on changing): taking it is constant time (see `CowGroups`).
    fn snapshot_group(&self, key_group: usize) -> DeferredGroupData;
    /// Decodes entries `snapshot_group` encoded (in this or another backend), for `restore_group`.
    fn decode_group(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError>;
    /// Replaces `key_group`'s entries with `data` (from `decode_group`); with `restamp_ms`, every
    /// value is stamped anew at that time.
    fn restore_group(&mut self, key_group: usize, data: Box<dyn Any + Send>, restamp_ms: Option<i64>);
}

/// One state's entries of one key group, to encode later.
pub(crate) type DeferredGroupData = Box<dyn FnOnce() -> Result<GroupData, CodecError> + Send>;

/// One state's entries of one key group, encoded.
pub(crate) struct GroupData {
    pub entries: usize,
    pub bytes: Vec<u8>,
}

impl GroupData {
    fn new<T: crate::base::Codec>(entries: usize, data: &T) -> Result<GroupData, CodecError> {
        Ok(GroupData { entries, bytes: codec::encode(data)? })
    }
}

/// Decodes snapshot data of type `T`, boxed for `restore_group`.
fn decode_boxed<T: crate::base::Codec>(bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
    Ok(Box::new(codec::decode::<T>(bytes)?))
}

/// Where incremental cleanup stands in one table: the key group it visits and the keys of that
/// group still to visit (copied on entering the group).
pub(crate) struct CleanupCursor<K> {
    /// Index (from the range's start) of the group `keys` came from.
    group: usize,
    keys: Vec<K>,
}

impl<K: Key> CleanupCursor<K> {
    fn new() -> CleanupCursor<K> {
        CleanupCursor { group: usize::MAX, keys: Vec::new() }
    }

    /// Visits up to `steps` keys of `groups`, going round them, and removes each whose entry
    /// `expire` says is empty after dropping its expired parts; returns what `expire` removed.
    /// Entering a group counts as a step, so a step over empty groups ends too.
    fn step<V: Clone>(&mut self, groups: &mut CowGroups<K, V>, steps: usize, mut expire: impl FnMut(&mut V) -> (usize, bool)) -> usize {
        let mut removed = 0;
        for _ in 0..steps {
            let Some(key) = self.keys.pop() else {
                if groups.len() == 0 {
                    break;
                }
                self.group = self.group.wrapping_add(1) % groups.len();
                self.keys.extend(groups.get(self.group).keys().cloned());
                continue;
            };
            let map = groups.get_mut(self.group);
            if let Some(entry) = map.get_mut(&key) {
                let (dropped, emptied) = expire(entry);
                removed += dropped;
                if emptied {
                    map.remove(&key);
                }
            }
        }
        removed
    }
}

/// Per key group, key -> stamped value. A stored `Option` is always `Some`: `access` removes a key
/// whose value it leaves `None`, so "no value" and "no entry" are the same thing.
pub(crate) struct Slots<K, T> {
    start: usize,
    groups: CowGroups<K, TtlValue<Option<T>>>,
    ttl: Option<TtlPolicy>,
    cursor: CleanupCursor<K>,
}

impl<K: Key, T: StateValue> Slots<K, T> {
    fn new(range: KeyGroupRange, ttl: Option<TtlPolicy>) -> Slots<K, T> {
        Slots { start: range.start, groups: CowGroups::new(range.len(), 0), ttl, cursor: CleanupCursor::new() }
    }

    /// One incremental cleanup step with `policy` at `now_ms`.
    fn cleanup_with(&mut self, policy: TtlPolicy, now_ms: i64) -> usize {
        self.cursor.step(&mut self.groups, policy.cleanup_entries_per_step, |slot| {
            let expired = policy.is_expired(slot.stamp_ms, now_ms);
            (usize::from(expired), expired)
        })
    }

    /// Runs `f` on the key's value (`None` if absent or expired) and keeps what it leaves: `None`
    /// removes the key; a value is stamped when created, when `write`, or on read if the TTL is
    /// refreshed by reads. The clock is read only if the state has a TTL; then the access also
    /// runs an incremental cleanup step.
    #[inline]
    pub fn access<R>(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock, write: bool, f: impl FnOnce(&mut Option<T>) -> R) -> R {
        let Some(policy) = self.ttl else {
            return self.access_at(key, None, write, f);
        };
        let now_ms = clock.now_ms();
        let result = self.access_at(key, Some((policy, now_ms)), write, f);
        self.cleanup_with(policy, now_ms);
        result
    }

    /// `access` with the TTL and the time already read.
    #[inline]
    fn access_at<R>(
        &mut self,
        key: ScopedKey<'_, K>,
        ttl: Option<(TtlPolicy, i64)>,
        write: bool,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> R {
        let map = self.groups.get_mut(key.key_group() - self.start);
        if let Some(slot) = map.get_mut(key.key()) {
            let mut created = false;
            if let Some((policy, now_ms)) = ttl {
                if policy.is_expired(slot.stamp_ms, now_ms) {
                    slot.value = None;
                    created = true;
                }
            }
            let result = f(&mut slot.value);
            if slot.value.is_none() {
                map.remove(key.key());
            } else if let Some((policy, now_ms)) = ttl {
                if created || write || policy.refresh_on_read {
                    slot.stamp_ms = now_ms;
                }
            }
            return result;
        }
        let mut value = None;
        let result = f(&mut value);
        if value.is_some() {
            let stamp_ms = ttl.map_or(0, |(_, now_ms)| now_ms);
            map.insert(key.key().clone(), TtlValue::new(value, stamp_ms));
        }
        result
    }

    fn group(&self, key_group: usize) -> &FxHashMap<K, TtlValue<Option<T>>> {
        self.groups.get(key_group - self.start)
    }

    fn group_mut(&mut self, key_group: usize) -> &mut FxHashMap<K, TtlValue<Option<T>>> {
        self.groups.get_mut(key_group - self.start)
    }
}

impl<K: Key, T: StateValue> ErasedTable<K> for Slots<K, T> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clear_key(&mut self, key: ScopedKey<'_, K>) {
        self.group_mut(key.key_group()).remove(key.key());
    }

    fn collect_keys(&self, key_group: usize, keys: &mut FxHashSet<K>) {
        keys.extend(self.group(key_group).keys().cloned());
    }

    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
        let Some(policy) = self.ttl else { return 0 };
        let map = self.group_mut(key_group);
        let before = map.len();
        map.retain(|_, slot| !policy.is_expired(slot.stamp_ms, now_ms));
        before - map.len()
    }

    fn cleanup_step(&mut self, now_ms: i64) -> usize {
        match self.ttl {
            Some(policy) => self.cleanup_with(policy, now_ms),
            None => 0,
        }
    }

    fn clear_group(&mut self, key_group: usize) {
        self.group_mut(key_group).clear();
    }

    fn snapshot_group(&self, key_group: usize) -> DeferredGroupData {
        let group = self.groups.share(key_group - self.start);
        Box::new(move || {
            let entries: SlotEntries<K, T> = group
                .iter()
                .filter_map(|(key, slot)| slot.value.as_ref().map(|value| (key.clone(), TtlValue::new(value.clone(), slot.stamp_ms))))
                .collect();
            GroupData::new(entries.len(), &entries)
        })
    }

    fn decode_group(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        decode_boxed::<SlotEntries<K, T>>(bytes)
    }

    fn restore_group(&mut self, key_group: usize, data: Box<dyn Any + Send>, restamp_ms: Option<i64>) {
        let entries = *data.downcast::<SlotEntries<K, T>>().expect("decode_group made it");
        let map = self.group_mut(key_group);
        map.clear();
        map.reserve(entries.len());
        for (key, value) in entries {
            map.insert(key, TtlValue::new(Some(value.value), restamp_ms.unwrap_or(value.stamp_ms)));
        }
    }
}

/// Value, list, reducing or aggregating storage with the state's function (`()` if none).
pub(crate) struct KeyedTable<K, T, F = ()> {
    pub slots: Slots<K, T>,
    pub function: F,
}

impl<K: Key, T: StateValue, F> KeyedTable<K, T, F> {
    pub fn new(range: KeyGroupRange, ttl: Option<TtlPolicy>, function: F) -> KeyedTable<K, T, F> {
        KeyedTable { slots: Slots::new(range, ttl), function }
    }
}

macro_rules! delegate_erased_table {
    ($field:ident) => {
        fn clear_key(&mut self, key: ScopedKey<'_, K>) {
            self.$field.clear_key(key)
        }

        fn collect_keys(&self, key_group: usize, keys: &mut FxHashSet<K>) {
            self.$field.collect_keys(key_group, keys)
        }

        fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
            self.$field.cleanup_expired(key_group, now_ms)
        }

        fn cleanup_step(&mut self, now_ms: i64) -> usize {
            self.$field.cleanup_step(now_ms)
        }

        fn clear_group(&mut self, key_group: usize) {
            self.$field.clear_group(key_group)
        }

        fn snapshot_group(&self, key_group: usize) -> DeferredGroupData {
            self.$field.snapshot_group(key_group)
        }

        fn decode_group(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
            self.$field.decode_group(bytes)
        }

        fn restore_group(&mut self, key_group: usize, data: Box<dyn Any + Send>, restamp_ms: Option<i64>) {
            self.$field.restore_group(key_group, data, restamp_ms)
        }
    };
}

impl<K: Key, T: StateValue, F: Send + 'static> ErasedTable<K> for KeyedTable<K, T, F> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    delegate_erased_table!(slots);
}

/// An aggregating state, typed by what goes in and comes out; the accumulator type hides behind
/// one virtual call per access, as Flink's `AggregatingState<IN, OUT>` hides it.
pub(crate) struct AggregatingTable<K, In, Out> {
    pub inner: Box<dyn AggregatingOps<K, In, Out>>,
}

/// An aggregating state's typed operations.
pub(crate) trait AggregatingOps<K, In, Out>: ErasedTable<K> {
    fn add(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock, value: In);
    fn get(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock) -> Option<Out>;
}

impl<K, In, Acc, Out, A> AggregatingOps<K, In, Out> for KeyedTable<K, Acc, Aggregator<A, In, Out>>
where
    K: Key,
    In: 'static,
    Acc: StateValue,
    Out: 'static,
    A: AggregateFunction<In, Acc, Out>,
{
    fn add(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock, value: In) {
        let function = &self.function.function;
        self.slots.access(key, clock, true, |slot| function.add(slot.get_or_insert_with(|| function.create_accumulator()), value));
    }

    fn get(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock) -> Option<Out> {
        let function = &self.function.function;
        self.slots.access(key, clock, false, |slot| slot.as_ref().map(|accumulator| function.get_result(accumulator)))
    }
}

impl<K: Key, In: 'static, Out: 'static> ErasedTable<K> for AggregatingTable<K, In, Out> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    delegate_erased_table!(inner);
}

/// Per key group, key -> (user key -> stamped value). A key's map is never empty: removing or
/// expiring its last entry removes the key.
pub(crate) struct MapTable<K, UK, UV> {
    start: usize,
    groups: CowGroups<K, FxHashMap<UK, TtlValue<UV>>>,
    ttl: Option<TtlPolicy>,
    cursor: CleanupCursor<K>,
}

impl<K: Key, UK: Key, UV: StateValue> MapTable<K, UK, UV> {
    pub fn new(range: KeyGroupRange, ttl: Option<TtlPolicy>) -> MapTable<K, UK, UV> {
        MapTable { start: range.start, groups: CowGroups::new(range.len(), 0), ttl, cursor: CleanupCursor::new() }
    }

    /// One incremental cleanup step at `now_ms`, if the state has a TTL: a visited key loses its
    /// expired entries, and the key goes if none is left.
    fn cleanup_at(&mut self, now_ms: i64) -> usize {
        let Some(policy) = self.ttl else { return 0 };
        self.cursor.step(&mut self.groups, policy.cleanup_entries_per_step, |entries| {
            let before = entries.len();
            entries.retain(|_, entry| !policy.is_expired(entry.stamp_ms, now_ms));
            (before - entries.len(), entries.is_empty())
        })
    }

    /// One incremental cleanup step, reading the clock, if the state has a TTL.
    #[inline]
    fn cleanup_now(&mut self, clock: &dyn Clock) {
        if self.ttl.is_some() {
            self.cleanup_at(clock.now_ms());
        }
    }

    /// Runs `read` on the entry of `user_key`, dropping it first if it expired.
    pub fn read<R>(&mut self, key: ScopedKey<'_, K>, user_key: &UK, clock: &dyn Clock, read: impl FnOnce(Option<&UV>) -> R) -> R {
        let result = self.read_entry(key, user_key, clock, read);
        self.cleanup_now(clock);
        result
    }

    /// `read` without the cleanup step.
    fn read_entry<R>(&mut self, key: ScopedKey<'_, K>, user_key: &UK, clock: &dyn Clock, read: impl FnOnce(Option<&UV>) -> R) -> R {
        let ttl = self.ttl;
        let map = self.groups.get_mut(key.key_group() - self.start);
        let Some(entries) = map.get_mut(key.key()) else { return read(None) };
        let Some(entry) = entries.get_mut(user_key) else { return read(None) };
        if let Some(policy) = ttl {
            let now_ms = clock.now_ms();
            if policy.is_expired(entry.stamp_ms, now_ms) {
                entries.remove(user_key);
                if entries.is_empty() {
                    map.remove(key.key());
                }
                return read(None);
            }
            if policy.refresh_on_read {
                entry.stamp_ms = now_ms;
            }
        }
        read(Some(&entry.value))
    }

    /// Sets the entry of `user_key`, stamped now.
    pub fn put(&mut self, key: ScopedKey<'_, K>, user_key: UK, value: UV, clock: &dyn Clock) {
        let stamp_ms = if self.ttl.is_some() { clock.now_ms() } else { 0 };
        let map = self.groups.get_mut(key.key_group() - self.start);
        let entry = TtlValue::new(value, stamp_ms);
        match map.get_mut(key.key()) {
            Some(entries) => {
                entries.insert(user_key, entry);
            }
            None => {
                let mut entries = FxHashMap::default();
                entries.insert(user_key, entry);
                map.insert(key.key().clone(), entries);
            }
        }
        if self.ttl.is_some() {
            // The stamp is the time now.
            self.cleanup_at(stamp_ms);
        }
    }

    /// Removes the entry of `user_key`.
    pub fn remove(&mut self, key: ScopedKey<'_, K>, user_key: &UK, clock: &dyn Clock) {
        let map = self.groups.get_mut(key.key_group() - self.start);
        if let Some(entries) = map.get_mut(key.key()) {
            entries.remove(user_key);
            if entries.is_empty() {
                map.remove(key.key());
            }
        }
        self.cleanup_now(clock);
    }

    /// Calls `visit` with every live entry, after dropping expired ones.
    pub fn for_each(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock, visit: impl FnMut(&UK, &UV)) {
        self.for_each_entry(key, clock, visit);
        self.cleanup_now(clock);
    }

    /// `for_each` without the cleanup step.
    fn for_each_entry(&mut self, key: ScopedKey<'_, K>, clock: &dyn Clock, mut visit: impl FnMut(&UK, &UV)) {
        let ttl = self.ttl;
        let map = self.groups.get_mut(key.key_group() - self.start);
        let Some(entries) = map.get_mut(key.key()) else { return };
        if let Some(policy) = ttl {
            let now_ms = clock.now_ms();
            entries.retain(|_, entry| !policy.is_expired(entry.stamp_ms, now_ms));
            if entries.is_empty() {
                map.remove(key.key());
                return;
            }
            if policy.refresh_on_read {
                entries.values_mut().for_each(|entry| entry.stamp_ms = now_ms);
            }
        }
        for (user_key, entry) in entries.iter() {
            visit(user_key, &entry.value);
        }
    }

    fn group(&self, key_group: usize) -> &FxHashMap<K, FxHashMap<UK, TtlValue<UV>>> {
        self.groups.get(key_group - self.start)
    }

    fn group_mut(&mut self, key_group: usize) -> &mut FxHashMap<K, FxHashMap<UK, TtlValue<UV>>> {
        self.groups.get_mut(key_group - self.start)
    }
}

impl<K: Key, UK: Key, UV: StateValue> ErasedTable<K> for MapTable<K, UK, UV> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clear_key(&mut self, key: ScopedKey<'_, K>) {
        self.group_mut(key.key_group()).remove(key.key());
    }

    fn collect_keys(&self, key_group: usize, keys: &mut FxHashSet<K>) {
        keys.extend(self.group(key_group).keys().cloned());
    }

    fn cleanup_expired(&mut self, key_group: usize, now_ms: i64) -> usize {
        let Some(policy) = self.ttl else { return 0 };
        let mut removed = 0;
        self.group_mut(key_group).retain(|_, entries| {
            let before = entries.len();
            entries.retain(|_, entry| !policy.is_expired(entry.stamp_ms, now_ms));
            removed += before - entries.len();
            !entries.is_empty()
        });
        removed
    }

    fn cleanup_step(&mut self, now_ms: i64) -> usize {
        self.cleanup_at(now_ms)
    }

    fn clear_group(&mut self, key_group: usize) {
        self.group_mut(key_group).clear();
    }

    fn snapshot_group(&self, key_group: usize) -> DeferredGroupData {
        let group = self.groups.share(key_group - self.start);
        Box::new(move || {
            let entries: MapEntries<K, UK, UV> =
                group.iter().map(|(key, entries)| (key.clone(), entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect())).collect();
            GroupData::new(group.values().map(FxHashMap::len).sum(), &entries)
        })
    }

    fn decode_group(&self, bytes: &[u8]) -> Result<Box<dyn Any + Send>, CodecError> {
        decode_boxed::<MapEntries<K, UK, UV>>(bytes)
    }

    fn restore_group(&mut self, key_group: usize, data: Box<dyn Any + Send>, restamp_ms: Option<i64>) {
        let restored = *data.downcast::<MapEntries<K, UK, UV>>().expect("decode_group made it");
        let map = self.group_mut(key_group);
        map.clear();
        for (key, entries) in restored {
            if entries.is_empty() {
                continue;
            }
            let entries = entries
                .into_iter()
                .map(|(user_key, entry)| (user_key, TtlValue::new(entry.value, restamp_ms.unwrap_or(entry.stamp_ms))))
                .collect();
            map.insert(key, entries);
        }
    }
}
