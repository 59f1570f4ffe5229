//! [`ValueCache`]: the store's recently used entries, kept in memory in front of fjall and written
//! back to it later (a write-back cache).
//!
//! Reading a key from fjall walks its memtables (skip lists) and segments: in a profile of the agg
//! query, 60% of a read-modify-write went there and 20% into writing it back. The cache answers a
//! key used again from one hash table entry (keys and encodings up to [`INLINE_KEY_BYTES_MAX`] and
//! [`INLINE_ENCODING_BYTES_MAX`] bytes are inline: a hit is about one CPU cache miss) and turns
//! repeated writes of a key into one write back. It keeps store bytes (stamp and encoding, aligned
//! for decoding in place), not typed values, so the store stays untyped.
//!
//! Invariant: a cached entry is its key's current entry, and fjall holds it too unless it is dirty
//! (written since it last went to fjall); a key not cached has its current entry, or none, in
//! fjall. The store keeps it (see `store`); the cache evicts with CLOCK (second chance) to stay
//! within `bytes_max`, handing each dirty entry it evicts to the caller's `write_back`, and does no
//! I/O itself.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use rkyv::util::AlignedVec;
use rustc_hash::FxHashMap;

/// Estimated bytes of one cached entry besides an encoding or a key too long to be inline: its
/// entry in the index's table (96 bytes, in a table a half to seven eighths full) and its slot in
/// CLOCK's ring (32). Counted so that a budget of small entries is not overrun several times over.
pub(crate) const CACHE_ENTRY_OVERHEAD_BYTES: usize = 160;
/// An entry taking more than this fraction of the cache's budget is not cached (the store reads
/// and writes it in fjall directly): one large value must not evict everything else.
pub(crate) const CACHE_ENTRY_FRACTION_MAX: usize = 16;

/// Once over budget, the cache evicts down to this fraction of its budget below it (to 15/16), in
/// one batch, and writes the batch's dirty entries back in key order; so does a write back of all.
/// fjall's memtable is a skip list: entries inserted in key order find most nodes the last insertion
/// walked still in the CPU cache, where entries in random order miss all the way down (the agg query
/// with a checkpoint a second, each writing back 100,001 keys, ran 1.4 times faster sorted).
pub(crate) const CACHE_EVICTION_BATCH_FRACTION: usize = 16;

/// Longest store key kept inline (in the index's table and in its slot): a key of up to 8 bytes of
/// encoding with a user key of up to 8 bytes, or a 20-byte key, after the store key's 10-byte prefix.
pub(crate) const INLINE_KEY_BYTES_MAX: usize = 30;

/// Longest encoding kept inline in its entry (a 16-byte aligned array): two 64-bit fields, or four
/// 32-bit ones, and their like.
pub(crate) const INLINE_ENCODING_BYTES_MAX: usize = 32;

/// Receives entries leaving the cache dirty: (store key, stamp, encoding of the value).
pub(crate) type WriteBack<'a> = dyn FnMut(&[u8], i64, &[u8]) + 'a;

/// Recently used store entries, some not yet in fjall (see the module documentation).
pub(crate) struct ValueCache {
    /// Every cached entry, by store key: a hit reads this table only.
    index: FxHashMap<CacheKey, Entry>,
    /// CLOCK's ring: each entry's key at its slot number (`Entry::slot`).
    slots: Vec<Slot>,
    /// Slots holding no entry, to reuse first.
    free: Vec<u32>,
    /// Slots whose entry became dirty since the last `write_back_all`, each once (`listed`); some
    /// may have been written back since, by eviction, or hold another entry now.
    dirty: Vec<u32>,
    /// One bit per slot: whether it is in `dirty`, perhaps for an entry it held before. A bit set
    /// rather than a flag in the slot: marking an entry dirty then touches no memory the access
    /// has not (the set is a bit per entry, and stays in the CPU cache).
    listed: Vec<u64>,
    /// Where CLOCK looks for the next entry to evict.
    hand: usize,
    /// Dirty entries being evicted, to write back in key order (kept for its memory).
    evicted: Vec<(CacheKey, i64, Encoding)>,
    /// Estimated memory of the cached entries (`entry_bytes`).
    bytes: usize,
    bytes_max: usize,
}

