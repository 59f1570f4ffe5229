//! Window functions: what a window computes per key. Incremental ones (aggregate, reduce) keep one
//! accumulator per (window, key) and add each record as it comes; the process function buffers the
//! window's records and sees them all, with the window, when it fires (Flink's
//! `ProcessWindowFunction`). All give the same interface to the window operators.

use std::marker::PhantomData;
use std::sync::Arc;

use super::{TimeWindow, WindowResult};
use crate::base::UserError;
use crate::base::{AggregateFunction, MergingAggregateFunction};
use crate::frame::Record;
use crate::operator::Output;

/// What a window operator needs from a window function (implemented by the engine's aggregate,
/// reduce and process window functions).
pub trait WindowFunction<K, In>: Send + Sync + 'static {
    /// Per-(window, key) state.
    type State: crate::state::StateValue;
    /// Records the function emits.
    type Out: Record;
    /// Fresh state for a window and key.
    fn create(&self) -> Self::State;
    /// Adds a record to the state.
    fn add(&self, state: &mut Self::State, record: In);
    /// Adds a record the caller keeps for other windows (see `AggregateFunction::add_ref`).
    #[inline]
    fn add_ref(&self, state: &mut Self::State, record: &In)
    where
        In: Clone,
    {
        self.add(state, record.clone());
    }
    /// Emits the window's result for `key`; `is_update` when it refines an earlier firing;
    /// `watermark` is the operator's watermark at the firing (for a firing caused by a late
    /// record, the watermark before it).
    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &Self::State,
        is_update: bool,
        watermark: i64,
        out: &mut Output<'_, Self::Out>,
    ) -> Result<(), UserError>;
}

/// An incremental `AggregateFunction` per window; emits `WindowResult`s.
pub struct AggregateWindowFunction<A, Acc, V>(pub(crate) Arc<A>, pub(crate) PhantomData<fn() -> (Acc, V)>);

impl<K, In, Acc, V, A> WindowFunction<K, In> for AggregateWindowFunction<A, Acc, V>
where
    K: Record + Clone,
    In: Record,
    Acc: crate::state::StateValue,
    V: Record,
    A: AggregateFunction<In, Acc, V>,
{
    type State = Acc;
    type Out = WindowResult<K, V>;

    fn create(&self) -> Acc {
        self.0.create_accumulator()
    }

    #[inline]
    fn add(&self, state: &mut Acc, record: In) {
        self.0.add(state, record);
    }

    #[inline]
    fn add_ref(&self, state: &mut Acc, record: &In)
    where
        In: Clone,
    {
        self.0.add_ref(state, record);
    }

    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &Acc,
        is_update: bool,
        _watermark: i64,
        out: &mut Output<'_, WindowResult<K, V>>,
    ) -> Result<(), UserError> {
        out.emit(WindowResult { key: key.clone(), window, value: self.0.get_result(state), is_update });
        Ok(())
    }
}

/// An incremental `AggregateFunction` per window whose output a result function makes from the
/// key, the window and the accumulator (the key is lent, not copied into a `WindowResult`).
pub struct AggregateResultWindowFunction<A, Acc, V, R, O>(pub(crate) Arc<A>, pub(crate) R, pub(crate) ResultTypes<Acc, V, O>);

/// The accumulator, value and output types of an `AggregateResultWindowFunction`.
type ResultTypes<Acc, V, O> = PhantomData<fn() -> (Acc, V, O)>;

impl<K, In, Acc, V, A, R, O> WindowFunction<K, In> for AggregateResultWindowFunction<A, Acc, V, R, O>
where
    K: Record,
    In: Record,
    Acc: crate::state::StateValue,
    V: Record,
    A: AggregateFunction<In, Acc, V>,
    O: Record,
    R: Fn(&K, TimeWindow, &Acc, bool) -> O + Send + Sync + 'static,
{
    type State = Acc;
    type Out = O;

    fn create(&self) -> Acc {
        self.0.create_accumulator()
    }

    #[inline]
    fn add(&self, state: &mut Acc, record: In) {
        self.0.add(state, record);
    }

    #[inline]
    fn add_ref(&self, state: &mut Acc, record: &In)
    where
        In: Clone,
    {
        self.0.add_ref(state, record);
    }

    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &Acc,
        is_update: bool,
        _watermark: i64,
        out: &mut Output<'_, O>,
    ) -> Result<(), UserError> {
        out.emit((self.1)(key, window, state, is_update));
        Ok(())
    }
}

