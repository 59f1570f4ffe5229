//! End-to-end exactly-once, in the shape of Flink's UnalignedCheckpointITCase: sources emit
//! unique ids per split, keyed state counts them, an exactly-once topic sink writes
//! `(id, key, count)`; failures are injected at chosen points of one run (before the first
//! checkpoint, during a checkpoint, between a checkpoint's completion and its commit, during
//! recovery). Afterwards the committed output holds every id exactly once and, per key, every
//! count from 1 to the key's number of ids exactly once (state counted every record once).
//!
//! The source releases its ids in blocks, one per completed checkpoint it is told of, so
//! checkpoints fall between data and the faults land where they are meant to, without timing.
//! The sink is slowed down so frames queue on the channels (backpressure): unaligned barriers
//! then overtake them and the checkpoints store them, and the restores replay them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::topic::TopicSink;
use tethys_engine::sink::{Committable, Sink, SinkCommitter, SinkWriter};
use tethys_engine::state::disk::DISK_CACHE_BYTES_MIN;
use tethys_engine::state::StateBackendConfig;
use tethys_engine::{CheckpointingMode, EngineConfig, RestartStrategy, SubtaskContext, Topic, UserError};
use tethys_tests::{execute_with_config_within_deadline, BlockSource, TempDir};

/// Where the run fails, each once.
#[derive(Default)]
struct Faults {
    /// A map fails on this id in the first attempt: before any checkpoint completed.
    before_first_checkpoint: AtomicBool,
    /// A sink writer's pre-commit of this checkpoint fails: during the checkpoint.
    during_checkpoint: AtomicU64,
    /// The committer fails on its first commit after this checkpoint completed (and was written).
    before_commit_after: AtomicU64,
    /// A source reader fails to seek to its restored position: during recovery (the source's
    /// `fail_next_seek`).
    during_recovery: Arc<AtomicBool>,
    /// Highest checkpoint a writer pre-committed so far.
    checkpoints_seen: AtomicU64,
}

const KEYS: u64 = 17;

/// The topic sink, with faults injected into its pre-commits and commits.
struct FaultySink {
    inner: TopicSink<(u64, u64, u64)>,
    faults: Arc<Faults>,
}

struct FaultyWriter {
    inner: Box<dyn SinkWriter<(u64, u64, u64)>>,
    faults: Arc<Faults>,
}

struct FaultyCommitter {
    inner: Box<dyn SinkCommitter>,
    faults: Arc<Faults>,
}

impl Sink<(u64, u64, u64)> for FaultySink {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<(u64, u64, u64)>>, UserError> {
        Ok(Box::new(FaultyWriter { inner: self.inner.create_writer(context)?, faults: Arc::clone(&self.faults) }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        let inner = self.inner.create_committer()?.expect("the exactly-once topic sink commits in two phases");
        Ok(Some(Box::new(FaultyCommitter { inner, faults: Arc::clone(&self.faults) })))
    }
}

impl SinkWriter<(u64, u64, u64)> for FaultyWriter {
    fn write_frame(&mut self, frame: Vec<(u64, u64, u64)>) -> Result<(), UserError> {
        std::thread::sleep(Duration::from_micros(200));
        self.inner.write_frame(frame)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.inner.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Committable>, UserError> {
        if checkpoint != u64::MAX {
            self.faults.checkpoints_seen.fetch_max(checkpoint, Ordering::SeqCst);
        }
        let target = self.faults.during_checkpoint.load(Ordering::SeqCst);
        if target != 0 && checkpoint >= target && self.faults.during_checkpoint.swap(0, Ordering::SeqCst) != 0 {
            return Err(format!("injected failure in the pre-commit of checkpoint {checkpoint}").into());
        }
        self.inner.pre_commit(checkpoint)
    }
}

impl SinkCommitter for FaultyCommitter {
    fn commit(&mut self, committables: &[Committable]) -> Result<(), UserError> {
        let after = self.faults.before_commit_after.load(Ordering::SeqCst);
        if after != 0
            && !committables.is_empty()
            && self.faults.checkpoints_seen.load(Ordering::SeqCst) >= after
            && self.faults.before_commit_after.swap(0, Ordering::SeqCst) != 0
        {
            return Err("injected failure between a checkpoint's completion and its commit".into());
        }
        self.inner.commit(committables)
    }

