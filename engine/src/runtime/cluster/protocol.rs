//! The messages between a job's coordinator and its workers, and how data-plane messages name
//! the subtask they are for.
//!
//! Control messages are rare (a deployment, a start per subtask, a checkpoint trigger per source
//! subtask, reports), so they are encoded whole with the engine's codec; the data plane (frames,
//! events, credits) names its destination in the transport's 64-bit stream id instead
//! ([`DataStream`]), so a frame's bytes are the frame's encoding and nothing else.

use crate::base::codec::{self, CodecError};
use crate::state::OperatorKeyGroupSnapshot;

/// A subtask of the job, as (task index in the plan, subtask index).
pub type WireSubtask = (u32, u32);

/// Where a subtask runs: its node (process) and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Address {
    /// The process.
    pub node: u32,
    /// Task index in the plan.
    pub task: u32,
    /// Subtask index.
    pub subtask: u32,
}

/// How a worker rebuilds a job: a name its program knows and the arguments it defines the job
/// with (every process runs the same program; see ARCHITECTURE.md).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct JobSpec {
    /// The job's name in the program's registry.
    pub name: String,
    /// Arguments that define it (e.g. a query and its parameters).
    pub args: Vec<String>,
}

/// What the coordinator tells a worker.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum ToWorker {
    /// Build the job and spawn `subtasks` for attempt `attempt`, restored from `restore` (an
    /// encoded `JobSnapshot`) if given. The worker checks its graph against `fingerprint` (JSON
    /// of a `GraphFingerprint`) first and refuses on any difference.
    Deploy {
        /// The attempt (each restart is a new one).
        attempt: u32,
        /// The job.
        job: JobSpec,
        /// The engine configuration, as JSON.
        config: String,
        /// The coordinator's graph fingerprint, as JSON.
        fingerprint: String,
        /// The slots of the plan this worker owns, `slots.0..slots.1`.
        slots: (u32, u32),
        /// The checkpoint to restore, encoded.
        restore: Option<Vec<u8>>,
    },
    /// Connect a spawned subtask to its peers and start it.
    Start {
        /// The attempt.
        attempt: u32,
        /// The subtask.
        subtask: WireSubtask,
        /// Per output, per channel: the consumer and its gate channel.
        outputs: Vec<Vec<(Address, u32)>>,
        /// Per gate channel: the producer, its output and its channel there.
        inputs: Vec<(Address, u32, u32)>,
    },
    /// A source subtask takes checkpoint `id`.
    TriggerCheckpoint {
        /// The attempt.
        attempt: u32,
        /// The source subtask.
        subtask: WireSubtask,
        /// The checkpoint.
        id: u64,
        /// Whether it is taken unaligned.
        unaligned: bool,
    },
    /// Checkpoint `id` completed (for a source subtask).
    CheckpointComplete {
        /// The attempt.
        attempt: u32,
        /// The source subtask.
        subtask: WireSubtask,
        /// The checkpoint.
        id: u64,
    },
    /// Checkpoint `id` of the attempt completed (to every worker): what was acknowledged up to
    /// it is committed, so the worker forgets what it kept of those acknowledgements.
    CheckpointCompleted {
        /// The attempt.
        attempt: u32,
        /// The checkpoint.
        id: u64,
    },
    /// A new coordinator (the job's new driver, after the old one was lost) takes over the
    /// attempt the worker runs, whichever it is: the worker answers `Adopted` and sends again
    /// every report the old coordinator may have missed, or `AdoptRefused`.
    Adopt {
        /// The new coordinator's graph fingerprint, as JSON: it must be the running job's.
        fingerprint: String,
    },
    /// Seats of watermark alignment groups as their members on other workers last reported them.
    Alignment {
        /// The attempt.
        attempt: u32,
        /// The seats.
        seats: Vec<AlignmentSeat>,
    },
    /// Cancel every subtask of the attempt.
    Cancel {
        /// The attempt.
        attempt: u32,
    },
    /// The job is over: the worker process may exit.
    Shutdown,
}

/// One source subtask's seat in a watermark alignment group (see `runtime/alignment.rs`).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AlignmentSeat {
    /// The group's name.
    pub group: String,
    /// The seat: the source subtask's index among the group's members.
    pub seat: u32,
    /// Its watermark (`i64::MIN` before the first, `i64::MAX` once finished).
    pub watermark: i64,
    /// Whether it declared itself idle.
    pub idle: bool,
}

