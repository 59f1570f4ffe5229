//! Recovery: a job that fails restarts from its newest completed checkpoint (sources seek back,
//! keyed state comes back by key group) and its keyed state counts every record exactly once; a
//! checkpoint written to a store restores into a job at another parallelism; what does not fit
//! is refused by name.
//!
//! The source releases its records in blocks, one block per completed checkpoint it is told of,
//! so checkpoints always fall between data and nothing here waits on time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::{EngineConfig, JobError, RestartStrategy, StreamEnvironment};
use tethys_tests::{execute_with_config_within_deadline, BlockSource, TempDir};

const KEYS: u64 = 50;

fn config(parallelism: usize) -> EngineConfig {
    EngineConfig {
        slots: 2,
        parallelism,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(2)),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_millis(1) }),
        ..EngineConfig::default()
    }
}

/// The job: ids keyed by `id % KEYS`, counted per key; a map before the count fails once, on
/// the first sight of id `fail_at` while `armed` is set.
fn counting_job(env: &StreamEnvironment, total: u64, fail_at: u64, armed: Arc<AtomicBool>, out: CollectSink<(u64, u64)>) {
    env.source("ids", BlockSource::new(total, 300))
        .uid("ids")
        .map(move |id: u64| {
            if id == fail_at && armed.swap(false, Ordering::SeqCst) {
                panic!("injected failure at id {id}");
            }
            id
        })
        .uid("fail-once")
        .key_by(|id: &u64| id % KEYS)
        .count()
        .uid("counts")
        .sink("counts", out);
}

/// The largest count emitted per key: with exactly-once state it is the number of ids of the key,
/// however many times records after the checkpoint were replayed into the (at-least-once) sink.
fn final_counts(records: &[(u64, u64)]) -> HashMap<u64, u64> {
    let mut counts = HashMap::new();
    for &(key, count) in records {
        let entry = counts.entry(key).or_insert(0);
        *entry = count.max(*entry);
    }
    counts
}

fn expected_counts(total: u64) -> HashMap<u64, u64> {
    let mut counts = HashMap::new();
    for id in 0..total {
        *counts.entry(id % KEYS).or_insert(0) += 1;
    }
    counts
}

#[test]
fn a_failed_job_restarts_from_its_checkpoint_and_counts_every_record_once() {
    for parallelism in [1, 2] {
        let total = 6_000;
        let armed = Arc::new(AtomicBool::new(true));
        let out = CollectSink::new();
        let (armed_in, out_in) = (Arc::clone(&armed), out.clone());
        let result = execute_with_config_within_deadline("recovery", config(parallelism), move |env| {
            counting_job(env, total, 4_321, armed_in, out_in)
        })
        .unwrap();
        assert!(!armed.load(Ordering::SeqCst), "the failure was injected");
        assert_eq!(result.restarts, 1, "p={parallelism}");
        assert!(result.checkpoints.completed > 0, "p={parallelism}: {:?}", result.checkpoints);
        assert_eq!(final_counts(&out.records()), expected_counts(total), "p={parallelism}");
    }
}

#[test]
fn without_restarts_left_the_job_fails_with_the_last_failure() {
    let armed = Arc::new(AtomicBool::new(true));
    let config = EngineConfig { restart_strategy: Some(RestartStrategy::None), ..config(1) };
    let error =
        execute_with_config_within_deadline("no-restart", config, move |env| counting_job(env, 3_000, 10, armed, CollectSink::new()))
            .unwrap_err();
    assert!(error.to_string().contains("injected failure at id 10"), "{error}");
}

/// Runs the job at parallelism 2 until it fails for good (no restarts) after some checkpoints
/// were written to `dir`.
fn fail_after_checkpoints(dir: &TempDir, total: u64) -> JobError {
    let config = EngineConfig {
        checkpoint_dir: Some(dir.0.clone()),
        checkpoints_retained: 2,
        restart_strategy: Some(RestartStrategy::None),
        ..config(2)
    };
    let armed = Arc::new(AtomicBool::new(true));
    execute_with_config_within_deadline("rescale-before", config, move |env| counting_job(env, total, total / 2, armed, CollectSink::new()))
        .unwrap_err()
}

#[test]
fn a_stored_checkpoint_restores_into_a_job_at_another_parallelism() {
    let total = 6_000;
    for parallelism in [1, 3] {
        let dir = TempDir::new(&format!("rescale-{parallelism}"));
        fail_after_checkpoints(&dir, total);
        // Keyed state is redistributed by key group; the source keeps its parallelism of 2.
        let config = EngineConfig { restore_from: Some(dir.0.clone()), ..config(parallelism) };
        let out = CollectSink::new();
        let out_in = out.clone();
        let emitted = Arc::new(AtomicU64::new(0));
        let emitted_in = Arc::clone(&emitted);
        let result = execute_with_config_within_deadline("rescale-after", config, move |env| {
            env.source("ids", BlockSource::new(total, 300))
                .uid("ids")
                .parallelism(2)
                .map(move |id: u64| {
                    emitted_in.fetch_add(1, Ordering::Relaxed);
                    id
                })
                .uid("fail-once")
                .key_by(|id: &u64| id % KEYS)
                .count()
                .uid("counts")
                .sink("counts", out_in);
        })
        .unwrap();
        assert_eq!(result.restarts, 0);
        assert!(emitted.load(Ordering::Relaxed) < total, "p={parallelism}: the sources went on from the checkpoint");
        assert_eq!(final_counts(&out.records()), expected_counts(total), "p={parallelism}");
    }
}

