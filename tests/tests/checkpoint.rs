//! Checkpoints in one process: barriers injected at the sources flow in-band, gates align them
//! (exactly-once) or not (at-least-once), every subtask snapshots and acknowledges, and the job's
//! checkpoints complete while its results stay exact. Each job ends only once its sources have
//! been told of enough completed checkpoints, so nothing here waits on time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::{CheckpointingMode, EngineConfig, JobResult, StreamEnvironment, SubtaskContext, UserError};
use tethys_tests::execute_with_config_within_deadline;

/// Emits 0, 1, 2, ... (split between subtasks) in frames of 8 until it has been told of
/// `checkpoints` completed checkpoints; counts what it emitted.
#[derive(Clone)]
struct UntilCheckpoints {
    checkpoints: u64,
    emitted: Arc<AtomicU64>,
}

struct UntilCheckpointsReader {
    next: u64,
    stride: u64,
    completed: u64,
    target: u64,
    emitted: Arc<AtomicU64>,
}

impl Source<u64> for UntilCheckpoints {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<u64>>, UserError> {
        Ok(Box::new(UntilCheckpointsReader {
            next: context.subtask_index as u64,
            stride: context.parallelism as u64,
            completed: 0,
            target: self.checkpoints,
            emitted: Arc::clone(&self.emitted),
        }))
    }
}

impl SourceReader<u64> for UntilCheckpointsReader {
    fn poll_frame(&mut self, frame: &mut Vec<u64>, records_max: usize) -> Result<ReaderStatus, UserError> {
        if self.completed >= self.target {
            return Ok(ReaderStatus::Finished);
        }
        for _ in 0..records_max.min(8) {
            frame.push(self.next);
            self.next += self.stride;
        }
        self.emitted.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(ReaderStatus::Ready)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next)
    }

    fn notify_checkpoint_complete(&mut self, _id: u64) {
        self.completed += 1;
    }
}

fn config(parallelism: usize, mode: CheckpointingMode) -> EngineConfig {
    EngineConfig {
        slots: 2,
        parallelism,
        checkpoint_interval: Some(Duration::from_millis(2)),
        checkpointing_mode: mode,
        ..EngineConfig::default()
    }
}

/// Checks the final rolling count of every key against what the sources emitted.
fn assert_counts_exact(counts: Vec<(u64, u64)>, emitted: u64, keys: u64) {
    let mut last = std::collections::BTreeMap::new();
    for (key, count) in counts {
        let previous = last.insert(key, count).unwrap_or(0);
        assert!(count > previous, "key {key}: counts only grow");
    }
    assert_eq!(last.values().sum::<u64>(), emitted, "every record counted once");
    assert!(last.len() as u64 <= keys);
}

fn assert_checkpoints_completed(result: &JobResult, at_least: u64) {
    let stats = result.checkpoints;
    assert!(stats.completed >= at_least, "{stats:?}");
    assert!(stats.latest_key_groups >= 128, "the keyed count snapshots every key group it owns: {stats:?}");
}

#[test]
fn checkpoints_complete_while_a_keyed_job_runs_and_its_counts_stay_exact() {
    for mode in [CheckpointingMode::ExactlyOnce, CheckpointingMode::AtLeastOnce] {
        for parallelism in [1, 2] {
            let emitted = Arc::new(AtomicU64::new(0));
            let source = UntilCheckpoints { checkpoints: 3, emitted: Arc::clone(&emitted) };
            let out = CollectSink::new();
            let sink = out.clone();
            let result =
                execute_with_config_within_deadline("checkpointed-counts", config(parallelism, mode), move |env: &StreamEnvironment| {
                    env.source("ids", source).key_by(|id: &u64| id % 10).count().sink("out", sink);
                })
                .unwrap();
            assert_checkpoints_completed(&result, 3);
            assert_counts_exact(out.records(), emitted.load(Ordering::Relaxed), 10);
        }
    }
}

#[test]
fn barriers_of_two_inputs_are_aligned_at_a_union() {
    let emitted = Arc::new(AtomicU64::new(0));
    let (left, right) = (
        UntilCheckpoints { checkpoints: 3, emitted: Arc::clone(&emitted) },
        UntilCheckpoints { checkpoints: 3, emitted: Arc::clone(&emitted) },
    );
    let out = CollectSink::new();
    let sink = out.clone();
    let result = execute_with_config_within_deadline("aligned-union", config(2, CheckpointingMode::ExactlyOnce), move |env| {
        env.source("left", left).union([env.source("right", right)]).key_by(|id: &u64| id % 7).count().sink("out", sink);
    })
    .unwrap();
    assert_checkpoints_completed(&result, 3);
    assert_counts_exact(out.records(), emitted.load(Ordering::Relaxed), 7);
}
