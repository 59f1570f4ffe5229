//! The execution plan: the logical graph validated, chained into tasks and placed on slots.
//!
//! Pure decisions, no I/O. A forward edge between operators of equal parallelism, where the
//! consumer has no other input, is chained: both run in one task and records pass by a plain call.
//! Every other edge is a channel between tasks. Subtasks are placed on the least loaded slot in
//! task order (round-robin, but a source's task weighs double), so the subtasks of one task spread
//! over cores and a pipeline of tasks at parallelism 1 still uses several cores. The plan also
//! answers, for each subtask, which channels it sends on and receives from, so the runtime only
//! wires what the plan says.

use std::fmt::Write as _;

use serde::Serialize;
use thiserror::Error;

use super::logical::{JobGraph, OperatorKind};
use crate::channel::partitioner::Partitioning;

/// A job graph the engine cannot run, naming the operator at fault.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GraphError {
    /// The job has no operator at all.
    #[error("the job defines no operators")]
    Empty,
    /// No sink: nothing would ever leave the job.
    #[error("the job has no sink: add one with `.sink(..)`")]
    NoSink,
    /// An operator's output goes nowhere.
    #[error("operator '{operator}' has no consumer: connect it to a sink or another operator")]
    Dangling {
        /// The operator.
        operator: String,
    },
    /// Parallelism zero.
    #[error("operator '{operator}' has parallelism 0")]
    ZeroParallelism {
        /// The operator.
        operator: String,
    },
    /// A keyed operator above the number of key groups.
    #[error("operator '{operator}' has parallelism {parallelism} above max parallelism {max_parallelism}")]
    AboveMaxParallelism {
        /// The operator.
        operator: String,
        /// Its parallelism.
        parallelism: usize,
        /// The job's max parallelism.
        max_parallelism: usize,
    },
    /// A forward edge between operators of different parallelism.
    #[error("forward edge '{from}' -> '{to}' joins parallelism {from_parallelism} to {to_parallelism}; use rebalance")]
    ForwardParallelismMismatch {
        /// Producer.
        from: String,
        /// Consumer.
        to: String,
        /// Producer's parallelism.
        from_parallelism: usize,
        /// Consumer's parallelism.
        to_parallelism: usize,
    },
    /// The graph's nodes or edges are inconsistent (only possible for hand-written graphs).
    #[error("malformed graph: {0}")]
    Malformed(String),
    /// Two operators have the same id: state could not be matched to operators on restore.
    #[error("operators '{first}' and '{second}' have the same id '{uid}': give one of them another `uid`")]
    DuplicateOperatorId {
        /// The id.
        uid: String,
        /// The first operator with it.
        first: String,
        /// The second.
        second: String,
    },
}

/// An input of a task: a stream from another task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskInput {
    /// Producing task.
    pub from_task: usize,
    /// Index of the edge in `JobGraph::edges`.
    pub edge: usize,
    /// Partitioning, with `Default` resolved.
    pub partitioning: Partitioning,
}

/// A stream out of a task's tail operator into another task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TaskOutputSpec {
    /// Output of the tail operator: 0 main, `k` side output `k`.
    pub output: usize,
    /// Consuming task.
    pub to_task: usize,
    /// Index of the input at the consuming task.
    pub input_index: usize,
}

/// A chain of operators that runs as one unit on a core, with `parallelism` subtasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    /// Index of the task in the plan.
    pub id: usize,
    /// Node ids of the chain, head first.
    pub nodes: Vec<usize>,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Streams into the head of the chain.
    pub inputs: Vec<TaskInput>,
    /// The streams out of the tail: its main output and consumed side outputs.
    pub outputs: Vec<TaskOutputSpec>,
    /// Slot of each subtask.
    pub slots: Vec<usize>,
}

/// The validated, chained and placed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionPlan {
    /// Tasks, in topological order.
    pub tasks: Vec<TaskSpec>,
    /// Slots the plan places subtasks on.
    pub slots: usize,
}

/// Resolves `Default` partitioning: forward between equal parallelism, rebalance otherwise.
fn resolve(partitioning: Partitioning, from_parallelism: usize, to_parallelism: usize) -> Partitioning {
    match partitioning {
        Partitioning::Default if from_parallelism == to_parallelism => Partitioning::Forward,
        Partitioning::Default => Partitioning::Rebalance,
        other => other,
    }
}

