//! `KeyedStream`: a stream partitioned by key, and the rolling aggregations on it.
//!
//! Records reach the subtask owning their key's key group; each aggregation keeps one state per key
//! (in key groups, see `operator::keyed`) and emits the updated result for every input record, as
//! Flink's rolling `reduce`, `sum` and `count` on a `KeyedStream` do.

use std::ops::AddAssign;
use std::sync::Arc;
use std::time::Duration;

use super::stream::DataStream;
use crate::base::{AggregateFunction, Key, MergingAggregateFunction};
use crate::channel::partitioner::{ErasedPartitioner, HashPartitioner, Partitioning};
use crate::frame::Record;
use crate::graph::logical::{OperatorKind, PartitionerFactory, PartitionerSetup};
use crate::key_group::KeyGroupRange;
use crate::operator::keyed::{RollingKeyedOperator, RollingState};
use crate::operator::process::{KeyedProcessFunction, KeyedProcessOperator};
use crate::state::{KeyedStateBackend, StateValue, TimerService};
use crate::window::assigner::WindowOperatorKind;
use crate::window::function::{
    AggregateResultWindowFunction, AggregateWindowFunction, MergingWindowFunction, ProcessWindowFunction, ReduceWindowFunction,
    WindowContext, WindowFunction,
};
use crate::window::operator::LatePolicy;
use crate::window::{TimeWindow, WindowResult};

