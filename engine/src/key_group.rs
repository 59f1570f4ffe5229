//! Key groups: the unit in which keyed state is owned and, later, moved when a job is rescaled.
//!
//! A key belongs to key group `hash(key) * max_parallelism / 2^64` (the multiply-shift form of
//! `hash mod max_parallelism`: as uniform for a well-mixed hash, and without a division on the hot
//! path); subtask `i` of an operator with
//! parallelism `p` owns the contiguous range of key groups `[ceil(i*m/p), ceil((i+1)*m/p))`, the
//! same split Flink uses. Every key group is owned by exactly one subtask for any `p <= m`, so
//! rescaling moves whole key groups and never splits one.
//!
//! The key hash must be the same in every process, platform and build (state is found by it after
//! a restore): it is the engine's specified hash over the key's canonical bytes (`base::key`).

use std::ops::Range;

use crate::base::key::{key_hash, KeyBytes};

/// Key group of a key for a job with `max_parallelism` key groups.
#[inline]
pub fn assign_key_group<K: KeyBytes + ?Sized>(key: &K, max_parallelism: usize) -> usize {
    key_group_of_hash(key_hash(key), max_parallelism)
}

/// Key group of an already computed stable hash: the hash scaled into `[0, max_parallelism)`.
#[inline]
pub fn key_group_of_hash(hash: u64, max_parallelism: usize) -> usize {
    debug_assert!(max_parallelism > 0);
    ((hash as u128 * max_parallelism as u128) >> 64) as usize
}

/// Index of the subtask that owns `key_group` when the operator runs with `parallelism`.
#[inline]
pub fn subtask_for_key_group(key_group: usize, max_parallelism: usize, parallelism: usize) -> usize {
    debug_assert!(key_group < max_parallelism && parallelism <= max_parallelism);
    key_group * parallelism / max_parallelism
}

/// A contiguous range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: usize,
    /// One past the last key group in the range.
    pub end: usize,
}

impl KeyGroupRange {
    /// The key groups owned by `subtask` of an operator with `parallelism` subtasks.
    pub fn for_subtask(subtask: usize, parallelism: usize, max_parallelism: usize) -> KeyGroupRange {
        assert!(parallelism >= 1 && parallelism <= max_parallelism, "parallelism {parallelism} exceeds max parallelism {max_parallelism}");
        assert!(subtask < parallelism, "subtask {subtask} out of range for parallelism {parallelism}");
        // ceil(i * m / p): the inverse of `subtask_for_key_group`'s floor(g * p / m).
        let boundary = |i: usize| (i * max_parallelism).div_ceil(parallelism);
        KeyGroupRange { start: boundary(subtask), end: boundary(subtask + 1) }
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `key_group` lies in the range.
    pub fn contains(&self, key_group: usize) -> bool {
        (self.start..self.end).contains(&key_group)
    }

    /// The range as a `Range`.
    pub fn as_range(&self) -> Range<usize> {
        self.start..self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups_cover_every_group_exactly_once_for_several_parallelisms() {
        for max_parallelism in [1, 7, 128, 1000] {
            for parallelism in 1..=max_parallelism.min(33) {
                let mut owner = vec![None; max_parallelism];
                for subtask in 0..parallelism {
                    let range = KeyGroupRange::for_subtask(subtask, parallelism, max_parallelism);
                    for group in range.as_range() {
                        assert_eq!(owner[group], None, "group {group} owned twice (p={parallelism}, m={max_parallelism})");
                        owner[group] = Some(subtask);
                        // The range and the per-key assignment agree.
                        assert_eq!(subtask_for_key_group(group, max_parallelism, parallelism), subtask);
                    }
                }
                assert!(owner.iter().all(Option::is_some), "a group has no owner (p={parallelism}, m={max_parallelism})");
            }
        }
    }

    #[test]
    fn every_key_lands_in_the_range_of_its_subtask() {
        for parallelism in [1, 2, 3, 5, 16] {
            for key in 0..10_000i64 {
                let group = assign_key_group(&key, 128);
                let subtask = subtask_for_key_group(group, 128, parallelism);
                assert!(KeyGroupRange::for_subtask(subtask, parallelism, 128).contains(group));
            }
        }
    }

    #[test]
    fn sequential_keys_spread_evenly_over_groups() {
        let mut counts = [0usize; 128];
        for key in 0..128_000i64 {
            counts[assign_key_group(&key, 128)] += 1;
        }
        // 1000 expected per group; a skewed hash would leave groups nearly empty.
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn key_groups_are_pinned() {
        // Saved state is found by these values (see `base::key` for the hash's own vectors).
        assert_eq!(assign_key_group(&42i64, 128), 65);
        assert_eq!(assign_key_group("auction", 128), 2);
        assert_eq!(assign_key_group(&('a', 1i64), 128), 8);
        assert_eq!(assign_key_group("auction", 128), assign_key_group(&"auction".to_string(), 128));
    }
}