impl ExecutionPlan {
    /// The most bytes of frames the plan's input gates hold at once under `config`'s credits: per
    /// channel its exclusive buffers (a remote channel's, the larger, as if every producer ran in
    /// another process), per gate its floating ones, each frame at most `frame_bytes_max` of
    /// records. What the job's network buffers take at most (records with heap parts aside).
    pub fn buffer_bytes_bound(&self, config: &crate::EngineConfig) -> u64 {
        let exclusive = config.remote_exclusive_credits_per_channel.max(config.exclusive_credits_per_channel) as u64;
        let mut frames = 0u64;
        for task in self.tasks.iter().filter(|task| !task.inputs.is_empty()) {
            for subtask in 0..task.parallelism {
                let channels = self.input_channels(task.id, subtask).len() as u64;
                frames += channels * exclusive + config.floating_credits_per_gate as u64;
            }
        }
        frames * config.frame_bytes_max as u64
    }

    /// Validates `graph`, chains it into tasks and places their subtasks on `slots` slots.
    pub fn build(graph: &JobGraph, slots: usize) -> Result<ExecutionPlan, GraphError> {
        assert!(slots >= 1, "at least one slot");
        validate(graph)?;
        let mut task_of_node = vec![usize::MAX; graph.nodes.len()];
        let mut tasks: Vec<TaskSpec> = Vec::new();
        for node in &graph.nodes {
            let parallelism = graph.parallelism_of(node.id);
            let inputs: Vec<(usize, &_)> = graph.edges.iter().enumerate().filter(|(_, e)| e.to == node.id).collect();
            let chained_into = match inputs.as_slice() {
                [(_, edge)] if edge.output == 0 && graph.outputs_of(edge.from).count() == 1 => {
                    let from_parallelism = graph.parallelism_of(edge.from);
                    let resolved = resolve(edge.partitioning, from_parallelism, parallelism);
                    (resolved == Partitioning::Forward && from_parallelism == parallelism).then(|| task_of_node[edge.from])
                }
                _ => None,
            };
            if let Some(task) = chained_into {
                tasks[task].nodes.push(node.id);
                task_of_node[node.id] = task;
                continue;
            }
            let id = tasks.len();
            let mut task_inputs = Vec::new();
            for (edge_index, edge) in inputs {
                let from_task = task_of_node[edge.from];
                let partitioning = resolve(edge.partitioning, graph.parallelism_of(edge.from), parallelism);
                tasks[from_task].outputs.push(TaskOutputSpec { output: edge.output, to_task: id, input_index: task_inputs.len() });
                task_inputs.push(TaskInput { from_task, edge: edge_index, partitioning });
            }
            tasks.push(TaskSpec { id, nodes: vec![node.id], parallelism, inputs: task_inputs, outputs: Vec::new(), slots: Vec::new() });
            task_of_node[node.id] = id;
        }
        // Each subtask goes to the least loaded slot (the lowest of equals), one task's subtasks
        // to different slots while there are slots it has not used. With every task weighing
        // the same this is round-robin in task order. A source's task weighs two: it makes (or
        // reads and decodes) every record, and what is chained to it handles every record, where
        // tasks after a shuffle mostly see fewer (aggregates, filters); weighed as one, a job at
        // parallelism 1 put it on the first slot with every other task after it in turn.
        let mut loads = vec![0usize; slots];
        for task in &mut tasks {
            let weight = if graph.nodes[task.nodes[0]].kind == OperatorKind::Source { 2 } else { 1 };
            let mut used = vec![false; slots];
            task.slots = (0..task.parallelism)
                .map(|_| {
                    if used.iter().all(|&used| used) {
                        used.fill(false);
                    }
                    let slot = (0..slots).filter(|&slot| !used[slot]).min_by_key(|&slot| (loads[slot], slot)).expect("a slot is free");
                    used[slot] = true;
                    loads[slot] += weight;
                    slot
                })
                .collect();
        }
        Ok(ExecutionPlan { tasks, slots })
    }

    /// The channels a subtask of `task` receives on, in gate order: (input index, producing subtask).
    pub fn input_channels(&self, task: usize, subtask: usize) -> Vec<(usize, usize)> {
        let mut channels = Vec::new();
        for (input_index, input) in self.tasks[task].inputs.iter().enumerate() {
            if input.partitioning == Partitioning::Forward {
                channels.push((input_index, subtask));
            } else {
                channels.extend((0..self.tasks[input.from_task].parallelism).map(|from| (input_index, from)));
            }
        }
        channels
    }

