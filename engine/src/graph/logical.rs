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
    /// Sends every record to several consumers.
    FanOut,
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
    /// The operator's stable id set by the user (`DataStream::uid`); `None` derives one from the
    /// graph (`JobGraph::operator_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The operator's parameters as the API recorded them (a window's assigner and allowed
    /// lateness, ...), for `explain` and the graph fingerprint; empty if it has none to show.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub params: String,
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
    /// The Rust type of the records on the edge (what the codec of its frames is for).
    #[serde(default)]
    pub record_type: String,
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

    /// Every node's stable operator id, by node id: the one the user set, or one derived from
    /// what the node is and where it sits: its kind, name and side outputs, the derived ids of its
    /// inputs (with their output index and partitioning), and how many nodes before it have the
    /// same description. A derived id stays the same while the graph up to the node does (nodes
    /// added elsewhere, later or on another branch do not move it), as Flink's generated operator
    /// ids do; state is matched to operators by these ids on restore, so a job that will change
    /// should set its own with `uid`. Hashed with the engine's specified key hash.
    pub fn operator_ids(&self) -> Vec<String> {
        use crate::base::key::{KeyBytes, KeyHasher};
        let mut ids: Vec<String> = Vec::with_capacity(self.nodes.len());
        let mut seen: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
        for node in &self.nodes {
            if let Some(uid) = &node.uid {
                ids.push(uid.clone());
                continue;
            }
            let mut hasher = KeyHasher::default();
            format!("{:?}", node.kind).write_key_bytes(&mut hasher);
            node.name.write_key_bytes(&mut hasher);
            node.side_outputs.write_key_bytes(&mut hasher);
            for edge in self.inputs_of(node.id) {
                // Edges go from lower to higher node ids: the input's id is already known.
                ids[edge.from].write_key_bytes(&mut hasher);
                (edge.output as u64, format!("{:?}", edge.partitioning)).write_key_bytes(&mut hasher);
            }
            let description = hasher.clone().finish();
            let occurrence = seen.entry(description).or_insert(0);
            occurrence.write_key_bytes(&mut hasher);
            *occurrence += 1;
            ids.push(format!("{:016x}", hasher.finish()));
        }
        ids
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
    /// The committer of each sink that commits in two phases, by node (`Sink::create_committer`).
    pub committers: Vec<(usize, CommitterFactory)>,
}

/// Creates a sink's committer, once per job run.
pub(crate) type CommitterFactory =
    std::sync::Arc<dyn Fn() -> Result<Option<Box<dyn crate::sink::SinkCommitter>>, crate::base::UserError> + Send + Sync>;

#[cfg(test)]
mod tests {
    use crate::sink::discard::DiscardSink;
    use crate::{EngineConfig, GraphError, PlanError, StreamEnvironment};

    /// A source, a map and a sink; then, if `second_branch`, another source and sink beside them.
    fn job(map_name: &str, second_branch: bool) -> StreamEnvironment {
        let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 1, ..EngineConfig::default() });
        env.from_collection(vec![1u64, 2]).map(|r: u64| r + 1).name(map_name).sink("out", DiscardSink::new());
        if second_branch {
            env.from_collection(vec![3u64]).sink("other", DiscardSink::new());
        }
        env
    }

    #[test]
    fn derived_operator_ids_are_stable_and_move_only_with_the_graph_before_them() {
        let ids = job("plus-one", false).job_graph().operator_ids();
        assert_eq!(ids, job("plus-one", false).job_graph().operator_ids(), "the same job, the same ids");
        let with_branch = job("plus-one", true).job_graph().operator_ids();
        assert_eq!(&with_branch[..3], &ids[..], "a branch added later moves no existing id");
        let renamed = job("add-one", false).job_graph().operator_ids();
        assert_eq!(renamed[0], ids[0], "the source before the change keeps its id");
        assert_ne!(renamed[1], ids[1]);
        assert_ne!(renamed[2], ids[2], "what follows a changed operator changes too");
    }

    #[test]
    fn identical_branches_get_distinct_ids_and_a_user_id_is_kept() {
        let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 1, ..EngineConfig::default() });
        for _ in 0..2 {
            env.from_collection(vec![1u64]).sink("out", DiscardSink::new());
        }
        env.from_collection(vec![1u64]).uid("orders").sink("kept", DiscardSink::new()).uid("kept-sink");
        let ids = env.job_graph().operator_ids();
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), ids.len(), "{ids:?}");
        assert_eq!(&ids[4..], ["orders".to_string(), "kept-sink".to_string()]);
        env.plan().unwrap();
    }

    #[test]
    fn two_operators_with_one_id_are_refused_naming_both() {
        let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 1, ..EngineConfig::default() });
        env.from_collection(vec![1u64]).uid("counts").sink("a", DiscardSink::new());
        env.from_collection(vec![1u64]).name("second").uid("counts").sink("b", DiscardSink::new());
        match env.plan() {
            Err(PlanError::Graph(GraphError::DuplicateOperatorId { uid, first, second })) => {
                assert_eq!((uid.as_str(), second.as_str()), ("counts", "second"));
                assert_ne!(first, second);
            }
            other => panic!("expected a duplicate id error, got {other:?}"),
        }
    }
}