/// A stream partitioned by the key `KeyFn` extracts.
pub struct KeyedStream<T, K, KeyFn> {
    stream: DataStream<T>,
    key_fn: Arc<KeyFn>,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<T, K, KeyFn> KeyedStream<T, K, KeyFn>
where
    T: Record,
    K: Key,
    KeyFn: Fn(&T) -> K + Send + Sync + 'static,
{
    pub(crate) fn new(stream: DataStream<T>, key_fn: KeyFn) -> Self {
        let key_fn = Arc::new(key_fn);
        let partition_key = Arc::clone(&key_fn);
        let factory: PartitionerFactory = Arc::new(move |setup: &PartitionerSetup| {
            let key_fn = Arc::clone(&partition_key);
            Box::new(HashPartitioner::new(setup.channels, setup.max_parallelism, setup.frame_records_for::<T>(), move |r: &T| key_fn(r)))
                as Box<dyn ErasedPartitioner>
        });
        KeyedStream { stream: stream.with_partitioning(Partitioning::Hash, factory), key_fn, _key: std::marker::PhantomData }
    }

    /// Keeps state `S` per key (created by `init`) and, for every record, updates it with `update`
    /// and emits what `update` returns.
    pub fn rolling<S, Out, Init, Update>(self, name: &str, init: Init, update: Update) -> DataStream<Out>
    where
        S: StateValue,
        Out: Record,
        Init: Fn() -> S + Clone + Send + Sync + 'static,
        Update: FnMut(&K, &mut S, T) -> Out + Clone + Send + Sync + 'static,
    {
        let key_fn = self.key_fn;
        self.stream.add_operator(name, OperatorKind::KeyedRolling, true, move |context| {
            let key_fn = Arc::clone(&key_fn);
            let range = KeyGroupRange::for_subtask(context.subtask_index, context.parallelism, context.max_parallelism);
            Ok(RollingKeyedOperator {
                key_fn: move |r: &T| key_fn(r),
                init: init.clone(),
                update: update.clone(),
                state: RollingState::open(context.state_dir.as_deref(), context.state_cache_bytes, range, context.max_parallelism)?,
            })
        })
    }

    /// The keyed stream as a plain stream whose next operator receives records hash-partitioned
    /// by key (for operators built on keyed streams).
    pub(crate) fn into_stream(self) -> DataStream<T> {
        self.stream
    }

    /// Runs a keyed process function: per record, with the key's state and timers (and the
    /// record's event time, if the stream was given timestamps).
    pub fn process<Out, F, Make>(self, name: &str, make: Make) -> DataStream<Out>
    where
        Out: Record,
        F: KeyedProcessFunction<K, T, Out>,
        Make: Fn() -> F + Send + Sync + 'static,
    {
        let key_fn = self.key_fn;
        let timestamp_fn = self.stream.timestamp_fn.clone();
        self.stream.add_operator(name, OperatorKind::Process, true, move |context| {
            let range = KeyGroupRange::for_subtask(context.subtask_index, context.parallelism, context.max_parallelism);
            let mut backend =
                KeyedStateBackend::open(context.state_dir.as_deref(), context.state_cache_bytes, range, context.max_parallelism)?;
            let mut function = make();
            function.open(&mut backend)?;
            let key_fn = Arc::clone(&key_fn);
            Ok(KeyedProcessOperator {
                function,
                key_fn: move |r: &T| key_fn(r),
                timestamp_fn: timestamp_fn.clone(),
                backend,
                timers: TimerService::new(range, context.max_parallelism),
                next_processing_timer_ms: None,
                clock_anchor: (std::time::Instant::now(), crate::state::Clock::now_ms(&crate::state::SystemClock)),
                firing_until: None,
                timers_peak: 0,
                changes: crate::state::KeyGroupChanges::all_changed(range),
                _records: std::marker::PhantomData,
            })
        })
    }

    /// Combines each record with the key's previous result and emits the new result.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        T: StateValue,
        F: Fn(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.rolling(
            "Reduce",
            || None::<T>,
            move |_key, state: &mut Option<T>, record: T| {
                let next = match state.take() {
                    Some(previous) => f(previous, record),
                    None => record,
                };
                *state = Some(next.clone());
                next
            },
        )
    }

    /// Emits `(key, running sum of value(record))` per record.
    pub fn sum<V, F>(self, value: F) -> DataStream<(K, V)>
    where
        V: AddAssign + Default + Copy + StateValue,
        F: Fn(&T) -> V + Clone + Send + Sync + 'static,
    {
        self.rolling("Sum", V::default, move |key: &K, sum: &mut V, record: T| {
            *sum += value(&record);
            (key.clone(), *sum)
        })
    }

    /// Emits `(key, number of records so far)` per record.
    pub fn count(self) -> DataStream<(K, u64)> {
        self.rolling(
            "Count",
            || 0u64,
            |key: &K, count: &mut u64, _record: T| {
                *count += 1;
                (key.clone(), *count)
            },
        )
    }

    /// Emits `(key, result)` of an incremental aggregate per record.
    pub fn aggregate<Acc, Out, A>(self, aggregate: A) -> DataStream<(K, Out)>
    where
        Acc: StateValue,
        Out: Record,
        A: AggregateFunction<T, Acc, Out>,
    {
        let aggregate = Arc::new(aggregate);
        let create = Arc::clone(&aggregate);
        self.rolling(
            "Aggregate",
            move || create.create_accumulator(),
            move |key: &K, accumulator: &mut Acc, record: T| {
                aggregate.add(accumulator, record);
                (key.clone(), aggregate.get_result(accumulator))
            },
        )
    }
}

/// A keyed stream cut into event-time windows by a non-merging assigner (tumbling, sliding,
/// cumulate), with allowed lateness and a policy for later records.
pub struct WindowedStream<T, K, KeyFn, TimestampFn, A> {
    keyed: KeyedStream<T, K, KeyFn>,
    assigner: A,
    timestamp_fn: Arc<TimestampFn>,
    allowed_lateness: Duration,
    late_policy: LatePolicy<T>,
}

impl<T, K, KeyFn> KeyedStream<T, K, KeyFn>
where
    T: Record,
    K: Key,
    KeyFn: Fn(&T) -> K + Send + Sync + 'static,
{
    /// Cuts the stream into event-time windows of `assigner` (tumbling, sliding, cumulate or
    /// session);
    /// `timestamp_fn` gives a record's event time in milliseconds. Windows fire when the watermark
    /// passes their end; by default late records are dropped and counted.
    pub fn window<TimestampFn, A>(self, assigner: A, timestamp_fn: TimestampFn) -> WindowedStream<T, K, KeyFn, TimestampFn, A>
    where
        TimestampFn: Fn(&T) -> i64 + Send + Sync + 'static,
        A: Copy + Send + Sync + 'static,
    {
        WindowedStream {
            keyed: self,
            assigner,
            timestamp_fn: Arc::new(timestamp_fn),
            allowed_lateness: Duration::ZERO,
            late_policy: LatePolicy::Drop,
        }
    }
}

impl<T, K, KeyFn, TimestampFn, A> WindowedStream<T, K, KeyFn, TimestampFn, A>
where
    T: Record + Clone,
    K: Key,
    KeyFn: Fn(&T) -> K + Send + Sync + 'static,
    TimestampFn: Fn(&T) -> i64 + Send + Sync + 'static,
    A: Copy + Send + Sync + 'static,
{
    /// Keeps each window's state for `lateness` after it fires: a record arriving then updates the
    /// window and re-fires it, marked as an update.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness;
        self
    }

    /// What to do with records later than the allowed lateness (default: drop and count).
    pub fn late_records(mut self, policy: LatePolicy<T>) -> Self {
        self.late_policy = policy;
        self
    }

    fn apply<F: WindowFunction<K, T>>(self, name: &str, function: F) -> DataStream<F::Out>
    where
        A: WindowOperatorKind<K, T, SharedWindowFunction<F>>,
    {
        let WindowedStream { keyed, assigner, timestamp_fn, allowed_lateness, late_policy } = self;
        let key_fn = keyed.key_fn;
        let function = Arc::new(function);
        let lateness_ms = crate::time::duration_ms(allowed_lateness);
        let params = format!("{assigner:?}, allowed lateness {lateness_ms} ms, late records {}", late_policy.describe());
        keyed
            .stream
            .add_operator(name, OperatorKind::Window, true, move |context| {
                let (key_fn, timestamp_fn, function) = (Arc::clone(&key_fn), Arc::clone(&timestamp_fn), Arc::clone(&function));
                Ok(assigner.operator(
                    move |r: &T| key_fn(r),
                    move |r: &T| timestamp_fn(r),
                    SharedWindowFunction(function),
                    lateness_ms,
                    late_policy.clone(),
                    context,
                )?)
            })
            .with_params(params)
    }

