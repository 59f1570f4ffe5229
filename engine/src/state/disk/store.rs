//! The disk backend's store: one fjall keyspace with one partition in the subtask's working
//! directory, and the access paths every state kind shares, with TTL and the "no empty entry"
//! invariant kept in one place.
//!
//! [`Store::access_slot`] is the single read-modify-write path of value, list, reducing and
//! aggregating state, as `Slots::access` is in the heap backend: it reads the key's stored value,
//! drops it if expired, lends the rest as `&mut Option<T>` and writes back, stamps or removes
//! according to what the caller left and whether it was a write. Map state stores one entry per map
//! entry, so an emptied map simply has no entries. Every access of a state with TTL runs one
//! incremental cleanup step ([`CleanupCursor`]).
//!
//! Lock discipline: a fjall range iterator holds a read lock on its tree's levels until dropped,
//! and a flush waiting for the write lock blocks new readers, so one thread holding an iterator
//! and reading again could deadlock against a flush. Every scan here is therefore drained into a
//! `Vec` (or fully consumed without other store calls) before the next store call. A failure of
//! the store on the access path has no error to go to (the `StateBackend` accessors return
//! values): it panics naming the directory and the operation, which fails the task, and the job
//! restarts from its last checkpoint.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, Slice};
use rustc_hash::FxHashSet;

use super::layout::{self, StoreKey};
use super::state_codec::StoreEntries;
use crate::base::codec;
use crate::base::Key;
use crate::key_group::KeyGroupRange;
use crate::state::changes::KeyGroupChanges;
use crate::state::context::ScopedKey;
use crate::state::descriptor::StateValue;
use crate::state::ttl::{Clock, TtlPolicy};
use crate::state::StateError;

/// Block cache of one backend's store, in bytes (fjall's default).
pub const DISK_CACHE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024;
/// Threads that flush memtables of one backend's store: the store is a subtask's, beside the
/// subtask's own core.
pub const DISK_FLUSH_WORKERS: usize = 1;
/// Threads that compact one backend's store.
pub const DISK_COMPACTION_WORKERS: usize = 1;
/// Entries of one state's key group an incremental cleanup reads ahead in one scan.
pub const CLEANUP_READ_AHEAD_ENTRIES_MAX: usize = 256;

/// Name of the one partition holding every state.
const PARTITION: &str = "state";
/// What fjall puts in its directory: a directory holding anything else is not a store's, and is
/// not deleted.
const STORE_DIRECTORY_ENTRIES: [&str; 3] = ["version", "journals", "partitions"];

/// A registered state as the store sees it: its id in store keys, its TTL and its cleanup cursor.
pub(crate) struct StoredState {
    pub id: u32,
    pub ttl: Option<TtlPolicy>,
    pub cursor: CleanupCursor,
}

impl StoredState {
    pub fn new(id: u32, ttl: Option<TtlPolicy>) -> StoredState {
        StoredState { id, ttl, cursor: CleanupCursor::default() }
    }
}

/// Where incremental cleanup stands in one state: the key group it visits, the entries of that
/// group read ahead (store key and stamp, in key order), and where to read on. Keys are copied
/// out of the store's buffers, so the cursor pins no block of the store.
#[derive(Default)]
pub(crate) struct CleanupCursor {
    /// Index (from the range's start) of the group being visited; `None` before the first.
    group: Option<usize>,
    ahead: VecDeque<(Box<[u8]>, i64)>,
    /// The last key read ahead, when the group may hold more.
    resume_after: Option<Box<[u8]>>,
}