/// What a worker tells the coordinator.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum ToCoordinator {
    /// The worker cannot run the attempt (another graph, an unknown job, a bad configuration).
    DeployRefused {
        /// The attempt.
        attempt: u32,
        /// Why, in words.
        reason: String,
    },
    /// The worker runs `attempt` and now reports to this coordinator; its reports since the
    /// attempt began follow (each subtask's `Spawned`, and what it reported after), then the
    /// pre-commits of acknowledged checkpoints not known complete. `newest_checkpoint` is the
    /// highest checkpoint id the attempt has seen here: new checkpoints must be above it.
    Adopted {
        /// The attempt.
        attempt: u32,
        /// The highest checkpoint id triggered or acknowledged here.
        newest_checkpoint: u64,
    },
    /// The worker cannot be adopted (it runs no attempt, or another job).
    AdoptRefused {
        /// Why, in words.
        reason: String,
    },
    /// Seats of watermark alignment groups whose members run here, as they are now: the
    /// coordinator passes them on to the attempt's other workers.
    Alignment {
        /// The attempt.
        attempt: u32,
        /// The seats.
        seats: Vec<AlignmentSeat>,
    },
    /// The live figures of the attempt's subtasks on this worker, sent about every second.
    Live {
        /// The attempt.
        attempt: u32,
        /// One reading per subtask.
        readings: Vec<crate::runtime::live::SubtaskLive>,
        /// What its sink subtasks sampled lately.
        outputs: Vec<crate::runtime::live::OutputSample>,
    },
    /// A report of one of the attempt's subtasks.
    Report {
        /// The attempt.
        attempt: u32,
        /// The report.
        report: WireReport,
    },
}

/// A task report crossing processes (the runtime's `TaskReport`, with snapshots encoded).
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum WireReport {
    /// The subtask's actor is spawned and waits for `Start`.
    Spawned {
        /// The subtask.
        id: WireSubtask,
    },
    /// The subtask finished.
    Finished {
        /// The subtask.
        id: WireSubtask,
        /// Its counters.
        metrics: WireMetrics,
        /// Its sinks' final pre-commits, by node.
        committables: Vec<(u32, Vec<u8>)>,
        /// A source's final position.
        source_position: Option<u64>,
    },
    /// The subtask failed at chain position `position`.
    Failed {
        /// The subtask.
        id: WireSubtask,
        /// The chain position blamed.
        position: u32,
        /// The failure, in words.
        failure: String,
        /// Whether user code panicked (else it returned an error).
        panicked: bool,
    },
    /// The subtask's actor stopped.
    Stopped {
        /// The subtask.
        id: WireSubtask,
    },
    /// The subtask took a checkpoint.
    CheckpointAck {
        /// The subtask.
        id: WireSubtask,
        /// The checkpoint.
        checkpoint: u64,
        /// How long its gate waited for the last barrier, in nanoseconds.
        alignment_nanos: u64,
        /// What it put into the checkpoint.
        snapshot: WireSnapshot,
    },
    /// A slot thread of the worker died: its subtasks report nothing more.
    SlotLost {
        /// The subtasks.
        subtasks: Vec<WireSubtask>,
        /// Why.
        reason: String,
    },
}

/// One operator's counts crossing processes: records in, records out, its own counters.
pub type WireCounts = (u64, u64, Vec<(String, u64)>);

/// A subtask's counters crossing processes (the runtime's `SubtaskMetrics`).
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireMetrics {
    /// Per node of the chain: records in, records out, operator-specific counters.
    pub node_counts: Vec<WireCounts>,
    /// Most frames queued at the gate at once.
    pub gate_queued_frames_peak: u32,
    /// The gate's capacity in frames.
    pub gate_capacity: u32,
    /// Most frames waiting for credit on one output channel.
    pub output_backlog_frames_peak: u32,
    /// Bytes of frames encoded for other processes.
    pub encoded_bytes_out: u64,
}

/// What a subtask put into a checkpoint, with its keyed state already encoded (on the worker, off
/// the task's slot).
#[derive(Debug, Default, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireSnapshot {
    /// A source's position.
    pub source_position: Option<u64>,
    /// Changed key groups, by node.
    pub operators: Vec<(u32, Vec<OperatorKeyGroupSnapshot>)>,
    /// Time spent on the slot, in nanoseconds.
    pub sync_nanos: u64,
    /// Unchanged key groups, by node.
    pub unchanged: Vec<(u32, Vec<u32>)>,
    /// Sinks' pre-commits, by node.
    pub committables: Vec<(u32, Vec<u8>)>,
    /// Non-keyed operator state, by node.
    pub operator_states: Vec<(u32, Vec<u8>)>,
    /// Unaligned: frames recorded at the gate, by channel.
    pub input_in_flight: Vec<(u32, Vec<u8>)>,
    /// Unaligned: frames the barrier overtook at the sender, by (output, channel).
    pub output_in_flight: Vec<(u32, u32, Vec<u8>)>,
}