    /// The channels a subtask of `task` sends on through its `k`-th output (an index into
    /// `TaskSpec::outputs`), in partitioner order: (consuming subtask, index of the channel in the
    /// consumer's gate).
    pub fn output_channels(&self, task: usize, subtask: usize, k: usize) -> Vec<(usize, usize)> {
        let TaskOutputSpec { to_task, input_index, .. } = self.tasks[task].outputs[k];
        let consumers: Vec<usize> = if self.tasks[to_task].inputs[input_index].partitioning == Partitioning::Forward {
            vec![subtask]
        } else {
            (0..self.tasks[to_task].parallelism).collect()
        };
        consumers
            .into_iter()
            .map(|consumer| {
                let gate_index = self
                    .input_channels(to_task, consumer)
                    .iter()
                    .position(|&c| c == (input_index, subtask))
                    .expect("every output channel has a gate channel at its consumer");
                (consumer, gate_index)
            })
            .collect()
    }

    /// Number of subtasks over all tasks.
    pub fn subtask_count(&self) -> usize {
        self.tasks.iter().map(|t| t.parallelism).sum()
    }

    /// A readable description of the graph and the plan.
    pub fn explain(&self, graph: &JobGraph) -> String {
        let mut text = String::new();
        let ids = graph.operator_ids();
        let _ =
            writeln!(text, "Logical graph (default parallelism {}, max parallelism {}):", graph.default_parallelism, graph.max_parallelism);
        for node in &graph.nodes {
            let inputs: Vec<String> = graph
                .inputs_of(node.id)
                .map(|e| {
                    format!(
                        "[{}] {}",
                        e.from,
                        partitioning_name(resolve(e.partitioning, graph.parallelism_of(e.from), graph.parallelism_of(node.id)))
                    )
                })
                .collect();
            let from = if inputs.is_empty() { String::new() } else { format!("  <- {}", inputs.join(", ")) };
            let params = if node.params.is_empty() { String::new() } else { format!(": {}", node.params) };
            let _ = writeln!(
                text,
                "  [{}] {} ({:?}, parallelism {}, id {}){}{}",
                node.id,
                node.name,
                node.kind,
                graph.parallelism_of(node.id),
                ids[node.id],
                params,
                from
            );
        }
        let _ = writeln!(text, "Execution plan ({} tasks, {} subtasks, {} slots):", self.tasks.len(), self.subtask_count(), self.slots);
        for task in &self.tasks {
            let chain: Vec<&str> = task.nodes.iter().map(|&n| graph.nodes[n].name.as_str()).collect();
            let inputs: Vec<String> =
                task.inputs.iter().map(|i| format!("task {} {}", i.from_task, partitioning_name(i.partitioning))).collect();
            let from = if inputs.is_empty() { String::new() } else { format!(" <- {}", inputs.join(", ")) };
            let _ = writeln!(text, "  task {}: {} x{}{} on slots {:?}", task.id, chain.join(" -> "), task.parallelism, from, task.slots);
        }
        text
    }
}

fn partitioning_name(partitioning: Partitioning) -> &'static str {
    match partitioning {
        Partitioning::Default => "default",
        Partitioning::Forward => "forward",
        Partitioning::Rebalance => "rebalance",
        Partitioning::Broadcast => "broadcast",
        Partitioning::Hash => "hash",
    }
}

