//! State handles: the typed ids user code keeps for its states, and their per-key operations.
//!
//! A handle is returned by a backend's `register_*` call in `open` and names one state of that
//! backend; it is `Copy`, holds no data and no borrow, so a process function stores it in a field.
//! Every operation takes the [`KeyContext`] of the record (or timer) being handled and so touches
//! only the current key's state: two keys never see each other's values. Operations mirror Flink's
//! `ValueState`, `ListState`, `MapState`, `ReducingState` and `AggregatingState`; the `read` forms
//! lend a reference and allocate nothing, the `get` forms clone.

use std::fmt;
use std::marker::PhantomData;

use super::backend::StateBackend;
use super::context::KeyContext;
use super::descriptor::{StateKind, StateValue};
use crate::base::Key;

/// Index of a state within its backend, in order of registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub(crate) u32);

impl StateId {
    /// The position of the state in its backend's registration order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// What every state handle is: a typed name for one registered state.
pub trait StateHandle: Copy + Send + Sync + 'static {
    /// The kind of state the handle names.
    const KIND: StateKind;

    /// The state's id in the backend that registered it.
    fn id(&self) -> StateId;
}

macro_rules! state_handle {
    ($(#[$doc:meta])* $name:ident < $($param:ident),+ >, $kind:expr, $phantom:ty) => {
        $(#[$doc])*
        pub struct $name<$($param),+> {
            id: StateId,
            _types: PhantomData<$phantom>,
        }

        impl<$($param),+> $name<$($param),+> {
            pub(crate) fn new(id: StateId) -> Self {
                $name { id, _types: PhantomData }
            }
        }

        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<$($param),+> Copy for $name<$($param),+> {}

        impl<$($param),+> fmt::Debug for $name<$($param),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.id.0)
            }
        }

        impl<$($param: 'static),+> StateHandle for $name<$($param),+> {
            const KIND: StateKind = $kind;

            fn id(&self) -> StateId {
                self.id
            }
        }
    };
}

state_handle!(
    /// One value per key (Flink's `ValueState`).
    ValueState<V>, StateKind::Value, fn() -> V
);
state_handle!(
    /// An ordered list of values per key (Flink's `ListState`). TTL applies to the whole list.
    ListState<V>, StateKind::List, fn() -> V
);
state_handle!(
    /// A map from user key to value per key (Flink's `MapState`). TTL applies per entry.
    MapState<UK, UV>, StateKind::Map, fn() -> (UK, UV)
);
state_handle!(
    /// One value per key, combined with each added value by the state's reduce function (Flink's
    /// `ReducingState`).
    ReducingState<V>, StateKind::Reducing, fn() -> V
);
state_handle!(
    /// One accumulator per key, fed by the state's aggregate function; reads give its result
    /// (Flink's `AggregatingState`; the accumulator type stays inside the backend).
    AggregatingState<In, Out>, StateKind::Aggregating, fn(In) -> Out
);

impl<V: StateValue> ValueState<V> {
    /// The current key's value, cloned.
    pub fn get<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Option<V> {
        self.read(ctx, |value| value.cloned())
    }

    /// Runs `read` on the current key's value, without cloning it.
    pub fn read<K: Key, B: StateBackend<K>, R>(&self, ctx: &mut KeyContext<'_, K, B>, read: impl FnOnce(Option<&V>) -> R) -> R {
        let (backend, key) = ctx.parts();
        backend.value_read(*self, key, read)
    }

    /// Sets the current key's value.
    pub fn update<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, value: V) {
        let (backend, key) = ctx.parts();
        backend.value_put(*self, key, value);
    }

    /// Runs `modify` on the current key's value in place, `None` if it has none; leaving `None`
    /// removes it. Counts as a write for TTL. One lookup: the cheapest read-modify-write.
    pub fn modify<K: Key, B: StateBackend<K>, R>(&self, ctx: &mut KeyContext<'_, K, B>, modify: impl FnOnce(&mut Option<V>) -> R) -> R {
        let (backend, key) = ctx.parts();
        backend.value_modify(*self, key, modify)
    }

    /// Removes the current key's value.
    pub fn clear<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) {
        let (backend, key) = ctx.parts();
        backend.clear(*self, key);
    }

    /// Removes the current key's value and returns it, without cloning it (`get` then `clear`
    /// in one lookup; `update` puts a value back).
    pub fn take<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Option<V> {
        self.modify(ctx, Option::take)
    }
}

impl<V: StateValue> ListState<V> {
    /// The current key's list, cloned (empty if it has none).
    pub fn get<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Vec<V> {
        self.read(ctx, <[V]>::to_vec)
    }