#[test]
fn a_checkpoint_that_does_not_fit_the_job_is_refused_by_name() {
    let dir = TempDir::new("refused");
    fail_after_checkpoints(&dir, 3_000);
    let restore = |max_parallelism: usize, counts_uid: &'static str| {
        let config = EngineConfig { restore_from: Some(dir.0.clone()), max_parallelism, ..config(2) };
        execute_with_config_within_deadline("refused", config, move |env| {
            env.source("ids", BlockSource::new(3_000, 300))
                .uid("ids")
                .map(|id: u64| id)
                .uid("fail-once")
                .key_by(|id: &u64| id % KEYS)
                .count()
                .uid(counts_uid)
                .sink("counts", CollectSink::new());
        })
        .unwrap_err()
    };
    let error = restore(64, "counts");
    assert!(error.to_string().contains("max parallelism 128") && error.to_string().contains("has 64"), "{error}");
    let error = restore(128, "totals");
    assert!(error.to_string().contains("(id counts)"), "{error}");
}

/// Runs the counting job at parallelism 2 and stops it with a savepoint once its sink has seen
/// some counts; returns the savepoint's directory.
fn stop_with_savepoint(dir: &TempDir, total: u64) -> PathBuf {
    let env = StreamEnvironment::new(config(2));
    let out = CollectSink::new();
    counting_job(&env, total, u64::MAX, Arc::new(AtomicBool::new(false)), out.clone());
    let client = env.execute_async("savepoint-before").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.records().len() < 1_000 {
        assert!(std::time::Instant::now() < deadline, "the job produced no counts");
        std::thread::sleep(Duration::from_millis(1));
    }
    let result = client.stop_with_savepoint(dir.0.join("savepoints")).unwrap();
    let savepoint = result.stopped_with_savepoint.expect("stopped with a savepoint");
    assert!(savepoint.file_name().unwrap().to_string_lossy().starts_with("svp-"), "{}", savepoint.display());
    savepoint
}

#[test]
fn a_savepoint_at_parallelism_2_restores_at_1_and_3_with_exact_counts() {
    let total = 60_000;
    for parallelism in [1, 3] {
        let dir = TempDir::new(&format!("savepoint-{parallelism}"));
        let savepoint = stop_with_savepoint(&dir, total);
        let config = EngineConfig { restore_from: Some(savepoint), ..config(parallelism) };
        let out = CollectSink::new();
        let out_in = out.clone();
        execute_with_config_within_deadline("savepoint-after", config, move |env| {
            env.source("ids", BlockSource::new(total, 300))
                .uid("ids")
                .parallelism(2)
                .map(|id: u64| id)
                .uid("fail-once")
                .key_by(|id: &u64| id % KEYS)
                .count()
                .uid("counts")
                .sink("counts", out_in);
        })
        .unwrap();
        assert_eq!(final_counts(&out.records()), expected_counts(total), "p={parallelism}");
    }
}

#[test]
fn a_cancelled_job_says_so() {
    let env = StreamEnvironment::new(config(1));
    counting_job(&env, u64::MAX, u64::MAX, Arc::new(AtomicBool::new(false)), CollectSink::new());
    let client = env.execute_async("cancelled").unwrap();
    let error = client.cancel().unwrap_err();
    assert!(matches!(error, JobError::Cancelled { .. }), "{error}");
}

/// Incremental checkpoints: each block of ids goes to a key of its own, so between two
/// checkpoints one key group changes; a checkpoint writes it and links the others from the one
/// before. A restore from the store (files linked across checkpoints) still counts exactly.
#[test]
fn incremental_checkpoints_write_only_the_key_groups_that_changed() {
    let dir = TempDir::new("incremental");
    let total = 60_000;
    let block = 300;
    let config = EngineConfig { checkpoint_dir: Some(dir.0.clone()), checkpoints_retained: 2, ..config(1) };
    let armed = Arc::new(AtomicBool::new(true));
    let out = CollectSink::new();
    let (armed_in, out_in) = (Arc::clone(&armed), out.clone());
    let result = execute_with_config_within_deadline("incremental", config, move |env| {
        env.source("ids", BlockSource::new(total, block))
            .uid("ids")
            .map(move |id: u64| {
                if id == total - 1_000 && armed_in.swap(false, Ordering::SeqCst) {
                    panic!("injected failure at id {id}");
                }
                id
            })
            .uid("fail-once")
            .key_by(move |id: &u64| id / block)
            .count()
            .uid("counts")
            .sink("counts", out_in);
    })
    .unwrap();
    let stats = result.checkpoints;
    assert_eq!(result.restarts, 1);
    assert!(stats.latest_written_bytes * 4 < stats.latest_state_bytes, "a checkpoint writes a fraction of the state: {stats:?}");
    let mut expected = HashMap::new();
    for id in 0..total {
        *expected.entry(id / block).or_insert(0) += 1;
    }
    assert_eq!(final_counts(&out.records()), expected);
}
