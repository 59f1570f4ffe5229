//! The disk backend's store: one fjall keyspace with one partition in the subtask's working
//! directory, a write-back cache of recently used entries in front of it, and the access paths
//! every state kind shares, with TTL and the "no empty entry" invariant kept in one place.
//!
//! [`Store::access_slot`] is the single read-modify-write path of value, list, reducing and
//! aggregating state, as `Slots::access` is in the heap backend: it reads the key's stored value,
//! drops it if expired, lends the rest as `&mut Option<T>` and writes back, stamps or removes
//! according to what the caller left and whether it was a write. Map state stores one entry per map
//! entry, so an emptied map simply has no entries. Every access of a state with TTL runs one
//! incremental cleanup step ([`CleanupCursor`]).
//!
//! Point reads and writes go through the [`ValueCache`] (its invariant is in `cache`): a key read
//! or written again is served from memory, and its writes reach fjall when it is evicted or written
//! back. Everything that reads fjall otherwise than by key (scans, `keys`, snapshots, the cleanup
//! cursor) writes the cache back first, and everything that writes fjall other than by key (a
//! restore) empties it first, so fjall alone is the truth for them. The memory budget
//! (`cache_bytes`) is divided between that cache, fjall's block cache and its memtable
//! ([`StoreMemory`]).
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
use std::sync::{Arc, Mutex, PoisonError};

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, Slice};
use rkyv::util::AlignedVec;
use rustc_hash::FxHashSet;

use super::cache::ValueCache;
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

/// Memory one backend's store keeps state in, in bytes, unless configured otherwise
/// (`StateBackendConfig::Disk::cache_bytes`): 48 MiB of recently used entries, and fjall as
/// configured before the entries were cached, a 16 MiB memtable and a 32 MiB block cache (state far
/// larger than the entries' share is read from blocks: a smaller block cache would make it slower
/// than it was). See [`StoreMemory`] for the division.
pub const DISK_CACHE_BYTES_DEFAULT: u64 = 96 * 1024 * 1024;
/// Least memory a job's configuration may give a disk backend (`EngineConfig::validate`).
pub const DISK_CACHE_BYTES_MIN: u64 = 1024 * 1024;
/// Most memory a job's configuration may give one disk backend (`EngineConfig::validate`).
pub const DISK_CACHE_BYTES_MAX: u64 = 1024 * 1024 * 1024 * 1024;
/// Smallest memtable a store gets, whatever its budget: a smaller one would be written out to a
/// new segment file every few hundred writes.
pub const DISK_MEMTABLE_BYTES_MIN: u32 = 64 * 1024;
/// Largest memtable a store gets: fjall's default. fjall holds writes back while its write buffer
/// (the memtables not yet flushed, 64 MiB) is full; at a quarter of it, four memtables can wait
/// for the flush worker before writes do.
pub const DISK_MEMTABLE_BYTES_MAX: u32 = 16 * 1024 * 1024;
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

/// How a store divides its memory budget: half to recently used entries ([`ValueCache`]), which
/// spare fjall's skip lists and serve repeated writes from memory; a quarter to the memtable
/// (between [`DISK_MEMTABLE_BYTES_MIN`] and [`DISK_MEMTABLE_BYTES_MAX`]); the rest to fjall's
/// block cache, which keeps blocks of segments read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreMemory {
    pub entry_cache_bytes: usize,
    pub memtable_bytes: u32,
    pub block_cache_bytes: u64,
}

impl StoreMemory {
    pub fn split(cache_bytes: u64) -> StoreMemory {
        let entry_cache_bytes = cache_bytes / 2;
        let memtable_bytes = u32::try_from(cache_bytes / 4).unwrap_or(u32::MAX).clamp(DISK_MEMTABLE_BYTES_MIN, DISK_MEMTABLE_BYTES_MAX);
        StoreMemory {
            entry_cache_bytes: usize::try_from(entry_cache_bytes).unwrap_or(usize::MAX),
            memtable_bytes,
            block_cache_bytes: cache_bytes.saturating_sub(entry_cache_bytes + u64::from(memtable_bytes)),
        }
    }
}

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

