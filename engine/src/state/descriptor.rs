//! State descriptors: the name and TTL under which an operator declares a state, and its kind.
//!
//! A descriptor is what survives a restart: state is found again by its name, so a name means one
//! kind and one set of types for the life of a job (registration and restore check both). The
//! descriptor carries no types; the typed register call (`register_value::<V>`) supplies them, so one
//! declaration cannot disagree with itself.

use super::ttl::StateTtlConfig;
use crate::base::Codec;

/// Values kept in state: cloned, moved between cores, and written into checkpoints (and the disk
/// backend) with the [`Codec`](crate::base::Codec).
pub trait StateValue: Clone + Codec + Send + Sync + 'static {}
impl<T: Clone + Codec + Send + Sync + 'static> StateValue for T {}

/// The kinds of keyed state, as in Flink.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub enum StateKind {
    /// One value per key.
    Value,
    /// An ordered list of values per key.
    List,
    /// A map from user key to value per key; TTL applies per entry.
    Map,
    /// One value per key, folded with a reduce function on every add.
    Reducing,
    /// One accumulator per key, fed by an aggregate function on every add.
    Aggregating,
}

/// Declares a state: its name, unique within an operator, and an optional time-to-live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDescriptor {
    name: String,
    ttl: Option<StateTtlConfig>,
}

impl StateDescriptor {
    /// A state called `name`, kept until cleared.
    pub fn new(name: impl Into<String>) -> StateDescriptor {
        StateDescriptor { name: name.into(), ttl: None }
    }

    /// The same state, whose values expire as `ttl` says.
    pub fn with_ttl(mut self, ttl: StateTtlConfig) -> StateDescriptor {
        self.ttl = Some(ttl);
        self
    }

    /// The state's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state's time-to-live, if its values expire.
    pub fn ttl(&self) -> Option<StateTtlConfig> {
        self.ttl
    }
}
