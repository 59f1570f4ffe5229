//! Engine configuration: every queue, buffer and batch size of the runtime, with its default, in one
//! place.
//!
//! `EngineConfig::validate` is called when a job starts; a value outside the named limits below is
//! rejected with the field's name instead of showing up later as a hang or an allocation failure.

use std::time::Duration;

use thiserror::Error;

/// Most slots (pinned cores) one process may run.
pub const SLOTS_MAX: usize = 1024;
/// Most key groups a job may have (Flink's upper bound too): the unit of state redistribution.
pub const MAX_PARALLELISM_MAX: usize = 32_768;
/// Default number of key groups (Flink's default for small jobs).
pub const MAX_PARALLELISM_DEFAULT: usize = 128;
/// Most records a frame may hold.
pub const FRAME_RECORDS_MAX_LIMIT: usize = 1 << 20;
/// Default records per frame: large enough that per-frame costs (an actor message, a credit, a
/// virtual call per operator) are under a nanosecond per record, small enough to stay in L2.
pub const FRAME_RECORDS_MAX_DEFAULT: usize = 1024;
/// Default bytes of record memory in a frame (`size_of` of the record type per record): frames of
/// small records hold `frame_records_max` of them, frames of large ones fewer, so a frame stays a
/// bounded buffer whatever the record type, as a network buffer must be. 256 KiB keeps the bids and
/// Nexmark records (80 and 256 bytes) at 1024 per frame.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 256 << 10;
/// Most bytes of record memory a frame may hold.
pub const FRAME_BYTES_MAX_LIMIT: usize = 64 << 20;
/// Default time a partly filled output frame may wait for more records before it is sent.
pub const LINGER_DEFAULT: Duration = Duration::from_millis(1);
/// Longest linger accepted: beyond this, latency is no longer a tuning choice but a stall.
pub const LINGER_MAX: Duration = Duration::from_secs(1);
/// Default time between two watermarks a source emits (Flink's auto-watermark interval, whose
/// default is 200 ms). 1 ms here: event-time results follow within milliseconds and window state
/// stays small (measured in bench/RESULTS.md: with 10 ms, filter p99 at p=2 was 11-12 ms and
/// window state 180 K entries; with 1 ms, 1.8-3.3 ms and 26 K). A watermark costs one in-band
/// event per channel, no credit. It must be above zero: a zero interval would ask for a periodic
/// watermark at every moment, a busy loop; a generator that emits after chosen records is a
/// punctuated generator instead.
pub const WATERMARK_INTERVAL_DEFAULT: Duration = Duration::from_millis(1);
/// Time a source task waits before polling a reader again after it reported `Idle`. (A source held
/// back by watermark alignment does not poll: the group wakes it.)
pub const SOURCE_IDLE_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Most exclusive credits (buffers) per channel.
pub const EXCLUSIVE_CREDITS_MAX: u32 = 1024;
/// Most floating credits (buffers) per input gate.
pub const FLOATING_CREDITS_MAX: u32 = 65_536;
/// Most frames a task processes in one actor turn before yielding to other tasks on its slot.
pub const FRAMES_PER_TURN_LIMIT: usize = 1024;