fn validate(graph: &JobGraph) -> Result<(), GraphError> {
    if graph.nodes.is_empty() {
        return Err(GraphError::Empty);
    }
    if !graph.nodes.iter().any(|n| n.kind == OperatorKind::Sink) {
        return Err(GraphError::NoSink);
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        if node.id != index {
            return Err(GraphError::Malformed(format!("node at index {index} has id {}", node.id)));
        }
        let parallelism = graph.parallelism_of(node.id);
        if parallelism == 0 {
            return Err(GraphError::ZeroParallelism { operator: node.name.clone() });
        }
        if parallelism > graph.max_parallelism && node.keyed {
            return Err(GraphError::AboveMaxParallelism {
                operator: node.name.clone(),
                parallelism,
                max_parallelism: graph.max_parallelism,
            });
        }
        let inputs = graph.inputs_of(node.id).count();
        let outputs = graph.outputs_of(node.id).count();
        match node.kind {
            OperatorKind::Source if inputs > 0 => return Err(GraphError::Malformed(format!("source '{}' has an input", node.name))),
            OperatorKind::Sink if outputs > 0 => return Err(GraphError::Malformed(format!("sink '{}' has an output", node.name))),
            OperatorKind::Source => {}
            _ if inputs == 0 => return Err(GraphError::Malformed(format!("operator '{}' has no input", node.name))),
            _ => {}
        }
        if node.idle_timeout_ms.is_some() && node.kind != OperatorKind::Source {
            return Err(GraphError::Malformed(format!("operator '{}' has an idle timeout, which only sources take", node.name)));
        }
        if node.watermark_alignment.is_some() && node.kind != OperatorKind::Source {
            return Err(GraphError::Malformed(format!("operator '{}' has watermark alignment, which only sources take", node.name)));
        }
        let main_outputs = graph.outputs_of(node.id).filter(|e| e.output == 0).count();
        if node.kind != OperatorKind::Sink && main_outputs == 0 {
            return Err(GraphError::Dangling { operator: node.name.clone() });
        }
        for output in 0..=node.side_outputs.len() {
            let consumers = graph.outputs_of(node.id).filter(|e| e.output == output).count();
            if consumers > 1 {
                return Err(GraphError::Malformed(format!(
                    "output {output} of operator '{}' feeds {consumers} operators; one stream feeds one operator",
                    node.name
                )));
            }
        }
        if let Some(edge) = graph.outputs_of(node.id).find(|e| e.output > node.side_outputs.len()) {
            return Err(GraphError::Malformed(format!("operator '{}' has no side output {}", node.name, edge.output)));
        }
    }
    for edge in &graph.edges {
        if edge.from >= edge.to || edge.to >= graph.nodes.len() {
            return Err(GraphError::Malformed(format!("edge {} -> {} is not in topological order", edge.from, edge.to)));
        }
        let (from_parallelism, to_parallelism) = (graph.parallelism_of(edge.from), graph.parallelism_of(edge.to));
        if edge.partitioning == Partitioning::Forward && from_parallelism != to_parallelism {
            return Err(GraphError::ForwardParallelismMismatch {
                from: graph.nodes[edge.from].name.clone(),
                to: graph.nodes[edge.to].name.clone(),
                from_parallelism,
                to_parallelism,
            });
        }
    }
    let mut owners: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (node, uid) in graph.operator_ids().into_iter().enumerate() {
        if let Some(&first) = owners.get(&uid) {
            return Err(GraphError::DuplicateOperatorId {
                uid,
                first: graph.nodes[first].name.clone(),
                second: graph.nodes[node].name.clone(),
            });
        }
        owners.insert(uid, node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::logical::{EdgeSpec, NodeSpec};

    fn node(id: usize, kind: OperatorKind, parallelism: Option<usize>) -> NodeSpec {
        NodeSpec {
            id,
            name: format!("n{id}"),
            kind,
            parallelism,
            keyed: false,
            side_outputs: Vec::new(),
            idle_timeout_ms: None,
            watermark_alignment: None,
            uid: None,
            params: String::new(),
        }
    }

    fn edge(from: usize, to: usize, partitioning: Partitioning) -> EdgeSpec {
        EdgeSpec { from, to, partitioning, output: 0, record_type: String::new() }
    }

    fn graph(nodes: Vec<NodeSpec>, edges: Vec<EdgeSpec>) -> JobGraph {
        JobGraph { nodes, edges, default_parallelism: 2, max_parallelism: 128 }
    }

    #[test]
    fn forward_edges_of_equal_parallelism_chain_and_hash_edges_split() {
        let g = graph(
            vec![
                node(0, OperatorKind::Source, None),
                node(1, OperatorKind::Filter, None),
                node(2, OperatorKind::KeyedRolling, None),
                node(3, OperatorKind::Sink, None),
            ],
            vec![edge(0, 1, Partitioning::Default), edge(1, 2, Partitioning::Hash), edge(2, 3, Partitioning::Default)],
        );
        let plan = ExecutionPlan::build(&g, 2).unwrap();
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(plan.tasks[0].nodes, vec![0, 1]);
        assert_eq!(plan.tasks[1].nodes, vec![2, 3]);
        assert_eq!(plan.tasks[0].outputs, vec![TaskOutputSpec { output: 0, to_task: 1, input_index: 0 }]);
        assert_eq!(plan.tasks[1].inputs[0].partitioning, Partitioning::Hash);
        // Round-robin placement: both tasks spread over both slots.
        assert_eq!(plan.tasks[0].slots, vec![0, 1]);
        assert_eq!(plan.tasks[1].slots, vec![0, 1]);
        // Hash: every producer talks to every consumer, and the gate indices line up.
        assert_eq!(plan.output_channels(0, 1, 0), vec![(0, 1), (1, 1)]);
        assert_eq!(plan.input_channels(1, 0), vec![(0, 0), (0, 1)]);
        assert!(plan.explain(&g).contains("task 0: n0 -> n1 x2"));
    }

    #[test]
    fn the_buffer_bound_counts_every_input_channel_and_gate() {
        let g = graph(
            vec![
                node(0, OperatorKind::Source, Some(2)),
                node(1, OperatorKind::KeyedRolling, Some(3)),
                node(2, OperatorKind::Sink, Some(3)),
            ],
            vec![edge(0, 1, Partitioning::Hash), edge(1, 2, Partitioning::Default)],
        );
        let plan = ExecutionPlan::build(&g, 3).unwrap();
        let config = crate::EngineConfig {
            exclusive_credits_per_channel: 2,
            remote_exclusive_credits_per_channel: 32,
            floating_credits_per_gate: 8,
            frame_bytes_max: 1000,
            ..crate::EngineConfig::default()
        };
        // Three subtasks of the keyed task, each with a channel from both sources: 2 x 32 + 8
        // frames; the sink is chained, the source has no input.
        assert_eq!(plan.buffer_bytes_bound(&config), 3 * (2 * 32 + 8) * 1000);
    }

    #[test]
    fn different_parallelism_rebalances_instead_of_chaining() {
        let g = graph(
            vec![node(0, OperatorKind::Source, Some(1)), node(1, OperatorKind::Map, Some(3)), node(2, OperatorKind::Sink, Some(3))],
            vec![edge(0, 1, Partitioning::Default), edge(1, 2, Partitioning::Default)],
        );
        let plan = ExecutionPlan::build(&g, 2).unwrap();
        assert_eq!(plan.tasks.len(), 2);
        assert_eq!(plan.tasks[1].inputs[0].partitioning, Partitioning::Rebalance);
        assert_eq!(plan.output_channels(0, 0, 0), vec![(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn union_inputs_get_distinct_gate_channels() {
        let g = graph(
            vec![
                node(0, OperatorKind::Source, None),
                node(1, OperatorKind::Source, None),
                node(2, OperatorKind::Union, None),
                node(3, OperatorKind::Sink, None),
            ],
            vec![edge(0, 2, Partitioning::Default), edge(1, 2, Partitioning::Default), edge(2, 3, Partitioning::Default)],
        );
        let plan = ExecutionPlan::build(&g, 2).unwrap();
        assert_eq!(plan.tasks.len(), 3, "a two-input operator starts its own task");
        assert_eq!(plan.input_channels(2, 1), vec![(0, 1), (1, 1)]);
        assert_eq!(plan.output_channels(1, 1, 0), vec![(1, 1)]);
    }

    #[test]
    fn job_graph_round_trips_through_json() {
        let g = graph(
            vec![node(0, OperatorKind::Source, Some(3)), node(1, OperatorKind::KeyedRolling, None), node(2, OperatorKind::Sink, None)],
            vec![edge(0, 1, Partitioning::Hash), edge(1, 2, Partitioning::Default)],
        );
        let back: JobGraph = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(ExecutionPlan::build(&back, 2).unwrap(), ExecutionPlan::build(&g, 2).unwrap());
    }

    #[test]
    fn invalid_graphs_name_the_operator() {
        let no_sink = graph(vec![node(0, OperatorKind::Source, None)], vec![]);
        assert_eq!(ExecutionPlan::build(&no_sink, 1).unwrap_err(), GraphError::NoSink);
        let dangling = graph(
            vec![
                node(0, OperatorKind::Source, None),
                node(1, OperatorKind::Map, None),
                node(2, OperatorKind::Source, None),
                node(3, OperatorKind::Sink, None),
            ],
            vec![edge(0, 1, Partitioning::Default), edge(2, 3, Partitioning::Default)],
        );
        assert_eq!(ExecutionPlan::build(&dangling, 1).unwrap_err(), GraphError::Dangling { operator: "n1".into() });
        let forward = graph(
            vec![node(0, OperatorKind::Source, Some(1)), node(1, OperatorKind::Sink, Some(2))],
            vec![edge(0, 1, Partitioning::Forward)],
        );
        assert!(matches!(ExecutionPlan::build(&forward, 1).unwrap_err(), GraphError::ForwardParallelismMismatch { .. }));
        let mut keyed = node(1, OperatorKind::KeyedRolling, Some(200));
        keyed.keyed = true;
        let too_wide = graph(
            vec![node(0, OperatorKind::Source, None), keyed, node(2, OperatorKind::Sink, Some(200))],
            vec![edge(0, 1, Partitioning::Hash), edge(1, 2, Partitioning::Default)],
        );
        assert!(matches!(ExecutionPlan::build(&too_wide, 1).unwrap_err(), GraphError::AboveMaxParallelism { parallelism: 200, .. }));
    }
}