/// A cached entry.
struct Entry {
    encoded: Encoding,
    stamp_ms: i64,
    /// Its place in CLOCK's ring.
    slot: u32,
    /// Written since it last went to fjall.
    dirty: bool,
    /// Used since CLOCK's hand last passed it.
    referenced: bool,
}

/// A place in CLOCK's ring.
#[derive(Default)]
struct Slot {
    /// The key of the entry there; empty while the slot is free (store keys never are).
    key: CacheKey,
}

/// A store key as the cache holds it: inline up to [`INLINE_KEY_BYTES_MAX`] bytes, else boxed.
/// Hashes and compares as its bytes, so the index is looked up with a `&[u8]`.
#[derive(Clone)]
enum CacheKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY_BYTES_MAX] },
    Boxed(Box<[u8]>),
}

impl CacheKey {
    fn new(key: &[u8]) -> CacheKey {
        if key.len() <= INLINE_KEY_BYTES_MAX {
            let mut bytes = [0; INLINE_KEY_BYTES_MAX];
            bytes[..key.len()].copy_from_slice(key);
            CacheKey::Inline { len: key.len() as u8, bytes }
        } else {
            CacheKey::Boxed(key.into())
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            CacheKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            CacheKey::Boxed(bytes) => bytes,
        }
    }
}

impl Default for CacheKey {
    fn default() -> Self {
        CacheKey::Inline { len: 0, bytes: [0; INLINE_KEY_BYTES_MAX] }
    }
}

impl Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes: the index is looked up by `&[u8]`.
        self.as_bytes().hash(state);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CacheKey {}

/// A value's encoding as the cache holds it: inline up to [`INLINE_ENCODING_BYTES_MAX`] bytes, else
/// in a buffer of its own; either way aligned for decoding in place.
enum Encoding {
    Inline { len: u8, bytes: InlineEncoding },
    Allocated(AlignedVec),
}

/// Room for an encoding kept inline, aligned as archives are read (`codec::ARCHIVE_ALIGNMENT`).
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct InlineEncoding([u8; INLINE_ENCODING_BYTES_MAX]);

impl Encoding {
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Encoding::Inline { len, bytes } => &bytes.0[..usize::from(*len)],
            Encoding::Allocated(bytes) => bytes,
        }
    }

    /// Replaces the encoding held with `encoded`, reusing a buffer of its own if it has one.
    #[inline]
    fn set(&mut self, encoded: &[u8]) {
        match self {
            Encoding::Allocated(buffer) if encoded.len() > INLINE_ENCODING_BYTES_MAX => {
                buffer.clear();
                buffer.extend_from_slice(encoded);
            }
            _ if encoded.len() > INLINE_ENCODING_BYTES_MAX => {
                let mut buffer = AlignedVec::with_capacity(encoded.len());
                buffer.extend_from_slice(encoded);
                *self = Encoding::Allocated(buffer);
            }
            _ => {
                let mut bytes = InlineEncoding([0; INLINE_ENCODING_BYTES_MAX]);
                bytes.0[..encoded.len()].copy_from_slice(encoded);
                *self = Encoding::Inline { len: encoded.len() as u8, bytes };
            }
        }
    }

    /// Bytes of the buffer of its own, if it has one.
    fn allocated_bytes(&self) -> usize {
        match self {
            Encoding::Inline { .. } => 0,
            Encoding::Allocated(buffer) => buffer.capacity(),
        }
    }
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding::Inline { len: 0, bytes: InlineEncoding([0; INLINE_ENCODING_BYTES_MAX]) }
    }
}

/// The estimated memory of an entry of `key_bytes` whose encoding has `allocated_bytes` of a buffer
/// of its own: a key too long to be inline is allocated twice (index and slot).
#[inline]
fn entry_bytes(key_bytes: usize, allocated_bytes: usize) -> usize {
    let boxed_key_bytes = if key_bytes > INLINE_KEY_BYTES_MAX { 2 * key_bytes } else { 0 };
    boxed_key_bytes + allocated_bytes + CACHE_ENTRY_OVERHEAD_BYTES
}

