//! [`CowGroups`]: one hash map per owned key group, each shareable in constant time, which is how a
//! checkpoint's synchronous part stays short for state in memory.
//!
//! At a barrier a task takes [`CowGroups::share`] of every key group it writes into the checkpoint:
//! a reference count goes up, nothing is copied, and the shared map is encoded later on the job
//! driver's thread. A write into a group still shared copies that group first (copy-on-write, one
//! group at a time, and only if the encoder has not finished with it yet); a write into a group no
//! longer shared goes in place. Flink's heap backend does the same per entry; per key group keeps
//! the hot path to a flag: a group not shared since its last write is written without touching
//! its reference count (an atomic read-modify-write per record was 6% of a window aggregate's
//! time).

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;

/// One map per key group of a subtask's range (indexed from the range's start), each shared
/// copy-on-write (see the module documentation).
pub(crate) struct CowGroups<K, V> {
    groups: Vec<Arc<FxHashMap<K, V>>>,
    /// Per group: whether `share` may have handed it out since `get_mut` last made it unique.
    /// Clear means this holds the group's only reference. Nothing else makes references to a
    /// group (no weak ones), so clear is exact, and `get_mut` may then write without asking the
    /// reference count.
    maybe_shared: Vec<AtomicBool>,
}

impl<K: Hash + Eq + Clone, V: Clone> CowGroups<K, V> {
    /// `count` empty groups, each with room for `capacity` entries.
    pub(crate) fn new(count: usize, capacity: usize) -> Self {
        CowGroups {
            groups: (0..count).map(|_| Arc::new(FxHashMap::with_capacity_and_hasher(capacity, Default::default()))).collect(),
            maybe_shared: (0..count).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Number of groups.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }

    /// The `index`-th group, to read.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> &FxHashMap<K, V> {
        &self.groups[index]
    }

    /// The `index`-th group, to change: copied first if a snapshot still holds it.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> &mut FxHashMap<K, V> {
        let group = &mut self.groups[index];
        let maybe_shared = self.maybe_shared[index].get_mut();
        if *maybe_shared {
            Arc::make_mut(group);
            *maybe_shared = false;
        }
        debug_assert_eq!((Arc::strong_count(group), Arc::weak_count(group)), (1, 0), "an unshared group has one reference");
        // SAFETY: the flag is clear, so this `Arc` is the group's only reference (see
        // `maybe_shared`): no other `Arc` and, through `&mut self`, no borrow of the map exists,
        // which is what `Arc::get_mut` would check. The pointer comes from the `Arc` itself.
        unsafe { &mut *Arc::as_ptr(group).cast_mut() }
    }

    /// The `index`-th group as it is now, unaffected by later changes: constant time.
    pub(crate) fn share(&self, index: usize) -> Arc<FxHashMap<K, V>> {
        self.maybe_shared[index].store(true, Ordering::Relaxed);
        Arc::clone(&self.groups[index])
    }

    /// Every group, to read.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &FxHashMap<K, V>> {
        self.groups.iter().map(|group| &**group)
    }
}

#[cfg(test)]
mod tests {
    use super::CowGroups;

    #[test]
    fn a_shared_group_keeps_what_it_held_while_the_groups_change() {
        let mut groups = CowGroups::<u64, u64>::new(2, 0);
        groups.get_mut(0).insert(1, 10);
        groups.get_mut(1).insert(2, 20);
        let shared = groups.share(0);
        groups.get_mut(0).insert(1, 11);
        groups.get_mut(0).insert(3, 30);
        assert_eq!(shared.get(&1), Some(&10));
        assert_eq!(shared.len(), 1);
        assert_eq!(groups.get(0).get(&1), Some(&11));
        assert_eq!(groups.get(0).len(), 2);
    }

    #[test]
    fn a_group_no_longer_shared_is_changed_in_place() {
        let mut groups = CowGroups::<u64, u64>::new(1, 0);
        groups.get_mut(0).insert(1, 10);
        let before = groups.get(0) as *const _;
        drop(groups.share(0));
        groups.get_mut(0).insert(2, 20);
        assert_eq!(groups.get(0) as *const _, before, "no copy once the snapshot let go");
    }
}