/// Encodes a control message.
pub fn encode<T: crate::base::Codec>(message: &T) -> Result<Vec<u8>, CodecError> {
    codec::encode(message)
}

/// Decodes a control message (validated: bytes of another kind are an error, never a panic).
pub fn decode<T: crate::base::Codec>(bytes: &[u8]) -> Result<T, CodecError> {
    codec::decode(bytes)
}

/// The destination of a data-plane message, packed into the transport's 64-bit stream id:
/// attempt (16 bits), task (16), subtask (16) and a port (16): the gate channel of a frame or
/// event, or for a credit the producer's output (6 bits) and channel (10 bits) there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataStream {
    /// The attempt the message belongs to (modulo 2^16): a message of an older attempt is dropped.
    pub attempt: u16,
    /// Task index.
    pub task: u16,
    /// Subtask index.
    pub subtask: u16,
    /// Gate channel (frames, events) or output and channel (credits; see `credit_port`).
    pub port: u16,
}

/// A plan too large for the data plane's stream ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} does not fit the data plane's stream ids (at most {max})")]
pub struct StreamIdOverflow {
    /// What overflowed.
    pub what: &'static str,
    /// Its value.
    pub value: usize,
    /// The largest that fits.
    pub max: usize,
}

impl DataStream {
    /// The stream of subtask `(task, subtask)` port `port` in attempt `attempt`.
    pub fn new(attempt: u32, task: usize, subtask: usize, port: usize) -> Result<DataStream, StreamIdOverflow> {
        let fit =
            |what: &'static str, value: usize| u16::try_from(value).map_err(|_| StreamIdOverflow { what, value, max: u16::MAX as usize });
        Ok(DataStream {
            attempt: attempt as u16,
            task: fit("task index", task)?,
            subtask: fit("subtask index", subtask)?,
            port: fit("channel", port)?,
        })
    }

    /// The port of a credit for channel `channel` of output `output`.
    pub fn credit_port(output: usize, channel: usize) -> Result<usize, StreamIdOverflow> {
        if output >= 1 << 6 {
            return Err(StreamIdOverflow { what: "output index", value: output, max: (1 << 6) - 1 });
        }
        if channel >= 1 << 10 {
            return Err(StreamIdOverflow { what: "output channel", value: channel, max: (1 << 10) - 1 });
        }
        Ok((output << 10) | channel)
    }

    /// The (output, channel) of a credit's port.
    pub fn credit_target(port: u16) -> (usize, usize) {
        ((port >> 10) as usize, (port & 0x3ff) as usize)
    }

    /// The packed stream id.
    pub fn pack(self) -> u64 {
        (u64::from(self.attempt) << 48) | (u64::from(self.task) << 32) | (u64::from(self.subtask) << 16) | u64::from(self.port)
    }

    /// The stream a packed id names.
    pub fn unpack(id: u64) -> DataStream {
        DataStream { attempt: (id >> 48) as u16, task: (id >> 32) as u16, subtask: (id >> 16) as u16, port: id as u16 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_pack_and_unpack() {
        let stream = DataStream::new(70_000, 3, 65_535, 17).unwrap();
        assert_eq!(stream.attempt, (70_000u32 & 0xffff) as u16);
        assert_eq!(DataStream::unpack(stream.pack()), stream);
        let port = DataStream::credit_port(5, 1_000).unwrap();
        assert_eq!(DataStream::credit_target(port as u16), (5, 1_000));
        assert!(DataStream::credit_port(64, 0).is_err());
        assert!(DataStream::credit_port(0, 1_024).is_err());
        assert!(DataStream::new(1, 70_000, 0, 0).is_err());
    }

    #[test]
    fn control_messages_round_trip_and_garbage_is_refused() {
        let message = ToWorker::TriggerCheckpoint { attempt: 2, subtask: (1, 3), id: 9, unaligned: true };
        let bytes = encode(&message).unwrap();
        match decode::<ToWorker>(&bytes).unwrap() {
            ToWorker::TriggerCheckpoint { attempt: 2, subtask: (1, 3), id: 9, unaligned: true } => {}
            other => panic!("{other:?}"),
        }
        assert!(decode::<ToWorker>(&[1, 2, 3]).is_err());
    }
}
