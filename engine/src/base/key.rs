//! The bound on keys of keyed streams and keyed state.

use std::hash::Hash;

/// Keys of keyed streams: hashed stably into key groups, compared for equality, moved between cores.
pub trait Key: Hash + Eq + Clone + Send + 'static {}
impl<K: Hash + Eq + Clone + Send + 'static> Key for K {}