/// Tunables of the single-process runtime.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineConfig {
    /// Number of slots: worker threads, each pinned to a core, each running one single-threaded
    /// async runtime. Defaults to the number of cores.
    pub slots: usize,
    /// Parallelism of operators that do not set their own. Defaults to `slots`.
    pub parallelism: usize,
    /// Number of key groups; keyed operators may not run with a higher parallelism.
    pub max_parallelism: usize,
    /// Records per frame built by sources, operators and partitioners.
    pub frame_records_max: usize,
    /// Bytes of record memory per frame: a frame holds at most `frame_bytes_max / size_of::<T>()`
    /// records of type `T` (at least one), and at most `frame_records_max`.
    pub frame_bytes_max: usize,
    /// Time a partly filled output frame waits for more records before it is sent.
    pub linger: Duration,
    /// Shortest time between two watermarks a source subtask emits; above zero.
    pub watermark_interval: Duration,
    /// Buffers reserved for each channel at its receiver; the sender starts with this many credits.
    pub exclusive_credits_per_channel: u32,
    /// Buffers shared by all channels of an input gate, handed to channels that announce a backlog.
    pub floating_credits_per_gate: u32,
    /// Exclusive buffers of a channel whose sender runs in another process (at least
    /// `exclusive_credits_per_channel`): its credits come back over the network, so more frames
    /// in flight keep the sender busy (measured in bench/RESULTS.md: 2 + 8 buffers halve the
    /// throughput of a filter query across two processes; 32 rather than 8 cover the stalls of
    /// a busy host's scheduler, passthrough 0.60 -> 0.70 of one process). Memory per such
    /// channel at the receiver: this many frames (each at most `frame_bytes_max`).
    pub remote_exclusive_credits_per_channel: u32,
    /// Frames a task processes per actor turn before it lets other tasks on its slot run.
    pub frames_per_turn_max: usize,
    /// Pin each slot's thread to a core (off in environments that forbid affinity).
    pub pin_slots: bool,
    /// Time between two checkpoints; `None` (the default) takes none. At least 1 ms.
    pub checkpoint_interval: Option<Duration>,
    /// Aligned barriers (exactly-once state, the default), unaligned (exactly-once, in-flight
    /// records stored), or neither (at-least-once).
    pub checkpointing_mode: crate::runtime::checkpoint::CheckpointingMode,
    /// With aligned checkpoints: a task whose alignment has waited this long takes the
    /// checkpoint unaligned (Flink's `aligned-checkpoint-timeout`); `None` (the default) waits.
    pub aligned_checkpoint_timeout: Option<Duration>,
    /// Directory of the checkpoint store completed checkpoints are written to; `None` (the
    /// default) keeps only the newest, in memory (enough to restart within this run).
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Completed checkpoints kept in `checkpoint_dir` (savepoints are always kept). At least 1.
    pub checkpoints_retained: usize,
    /// How a failed job restarts from its newest checkpoint; `None` (the default) means
    /// `RestartStrategy::default_with_checkpointing()` when checkpoints are taken, and no
    /// restart otherwise (Flink's defaults).
    pub restart_strategy: Option<crate::runtime::restart::RestartStrategy>,
    /// Where keyed state lives: in memory (the default) or on disk for state larger than memory
    /// (`StateBackendConfig::Disk`; its directory is the job's own).
    pub state_backend: crate::state::StateBackendConfig,
    /// Start from this checkpoint or savepoint: a checkpoint store directory (its newest) or one
    /// `chk-<id>` / `svp-<id>` directory in it. Flink's `execution.savepoint.path`.
    pub restore_from: Option<std::path::PathBuf>,
    /// Send every channel's frames and events between tasks of this process encoded, as a
    /// channel between processes does (through an in-process link): checks that a job's records
    /// cross processes intact before it runs on several. Slower; off by default.
    pub encode_channels: bool,
}