impl ValueCache {
    /// An empty cache of entries estimated at `bytes_max` bytes at most; 0 caches nothing.
    pub fn new(bytes_max: usize) -> ValueCache {
        ValueCache {
            index: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            listed: Vec::new(),
            hand: 0,
            evicted: Vec::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Whether an entry of `key_bytes` with an encoding of `encoded_bytes` is cached at all.
    #[inline]
    pub fn admits(&self, key_bytes: usize, encoded_bytes: usize) -> bool {
        let allocated_bytes = if encoded_bytes > INLINE_ENCODING_BYTES_MAX { encoded_bytes } else { 0 };
        entry_bytes(key_bytes, allocated_bytes) <= self.bytes_max / CACHE_ENTRY_FRACTION_MAX
    }

    /// Number of cached entries.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Estimated memory of the cached entries.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The stamp and encoding of `key`'s entry, if cached, which counts as a use.
    #[inline]
    pub fn get(&mut self, key: &[u8]) -> Option<(i64, &[u8])> {
        let entry = self.index.get_mut(key)?;
        entry.referenced = true;
        Some((entry.stamp_ms, entry.encoded.as_bytes()))
    }

    /// Caches `key`'s entry as just read from fjall (so not dirty) and returns its cached encoding,
    /// evicting other entries if over budget. `key` must not be cached, and the entry admitted.
    pub fn insert_read(&mut self, key: &[u8], stamp_ms: i64, encoded: &[u8], write_back: &mut WriteBack<'_>) -> &[u8] {
        debug_assert!(!self.index.contains_key(key), "an entry read from fjall while cached would be older than the cached one");
        self.put(key, stamp_ms, encoded, false, write_back);
        self.index.get(key).expect("an entry is not evicted to make room for itself").encoded.as_bytes()
    }

    /// Sets `key`'s entry, to go to fjall later, evicting other entries if over budget. The entry
    /// must be admitted.
    pub fn write(&mut self, key: &[u8], stamp_ms: i64, encoded: &[u8], write_back: &mut WriteBack<'_>) {
        self.put(key, stamp_ms, encoded, true, write_back);
    }

    /// Stamps `key`'s entry at `stamp_ms` if it is cached (then it is dirty); false if not cached.
    pub fn restamp(&mut self, key: &[u8], stamp_ms: i64) -> bool {
        let Some(entry) = self.index.get_mut(key) else { return false };
        entry.stamp_ms = stamp_ms;
        entry.referenced = true;
        mark_dirty(entry, &mut self.listed, &mut self.dirty);
        true
    }

    /// Drops `key`'s entry, dirty or not: the caller removes the key from fjall.
    pub fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.index.remove(key) {
            self.bytes -= entry_bytes(key.len(), entry.encoded.allocated_bytes());
            self.free_slot(entry.slot);
        }
    }

    /// Hands every dirty entry to `write_back`, in key order; they stay cached, clean.
    pub fn write_back_all(&mut self, write_back: &mut WriteBack<'_>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            self.listed[id as usize / 64] &= !(1 << (id % 64));
        }
        let slots = &self.slots;
        dirty.sort_unstable_by(|a, b| slots[*a as usize].key.as_bytes().cmp(slots[*b as usize].key.as_bytes()));
        for &id in &dirty {
            let key = self.slots[id as usize].key.as_bytes();
            if let Some(entry) = self.index.get_mut(key) {
                if entry.dirty {
                    write_back(key, entry.stamp_ms, entry.encoded.as_bytes());
                    entry.dirty = false;
                }
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Drops every entry. Only after `write_back_all`: a dirty entry would be lost.
    pub fn clear(&mut self) {
        debug_assert!(self.index.values().all(|entry| !entry.dirty), "a dirty entry dropped without being written back");
        *self = ValueCache::new(self.bytes_max);
    }

    fn put(&mut self, key: &[u8], stamp_ms: i64, encoded: &[u8], dirty: bool, write_back: &mut WriteBack<'_>) {
        debug_assert!(self.admits(key.len(), encoded.len()), "an entry of {} bytes is not cached", key.len() + encoded.len());
        let entry = match self.index.get_mut(key) {
            Some(entry) => {
                self.bytes -= entry_bytes(key.len(), entry.encoded.allocated_bytes());
                entry
            }
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.slots.push(Slot::default());
                        if self.slots.len() > self.listed.len() * 64 {
                            self.listed.push(0);
                        }
                        u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 cached entries")
                    }
                };
                let key = CacheKey::new(key);
                self.slots[slot as usize].key = key.clone();
                let entry = Entry { encoded: Encoding::default(), stamp_ms, slot, dirty: false, referenced: true };
                self.index.entry(key).or_insert(entry)
            }
        };
        entry.stamp_ms = stamp_ms;
        entry.encoded.set(encoded);
        entry.referenced = true;
        self.bytes += entry_bytes(key.len(), entry.encoded.allocated_bytes());
        if dirty {
            mark_dirty(entry, &mut self.listed, &mut self.dirty);
        }
        let keep = entry.slot;
        self.evict_over_budget(keep, write_back);
    }