    fn abort_uncommitted(&mut self) -> Result<(), UserError> {
        self.inner.abort_uncommitted()
    }
}

/// With `encoded`, every channel sends its frames and events encoded, as between processes
/// (`EngineConfig::encode_channels`).
fn run(parallelism: usize, mode: CheckpointingMode, aligned_timeout: Option<Duration>, on_disk: bool, encoded: bool, name: &str) {
    let total = 40_000;
    let dir = TempDir::new(name);
    let topic = Topic::create(dir.0.join("out"), 2).unwrap();
    let faults = Arc::new(Faults::default());
    faults.before_first_checkpoint.store(true, Ordering::SeqCst);
    faults.during_checkpoint.store(4, Ordering::SeqCst);
    faults.before_commit_after.store(7, Ordering::SeqCst);
    faults.during_recovery.store(true, Ordering::SeqCst);
    let config = EngineConfig {
        slots: 2,
        parallelism,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(2)),
        checkpointing_mode: mode,
        aligned_checkpoint_timeout: aligned_timeout,
        // The least cache a configuration allows, so that state goes through the disk backend's
        // write back at every checkpoint.
        state_backend: if on_disk {
            StateBackendConfig::Disk { dir: dir.0.join("state"), cache_bytes: DISK_CACHE_BYTES_MIN }
        } else {
            StateBackendConfig::Heap
        },
        checkpoint_dir: Some(dir.0.join("checkpoints")),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: 10, delay: Duration::from_millis(1) }),
        encode_channels: encoded,
        ..EngineConfig::default()
    };
    let (job_faults, job_topic) = (Arc::clone(&faults), topic.clone());
    let result = execute_with_config_within_deadline("exactly-once", config, move |env| {
        let map_faults = Arc::clone(&job_faults);
        env.source("ids", BlockSource { fail_next_seek: Arc::clone(&job_faults.during_recovery), ..BlockSource::new(total, 2_000) })
            .uid("ids")
            .map(move |id: u64| {
                if id == 7 && map_faults.before_first_checkpoint.swap(false, Ordering::SeqCst) {
                    panic!("injected failure before the first checkpoint");
                }
                id
            })
            .uid("map")
            .key_by(|id: &u64| id % KEYS)
            .rolling(
                "Count",
                || 0u64,
                |key: &u64, count: &mut u64, id: u64| {
                    *count += 1;
                    (id, *key, *count)
                },
            )
            .uid("counts")
            .sink("topic", FaultySink { inner: TopicSink::exactly_once(job_topic), faults: job_faults })
            .uid("topic");
    })
    .unwrap();

    assert!(!faults.before_first_checkpoint.load(Ordering::SeqCst), "fault before the first checkpoint was injected");
    assert_eq!(faults.during_checkpoint.load(Ordering::SeqCst), 0, "fault during a checkpoint was injected");
    assert_eq!(faults.before_commit_after.load(Ordering::SeqCst), 0, "fault before a commit was injected");
    assert!(!faults.during_recovery.load(Ordering::SeqCst), "fault during recovery was injected");
    assert_eq!(result.restarts, 4, "p={parallelism}: one restart per fault");
    // The last attempt's channels: encoded only when asked for.
    assert_eq!(result.channels.encoded_bytes > 0, encoded, "p={parallelism}: {:?}", result.channels);

    let mut ids = vec![0u32; total as usize];
    let mut counts: HashMap<u64, Vec<u64>> = HashMap::new();
    for partition in 0..topic.partitions() {
        for (_, (id, key, count)) in topic.read_committed::<(u64, u64, u64)>(partition, 0).unwrap() {
            ids[id as usize] += 1;
            assert_eq!(key, id % KEYS);
            counts.entry(key).or_default().push(count);
        }
    }
    let wrong: Vec<(usize, u32)> = ids.iter().enumerate().filter(|(_, n)| **n != 1).map(|(id, n)| (id, *n)).take(10).collect();
    assert!(wrong.is_empty(), "p={parallelism}: ids not committed exactly once (id, times): {wrong:?}");
    for (key, mut seen) in counts {
        seen.sort_unstable();
        let expected: Vec<u64> = (1..=(0..total).filter(|id| id % KEYS == key).count() as u64).collect();
        assert_eq!(seen, expected, "p={parallelism}: counts of key {key}");
    }
}

#[test]
fn aligned_exactly_once_through_failures_at_parallelism_1() {
    run(1, CheckpointingMode::ExactlyOnce, None, false, false, "aligned-p1");
}

#[test]
fn aligned_exactly_once_through_failures_at_parallelism_2() {
    run(2, CheckpointingMode::ExactlyOnce, None, false, false, "aligned-p2");
}

#[test]
fn unaligned_exactly_once_through_failures_at_parallelism_1() {
    run(1, CheckpointingMode::Unaligned, None, false, false, "unaligned-p1");
}

#[test]
fn unaligned_exactly_once_through_failures_at_parallelism_2() {
    run(2, CheckpointingMode::Unaligned, None, false, false, "unaligned-p2");
}

