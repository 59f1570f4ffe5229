//! Keyed state and timers: what a keyed operator remembers per key, organised by key group.
//!
//! A keyed subtask owns a [`KeyGroupRange`](crate::key_group::KeyGroupRange). Its
//! [`StateBackend`] holds named states (value, list, map, reducing, aggregating), each declared by a
//! [`StateDescriptor`]; every state keeps, per owned key group, the entries of every key. A
//! [`TimerService`] keeps the subtask's event- and processing-time timers the same way. Both can
//! snapshot one key group and restore it elsewhere, which is what a checkpoint writes and what a
//! rescale moves; a key group is never split. Two backends implement it: [`HeapStateBackend`] keeps
//! state in memory, [`DiskStateBackend`] on local disk (fjall); their snapshots are one format, so
//! either restores what the other wrote. Both track the key groups changed since the last
//! checkpoint ([`ChangeTracking`]), so a checkpoint can write only those.
//!
//! How user code reaches its key's state, without `unsafe` and without a current key hidden in the
//! backend: `open` registers each descriptor and keeps the returned handle ([`ValueState`],
//! [`ListState`], [`MapState`], [`ReducingState`], [`AggregatingState`]), a typed `Copy` id. For
//! each record the operator builds a [`KeyContext`] from the backend, the timers and the record's
//! key (Flink's `setCurrentKey`: the key group is hashed once there) and passes it to user code,
//! which calls `handle.get(ctx)`, `handle.update(ctx, v)`, `ctx.register_event_time_timer(t)`. The
//! context borrows the key, so setting it allocates nothing; a handle cannot outlive its type, and a
//! handle of another backend is a bug that panics on first use.
//!
//! Example (the same code runs as the test `context::tests::a_process_function_counts_per_key_and_clears_on_its_timer`):
//! ```ignore
//! let mut backend = HeapStateBackend::<u64>::new(range, max_parallelism);
//! let mut timers = TimerService::<u64>::new(range, max_parallelism);
//! let count: ValueState<u64> = backend.register_value(&StateDescriptor::new("count"))?;
//! // per record:
//! let mut ctx = KeyContext::new(&mut backend, &mut timers, &record.key);
//! count.modify(&mut ctx, |c| *c.get_or_insert(0) += 1);
//! ctx.register_event_time_timer(record.timestamp + 60_000);
//! ```
//!
//! Time here is milliseconds in `i64`, as watermarks are; processing time comes from a [`Clock`].

pub mod backend;
pub mod changes;
pub mod configured;
pub mod context;
pub(crate) mod cow;
pub mod descriptor;
pub mod disk;
pub mod handle;
pub mod heap;
pub mod operator_state;
pub mod timers;
pub mod ttl;

#[cfg(test)]
mod conformance;

pub use crate::base::Key;
pub use backend::{KeyGroupSnapshot, StateBackend, StateSnapshot};
pub use changes::{ChangeTracking, KeyGroupChanges};
pub use configured::{KeyedStateBackend, StateBackendConfig};
pub use context::{KeyContext, ScopedKey};
pub use descriptor::{StateDescriptor, StateKind, StateValue};
pub use disk::{DiskSnapshotView, DiskStateBackend, DiskStateOptions};
pub use handle::{AggregatingState, ListState, MapState, ReducingState, StateHandle, StateId, ValueState};
pub use heap::HeapStateBackend;
pub use operator_state::{DeferredKeyGroup, KeyGroupedState, OperatorKeyGroupSnapshot};
pub use timers::{KeyGroupTimers, TimeDomain, Timer, TimerService};
pub use ttl::{Clock, ManualClock, StateTtlConfig, StateVisibility, SystemClock, TtlUpdateType};

use crate::key_group::KeyGroupRange;

/// Why a state could not be registered or a key group not restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A state of this name exists with another kind or other types.
    #[error("state {name:?} is registered as {registered:?} state of {registered_type}, not as {requested:?} state of {requested_type}")]
    IncompatibleState {
        /// The state's name.
        name: String,
        /// Kind it was registered (or snapshotted) with.
        registered: StateKind,
        /// Its types, as Rust names them.
        registered_type: &'static str,
        /// Kind asked for now.
        requested: StateKind,
        /// Types asked for now.
        requested_type: &'static str,
    },
    /// A snapshot holds a state under a name registered here with another kind or other types.
    #[error("snapshot of key group {key_group} holds state {name:?} as {snapshot_kind:?} state of {snapshot_type}, registered as {kind:?} state of {state_type}")]
    IncompatibleSnapshot {
        /// The state's name.
        name: String,
        /// The snapshot's key group.
        key_group: usize,
        /// Kind the state is registered with.
        kind: StateKind,
        /// Its registered types.
        state_type: &'static str,
        /// Kind in the snapshot.
        snapshot_kind: StateKind,
        /// Types in the snapshot.
        snapshot_type: String,
    },
    /// A snapshot's bytes do not decode as the state's (corrupt, or written by other types).
    #[error("snapshot of state {name:?} in key group {key_group} cannot be read: {reason}")]
    CorruptSnapshot {
        /// The state (or operator) whose snapshot it is.
        name: String,
        /// The snapshot's key group.
        key_group: usize,
        /// What the codec said.
        reason: String,
    },
    /// A state of this name exists with another TTL configuration.
    #[error("state {name:?} is registered with TTL {registered:?}, not {requested:?}")]
    TtlMismatch {
        /// The state's name.
        name: String,
        /// TTL it was registered with.
        registered: Option<StateTtlConfig>,
        /// TTL asked for now.
        requested: Option<StateTtlConfig>,
    },
    /// A snapshot of a key group this subtask does not own.
    #[error("key group {key_group} is not in this subtask's range {range:?}")]
    KeyGroupNotOwned {
        /// The snapshot's key group.
        key_group: usize,
        /// The key groups this subtask owns.
        range: KeyGroupRange,
    },
    /// A snapshot written by another kind of operator (or with other types).
    #[error("snapshot of key group {key_group} was not written by this operator: it holds {found}, this operator keeps {expected}")]
    ForeignOperatorSnapshot {
        /// The snapshot's key group.
        key_group: usize,
        /// The data this operator writes.
        expected: &'static str,
        /// The data in the snapshot.
        found: String,
    },
    /// The on-disk store of a state backend failed: an I/O error, or data it wrote that no longer
    /// reads back.
    #[error("state store in {} failed to {operation}: {reason}", directory.display())]
    Storage {
        /// The store's directory.
        directory: std::path::PathBuf,
        /// What the backend was doing.
        operation: &'static str,
        /// What the store or the codec said.
        reason: String,
    },
    /// A snapshot taken with another number of key groups: its key group numbers mean other keys.
    #[error("snapshot was taken with max parallelism {snapshot}, this subtask runs with {subtask}")]
    MaxParallelismMismatch {
        /// Max parallelism of the snapshot.
        snapshot: usize,
        /// Max parallelism of this subtask.
        subtask: usize,
    },
}