impl EngineConfig {
    /// The restart strategy in effect (see `restart_strategy`).
    pub fn effective_restart_strategy(&self) -> crate::runtime::restart::RestartStrategy {
        use crate::runtime::restart::RestartStrategy;
        match (self.restart_strategy, self.checkpoint_interval) {
            (Some(strategy), _) => strategy,
            (None, Some(_)) => RestartStrategy::default_with_checkpointing(),
            (None, None) => RestartStrategy::None,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        EngineConfig {
            slots: cores,
            parallelism: cores,
            max_parallelism: MAX_PARALLELISM_DEFAULT,
            frame_records_max: FRAME_RECORDS_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            linger: LINGER_DEFAULT,
            watermark_interval: WATERMARK_INTERVAL_DEFAULT,
            exclusive_credits_per_channel: 2,
            floating_credits_per_gate: 8,
            remote_exclusive_credits_per_channel: 32,
            frames_per_turn_max: 4,
            pin_slots: true,
            checkpoint_interval: None,
            checkpointing_mode: Default::default(),
            aligned_checkpoint_timeout: None,
            checkpoint_dir: None,
            checkpoints_retained: 1,
            restart_strategy: None,
            restore_from: None,
            state_backend: Default::default(),
            encode_channels: false,
        }
    }
}

/// A configuration value outside its limits.
#[derive(Debug, Error, PartialEq)]
#[error("config field `{field}` = {value} is out of range: {expected}")]
pub struct ConfigError {
    /// Name of the offending field.
    pub field: &'static str,
    /// The value given, as text.
    pub value: String,
    /// The accepted range.
    pub expected: &'static str,
}

impl EngineConfig {
    /// Checks every field against its limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check(ok: bool, field: &'static str, value: impl ToString, expected: &'static str) -> Result<(), ConfigError> {
            if ok {
                Ok(())
            } else {
                Err(ConfigError { field, value: value.to_string(), expected })
            }
        }
        check((1..=SLOTS_MAX).contains(&self.slots), "slots", self.slots, "1..=1024")?;
        check(self.parallelism >= 1, "parallelism", self.parallelism, ">= 1")?;
        check((1..=MAX_PARALLELISM_MAX).contains(&self.max_parallelism), "max_parallelism", self.max_parallelism, "1..=32768")?;
        check((1..=FRAME_RECORDS_MAX_LIMIT).contains(&self.frame_records_max), "frame_records_max", self.frame_records_max, "1..=1048576")?;
        check((1..=FRAME_BYTES_MAX_LIMIT).contains(&self.frame_bytes_max), "frame_bytes_max", self.frame_bytes_max, "1..=67108864")?;
        check(self.linger <= LINGER_MAX, "linger", format!("{:?}", self.linger), "<= 1s")?;
        check(
            !self.watermark_interval.is_zero() && self.watermark_interval <= LINGER_MAX,
            "watermark_interval",
            format!("{:?}", self.watermark_interval),
            "above 0 and <= 1s",
        )?;
        check(
            (1..=EXCLUSIVE_CREDITS_MAX).contains(&self.exclusive_credits_per_channel),
            "exclusive_credits_per_channel",
            self.exclusive_credits_per_channel,
            "1..=1024",
        )?;
        check(
            (self.exclusive_credits_per_channel..=EXCLUSIVE_CREDITS_MAX).contains(&self.remote_exclusive_credits_per_channel),
            "remote_exclusive_credits_per_channel",
            self.remote_exclusive_credits_per_channel,
            "exclusive_credits_per_channel..=1024",
        )?;
        check(
            self.floating_credits_per_gate <= FLOATING_CREDITS_MAX,
            "floating_credits_per_gate",
            self.floating_credits_per_gate,
            "0..=65536",
        )?;
        check(
            self.checkpoint_interval.is_none_or(|interval| interval >= Duration::from_millis(1)),
            "checkpoint_interval",
            format!("{:?}", self.checkpoint_interval),
            "at least 1ms, or None",
        )?;
        check((1..=1000).contains(&self.checkpoints_retained), "checkpoints_retained", self.checkpoints_retained, "1..=1000")?;
        if let Some(Err(reason)) = self.restart_strategy.map(|strategy| strategy.validate()) {
            check(false, "restart_strategy", reason, "a multiplier of at least 1, initial <= max, a positive interval")?;
        }
        if let crate::state::StateBackendConfig::Disk { cache_bytes, .. } = self.state_backend {
            use crate::state::disk::{DISK_CACHE_BYTES_MAX, DISK_CACHE_BYTES_MIN};
            check(
                (DISK_CACHE_BYTES_MIN..=DISK_CACHE_BYTES_MAX).contains(&cache_bytes),
                "state_backend.cache_bytes",
                cache_bytes,
                "1 MiB..=1 TiB",
            )?;
        }
        check((1..=FRAMES_PER_TURN_LIMIT).contains(&self.frames_per_turn_max), "frames_per_turn_max", self.frames_per_turn_max, "1..=1024")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        EngineConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_slots_and_zero_watermark_interval_are_rejected_by_name() {
        let config = EngineConfig { slots: 0, ..EngineConfig::default() };
        assert_eq!(config.validate().unwrap_err().field, "slots");
        let config = EngineConfig { watermark_interval: Duration::ZERO, ..EngineConfig::default() };
        assert_eq!(config.validate().unwrap_err().field, "watermark_interval");
    }

    #[test]
    fn a_disk_state_cache_outside_its_range_is_rejected_by_name() {
        let disk = |cache_bytes| EngineConfig {
            state_backend: crate::state::StateBackendConfig::Disk { dir: "state".into(), cache_bytes },
            ..EngineConfig::default()
        };
        disk(crate::state::disk::DISK_CACHE_BYTES_DEFAULT).validate().unwrap();
        assert_eq!(disk(0).validate().unwrap_err().field, "state_backend.cache_bytes");
        assert_eq!(disk(u64::MAX).validate().unwrap_err().field, "state_backend.cache_bytes");
    }

    #[test]
    fn zero_exclusive_credits_is_rejected_by_name() {
        let config = EngineConfig { exclusive_credits_per_channel: 0, ..EngineConfig::default() };
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, "exclusive_credits_per_channel");
    }
}