/// The fjall store of one backend, the cache in front of it, its clock and its changed key groups.
pub(crate) struct Store {
    keyspace: Keyspace,
    partition: PartitionHandle,
    directory: PathBuf,
    range: KeyGroupRange,
    pub clock: Arc<dyn Clock>,
    pub changes: KeyGroupChanges,
    /// Recently used entries. Behind a mutex only so that the `&self` paths (snapshots, `keys`)
    /// can write it back; the access paths reach it through `get_mut`, without locking.
    cache: Mutex<ValueCache>,
    /// Buffers reused across accesses: the store key being accessed, a store value being built,
    /// an encoding (of a key or a value), and a value's encoding aligned for decoding.
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
    encode_buf: AlignedVec,
    decode_buf: AlignedVec,
}

impl Store {
    /// A new, empty store in `directory`, replacing a store left there by an earlier run, keeping
    /// state in `cache_bytes` of memory (see [`StoreMemory`]).
    pub fn open(directory: &Path, range: KeyGroupRange, clock: Arc<dyn Clock>, cache_bytes: u64) -> Result<Store, StateError> {
        prepare_directory(directory)?;
        let memory = StoreMemory::split(cache_bytes);
        let failed = |operation: &'static str| move |error: fjall::Error| storage_error(directory, operation, &error);
        let keyspace = fjall::Config::new(directory)
            // The directory is a working copy: state comes back through restores, not from it.
            .temporary(true)
            .manual_journal_persist(true)
            .flush_workers(DISK_FLUSH_WORKERS)
            .compaction_workers(DISK_COMPACTION_WORKERS)
            .cache_size(memory.block_cache_bytes)
            .open()
            .map_err(failed("open the store"))?;
        let options = PartitionCreateOptions::default().manual_journal_persist(true).max_memtable_size(memory.memtable_bytes);
        let partition = keyspace.open_partition(PARTITION, options).map_err(failed("open the store's partition"))?;
        Ok(Store {
            keyspace,
            partition,
            directory: directory.to_path_buf(),
            range,
            clock,
            changes: KeyGroupChanges::all_changed(range),
            cache: Mutex::new(ValueCache::new(memory.entry_cache_bytes)),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
            encode_buf: AlignedVec::new(),
            decode_buf: AlignedVec::new(),
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
        self.write_back();
        self.partition.snapshot()
    }

    /// Writes the cache back and the memtable out to a segment file, and waits for it.
    #[cfg(test)]
    pub fn flush(&self) {
        self.write_back();
        self.partition.rotate_memtable_and_wait().unwrap_or_else(|error| self.failed("flush", &error));
    }

    // The cache.

    /// Writes every entry of the cache that fjall lacks to fjall: what scans and snapshots of fjall
    /// must see. Locks the cache, which only `&self` paths need to.
    fn write_back(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let mut buffer = Vec::new();
        cache.write_back_all(&mut write_entry(&self.partition, &self.directory, &mut buffer));
    }

    /// Writes the cache back and empties it, before fjall is written otherwise than by key.
    fn write_back_and_clear(&mut self) {
        self.write_back();
        self.cache.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
    }

    // Point access to the entry under `key_buf`, through the cache. Each panics if the store fails
    // (see the module documentation).

    /// Calls `read` with the stamp and encoding (aligned) of the entry under `key_buf`: from the
    /// cache, or read from fjall and cached; `None` if there is none.
    #[inline]
    fn read_current<R>(&mut self, read: impl FnOnce(i64, &[u8]) -> R) -> Option<R> {
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((stamp_ms, encoded)) = cache.get(&self.key_buf) {
            return Some(read(stamp_ms, encoded));
        }
        let bytes = self.partition.get(&self.key_buf).unwrap_or_else(|error| failed(&self.directory, "read", &error))?;
        let Some((stamp_ms, encoded)) = layout::split_value(&bytes) else { corrupt(&self.directory, SHORT_VALUE) };
        if cache.admits(self.key_buf.len(), encoded.len()) {
            let mut write_back = write_entry(&self.partition, &self.directory, &mut self.value_buf);
            let cached = cache.insert_read(&self.key_buf, stamp_ms, encoded, &mut write_back);
            Some(read(stamp_ms, cached))
        } else {
            self.decode_buf.clear();
            self.decode_buf.extend_from_slice(encoded);
            Some(read(stamp_ms, &self.decode_buf))
        }
    }

    /// The stamp of the entry under `key_buf`, without caching it.
    fn peek_stamp(&mut self) -> Option<i64> {
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some((stamp_ms, _)) = cache.get(&self.key_buf) {
            return Some(stamp_ms);
        }
        let bytes = self.partition.get(&self.key_buf).unwrap_or_else(|error| failed(&self.directory, "read", &error))?;
        Some(self.split_stored(&bytes).0)
    }

    /// Sets the entry under `key_buf` to `value` stamped at `stamp_ms`: in the cache, or straight
    /// in fjall if the cache does not take an entry that large.
    fn write_current<T: StateValue>(&mut self, stamp_ms: i64, value: &T) {
        if let Err(error) = codec::encode_into_aligned(value, &mut self.encode_buf) {
            panic!("a value of state in {} does not encode: {error}", self.directory.display());
        }
        let cache = self.cache.get_mut().unwrap_or_else(PoisonError::into_inner);
        if cache.admits(self.key_buf.len(), self.encode_buf.len()) {
            let mut write_back = write_entry(&self.partition, &self.directory, &mut self.value_buf);
            cache.write(&self.key_buf, stamp_ms, &self.encode_buf, &mut write_back);
        } else {
            cache.remove(&self.key_buf);
            write_entry(&self.partition, &self.directory, &mut self.value_buf)(&self.key_buf, stamp_ms, &self.encode_buf);
        }
    }

    /// Stamps the entry under `key_buf` at `stamp_ms`, without re-encoding its value.
    fn restamp_current(&mut self, stamp_ms: i64) {
        if !self.cache.get_mut().unwrap_or_else(PoisonError::into_inner).restamp(&self.key_buf, stamp_ms) {
            // Not cached: an entry too large for the cache.
            if let Some(bytes) = self.partition.get(&self.key_buf).unwrap_or_else(|error| self.failed("read", &error)) {
                self.partition
                    .insert(&self.key_buf, layout::restamp(&bytes, stamp_ms))
                    .unwrap_or_else(|error| self.failed("write", &error));
            }
        }
    }

    /// Removes the entry under `key_buf`.
    fn remove_current(&mut self) {
        self.cache.get_mut().unwrap_or_else(PoisonError::into_inner).remove(&self.key_buf);
        self.partition.remove(&self.key_buf).unwrap_or_else(|error| self.failed("remove", &error));
    }

    /// Removes the entry under `store_key`.
    fn remove_key(&mut self, store_key: &[u8]) {
        self.cache.get_mut().unwrap_or_else(PoisonError::into_inner).remove(store_key);
        self.partition.remove(store_key).unwrap_or_else(|error| self.failed("remove", &error));
    }

    /// Stamps the entry under `store_key`, whose stored value is `bytes`, at `stamp_ms`.
    fn restamp_key(&mut self, store_key: &[u8], bytes: &[u8], stamp_ms: i64) {
        if !self.cache.get_mut().unwrap_or_else(PoisonError::into_inner).restamp(store_key, stamp_ms) {
            self.partition.insert(store_key, layout::restamp(bytes, stamp_ms)).unwrap_or_else(|error| self.failed("write", &error));
        }
    }

    /// Every entry in fjall under `prefix`, drained. Sees only what fjall holds: callers write the
    /// cache back first.
    fn scan_written_back(&self, prefix: &[u8]) -> Vec<(Slice, Slice)> {
        self.partition.prefix(prefix).collect::<Result<_, _>>().unwrap_or_else(|error| self.failed("scan", &error))
    }

    fn write_key<K: Key>(&mut self, state: u32, key: ScopedKey<'_, K>) {
        if let Err(error) = layout::write_key(&mut self.key_buf, key.key_group(), state, key.key(), &mut self.encode_buf) {
            panic!("a key of state in {} does not encode: {error}", self.directory.display());
        }
    }

    fn write_map_key<K: Key, UK: Key>(&mut self, state: u32, key: ScopedKey<'_, K>, user_key: &UK) {
        self.write_key(state, key);
        if let Err(error) = layout::append_user_key(&mut self.key_buf, user_key, &mut self.encode_buf) {
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
        let stored = self.read_current(|stamp_ms, encoded| {
            let expired = ttl.is_some_and(|(policy, now_ms)| policy.is_expired(stamp_ms, now_ms));
            (!expired).then(|| codec::decode::<T>(encoded))
        });
        let found = stored.is_some();
        let mut slot = match stored.flatten() {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(error)) => self.corrupt(&error.to_string()),
        };
        let live = slot.is_some();
        let result = f(&mut slot);
        match slot {
            None if found => {
                self.remove_current();
                // Dropping an expired value changes nothing a checkpoint would restore (`changes`).
                if live {
                    self.changes.mark(key.key_group());
                }
            }
            None => {}
            Some(value) if write || !live => {
                self.write_current(ttl.map_or(0, |(_, now_ms)| now_ms), &value);
                self.changes.mark(key.key_group());
            }
            Some(_) => {
                if let Some((TtlPolicy { refresh_on_read: true, .. }, now_ms)) = ttl {
                    self.restamp_current(now_ms);
                    self.changes.mark(key.key_group());
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
        self.write_current(ttl.map_or(0, |(_, now_ms)| now_ms), value);
        self.changes.mark(key.key_group());
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the key's value.
    pub fn remove_slot<K: Key>(&mut self, state: &StoredState, key: ScopedKey<'_, K>) {
        self.write_key(state.id, key);
        self.remove_current();
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
        let stored = self.read_current(|stamp_ms, encoded| match ttl {
            Some((policy, now_ms)) if policy.is_expired(stamp_ms, now_ms) => None,
            _ => Some(codec::decode::<UV>(encoded)),
        });
        let result = match stored {
            None => read(None),
            Some(None) => {
                self.remove_current();
                read(None)
            }
            Some(Some(decoded)) => {
                let value = decoded.unwrap_or_else(|error| self.corrupt(&error.to_string()));
                if let Some((TtlPolicy { refresh_on_read: true, .. }, now_ms)) = ttl {
                    self.restamp_current(now_ms);
                    self.changes.mark(key.key_group());
                }
                read(Some(&value))
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
        self.write_current(ttl.map_or(0, |(_, now_ms)| now_ms), value);
        self.changes.mark(key.key_group());
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the entry of `user_key` from the key's map.
    pub fn map_remove<K: Key, UK: Key>(&mut self, state: &mut StoredState, key: ScopedKey<'_, K>, user_key: &UK) {
        self.write_map_key(state.id, key, user_key);
        self.remove_current();
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
        self.write_back();
        let entries = self.scan_written_back(&self.key_buf);
        let mut scratch = std::mem::take(&mut self.decode_buf);
        for (store_key, bytes) in entries {
            let (stamp_ms, encoded) = self.split_stored(&bytes);
            if let Some((policy, now_ms)) = ttl {
                if policy.is_expired(stamp_ms, now_ms) {
                    self.remove_key(&store_key);
                    continue;
                }
                if policy.refresh_on_read {
                    self.restamp_key(&store_key, &bytes, now_ms);
                    self.changes.mark(key.key_group());
                }
            }
            let Some(parsed) = StoreKey::parse(&store_key) else { self.corrupt("a map entry's key is malformed") };
            let user_key = codec::decode_in::<UK>(parsed.user_key, &mut scratch).unwrap_or_else(|error| self.corrupt(&error.to_string()));
            let value = codec::decode_in::<UV>(encoded, &mut scratch).unwrap_or_else(|error| self.corrupt(&error.to_string()));
            visit(&user_key, &value);
        }
        self.decode_buf = scratch;
        if let Some((policy, now_ms)) = ttl {
            self.cleanup_step(state, policy, now_ms);
        }
    }

    /// Removes the key's whole map.
    pub fn clear_map<K: Key>(&mut self, state: &StoredState, key: ScopedKey<'_, K>) {
        self.write_key(state.id, key);
        self.write_back();
        for (store_key, _) in self.scan_written_back(&self.key_buf) {
            self.remove_key(&store_key);
        }
        self.changes.mark(key.key_group());
    }

    // Whole key groups.

    /// The encodings of every key with an entry in `key_group`, once each.
    pub fn keys(&self, key_group: usize) -> Vec<Vec<u8>> {
        self.write_back();
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
        self.write_back();
        let expired: Vec<Slice> = self
            .scan_written_back(&layout::state_prefix(key_group, state.id))
            .into_iter()
            .filter(|(_, bytes)| policy.is_expired(self.split_stored(bytes).0, now_ms))
            .map(|(store_key, _)| store_key)
            .collect();
        for store_key in &expired {
            self.remove_key(store_key);
        }
        expired.len()
    }

    /// Replaces every entry of `key_group` with `entries`.
    pub fn replace_group(&mut self, key_group: usize, entries: StoreEntries) -> Result<(), StateError> {
        self.write_back_and_clear();
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
        // Entries written past the cache: none of their keys may stay cached.
        self.write_back_and_clear();
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
                    self.key_buf.clear();
                    self.key_buf.extend_from_slice(&store_key);
                    if self.peek_stamp().is_some_and(|stamp_ms| policy.is_expired(stamp_ms, now_ms)) {
                        self.remove_current();
                        removed += 1;
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
            self.write_back();
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
        layout::split_value(bytes).unwrap_or_else(|| self.corrupt(SHORT_VALUE))
    }

    fn failed(&self, operation: &str, error: &fjall::Error) -> ! {
        failed(&self.directory, operation, error)
    }

    fn corrupt(&self, reason: &str) -> ! {
        corrupt(&self.directory, reason)
    }
}

/// Why a stored value that cannot be one is refused.
const SHORT_VALUE: &str = "a stored value is shorter than its stamp";

/// Writes entries (store key, stamp, value encoding) into `partition`, building each store value
/// in `buffer`: where the cache's dirty entries go.
fn write_entry<'a>(partition: &'a PartitionHandle, directory: &'a Path, buffer: &'a mut Vec<u8>) -> impl FnMut(&[u8], i64, &[u8]) + 'a {
    move |store_key, stamp_ms, encoded| {
        layout::write_encoded_value(buffer, stamp_ms, encoded);
        partition.insert(store_key, &*buffer).unwrap_or_else(|error| failed(directory, "write", &error));
    }
}

#[cold]
#[inline(never)]
fn failed(directory: &Path, operation: &str, error: &fjall::Error) -> ! {
    panic!("state store in {} failed to {operation}: {error}", directory.display())
}

#[cold]
#[inline(never)]
fn corrupt(directory: &Path, reason: &str) -> ! {
    panic!("state store in {} holds data it cannot read back: {reason}", directory.display())
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_budget_goes_half_to_entries_and_the_memtable_stays_within_its_bounds() {
        let split = |entries: u64, memtable: u64, blocks: u64| StoreMemory {
            entry_cache_bytes: entries as usize,
            memtable_bytes: memtable as u32,
            block_cache_bytes: blocks,
        };
        assert_eq!(StoreMemory::split(DISK_CACHE_BYTES_DEFAULT), split(48 * MIB, 16 * MIB, 32 * MIB));
        assert_eq!(StoreMemory::split(MIB), split(MIB / 2, MIB / 4, MIB / 4));
        assert_eq!(StoreMemory::split(1024 * MIB), split(512 * MIB, 16 * MIB, 496 * MIB), "the memtable stays at fjall's default");
        assert_eq!(StoreMemory::split(0), split(0, u64::from(DISK_MEMTABLE_BYTES_MIN), 0), "a memtable however small the budget");
    }
}
