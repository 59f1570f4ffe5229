//! Which key groups changed since the last checkpoint: what lets an incremental checkpoint write
//! only those and refer to the previous checkpoint's bytes for the rest.
//!
//! A backend keeps a [`KeyGroupChanges`] (one bit per owned key group, set on every write) and
//! offers it through [`ChangeTracking`]. The invariant: a key group not reported changed restores
//! from the last checkpoint's snapshot of it to the state it has now. So every write, clear,
//! restore, and every read that restamps a value (TTL refreshed on read) marks its group. Removing
//! an expired value does not: the last checkpoint holds that value too, already expired there, and
//! an expired value is never returned (a full snapshot keeps expired values not cleaned up yet
//! just the same). A new backend reports every group changed: there is no previous checkpoint to
//! refer to.
//!
//! An asynchronous checkpoint reads the changed groups when it takes its point-in-time view and
//! calls `checkpoint_taken` at once, on the task's thread, so writes after the view mark groups for
//! the next checkpoint; if the checkpoint then fails, `mark_changed` gives its groups back, so the
//! next checkpoint does not refer to bytes that were never written.

use crate::key_group::KeyGroupRange;

/// A backend that knows which of its key groups changed since the last checkpoint.
pub trait ChangeTracking {
    /// The key groups changed since the last [`checkpoint_taken`](Self::checkpoint_taken) (since
    /// creation, all of them), in ascending order.
    fn changed_key_groups(&self) -> Vec<usize>;

    /// Marks every key group unchanged: a checkpoint now holds their current state.
    fn checkpoint_taken(&mut self);

    /// Marks `key_groups` changed again: the checkpoint that took them failed.
    ///
    /// Panics if one is not owned by the backend.
    fn mark_changed(&mut self, key_groups: &[usize]);
}

/// One bit per key group of a range: whether it changed since it was last cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroupChanges {
    range: KeyGroupRange,
    words: Vec<u64>,
}

impl KeyGroupChanges {
    /// Every group of `range` marked changed.
    pub fn all_changed(range: KeyGroupRange) -> KeyGroupChanges {
        let mut changes = KeyGroupChanges { range, words: vec![0; range.len().div_ceil(64)] };
        changes.mark_all();
        changes
    }

    /// Marks `key_group` changed.
    ///
    /// Panics (in debug builds) if the group is not in the range.
    #[inline]
    pub fn mark(&mut self, key_group: usize) {
        debug_assert!(self.range.contains(key_group), "key group {key_group} outside {:?}", self.range);
        let index = key_group - self.range.start;
        self.words[index / 64] |= 1 << (index % 64);
    }

    /// Marks every group changed.
    pub fn mark_all(&mut self) {
        self.words.fill(u64::MAX);
        let tail = self.range.len() % 64;
        if let (Some(last), true) = (self.words.last_mut(), tail > 0) {
            *last = (1 << tail) - 1;
        }
    }

    /// Marks every group unchanged.
    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    /// Whether `key_group` is marked changed.
    pub fn contains(&self, key_group: usize) -> bool {
        self.range.contains(key_group) && {
            let index = key_group - self.range.start;
            self.words[index / 64] & (1 << (index % 64)) != 0
        }
    }

    /// The groups marked changed, in ascending order.
    pub fn key_groups(&self) -> Vec<usize> {
        let mut groups = Vec::new();
        for (word_index, &word) in self.words.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                groups.push(self.range.start + word_index * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tracker_has_every_group_changed_and_clear_unmarks_them() {
        let range = KeyGroupRange { start: 60, end: 190 };
        let mut changes = KeyGroupChanges::all_changed(range);
        assert_eq!(changes.key_groups(), range.as_range().collect::<Vec<_>>());
        assert!(!changes.contains(59) && !changes.contains(190), "nothing outside the range");
        changes.clear();
        assert!(changes.key_groups().is_empty());
    }

    #[test]
    fn marked_groups_are_listed_once_in_order_across_words() {
        let mut changes = KeyGroupChanges::all_changed(KeyGroupRange { start: 10, end: 150 });
        changes.clear();
        for group in [149, 10, 73, 74, 73, 137] {
            changes.mark(group);
        }
        assert_eq!(changes.key_groups(), [10, 73, 74, 137, 149]);
        assert!(changes.contains(74) && !changes.contains(75));
    }

    #[test]
    fn an_empty_range_tracks_nothing() {
        let changes = KeyGroupChanges::all_changed(KeyGroupRange { start: 5, end: 5 });
        assert!(changes.key_groups().is_empty());
    }
}
