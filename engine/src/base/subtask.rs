//! What user code (an operator, a source, a sink) learns about the subtask it is created for.

/// Information an operator instance receives when it is created for one subtask.
#[derive(Debug, Clone)]
pub struct SubtaskContext {
    /// The operator's name in the job graph.
    pub operator_name: String,
    /// This subtask's index, `0..parallelism`.
    pub subtask_index: usize,
    /// Number of parallel subtasks of the operator.
    pub parallelism: usize,
    /// Number of key groups of the job.
    pub max_parallelism: usize,
    /// Records per frame the runtime builds.
    pub frame_records_max: usize,
    /// Bytes of record memory per frame (see `frame::records_per_frame`).
    pub frame_bytes_max: usize,
    /// Names of the operator's consumed side outputs, in side-output order.
    pub side_outputs: Vec<String>,
    /// Shortest time between two watermarks a watermark generator emits.
    pub watermark_interval: std::time::Duration,
    /// Where this subtask keeps keyed state on disk (`EngineConfig::state_backend` is the disk
    /// backend), a directory of its own; `None`: keyed state is kept in memory.
    pub state_dir: Option<std::path::PathBuf>,
    /// Memory this subtask's keyed state on disk may keep in memory, in bytes (the disk backend's
    /// `cache_bytes`); `None`: the backend's default. Set with `state_dir`.
    pub state_cache_bytes: Option<u64>,
    /// Where a sink publishes samples of what it writes (for live results); `None` where no
    /// one reads them (unit tests).
    pub output_tap: Option<crate::runtime::live::OutputTap>,
}

impl SubtaskContext {
    /// The key groups this subtask owns (of a keyed operator).
    pub fn key_groups(&self) -> crate::key_group::KeyGroupRange {
        crate::key_group::KeyGroupRange::for_subtask(self.subtask_index, self.parallelism, self.max_parallelism)
    }

    /// A context for unit tests: subtask 0 of 1.
    #[cfg(test)]
    pub(crate) fn for_test(frame_records_max: usize) -> SubtaskContext {
        SubtaskContext {
            operator_name: "test".into(),
            subtask_index: 0,
            parallelism: 1,
            max_parallelism: 128,
            frame_records_max,
            frame_bytes_max: crate::config::FRAME_BYTES_MAX_DEFAULT,
            side_outputs: Vec::new(),
            watermark_interval: std::time::Duration::from_millis(10),
            state_dir: None,
            state_cache_bytes: None,
            output_tap: None,
        }
    }
}