    /// Aggregates each window per key incrementally; one result per key and window.
    pub fn aggregate<Acc, Out, Agg>(self, aggregate: Agg) -> DataStream<WindowResult<K, Out>>
    where
        Acc: StateValue,
        Out: Record,
        Agg: AggregateFunction<T, Acc, Out>,
        A: WindowOperatorKind<K, T, SharedWindowFunction<AggregateWindowFunction<Agg, Acc, Out>>>,
    {
        self.apply("Window", AggregateWindowFunction(Arc::new(aggregate), std::marker::PhantomData))
    }

    /// Aggregates each window per key incrementally, and makes each result with `result` from
    /// the key, the window, the accumulator and whether it refines an earlier firing (Flink's
    /// `aggregate(AggregateFunction, ProcessWindowFunction)`): the key is lent, not copied, and
    /// the aggregate's own result need not be made.
    pub fn aggregate_with<Acc, V, Out, Agg, R>(self, aggregate: Agg, result: R) -> DataStream<Out>
    where
        Acc: StateValue,
        V: Record,
        Out: Record,
        Agg: AggregateFunction<T, Acc, V>,
        R: Fn(&K, TimeWindow, &Acc, bool) -> Out + Send + Sync + 'static,
        A: WindowOperatorKind<K, T, SharedWindowFunction<AggregateResultWindowFunction<Agg, Acc, V, R, Out>>>,
    {
        self.apply("Window", AggregateResultWindowFunction(Arc::new(aggregate), result, std::marker::PhantomData))
    }

    /// Reduces each window per key to one record.
    pub fn reduce<F>(self, reduce: F) -> DataStream<WindowResult<K, T>>
    where
        T: StateValue,
        F: Fn(T, T) -> T + Send + Sync + 'static,
        A: WindowOperatorKind<K, T, SharedWindowFunction<ReduceWindowFunction<F>>>,
    {
        self.apply("Window", ReduceWindowFunction(reduce))
    }

    /// Counts the records of each window per key.
    pub fn count(self) -> DataStream<WindowResult<K, u64>>
    where
        A: WindowOperatorKind<K, T, SharedWindowFunction<AggregateWindowFunction<CountAggregate, u64, u64>>>,
    {
        self.aggregate(CountAggregate)
    }

    /// Calls `function` with all records of a window and key when the window fires.
    pub fn process<O, F>(self, function: F) -> DataStream<O>
    where
        T: StateValue,
        O: Record,
        F: Fn(&WindowContext<'_, K>, &[T], &mut crate::operator::Output<'_, O>) -> Result<(), crate::base::UserError>
            + Send
            + Sync
            + 'static,
        A: WindowOperatorKind<K, T, SharedWindowFunction<ProcessWindowFunction<F, O>>>,
    {
        self.apply("ProcessWindow", ProcessWindowFunction(function, std::marker::PhantomData))
    }
}

/// A window function shared by the subtasks of one operator.
pub struct SharedWindowFunction<F>(Arc<F>);

impl<K, In, F: WindowFunction<K, In>> WindowFunction<K, In> for SharedWindowFunction<F> {
    type State = F::State;
    type Out = F::Out;

    fn create(&self) -> F::State {
        self.0.create()
    }

    #[inline]
    fn add(&self, state: &mut F::State, record: In) {
        self.0.add(state, record)
    }

    #[inline]
    fn add_ref(&self, state: &mut F::State, record: &In)
    where
        In: Clone,
    {
        self.0.add_ref(state, record)
    }

    fn emit(
        &self,
        key: &K,
        window: TimeWindow,
        state: &F::State,
        is_update: bool,
        watermark: i64,
        out: &mut crate::operator::Output<'_, F::Out>,
    ) -> Result<(), crate::base::UserError> {
        self.0.emit(key, window, state, is_update, watermark, out)
    }
}

/// Counts records: the aggregate behind `count()`.
pub struct CountAggregate;

impl<T> MergingAggregateFunction<T, u64, u64> for CountAggregate {
    fn merge(&self, earlier: u64, later: u64) -> u64 {
        earlier + later
    }
}

impl<K, In, F: MergingWindowFunction<K, In>> MergingWindowFunction<K, In> for SharedWindowFunction<F> {
    fn merge(&self, earlier: F::State, later: F::State) -> F::State {
        self.0.merge(earlier, later)
    }
}

impl<T> AggregateFunction<T, u64, u64> for CountAggregate {
    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, accumulator: &mut u64, _value: T) {
        *accumulator += 1;
    }

    fn add_ref(&self, accumulator: &mut u64, _value: &T)
    where
        T: Clone,
    {
        *accumulator += 1;
    }

    fn get_result(&self, accumulator: &u64) -> u64 {
        *accumulator
    }
}
