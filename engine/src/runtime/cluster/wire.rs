//! Task reports into their wire form on a worker, and back on the coordinator.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::protocol::{WireMetrics, WireReport, WireSnapshot};
use super::{ClusterCoordinator, NodeId, SubtaskHandle};
use crate::base::OperatorFailure;
use crate::operator::OperatorCounts;
use crate::runtime::task::{SubtaskId, SubtaskMetrics, TaskReport, TaskSnapshot};

fn id_of((task, subtask): (u32, u32)) -> SubtaskId {
    (task as usize, subtask as usize)
}

fn wire_of((task, subtask): SubtaskId) -> (u32, u32) {
    (task as u32, subtask as u32)
}

/// A counter's name as the `'static` string operators report it by; names come from a small
/// fixed set, so each is leaked once.
fn interned(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A report in its wire form, with the keyed state of a checkpoint encoded now (on the worker's
/// reporting thread, off the task's slot); an error if that state does not encode.
pub(crate) fn into_wire_report(report: TaskReport) -> Result<WireReport, String> {
    Ok(match report {
        TaskReport::Spawned { id, .. } => WireReport::Spawned { id: wire_of(id) },
        TaskReport::Finished { id, metrics, committables, source_position } => WireReport::Finished {
            id: wire_of(id),
            metrics: WireMetrics {
                node_counts: metrics
                    .node_counts
                    .into_iter()
                    .map(|counts| {
                        (
                            counts.records_in,
                            counts.records_out,
                            counts.extra.into_iter().map(|(name, value)| (name.to_string(), value)).collect(),
                        )
                    })
                    .collect(),
                gate_queued_frames_peak: metrics.gate_queued_frames_peak,
                gate_capacity: metrics.gate_capacity,
                output_backlog_frames_peak: metrics.output_backlog_frames_peak,
                encoded_bytes_out: metrics.encoded_bytes_out,
            },
            committables: committables.into_iter().map(|(node, bytes)| (node as u32, bytes)).collect(),
            source_position,
        },
        TaskReport::Failed { id, position, failure } => {
            let panicked = matches!(failure, OperatorFailure::Panicked(_));
            let failure = match failure {
                OperatorFailure::Panicked(message) => message,
                OperatorFailure::Failed(error) => error.to_string(),
            };
            WireReport::Failed { id: wire_of(id), position: position as u32, failure, panicked }
        }
        TaskReport::Stopped { id } => WireReport::Stopped { id: wire_of(id) },
        TaskReport::CheckpointAck { subtask, checkpoint, snapshot, alignment } => {
            let mut operators = Vec::with_capacity(snapshot.operators.len());
            for (node, groups) in snapshot.operators {
                let mut encoded = Vec::with_capacity(groups.len());
                for deferred in groups {
                    encoded.push(deferred().map_err(|error| format!("checkpoint {checkpoint}: state does not encode: {error}"))?);
                }
                operators.push((node as u32, encoded));
            }
            WireReport::CheckpointAck {
                id: wire_of(subtask),
                checkpoint,
                alignment_nanos: alignment.as_nanos() as u64,
                snapshot: WireSnapshot {
                    source_position: snapshot.source_position,
                    operators,
                    sync_nanos: snapshot.sync_duration.as_nanos() as u64,
                    unchanged: snapshot
                        .unchanged
                        .into_iter()
                        .map(|(node, groups)| (node as u32, groups.into_iter().map(|g| g as u32).collect()))
                        .collect(),
                    committables: snapshot.committables.into_iter().map(|(node, bytes)| (node as u32, bytes)).collect(),
                    operator_states: snapshot.operator_states.into_iter().map(|(node, bytes)| (node as u32, bytes)).collect(),
                    input_in_flight: snapshot.input_in_flight.into_iter().map(|(channel, bytes)| (channel as u32, bytes)).collect(),
                    output_in_flight: snapshot
                        .output_in_flight
                        .into_iter()
                        .map(|(output, channel, bytes)| (output as u32, channel as u32, bytes))
                        .collect(),
                },
            }
        }
        TaskReport::SlotLost { subtasks, reason } => WireReport::SlotLost { subtasks: subtasks.into_iter().map(wire_of).collect(), reason },
        TaskReport::DeployRefused { .. } | TaskReport::Adopted { .. } => {
            unreachable!("a worker's own tasks neither refuse a deployment nor adopt")
        }
    })
}

/// A worker's report as the job driver takes it.
pub(crate) fn into_task_report(report: WireReport, cluster: &Arc<ClusterCoordinator>, node: NodeId, attempt: u32) -> TaskReport {
    match report {
        WireReport::Spawned { id } => TaskReport::Spawned {
            id: id_of(id),
            actor: SubtaskHandle::Remote { cluster: Arc::clone(cluster), node, attempt, id: id_of(id) },
            input: None,
        },
        WireReport::Finished { id, metrics, committables, source_position } => TaskReport::Finished {
            id: id_of(id),
            metrics: SubtaskMetrics {
                node_counts: metrics
                    .node_counts
                    .into_iter()
                    .map(|(records_in, records_out, extra)| OperatorCounts {
                        records_in,
                        records_out,
                        extra: extra.into_iter().map(|(name, value)| (interned(name), value)).collect(),
                    })
                    .collect(),
                gate_queued_frames_peak: metrics.gate_queued_frames_peak,
                gate_capacity: metrics.gate_capacity,
                output_backlog_frames_peak: metrics.output_backlog_frames_peak,
                encoded_bytes_out: metrics.encoded_bytes_out,
            },
            committables: committables.into_iter().map(|(node, bytes)| (node as usize, bytes)).collect(),
            source_position,
        },
        WireReport::Failed { id, position, failure, panicked } => TaskReport::Failed {
            id: id_of(id),
            position: position as usize,
            failure: if panicked {
                OperatorFailure::Panicked(format!("{failure} (on worker {node})"))
            } else {
                OperatorFailure::Failed(format!("{failure} (on worker {node})").into())
            },
        },
        WireReport::Stopped { id } => TaskReport::Stopped { id: id_of(id) },
        WireReport::CheckpointAck { id, checkpoint, alignment_nanos, snapshot } => TaskReport::CheckpointAck {
            subtask: id_of(id),
            checkpoint,
            alignment: Duration::from_nanos(alignment_nanos),
            snapshot: TaskSnapshot {
                source_position: snapshot.source_position,
                operators: snapshot
                    .operators
                    .into_iter()
                    .map(|(node, groups)| {
                        let deferred: Vec<crate::state::DeferredKeyGroup> =
                            groups.into_iter().map(|group| Box::new(move || Ok(group)) as crate::state::DeferredKeyGroup).collect();
                        (node as usize, deferred)
                    })
                    .collect(),
                sync_duration: Duration::from_nanos(snapshot.sync_nanos),
                unchanged: snapshot
                    .unchanged
                    .into_iter()
                    .map(|(node, groups)| (node as usize, groups.into_iter().map(|g| g as usize).collect()))
                    .collect(),
                committables: snapshot.committables.into_iter().map(|(node, bytes)| (node as usize, bytes)).collect(),
                operator_states: snapshot.operator_states.into_iter().map(|(node, bytes)| (node as usize, bytes)).collect(),
                input_in_flight: snapshot.input_in_flight.into_iter().map(|(channel, bytes)| (channel as usize, bytes)).collect(),
                output_in_flight: snapshot
                    .output_in_flight
                    .into_iter()
                    .map(|(output, channel, bytes)| (output as usize, channel as usize, bytes))
                    .collect(),
            },
        },
        WireReport::SlotLost { subtasks, reason } => {
            TaskReport::SlotLost { subtasks: subtasks.into_iter().map(id_of).collect(), reason: format!("worker {node}: {reason}") }
        }
    }
}
