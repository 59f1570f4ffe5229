//! `DataStream<T>`: a typed stream of records and the transformations on it.
//!
//! Each transformation consumes the stream and returns the new one, adding an operator node and the
//! edge to it. How records cross that edge (forward, rebalance, broadcast, hash by key) is set by
//! the stream the operator is applied to (`rebalance()`, `broadcast()`, `key_by()`), as in Flink.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::env::GraphBuilder;
use super::keyed::KeyedStream;
use crate::base::Key;
use crate::base::{SubtaskContext, UserError};
use crate::channel::partitioner::{BroadcastPartitioner, ErasedPartitioner, Partitioning, RoundRobinPartitioner};
use crate::frame::Record;
use crate::graph::logical::{EdgeSpec, NodeFactory, OperatorKind, PartitionerFactory, PartitionerSetup};
use crate::operator::async_io::{AsyncFunction, AsyncIoOperator, AsyncOptions};
use crate::operator::basic::{
    FanOutOperator, FilterOperator, FlatMapOperator, IdentityOperator, MapOperator, SinkOperator, TryMapOperator,
};
use crate::operator::timestamps::TimestampsAndWatermarks;
use crate::operator::{ErasedFrameOperator, FrameOperator, OutputTag};
use crate::sink::Sink;
use crate::time::watermark::WatermarkStrategy;

/// A typed stream of records.
pub struct DataStream<T> {
    pub(crate) builder: Rc<RefCell<GraphBuilder>>,
    pub(crate) node: usize,
    /// Which output of `node` this stream is: 0 main, `k` side output `k`.
    output: usize,
    partitioning: Partitioning,
    partitioner: Option<PartitionerFactory>,
    /// Event time of a record, once `assign_timestamps_and_watermarks` gave the stream one; kept
    /// by operations that keep the record type (filter, partitionings, key_by).
    pub(crate) timestamp_fn: Option<TimestampFn<T>>,
    _records: PhantomData<fn() -> T>,
}

/// A record's event time in milliseconds.
pub(crate) type TimestampFn<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// The end of a stream in a sink; sets the sink's name and parallelism.
pub struct DataStreamSink {
    builder: Rc<RefCell<GraphBuilder>>,
    node: usize,
}

impl DataStreamSink {
    /// Sets the sink's parallelism.
    pub fn parallelism(self, parallelism: usize) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].parallelism = Some(parallelism);
        self
    }

    /// Renames the sink.
    pub fn name(self, name: &str) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].name = name.to_string();
        self
    }

    /// Sets the sink's stable id (see `DataStream::uid`).
    pub fn uid(self, uid: &str) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].uid = Some(uid.to_string());
        self
    }
}

/// Partitioner factory for forward and rebalance edges.
fn round_robin_factory<T: Record>() -> PartitionerFactory {
    Arc::new(|setup: &PartitionerSetup| {
        debug_assert!(setup.partitioning != Partitioning::Forward || setup.channels == 1, "a forward edge has one channel");
        Box::new(RoundRobinPartitioner::<T>::new(setup.channels, setup.subtask_index, setup.frame_records_for::<T>()))
            as Box<dyn ErasedPartitioner>
    })
}

impl<T: Record> DataStream<T> {
    pub(crate) fn new(builder: Rc<RefCell<GraphBuilder>>, node: usize) -> Self {
        DataStream {
            builder,
            node,
            output: 0,
            partitioning: Partitioning::Default,
            partitioner: None,
            timestamp_fn: None,
            _records: PhantomData,
        }
    }

    pub(crate) fn with_partitioning(mut self, partitioning: Partitioning, partitioner: PartitionerFactory) -> Self {
        self.partitioning = partitioning;
        self.partitioner = Some(partitioner);
        self
    }

    /// Connects this stream into `to`.
    fn connect_to(&self, to: usize) {
        let partitioner = self.partitioner.clone().unwrap_or_else(round_robin_factory::<T>);
        let mut builder = self.builder.borrow_mut();
        builder.graph.edges.push(EdgeSpec {
            from: self.node,
            to,
            partitioning: self.partitioning,
            output: self.output,
            record_type: crate::frame::plain::record_type_name::<T>(),
        });
        builder.factories.edges.push(partitioner);
    }

    /// Adds an operator reading this stream, created per subtask by `make`.
    pub(crate) fn add_operator<U, Op, Make>(self, name: &str, kind: OperatorKind, keyed: bool, make: Make) -> DataStream<U>
    where
        U: Record,
        Op: FrameOperator<T, U>,
        Make: Fn(&SubtaskContext) -> Result<Op, UserError> + Send + Sync + 'static,
    {
        let factory =
            NodeFactory::Operator(Arc::new(move |context, position| Ok(ErasedFrameOperator::boxed(make(context)?, position, context))));
        let node = self.builder.borrow_mut().add_node(name.to_string(), kind, keyed, factory);
        self.connect_to(node);
        DataStream::new(Rc::clone(&self.builder), node)
    }

