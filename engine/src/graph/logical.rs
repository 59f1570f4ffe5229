//! The logical job graph: operators, the edges between them, and their parallelism.
//!
//! [`JobGraph`] is the serializable description of a job (what a job master stores, what `explain`
//! and the console show). The code that runs each operator cannot be serialized; it sits beside the
//! description in [`GraphFactories`], index for index, made by the typed DataStream API.
//! Invariant: every edge goes from a lower node id to a higher one, so node order is a topological
//! order.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::{SubtaskContext, UserError};
use crate::channel::partitioner::{ErasedPartitioner, Partitioning};
use crate::operator::ErasedOperator;
use crate::source::ErasedSourceReader;

/// What an operator does, for display and validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorKind {
    /// Reads records from outside the job.
    Source,
    /// One record in, one out.
    Map,
    /// One record in, one out or an error.
    TryMap,
    /// Keeps the records matching a predicate.
    Filter,
    /// One record in, any number out.
    FlatMap,
    /// A user `FrameOperator`.
    Process,
    /// Merges streams of one type.
    Union,
    /// Rolling per-key state updated and emitted per record.
    KeyedRolling,
    /// Per-key, per-window state emitted when the watermark passes the window.
    Window,
    /// Assigns event time and watermarks.
    Timestamps,
    /// Asynchronous requests per record, several in flight (Flink's async I/O).
    AsyncIo,
    /// Joins two keyed inputs by time.
    Join,
    /// Writes records out of the job.
    Sink,
}

/// One operator of the logical graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Index of the node in `JobGraph::nodes`.
    pub id: usize,
    /// Name shown in plans, metrics and errors.
    pub name: String,
    /// What the operator does.
    pub kind: OperatorKind,
    /// Parallelism set for this operator; `None` uses the job's default.
    pub parallelism: Option<usize>,
    /// Whether the operator keeps keyed state (its parallelism is bounded by max parallelism).
    pub keyed: bool,
    /// Names of the operator's side outputs; side output `k` (edge output `k`) is `side_outputs[k-1]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_outputs: Vec<String>,
    /// For a source: time without data after which it declares itself idle, so it does not
    /// hold back event time downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// For a source: the watermark alignment group it belongs to; `None` (the default) leaves it
    /// unaligned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_alignment: Option<WatermarkAlignment>,
}

/// Watermark alignment of a source (Flink's `withWatermarkAlignment`): its subtasks and those of
/// every other source in the same group stop reading while their watermark leads the group's
/// minimum by more than `max_drift_ms`. Off unless set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkAlignment {
    /// The group's name; sources with the same name are aligned with each other.
    pub group: String,
    /// Largest lead, in event-time milliseconds, of a source subtask's watermark over the group's
    /// minimum before it stops reading.
    pub max_drift_ms: u64,
}

/// A stream from one operator to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeSpec {
    /// Producing node.
    pub from: usize,
    /// Consuming node.
    pub to: usize,
    /// Which output of the producer: 0 is its main output, `k > 0` its side output `k`.
    #[serde(default)]
    pub output: usize,
    /// How records are spread over the consumer's subtasks.
    pub partitioning: Partitioning,
}

/// The serializable logical graph of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGraph {
    /// Operators, in topological order.
    pub nodes: Vec<NodeSpec>,
    /// Streams between operators.
    pub edges: Vec<EdgeSpec>,
    /// Parallelism of operators that set none.
    pub default_parallelism: usize,
    /// Number of key groups.
    pub max_parallelism: usize,
}

impl JobGraph {
    /// The parallelism a node runs with.
    pub fn parallelism_of(&self, node: usize) -> usize {
        self.nodes[node].parallelism.unwrap_or(self.default_parallelism)
    }

    /// The edges into `node`, in creation order.
    pub fn inputs_of(&self, node: usize) -> impl Iterator<Item = &EdgeSpec> {
        self.edges.iter().filter(move |e| e.to == node)
    }

    /// The edges out of `node`, in creation order.
    pub fn outputs_of(&self, node: usize) -> impl Iterator<Item = &EdgeSpec> {
        self.edges.iter().filter(move |e| e.from == node)
    }

    /// The graph as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a job graph always serializes")
    }
}

/// Creates one source reader per subtask.
pub(crate) type SourceFactory = Arc<dyn Fn(&SubtaskContext) -> Result<Box<dyn ErasedSourceReader>, UserError> + Send + Sync>;
/// Creates one operator instance per subtask, at a given position of its task's chain.
pub(crate) type OperatorFactory = Arc<dyn Fn(&SubtaskContext, usize) -> Result<Box<dyn ErasedOperator>, UserError> + Send + Sync>;
/// Creates the partitioner of one producing subtask for an edge.
pub(crate) type PartitionerFactory = Arc<dyn Fn(&PartitionerSetup) -> Box<dyn ErasedPartitioner> + Send + Sync>;

/// What a partitioner is created for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PartitionerSetup {
    /// The partitioning after resolving `Default`.
    pub partitioning: Partitioning,
    /// Output channels of the producing subtask.
    pub channels: usize,
    /// Index of the producing subtask.
    pub subtask_index: usize,
    pub max_parallelism: usize,
    pub frame_records_max: usize,
    pub frame_bytes_max: usize,
}

impl PartitionerSetup {
    /// Records per frame for records of type `T` (see `frame::records_per_frame`).
    pub(crate) fn frame_records_for<T>(&self) -> usize {
        crate::frame::records_per_frame::<T>(self.frame_records_max, self.frame_bytes_max)
    }
}

/// The code of one node.
#[derive(Clone)]
pub(crate) enum NodeFactory {
    Source(SourceFactory),
    Operator(OperatorFactory),
}

/// The code behind a `JobGraph`, index for index.
#[derive(Clone, Default)]
pub(crate) struct GraphFactories {
    pub nodes: Vec<NodeFactory>,
    pub edges: Vec<PartitionerFactory>,
}