/// The fjall store of one backend, its clock and its changed key groups.
pub(crate) struct Store {
    keyspace: Keyspace,
    partition: PartitionHandle,
    directory: PathBuf,
    range: KeyGroupRange,
    pub clock: Arc<dyn Clock>,
    pub changes: KeyGroupChanges,
    /// Buffers of the store key and value being built, reused across accesses.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Store {
    /// A new, empty store in `directory`, replacing a store left there by an earlier run.
    pub fn open(directory: &Path, range: KeyGroupRange, clock: Arc<dyn Clock>) -> Result<Store, StateError> {
        prepare_directory(directory)?;
        let failed = |operation: &'static str| move |error: fjall::Error| storage_error(directory, operation, &error);
        let keyspace = fjall::Config::new(directory)
            // The directory is a working copy: state comes back through restores, not from it.
            .temporary(true)
            .manual_journal_persist(true)
            .flush_workers(DISK_FLUSH_WORKERS)
            .compaction_workers(DISK_COMPACTION_WORKERS)
            .cache_size(DISK_CACHE_BYTES_DEFAULT)
            .open()
            .map_err(failed("open the store"))?;
        let partition = keyspace
            .open_partition(PARTITION, PartitionCreateOptions::default().manual_journal_persist(true))
            .map_err(failed("open the store's partition"))?;
        Ok(Store {
            keyspace,
            partition,
            directory: directory.to_path_buf(),
            range,
            clock,
            changes: KeyGroupChanges::all_changed(range),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// A consistent view of the store as it is now, unaffected by later writes.
    pub fn snapshot(&self) -> fjall::Snapshot {
        self.partition.snapshot()
    }

    /// Writes the memtable out to a segment file and waits for it.
    #[cfg(test)]
    pub fn flush(&self) {
        self.partition.rotate_memtable_and_wait().unwrap_or_else(|error| self.failed("flush", &error));
    }

    // Raw operations. Each panics if the store fails (see the module documentation).

    fn get(&self, key: &[u8]) -> Option<Slice> {
        self.partition.get(key).unwrap_or_else(|error| self.failed("read", &error))
    }

    fn insert(&self, key: &[u8], value: &[u8]) {
        self.partition.insert(key, value).unwrap_or_else(|error| self.failed("write", &error));
    }

    fn remove(&self, key: &[u8]) {
        self.partition.remove(key).unwrap_or_else(|error| self.failed("remove", &error));
    }

    /// Every stored entry under `prefix`, drained.
    fn scan(&self, prefix: &[u8]) -> Vec<(Slice, Slice)> {
        self.partition.prefix(prefix).collect::<Result<_, _>>().unwrap_or_else(|error| self.failed("scan", &error))
    }

    /// Writes `value` stamped at `stamp_ms` under the store key in `key_buf`.
    fn put_current<T: StateValue>(&mut self, stamp_ms: i64, value: &T) {
        if let Err(error) = layout::write_value(&mut self.value_buf, stamp_ms, value) {
            panic!("a value of state in {} does not encode: {error}", self.directory.display());
        }
        self.insert(&self.key_buf, &self.value_buf);
    }

    fn write_key<K: Key>(&mut self, state: u32, key: ScopedKey<'_, K>) {
        if let Err(error) = layout::write_key(&mut self.key_buf, key.key_group(), state, key.key()) {
            panic!("a key of state in {} does not encode: {error}", self.directory.display());
        }
    }

    fn write_map_key<K: Key, UK: Key>(&mut self, state: u32, key: ScopedKey<'_, K>, user_key: &UK) {
        self.write_key(state, key);
        if let Err(error) = layout::append_user_key(&mut self.key_buf, user_key) {
            panic!("a map key of state in {} does not encode: {error}", self.directory.display());
        }
    }

    /// The time now and the state's TTL, if it has one.
    #[inline]
    fn ttl_now(&self, state: &StoredState) -> Option<(TtlPolicy, i64)> {
        state.ttl.map(|policy| (policy, self.clock.now_ms()))
    }

    // Typed access.

    /// Runs `f` on the key's value (`None` if absent or expired) and keeps what it leaves: `None`
    /// removes the key; a value is stored and stamped when created, when `write`, or restamped on
    /// a read if the TTL is refreshed by reads. With TTL the access also runs a cleanup step.
    pub fn access_slot<K: Key, T: StateValue, R>(
        &mut self,
        state: &mut StoredState,
        key: ScopedKey<'_, K>,
        write: bool,
        f: impl FnOnce(&mut Option<T>) -> R,
    ) -> R {
        let ttl = self.ttl_now(state);
        self.write_key(state.id, key);
        let stored = self.get(&self.key_buf);
        let mut slot = None;
        if let Some(bytes) = &stored {
            let (stamp_ms, encoded) = self.split_stored(bytes);
            if !ttl.is_some_and(|(policy, now_ms)| policy.is_expired(stamp_ms, now_ms)) {
                slot = Some(self.decode_stored::<T>(encoded));
            }
        }
        let live = slot.is_some();
        let result = f(&mut slot);
        match slot {
            None if stored.is_some() => {
                self.remove(&self.key_buf);
                // Dropping an expired value changes nothing a checkpoint would restore (`changes`).
                if live {
                    self.changes.mark(key.key_group());
                }
            }
            None => {}
            Some(value) if write || !live => {
                self.put_current(ttl.map_or(0, |(_, now_ms)| now_ms), &value);
                self.changes.mark(key.key_group());
            }
            Some(_) => {
                if let (Some((policy, now_ms)), Some(bytes)) = (ttl, &stored) {
                    if policy.refresh_on_read {
                        self.insert(&self.key_buf, &layout::restamp(bytes, now_ms));
                        self.changes.mark(key.key_group());
                    }
                }
            }
        }
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
        result
    }

    /// Sets the key's value without reading the old one.
    pub fn put_slot<K: Key, T: StateValue>(&mut self, state: &mut StoredState, key: ScopedKey<'_, K>, value: &T) {
        let ttl = self.ttl_now(state);
        self.write_key(state.id, key);
        self.put_current(ttl.map_or(0, |(_, now_ms)| now_ms), value);
        self.changes.mark(key.key_group());
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the key's value.
    pub fn remove_slot<K: Key>(&mut self, state: &StoredState, key: ScopedKey<'_, K>) {
        self.write_key(state.id, key);
        self.remove(&self.key_buf);
        self.changes.mark(key.key_group());
    }

    /// Runs `read` on the entry of `user_key` in the key's map, dropping it first if it expired.
    pub fn map_read<K: Key, UK: Key, UV: StateValue, R>(
        &mut self,
        state: &mut StoredState,
        key: ScopedKey<'_, K>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R {
        let ttl = self.ttl_now(state);
        self.write_map_key(state.id, key, user_key);
        let result = match self.get(&self.key_buf) {
            None => read(None),
            Some(bytes) => {
                let (stamp_ms, encoded) = self.split_stored(&bytes);
                match ttl {
                    Some((policy, now_ms)) if policy.is_expired(stamp_ms, now_ms) => {
                        self.remove(&self.key_buf);
                        read(None)
                    }
                    _ => {
                        if let Some((TtlPolicy { refresh_on_read: true, .. }, now_ms)) = ttl {
                            self.insert(&self.key_buf, &layout::restamp(&bytes, now_ms));
                            self.changes.mark(key.key_group());
                        }
                        read(Some(&self.decode_stored::<UV>(encoded)))
                    }
                }
            }
        };
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
        result
    }

    /// Sets the entry of `user_key` in the key's map, stamped now.
    pub fn map_put<K: Key, UK: Key, UV: StateValue>(&mut self, state: &mut StoredState, key: ScopedKey<'_, K>, user_key: &UK, value: &UV) {
        let ttl = self.ttl_now(state);
        self.write_map_key(state.id, key, user_key);
        self.put_current(ttl.map_or(0, |(_, now_ms)| now_ms), value);
        self.changes.mark(key.key_group());
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the entry of `user_key` from the key's map.
    pub fn map_remove<K: Key, UK: Key>(&mut self, state: &mut StoredState, key: ScopedKey<'_, K>, user_key: &UK) {
        self.write_map_key(state.id, key, user_key);
        self.remove(&self.key_buf);
        self.changes.mark(key.key_group());
        if let Some((policy, now_ms)) = self.ttl_now(state) {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Calls `visit` with every live entry of the key's map, after dropping expired ones (and
    /// restamping the rest, if reads refresh the TTL).
    pub fn map_for_each<K: Key, UK: Key, UV: StateValue>(
        &mut self,
        state: &mut StoredState,
        key: ScopedKey<'_, K>,
        mut visit: impl FnMut(&UK, &UV),
    ) {
        let ttl = self.ttl_now(state);
        self.write_key(state.id, key);
        for (store_key, bytes) in self.scan(&self.key_buf) {
            let (stamp_ms, encoded) = self.split_stored(&bytes);
            if let Some((policy, now_ms)) = ttl {
                if policy.is_expired(stamp_ms, now_ms) {
                    self.remove(&store_key);
                    continue;
                }
                if policy.refresh_on_read {
                    self.insert(&store_key, &layout::restamp(&bytes, now_ms));
                    self.changes.mark(key.key_group());
                }
            }
            let Some(parsed) = StoreKey::parse(&store_key) else { self.corrupt("a map entry's key is malformed") };
            visit(&self.decode_stored::<UK>(parsed.user_key), &self.decode_stored::<UV>(encoded));
        }
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the key's whole map.
    pub fn clear_map<K: Key>(&mut self, state: &StoredState, key: ScopedKey<'_, K>) {
        self.write_key(state.id, key);
        for (store_key, _) in self.scan(&self.key_buf) {
            self.remove(&store_key);
        }
        self.changes.mark(key.key_group());
    }

    // Whole key groups.

    /// The encodings of every key with an entry in `key_group`, once each.
    pub fn keys(&self, key_group: usize) -> Vec<Vec<u8>> {
        let mut keys = FxHashSet::default();
        for entry in self.partition.prefix(layout::group_prefix(key_group)) {
            let (store_key, _) = entry.unwrap_or_else(|error| self.failed("scan", &error));
            let Some(parsed) = StoreKey::parse(&store_key) else { self.corrupt("a key is malformed") };
            if !keys.contains(parsed.key) {
                keys.insert(parsed.key.to_vec());
            }
        }
        keys.into_iter().collect()
    }

    /// Removes every entry of the state in `key_group` that has expired at `now_ms`; returns how
    /// many.
    pub fn cleanup_expired(&mut self, state: &StoredState, key_group: usize, now_ms: i64) -> usize {
        let Some(policy) = state.ttl else { return 0 };
        let expired: Vec<Slice> = self
            .scan(&layout::state_prefix(key_group, state.id))
            .into_iter()
            .filter(|(_, bytes)| policy.is_expired(self.split_stored(bytes).0, now_ms))
            .map(|(store_key, _)| store_key)
            .collect();
        for store_key in &expired {
            self.remove(store_key);
        }
        expired.len()
    }

    /// Replaces every entry of `key_group` with `entries`.
    pub fn replace_group(&mut self, key_group: usize, entries: StoreEntries) -> Result<(), StateError> {
        let directory = self.directory.as_path();
        let failed = |operation| move |error: fjall::Error| storage_error(directory, operation, &error);
        let old: Vec<Slice> = self
            .partition
            .prefix(layout::group_prefix(key_group))
            .map(|entry| entry.map(|(key, _)| key))
            .collect::<Result<_, _>>()
            .map_err(failed("read the key group to replace"))?;
        // Removals first, in their own batch: a key removed and written again in one batch would
        // carry one sequence number twice.
        let mut removals = self.keyspace.batch();
        for key in old {
            removals.remove(&self.partition, key);
        }
        removals.commit().map_err(failed("clear the key group"))?;
        self.insert_entries(entries)
    }

    /// Writes `entries` in one batch.
    pub fn insert_entries(&mut self, entries: StoreEntries) -> Result<(), StateError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch = self.keyspace.batch();
        for (key, value) in entries {
            assert!(key.len() <= layout::STORE_KEY_BYTES_MAX, "store keys are checked when encoded");
            batch.insert(&self.partition, key, value);
        }
        batch.commit().map_err(|error| storage_error(&self.directory, "write restored entries", &error))
    }

    // Incremental cleanup.

    /// One incremental cleanup step of `state` at `now_ms`: visits its next `cleanup_entries_per_step`
    /// entries, going round the key groups, and removes the expired ones; reading ahead, and
    /// entering a group, count as steps, so a step over empty groups ends too. Returns how many it
    /// removed.
    pub fn cleanup_step(&mut self, state: &mut StoredState, policy: TtlPolicy, now_ms: i64) -> usize {
        let mut removed = 0;
        for _ in 0..policy.cleanup_entries_per_step {
            let cursor = &mut state.cursor;
            if let Some((store_key, stamp_ms)) = cursor.ahead.pop_front() {
                // Read ahead earlier: the entry may have been rewritten or removed since, so an
                // entry that looked expired is read again before it goes.
                if policy.is_expired(stamp_ms, now_ms) {
                    if let Some(bytes) = self.get(&store_key) {
                        if policy.is_expired(self.split_stored(&bytes).0, now_ms) {
                            self.remove(&store_key);
                            removed += 1;
                        }
                    }
                }
                continue;
            }
            if self.range.is_empty() {
                break;
            }
            let start = match cursor.resume_after.take() {
                Some(after) => Bound::Excluded(after.into_vec()),
                None => {
                    let next = cursor.group.map_or(0, |group| (group + 1) % self.range.len());
                    cursor.group = Some(next);
                    Bound::Included(layout::state_prefix(self.range.start + next, state.id).to_vec())
                }
            };
            let group = self.range.start + cursor.group.expect("set when the group was entered");
            let end = Bound::Excluded(layout::state_prefix_end(group, state.id).to_vec());
            for entry in self.partition.range((start, end)).take(CLEANUP_READ_AHEAD_ENTRIES_MAX) {
                let (store_key, bytes) = entry.unwrap_or_else(|error| self.failed("scan", &error));
                let stamp_ms = self.split_stored(&bytes).0;
                cursor.ahead.push_back((Box::from(&*store_key), stamp_ms));
            }
            if cursor.ahead.len() == CLEANUP_READ_AHEAD_ENTRIES_MAX {
                cursor.resume_after = cursor.ahead.back().map(|(store_key, _)| store_key.clone());
            }
        }
        removed
    }

    // Failures.

    fn split_stored<'b>(&self, bytes: &'b [u8]) -> (i64, &'b [u8]) {
        layout::split_value(bytes).unwrap_or_else(|| self.corrupt("a stored value is shorter than its stamp"))
    }

    fn decode_stored<T: crate::base::Codec>(&self, bytes: &[u8]) -> T {
        codec::decode(bytes).unwrap_or_else(|error| self.corrupt(&error.to_string()))
    }

    #[cold]
    #[inline(never)]
    fn failed(&self, operation: &str, error: &fjall::Error) -> ! {
        panic!("state store in {} failed to {operation}: {error}", self.directory.display())
    }

    #[cold]
    #[inline(never)]
    fn corrupt(&self, reason: &str) -> ! {
        panic!("state store in {} holds data it cannot read back: {reason}", self.directory.display())
    }
}

/// A store failure as a [`StateError`].
pub(crate) fn storage_error(directory: &Path, operation: &'static str, error: &dyn std::fmt::Display) -> StateError {
    StateError::Storage { directory: directory.to_path_buf(), operation, reason: error.to_string() }
}

/// Leaves `directory` existing and empty: deletes a store an earlier run left there, and refuses
/// a directory holding anything else (a wrong path must never cost someone their files).
fn prepare_directory(directory: &Path) -> Result<(), StateError> {
    match std::fs::read_dir(directory) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(storage_error(directory, "read the working directory", &error)),
        Ok(entries) => {
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|error| storage_error(directory, "read the working directory", &error))?;
                names.push(entry.file_name());
            }
            if let Some(foreign) = names.iter().find(|name| !STORE_DIRECTORY_ENTRIES.iter().any(|expected| *name == *expected)) {
                let reason = format!("it holds {foreign:?}, which is not part of a state store; the backend deletes only its own stores");
                return Err(StateError::Storage { directory: directory.to_path_buf(), operation: "clear the working directory", reason });
            }
            if !names.is_empty() {
                std::fs::remove_dir_all(directory).map_err(|error| storage_error(directory, "delete the previous store", &error))?;
            }
        }
    }
    std::fs::create_dir_all(directory).map_err(|error| storage_error(directory, "create the working directory", &error))
}