    /// Records the parameters of the operator producing this stream (see `NodeSpec::params`).
    pub(crate) fn with_params(self, params: String) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].params = params;
        self
    }

    /// The records the operator producing this stream emitted to side output `tag`.
    ///
    /// Panics if the operator already has a side output of that name for another record type.
    pub fn side_output<S: Record>(&self, tag: &OutputTag<S>) -> DataStream<S> {
        let output = {
            let mut builder = self.builder.borrow_mut();
            let node = &mut builder.graph.nodes[self.node];
            match node.side_outputs.iter().position(|name| name == tag.name()) {
                Some(index) => index + 1,
                None => {
                    node.side_outputs.push(tag.name().to_string());
                    node.side_outputs.len()
                }
            }
        };
        let mut stream = DataStream::new(Rc::clone(&self.builder), self.node);
        stream.output = output;
        stream
    }

    /// Sets the parallelism of the operator that produces this stream.
    pub fn parallelism(self, parallelism: usize) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].parallelism = Some(parallelism);
        self
    }

    /// The parallelism set on the operator that makes this stream, if one was.
    pub fn parallelism_set(&self) -> Option<usize> {
        self.builder.borrow().graph.nodes[self.node].parallelism
    }

    /// Renames the operator that produces this stream.
    pub fn name(self, name: &str) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].name = name.to_string();
        self
    }

    /// Sets the stable id of the operator that makes this stream, as Flink's `uid`: its state is
    /// matched to it by this id when a job restores from a checkpoint or savepoint, so the job may
    /// change around it. Unique within the job. Without one, an id is derived from the graph
    /// (`JobGraph::operator_ids`), which changes when the graph up to the operator does.
    pub fn uid(self, uid: &str) -> Self {
        self.builder.borrow_mut().graph.nodes[self.node].uid = Some(uid.to_string());
        self
    }

    /// Applies `f` to every record.
    pub fn map<U: Record, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> U + Clone + Send + Sync + 'static,
    {
        self.add_operator("Map", OperatorKind::Map, false, move |_| Ok(MapOperator(f.clone())))
    }

    /// Applies a fallible `f` to every record; an error fails the job, naming this operator.
    pub fn try_map<U: Record, E, F>(self, f: F) -> DataStream<U>
    where
        E: Into<UserError>,
        F: FnMut(T) -> Result<U, E> + Clone + Send + Sync + 'static,
    {
        self.add_operator("TryMap", OperatorKind::TryMap, false, move |_| Ok(TryMapOperator(f.clone())))
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter<F>(self, predicate: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        let timestamp_fn = self.timestamp_fn.clone();
        let mut filtered = self.add_operator("Filter", OperatorKind::Filter, false, move |_| Ok(FilterOperator(predicate.clone())));
        filtered.timestamp_fn = timestamp_fn;
        filtered
    }

    /// Maps every record to zero or more records.
    pub fn flat_map<U: Record, I, F>(self, f: F) -> DataStream<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send + 'static,
        F: FnMut(T) -> I + Clone + Send + Sync + 'static,
    {
        self.add_operator("FlatMap", OperatorKind::FlatMap, false, move |_| Ok(FlatMapOperator::new(f.clone())))
    }

    /// Applies a custom frame operator, created per subtask by `make`.
    pub fn process<U: Record, Op, Make>(self, name: &str, make: Make) -> DataStream<U>
    where
        Op: FrameOperator<T, U>,
        Make: Fn(&SubtaskContext) -> Op + Send + Sync + 'static,
    {
        self.add_operator(name, OperatorKind::Process, false, move |context| Ok(make(context)))
    }

    /// Answers every record asynchronously with `function` (Flink's `AsyncDataStream`): up to
    /// `options.capacity` requests per subtask in flight at once, each under `options.timeout`
    /// and retried by `options.retry`. Results leave in input order (`AsyncMode::Ordered`) or as
    /// they complete but never across a watermark (`AsyncMode::Unordered`). A full operator takes
    /// no input; end of input waits for every request. Options outside their limits fail the job
    /// when it starts (`AsyncOptions::validate` checks them earlier). Checkpoints store the
    /// records in flight (inputs of requests not completed, results not yet emitted) and a
    /// restore starts their requests again, as Flink's.
    pub fn async_map<U: Record + Clone, F>(self, function: F, options: AsyncOptions) -> DataStream<U>
    where
        T: Clone,
        F: AsyncFunction<T, U>,
    {
        let function = Arc::new(function);
        self.add_operator("AsyncMap", OperatorKind::AsyncIo, false, move |context| {
            AsyncIoOperator::new(Arc::clone(&function), options.clone(), context)
        })
    }

    /// Merges this stream with others of the same type.
    pub fn union(self, others: impl IntoIterator<Item = DataStream<T>>) -> DataStream<T> {
        let others: Vec<DataStream<T>> = others.into_iter().collect();
        for other in &others {
            assert!(Rc::ptr_eq(&self.builder, &other.builder), "union of streams from different environments");
        }
        let factory = NodeFactory::Operator(Arc::new(|context: &SubtaskContext, position| {
            Ok(ErasedFrameOperator::<T, T, _>::boxed(IdentityOperator, position, context))
        }));
        let node = self.builder.borrow_mut().add_node("Union".to_string(), OperatorKind::Union, false, factory);
        self.connect_to(node);
        for other in &others {
            other.connect_to(node);
        }
        DataStream::new(Rc::clone(&self.builder), node)
    }

    /// This stream read by `consumers` operators: each of the returned streams carries every
    /// record (as a Flink stream used twice), the first the records themselves and the others
    /// copies. Watermarks, end of input and checkpoint barriers reach all of them.
    pub fn fan_out(self, consumers: usize) -> Vec<DataStream<T>>
    where
        T: Clone,
    {
        assert!(consumers >= 1, "a stream fans out to one consumer or more");
        if consumers == 1 {
            return vec![self];
        }
        let timestamp_fn = self.timestamp_fn.clone();
        let copies: Vec<OutputTag<T>> = (1..consumers).map(|k| OutputTag::new(&format!("copy-{k}"))).collect();
        let tags = copies.clone();
        let main: DataStream<T> =
            self.add_operator("FanOut", OperatorKind::FanOut, false, move |_| Ok(FanOutOperator { copies: tags.clone() }));
        let mut streams: Vec<DataStream<T>> = copies.iter().map(|tag| main.side_output(tag)).collect();
        streams.insert(0, main);
        for stream in &mut streams {
            stream.timestamp_fn = timestamp_fn.clone();
        }
        streams
    }

    /// Assigns event time and watermarks to the stream by `strategy`, replacing upstream ones.
    pub fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        let timestamp_fn = Arc::clone(&strategy.timestamp_fn);
        let mut stream = self.add_operator("Timestamps/Watermarks", OperatorKind::Timestamps, false, move |context| {
            Ok(TimestampsAndWatermarks::new(
                Arc::clone(&strategy.timestamp_fn),
                (strategy.generator)(),
                context.watermark_interval,
                strategy.idleness,
            ))
        });
        stream.timestamp_fn = Some(timestamp_fn);
        stream
    }

    /// For a source: declares it idle after `timeout` without data, so it does not hold back event
    /// time downstream (Flink's `withIdleness` on a source's strategy).
    pub fn idle_timeout(self, timeout: Duration) -> DataStream<T> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.builder.borrow_mut().graph.nodes[self.node].idle_timeout_ms = Some(timeout_ms);
        self
    }

    /// For a source: aligns its watermark with the other sources of `group` (Flink's
    /// `withWatermarkAlignment`). A source subtask whose watermark (`SourceReader::watermark`)
    /// leads the group's minimum by more than `max_drift` stops reading until the others catch up;
    /// idle and finished sources do not hold the group back. Off unless set.
    pub fn watermark_alignment(self, group: &str, max_drift: Duration) -> DataStream<T> {
        let max_drift_ms = u64::try_from(max_drift.as_millis()).unwrap_or(u64::MAX);
        let alignment = crate::graph::logical::WatermarkAlignment { group: group.to_string(), max_drift_ms };
        self.builder.borrow_mut().graph.nodes[self.node].watermark_alignment = Some(alignment);
        self
    }

    /// Spreads records round-robin over all subtasks of the next operator.
    pub fn rebalance(self) -> DataStream<T> {
        self.with_partitioning(Partitioning::Rebalance, round_robin_factory::<T>())
    }

    /// Sends records to the subtask of the next operator with the same index (equal parallelism).
    pub fn forward(self) -> DataStream<T> {
        self.with_partitioning(Partitioning::Forward, round_robin_factory::<T>())
    }

    /// Sends every record to every subtask of the next operator.
    pub fn broadcast(self) -> DataStream<T>
    where
        T: Clone,
    {
        let factory: PartitionerFactory = Arc::new(|setup: &PartitionerSetup| {
            Box::new(BroadcastPartitioner::<T>::new(setup.channels, setup.frame_records_for::<T>())) as Box<dyn ErasedPartitioner>
        });
        self.with_partitioning(Partitioning::Broadcast, factory)
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask, which keeps
    /// the key's state.
    pub fn key_by<K: Key, KeyFn>(self, key_fn: KeyFn) -> KeyedStream<T, K, KeyFn>
    where
        KeyFn: Fn(&T) -> K + Send + Sync + 'static,
    {
        KeyedStream::new(self, key_fn)
    }

    /// Writes the stream to a sink.
    pub fn sink<S: Sink<T>>(self, name: &str, sink: S) -> DataStreamSink {
        let sink = Arc::new(sink);
        let committer_sink = Arc::clone(&sink);
        let node = {
            let factory = NodeFactory::Operator(Arc::new(move |context: &SubtaskContext, position| {
                let operator = SinkOperator { writer: sink.create_writer(context)? };
                Ok(ErasedFrameOperator::boxed(operator, position, context))
            }));
            self.builder.borrow_mut().add_node(format!("Sink: {name}"), OperatorKind::Sink, false, factory)
        };
        self.builder.borrow_mut().factories.committers.push((node, Arc::new(move || committer_sink.create_committer())));
        self.connect_to(node);
        DataStreamSink { builder: Rc::clone(&self.builder), node }
    }
}