    /// If the cache is over budget, evicts entries other than the one at slot `keep` until it is
    /// [`CACHE_EVICTION_BATCH_FRACTION`] below, then writes the dirty ones back in key order. They
    /// leave the index first, but nothing reads the cache before they are in fjall.
    ///
    /// Ends: while over the mark, another entry exists (an admitted entry alone is below it), and
    /// within two turns of the hand every other entry has lost its second chance.
    fn evict_over_budget(&mut self, keep: u32, write_back: &mut WriteBack<'_>) {
        if self.bytes <= self.bytes_max {
            return;
        }
        let low_mark = self.bytes_max - self.bytes_max / CACHE_EVICTION_BATCH_FRACTION;
        let mut evicted = std::mem::take(&mut self.evicted);
        while self.bytes > low_mark && self.index.len() > 1 {
            let id = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let key = self.slots[id].key.as_bytes();
            if key.is_empty() || id == keep as usize {
                continue;
            }
            let entry = self.index.get_mut(key).expect("the key of an occupied slot is cached");
            if entry.referenced {
                entry.referenced = false;
                continue;
            }
            let (key, entry) = self.index.remove_entry(key).expect("found above");
            self.bytes -= entry_bytes(key.as_bytes().len(), entry.encoded.allocated_bytes());
            self.free_slot(id as u32);
            if entry.dirty {
                evicted.push((key, entry.stamp_ms, entry.encoded));
            }
        }
        evicted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (key, stamp_ms, encoded) in evicted.drain(..) {
            write_back(key.as_bytes(), stamp_ms, encoded.as_bytes());
        }
        self.evicted = evicted;
    }

    /// Frees a slot whose entry has left the index. Leaves its bit in `listed`: the slot may still be
    /// in `dirty`.
    fn free_slot(&mut self, id: u32) {
        self.slots[id as usize].key = CacheKey::default();
        self.free.push(id);
    }
}