    /// Runs `read` on the current key's list, without cloning it.
    pub fn read<K: Key, B: StateBackend<K>, R>(&self, ctx: &mut KeyContext<'_, K, B>, read: impl FnOnce(&[V]) -> R) -> R {
        let (backend, key) = ctx.parts();
        backend.list_read(*self, key, read)
    }

    /// Appends a value to the current key's list.
    pub fn add<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, value: V) {
        let (backend, key) = ctx.parts();
        backend.list_append(*self, key, value);
    }

    /// Appends every value of `values` to the current key's list.
    pub fn add_all<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, values: impl IntoIterator<Item = V>) {
        let (backend, key) = ctx.parts();
        backend.list_modify(*self, key, |list| list.extend(values));
    }

    /// Replaces the current key's list; an empty one clears it.
    pub fn update<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, values: Vec<V>) {
        let (backend, key) = ctx.parts();
        backend.list_modify(*self, key, |list| *list = values);
    }

    /// Removes the current key's list.
    pub fn clear<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) {
        let (backend, key) = ctx.parts();
        backend.clear(*self, key);
    }
}

impl<UK: Key, UV: StateValue> MapState<UK, UV> {
    /// The value of `user_key` in the current key's map, cloned.
    pub fn get<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, user_key: &UK) -> Option<UV> {
        self.read(ctx, user_key, |value| value.cloned())
    }

    /// Runs `read` on the value of `user_key` in the current key's map, without cloning it.
    pub fn read<K: Key, B: StateBackend<K>, R>(
        &self,
        ctx: &mut KeyContext<'_, K, B>,
        user_key: &UK,
        read: impl FnOnce(Option<&UV>) -> R,
    ) -> R {
        let (backend, key) = ctx.parts();
        backend.map_read(*self, key, user_key, read)
    }

    /// Whether the current key's map holds `user_key`.
    pub fn contains<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, user_key: &UK) -> bool {
        self.read(ctx, user_key, |value| value.is_some())
    }

    /// Sets the value of `user_key` in the current key's map.
    pub fn put<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, user_key: UK, value: UV) {
        let (backend, key) = ctx.parts();
        backend.map_put(*self, key, user_key, value);
    }

    /// Removes `user_key` from the current key's map.
    pub fn remove<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, user_key: &UK) {
        let (backend, key) = ctx.parts();
        backend.map_remove(*self, key, user_key);
    }

    /// Calls `visit` with every entry of the current key's map, in no particular order.
    pub fn for_each<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, visit: impl FnMut(&UK, &UV)) {
        let (backend, key) = ctx.parts();
        backend.map_for_each(*self, key, visit);
    }

    /// Every entry of the current key's map, cloned, in no particular order.
    pub fn entries<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Vec<(UK, UV)> {
        let mut entries = Vec::new();
        self.for_each(ctx, |user_key, value| entries.push((user_key.clone(), value.clone())));
        entries
    }

    /// Whether the current key's map has no entry.
    pub fn is_empty<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> bool {
        let mut empty = true;
        self.for_each(ctx, |_, _| empty = false);
        empty
    }

    /// Removes the current key's whole map.
    pub fn clear<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) {
        let (backend, key) = ctx.parts();
        backend.clear(*self, key);
    }
}

impl<V: StateValue> ReducingState<V> {
    /// The current key's reduced value, cloned.
    pub fn get<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Option<V> {
        self.read(ctx, |value| value.cloned())
    }

    /// Runs `read` on the current key's reduced value, without cloning it.
    pub fn read<K: Key, B: StateBackend<K>, R>(&self, ctx: &mut KeyContext<'_, K, B>, read: impl FnOnce(Option<&V>) -> R) -> R {
        let (backend, key) = ctx.parts();
        backend.reducing_read(*self, key, read)
    }

    /// Folds `value` into the current key's value with the reduce function (the first value is
    /// kept as it is).
    pub fn add<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, value: V) {
        let (backend, key) = ctx.parts();
        backend.reducing_add(*self, key, value);
    }

    /// Removes the current key's value.
    pub fn clear<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) {
        let (backend, key) = ctx.parts();
        backend.clear(*self, key);
    }
}

impl<In: 'static, Out: 'static> AggregatingState<In, Out> {
    /// The aggregate function's result for the current key, `None` if nothing was added.
    pub fn get<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) -> Option<Out> {
        let (backend, key) = ctx.parts();
        backend.aggregating_get(*self, key)
    }

    /// Adds `value` to the current key's accumulator (created on first add).
    pub fn add<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>, value: In) {
        let (backend, key) = ctx.parts();
        backend.aggregating_add(*self, key, value);
    }

    /// Removes the current key's accumulator.
    pub fn clear<K: Key, B: StateBackend<K>>(&self, ctx: &mut KeyContext<'_, K, B>) {
        let (backend, key) = ctx.parts();
        backend.clear(*self, key);
    }
}