/// Aligned checkpoints whose alignment times out at once: every gate that waits switches to
/// unaligned.
#[test]
fn aligned_with_timeout_exactly_once_through_failures_at_parallelism_2() {
    run(2, CheckpointingMode::ExactlyOnce, Some(Duration::ZERO), false, false, "timeout-p2");
}

/// Backpressure holds frames on the channel (a stage after the shuffle stalls on its first
/// frame): the unaligned barrier overtakes them, the checkpoint stores them, and the output is
/// still exact.
#[test]
fn unaligned_checkpoints_store_the_frames_backpressure_holds() {
    let total = 20_000u64;
    let out = tethys_engine::sink::collect::CollectSink::exactly_once();
    let out_in = out.clone();
    let config = EngineConfig {
        slots: 2,
        parallelism: 1,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(1)),
        checkpointing_mode: CheckpointingMode::Unaligned,
        ..EngineConfig::default()
    };
    let result = execute_with_config_within_deadline("unaligned-backpressure", config, move |env| {
        let stalled = Arc::new(AtomicBool::new(false));
        env.source("ids", BlockSource::new(total, total))
            .key_by(|id: &u64| id % KEYS)
            .rolling(
                "Stall",
                || 0u64,
                move |_key: &u64, _state: &mut u64, id: u64| {
                    if !stalled.swap(true, Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    id
                },
            )
            .sink("ids", out_in);
    })
    .unwrap();
    assert!(result.checkpoints.completed > 0, "{:?}", result.checkpoints);
    assert!(result.checkpoints.in_flight_bytes_max > 0, "the barrier overtook queued frames: {:?}", result.checkpoints);
    let mut ids = out.records();
    ids.sort_unstable();
    assert_eq!(ids, (0..total).collect::<Vec<_>>());
}

/// Frames and events cross every channel encoded, as between processes; unaligned checkpoints
/// store the frames the barrier overtakes.
#[test]
fn aligned_exactly_once_with_encoded_channels_at_parallelism_2() {
    run(2, CheckpointingMode::ExactlyOnce, None, false, true, "encoded-aligned-p2");
}

#[test]
fn unaligned_exactly_once_with_encoded_channels_at_parallelism_2() {
    run(2, CheckpointingMode::Unaligned, None, false, true, "encoded-unaligned-p2");
}

#[test]
fn aligned_exactly_once_on_the_disk_backend_at_parallelism_2() {
    run(2, CheckpointingMode::ExactlyOnce, None, true, false, "disk-aligned-p2");
}

#[test]
fn unaligned_exactly_once_on_the_disk_backend_at_parallelism_1() {
    run(1, CheckpointingMode::Unaligned, None, true, false, "disk-unaligned-p1");
}

/// Async I/O through a failure: checkpoints store the requests in flight and the results not yet
/// emitted, a restore starts those requests again, and every id's answer is committed once, in
/// input order (ordered mode, one subtask).
#[test]
fn async_io_requests_in_flight_survive_a_failure() {
    use tethys_engine::{AsyncOptions, BoxFuture};

    /// Answers `x` with `(x, 3x)` after a few milliseconds, the simulated service's latency.
    fn triple(x: u64) -> BoxFuture<Result<(u64, u64), UserError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_micros(500 + (x * 7919) % 2_500)).await;
            Ok((x, 3 * x))
        })
    }

    let total = 6_000u64;
    let out = tethys_engine::sink::collect::CollectSink::exactly_once();
    let out_in = out.clone();
    let armed = Arc::new(AtomicBool::new(true));
    let armed_in = Arc::clone(&armed);
    let config = EngineConfig {
        slots: 2,
        parallelism: 1,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(2)),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_millis(1) }),
        ..EngineConfig::default()
    };
    let result = execute_with_config_within_deadline("async-recovery", config, move |env| {
        let options = AsyncOptions { capacity: 32, ..AsyncOptions::ordered(Duration::from_secs(60)) };
        env.source("ids", BlockSource::new(total, 500))
            .async_map(triple, options)
            .map(move |answer: (u64, u64)| {
                if answer.0 == 3_333 && armed_in.swap(false, Ordering::SeqCst) {
                    panic!("injected failure after the async stage");
                }
                answer
            })
            .sink("answers", out_in);
    })
    .unwrap();
    assert!(!armed.load(Ordering::SeqCst));
    assert_eq!(result.restarts, 1);
    let answers = out.records();
    let expected: Vec<(u64, u64)> = (0..total).map(|x| (x, 3 * x)).collect();
    assert_eq!(answers, expected, "every answer once, in input order");
}