/// Marks `entry` dirty, listing its slot in `dirty` unless `listed` says it is already.
#[inline]
fn mark_dirty(entry: &mut Entry, listed: &mut [u64], dirty: &mut Vec<u32>) {
    entry.dirty = true;
    let (word, bit) = (entry.slot as usize / 64, 1u64 << (entry.slot % 64));
    if listed[word] & bit == 0 {
        listed[word] |= bit;
        dirty.push(entry.slot);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// fjall, as the cache's protocol sees it: key to (stamp, encoding).
    type Stored = BTreeMap<Vec<u8>, (i64, Vec<u8>)>;

    fn key(n: u8) -> Vec<u8> {
        vec![n; 12]
    }

    /// Keys of the property test: from 40 on, too long to be inline.
    fn any_key(n: u8) -> Vec<u8> {
        if n < 40 {
            key(n)
        } else {
            vec![n; INLINE_KEY_BYTES_MAX + 1]
        }
    }

    fn store_into(stored: &mut Stored) -> impl FnMut(&[u8], i64, &[u8]) + '_ {
        |key, stamp_ms, encoded| {
            stored.insert(key.to_vec(), (stamp_ms, encoded.to_vec()));
        }
    }

    /// A budget of `entries` entries of `key(_)` with encodings kept inline.
    fn budget(entries: usize) -> usize {
        entries * entry_bytes(12, 0)
    }

    #[test]
    fn a_read_entry_is_served_from_the_cache_and_never_written_back() {
        let mut cache = ValueCache::new(budget(64));
        let mut stored = Stored::new();
        assert_eq!(cache.insert_read(&key(1), 5, &[7; 16], &mut store_into(&mut stored)), [7; 16]);
        assert_eq!(cache.get(&key(1)), Some((5, &[7; 16][..])));
        assert_eq!(cache.get(&key(2)), None);
        cache.write_back_all(&mut store_into(&mut stored));
        assert!(stored.is_empty(), "a clean entry is in fjall already");
    }

    #[test]
    fn a_key_written_many_times_goes_back_once_with_its_last_entry() {
        let mut cache = ValueCache::new(budget(64));
        let mut stored = Stored::new();
        for stamp_ms in 0..10 {
            cache.write(&key(1), stamp_ms, &[stamp_ms as u8; 16], &mut store_into(&mut stored));
        }
        assert!(cache.restamp(&key(1), 42));
        assert!(!cache.restamp(&key(2), 42), "a key not cached is not restamped");
        let mut writes = 0;
        cache.write_back_all(&mut |key, stamp_ms, encoded| {
            writes += 1;
            stored.insert(key.to_vec(), (stamp_ms, encoded.to_vec()));
        });
        assert_eq!(writes, 1);
        assert_eq!(stored[&key(1)], (42, vec![9; 16]));
        cache.write_back_all(&mut |_, _, _| panic!("nothing was written since"));
        assert_eq!(cache.get(&key(1)), Some((42, &[9; 16][..])), "written back entries stay cached");
    }

    #[test]
    fn eviction_keeps_the_budget_and_writes_back_only_dirty_entries() {
        let mut cache = ValueCache::new(budget(CACHE_ENTRY_FRACTION_MAX));
        let mut stored = Stored::new();
        for n in 0..100u8 {
            if n % 2 == 0 {
                cache.write(&key(n), 1, &[n; 16], &mut store_into(&mut stored));
            } else {
                cache.insert_read(&key(n), 1, &[n; 16], &mut store_into(&mut stored));
            }
            assert!(cache.bytes() <= budget(CACHE_ENTRY_FRACTION_MAX), "{} bytes cached", cache.bytes());
        }
        assert!(cache.len() >= CACHE_ENTRY_FRACTION_MAX - 1, "eviction stops a batch below the budget ({} entries)", cache.len());
        assert!(stored.keys().all(|key| key[0] % 2 == 0), "clean entries are dropped, not written");
        cache.write_back_all(&mut store_into(&mut stored));
        let written: Vec<u8> = stored.keys().map(|key| key[0]).collect();
        assert_eq!(written, (0..100).step_by(2).collect::<Vec<u8>>(), "every dirty entry reached fjall once evicted or written back");
    }

    #[test]
    fn dirty_entries_go_back_in_key_order() {
        let mut cache = ValueCache::new(budget(64));
        for n in (0..32u8).rev() {
            cache.write(&key(n), 1, &[n; 16], &mut |_, _, _| {});
        }
        let mut order = Vec::new();
        cache.write_back_all(&mut |key, _, _| order.push(key[0]));
        assert_eq!(order, (0..32).collect::<Vec<u8>>());
    }

    #[test]
    fn a_removed_entry_is_neither_served_nor_written_back() {
        let mut cache = ValueCache::new(budget(CACHE_ENTRY_FRACTION_MAX));
        cache.write(&key(1), 1, &[1; 16], &mut |_, _, _| {});
        cache.remove(&key(1));
        assert_eq!(cache.get(&key(1)), None);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
        cache.write_back_all(&mut |_, _, _| panic!("a removed entry was written back"));
    }

    #[test]
    fn an_entry_past_its_share_of_the_budget_is_not_admitted_and_a_zero_budget_admits_none() {
        let cache = ValueCache::new(budget(CACHE_ENTRY_FRACTION_MAX));
        assert!(cache.admits(12, INLINE_ENCODING_BYTES_MAX));
        assert!(!cache.admits(12, INLINE_ENCODING_BYTES_MAX + 1), "an allocated encoding counts");
        assert!(!cache.admits(INLINE_KEY_BYTES_MAX + 1, 0), "a boxed key counts");
        assert!(!ValueCache::new(0).admits(1, 0));
    }

    #[test]
    fn encodings_inline_or_allocated_read_back_aligned() {
        let mut cache = ValueCache::new(budget(64));
        for len in [0, 1, INLINE_ENCODING_BYTES_MAX, INLINE_ENCODING_BYTES_MAX + 1, 200, 3] {
            let encoded: Vec<u8> = (0..len as u8).collect();
            cache.write(&key(1), 0, &encoded, &mut |_, _, _| {});
            let (_, cached) = cache.get(&key(1)).unwrap();
            assert_eq!(cached, encoded.as_slice());
            assert_eq!(cached.as_ptr().align_offset(crate::base::codec::ARCHIVE_ALIGNMENT), 0, "decoded in place");
        }
        cache.remove(&key(1));
        assert_eq!(cache.bytes(), 0, "the accounting of an entry resized in place balances");
    }

    #[test]
    fn clear_drops_every_entry() {
        let mut cache = ValueCache::new(budget(CACHE_ENTRY_FRACTION_MAX));
        cache.write(&key(1), 1, &[1; 16], &mut |_, _, _| {});
        cache.write_back_all(&mut |_, _, _| {});
        cache.clear();
        assert_eq!((cache.len(), cache.bytes(), cache.get(&key(1))), (0, 0, None));
    }

    /// One step of the store's protocol with the cache.
    #[derive(Debug, Clone)]
    enum Op {
        Read(u8),
        Write(u8, u8, usize),
        Restamp(u8, i64),
        Remove(u8),
        WriteBackAll,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..48;
        prop_oneof![
            4 => key.clone().prop_map(Op::Read),
            4 => (key.clone(), any::<u8>(), 0usize..48).prop_map(|(key, byte, len)| Op::Write(key, byte, len)),
            1 => (key.clone(), any::<i64>()).prop_map(|(key, stamp)| Op::Restamp(key, stamp)),
            1 => key.prop_map(Op::Remove),
            1 => Just(Op::WriteBackAll),
        ]
    }

    proptest! {
        /// Run as the store runs it (a miss reads fjall and caches what it found; an entry not
        /// admitted goes to fjall directly), the cache in front of fjall always reads as a plain
        /// map of the latest entries, and fjall equals that map after a write back.
        #[test]
        fn reads_through_the_cache_see_the_latest_entry(ops in prop::collection::vec(op(), 1..300), entries in 1usize..40) {
            // Room for fewer entries than keys: entries are evicted; and below 16, none is admitted.
            let mut cache = ValueCache::new(budget(entries));
            let mut stored = Stored::new();
            let mut model = Stored::new();
            for op in ops {
                match op {
                    Op::Read(n) => {
                        let k = any_key(n);
                        let seen = match cache.get(&k) {
                            Some((stamp_ms, encoded)) => Some((stamp_ms, encoded.to_vec())),
                            None => match stored.get(&k).cloned() {
                                Some((stamp_ms, encoded)) if cache.admits(k.len(), encoded.len()) => {
                                    let cached = cache.insert_read(&k, stamp_ms, &encoded, &mut store_into(&mut stored));
                                    Some((stamp_ms, cached.to_vec()))
                                }
                                other => other,
                            },
                        };
                        prop_assert_eq!(seen, model.get(&k).cloned());
                    }
                    Op::Write(n, byte, len) => {
                        let (k, encoded) = (any_key(n), vec![byte; len]);
                        if cache.admits(k.len(), len) {
                            cache.write(&k, 1, &encoded, &mut store_into(&mut stored));
                        } else {
                            cache.remove(&k);
                            stored.insert(k.clone(), (1, encoded.clone()));
                        }
                        model.insert(k, (1, encoded));
                    }
                    Op::Restamp(n, stamp_ms) => {
                        let k = any_key(n);
                        if let Some(entry) = model.get_mut(&k) {
                            entry.0 = stamp_ms;
                            if !cache.restamp(&k, stamp_ms) {
                                stored.get_mut(&k).expect("a key not cached is in fjall").0 = stamp_ms;
                            }
                        }
                    }
                    Op::Remove(n) => {
                        let k = any_key(n);
                        cache.remove(&k);
                        stored.remove(&k);
                        model.remove(&k);
                    }
                    Op::WriteBackAll => {
                        cache.write_back_all(&mut store_into(&mut stored));
                        prop_assert_eq!(&stored, &model);
                    }
                }
                prop_assert!(cache.bytes() <= budget(entries) || cache.len() <= 1, "{} bytes over budget", cache.bytes());
            }
            cache.write_back_all(&mut store_into(&mut stored));
            prop_assert_eq!(stored, model);
        }
    }
}