impl<K, In, Acc, V, A, R, O> MergingWindowFunction<K, In> for AggregateResultWindowFunction<A, Acc, V, R, O>
where
    K: Record,
    In: Record,
    Acc: crate::state::StateValue,
    V: Record,
    A: MergingAggregateFunction<In, Acc, V>,
    O: Record,
    R: Fn(&K, TimeWindow, &Acc, bool) -> O + Send + Sync + 'static,
{
    fn merge(&self, earlier: Acc, later: Acc) -> Acc {
        self.0.merge(earlier, later)
    }
}

/// Reduces the records of a window to one; emits `WindowResult`s.
pub struct ReduceWindowFunction<F>(pub(crate) F);

impl<K, T, F> WindowFunction<K, T> for ReduceWindowFunction<F>
where
    K: Record + Clone,
    T: Record + crate::state::StateValue,
    F: Fn(T, T) -> T + Send + Sync + 'static,
{
    type State = Option<T>;
    type Out = WindowResult<K, T>;

    fn create(&self) -> Option<T> {
        None
    }

    #[inline]
    fn add(&self, state: &mut Option<T>, record: T) {
        *state = Some(match state.take() {
            Some(previous) => (self.0)(previous, record),
            None => record,
        });
    }

    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &Option<T>,
        is_update: bool,
        _watermark: i64,
        out: &mut Output<'_, WindowResult<K, T>>,
    ) -> Result<(), UserError> {
        if let Some(value) = state {
            out.emit(WindowResult { key: key.clone(), window, value: value.clone(), is_update });
        }
        Ok(())
    }
}

/// Context a process window function is called with.
pub struct WindowContext<'a, K> {
    /// The key.
    pub key: &'a K,
    /// The window firing.
    pub window: TimeWindow,
    /// Whether this firing refines an earlier one (a late record within allowed lateness).
    pub is_update: bool,
    /// The operator's watermark when the window fired: the watermark that reached the window's
    /// end, `i64::MAX` at end of input, or for a firing caused by a late record the watermark
    /// before that record.
    pub watermark: i64,
}

/// Sees all records of a window when it fires.
pub struct ProcessWindowFunction<F, O>(pub(crate) F, pub(crate) PhantomData<fn() -> O>);

impl<K, T, O, F> WindowFunction<K, T> for ProcessWindowFunction<F, O>
where
    K: Record,
    T: Record + crate::state::StateValue,
    O: Record,
    F: Fn(&WindowContext<'_, K>, &[T], &mut Output<'_, O>) -> Result<(), UserError> + Send + Sync + 'static,
{
    type State = Vec<T>;
    type Out = O;

    fn create(&self) -> Vec<T> {
        Vec::new()
    }

    #[inline]
    fn add(&self, state: &mut Vec<T>, record: T) {
        state.push(record);
    }

    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &Vec<T>,
        is_update: bool,
        watermark: i64,
        out: &mut Output<'_, O>,
    ) -> Result<(), UserError> {
        (self.0)(&WindowContext { key, window, is_update, watermark }, state, out)
    }
}

/// A window function whose states can be merged: needed by merging (session) windows.
pub trait MergingWindowFunction<K, In>: WindowFunction<K, In> {
    /// Combines the states of two windows that merge (earlier first).
    fn merge(&self, earlier: Self::State, later: Self::State) -> Self::State;
}

impl<K, In, Acc, V, A> MergingWindowFunction<K, In> for AggregateWindowFunction<A, Acc, V>
where
    K: Record + Clone,
    In: Record,
    Acc: crate::state::StateValue,
    V: Record,
    A: MergingAggregateFunction<In, Acc, V>,
{
    fn merge(&self, earlier: Acc, later: Acc) -> Acc {
        self.0.merge(earlier, later)
    }
}

impl<K, T, F> MergingWindowFunction<K, T> for ReduceWindowFunction<F>
where
    K: Record + Clone,
    T: Record + crate::state::StateValue,
    F: Fn(T, T) -> T + Send + Sync + 'static,
{
    fn merge(&self, earlier: Option<T>, later: Option<T>) -> Option<T> {
        match (earlier, later) {
            (Some(a), Some(b)) => Some((self.0)(a, b)),
            (a, b) => a.or(b),
        }
    }
}

impl<K, T, O, F> MergingWindowFunction<K, T> for ProcessWindowFunction<F, O>
where
    K: Record,
    T: Record + crate::state::StateValue,
    O: Record,
    F: Fn(&WindowContext<'_, K>, &[T], &mut Output<'_, O>) -> Result<(), UserError> + Send + Sync + 'static,
{
    fn merge(&self, mut earlier: Vec<T>, later: Vec<T>) -> Vec<T> {
        earlier.extend(later);
        earlier
    }
}
