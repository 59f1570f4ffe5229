//! A job's coordinator lost in the middle of it (its connections closed, as when the leader that
//! drove it dies): the workers' subtasks run on, a new coordinator adopts the running attempt, and
//! the job ends with nothing restarted: every record went through the job once (the map counts
//! them), and every running count of the keyed state is in the exactly-once sink once. The new
//! coordinator goes on checkpointing from the checkpoint the old one completed last, with ids
//! above any it saw; its first checkpoints hold the keyed state whole (it knows nothing the old
//! one was acknowledged, so nothing may refer to it).
//!
//! The coordinators and both workers run in this test process, each its own mesh node on
//! 127.0.0.1.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::{JobRegistry, WorkerSlots};
use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::collection::CollectionSource;
use tethys_engine::{CheckpointDone, EngineConfig, StreamEnvironment};
use tethys_net::cluster::{Addresses, Coordinator, Worker};
use tethys_net::{ClusterSecret, MeshOptions};
use tethys_storage::test_dir::TestDir;

const RECORDS: u64 = 200_000;
const KEYS: u64 = 64;

/// Ids through a slow map (so the job outlasts a few checkpoints) and a running count per key
/// (keyed state), as `key * RECORDS + count`, into an exactly-once sink shared by the job's
/// definitions in this process.
fn registry(sink: CollectSink<u64>, seen: Arc<AtomicU64>) -> JobRegistry {
    Arc::new(move |_spec: &JobSpec, env: &StreamEnvironment| {
        let seen = Arc::clone(&seen);
        env.source("ids", CollectionSource::new((0..RECORDS).collect::<Vec<u64>>()))
            .uid("ids")
            .rebalance()
            .map(move |id: u64| {
                if seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(50) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                id
            })
            .uid("slow")
            .key_by(|id: &u64| id % KEYS)
            .count()
            .uid("count")
            .map(|(key, count): (u64, u64)| key * RECORDS + count)
            .uid("encode")
            .sink("counts", sink.clone())
            .uid("sink");
        Ok(())
    })
}

/// The newest checkpoint a coordinator completed, as the masters would record it; refused once
/// the coordinator is deposed.
#[derive(Default)]
struct Recorded {
    location: Mutex<Option<(u64, PathBuf)>>,
    deposed: AtomicBool,
}

fn config(dir: &std::path::Path, restore_from: Option<PathBuf>) -> EngineConfig {
    EngineConfig {
        parallelism: 2,
        slots: 2,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(10)),
        checkpoint_dir: Some(dir.to_path_buf()),
        restore_from,
        ..EngineConfig::default()
    }
}

#[test]
fn a_new_coordinator_adopts_the_running_attempt_and_nothing_restarts() {
    let checkpoints = TestDir::new("adoption");
    let sink = CollectSink::exactly_once();
    let seen = Arc::new(AtomicU64::new(0));
    let secret: ClusterSecret = "a secret of this test, long enough".parse().unwrap();
    let listeners: Vec<std::net::TcpListener> = (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let addresses: Addresses = listeners.iter().enumerate().map(|(node, l)| (node as u32, l.local_addr().unwrap())).collect();
    let job = JobSpec { name: "ids".into(), args: Vec::new() };
    let mut listeners = listeners.into_iter();
    let first_listener = listeners.next().unwrap();
    let workers: Vec<std::thread::JoinHandle<Worker>> = listeners
        .enumerate()
        .map(|(index, listener)| {
            let (addresses, secret, registry) = (addresses.clone(), secret.clone(), registry(sink.clone(), Arc::clone(&seen)));
            std::thread::spawn(move || {
                Worker::start_adoptable(
                    index as u32 + 1,
                    listener,
                    &addresses,
                    secret,
                    registry,
                    MeshOptions::default(),
                    Duration::from_secs(60),
                )
                .unwrap()
            })
        })
        .collect();
    let slots = vec![WorkerSlots { node: 1, slots: 1 }, WorkerSlots { node: 2, slots: 1 }];
    let first = Coordinator::start(first_listener, &addresses, secret.clone(), job.clone(), slots.clone(), MeshOptions::default()).unwrap();
    let workers: Vec<Worker> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    // The first coordinator drives the job; its completed checkpoints are recorded.
    let recorded = Arc::new(Recorded::default());
    let gate = |recorded: &Arc<Recorded>| {
        let recorded = Arc::clone(recorded);
        Arc::new(move |done: &CheckpointDone| {
            if recorded.deposed.load(Ordering::SeqCst) {
                return Err("deposed".to_string());
            }
            *recorded.location.lock().unwrap() = Some((done.id, done.location.clone().expect("checkpoints go to a directory")));
            Ok(())
        })
    };
    first.cluster().set_checkpoint_gate(gate(&recorded));
    let first = Arc::new(first);
    let first_run = {
        let (cluster, dir, job, registry) =
            (first.cluster(), checkpoints.path().to_path_buf(), job.clone(), registry(sink.clone(), Arc::clone(&seen)));
        std::thread::spawn(move || {
            let env = StreamEnvironment::new(config(&dir, None));
            registry(&job, &env).unwrap();
            env.execute_on_cluster("ids", cluster)
        })
    };
    // Once a quarter of the records went through and a checkpoint completed, it is lost.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.load(Ordering::SeqCst) < RECORDS / 4 || recorded.location.lock().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the job made no progress");
        std::thread::sleep(Duration::from_millis(1));
    }
    recorded.deposed.store(true, Ordering::SeqCst);
    first.abandon("its leader is deposed");
    let (last_id, last_location) = recorded.location.lock().unwrap().clone().unwrap();
    assert!(seen.load(Ordering::SeqCst) < RECORDS, "the job was still running when its coordinator was lost");

    // A new coordinator, elsewhere, adopts what runs, from the checkpoint recorded last.
    let second_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut addresses = addresses;
    addresses.insert(0, second_listener.local_addr().unwrap());
    let second = Coordinator::adopt(second_listener, &addresses, secret, job.clone(), slots, MeshOptions::default()).unwrap();
    let recorded = Arc::new(Recorded::default());
    second.cluster().set_checkpoint_gate(gate(&recorded));
    let env = StreamEnvironment::new(config(checkpoints.path(), Some(last_location)));
    registry(sink.clone(), Arc::clone(&seen))(&job, &env).unwrap();
    let result = env.execute_on_cluster("ids", second.cluster()).unwrap();
    assert!(first_run.join().unwrap().is_err(), "the abandoned coordinator's driver failed");
    drop(first);
    drop(second);
    for worker in workers {
        worker.wait();
    }

    assert_eq!(result.restarts, 0, "{result:?}");
    assert_eq!(seen.load(Ordering::SeqCst), RECORDS, "every record went through the map once: nothing was replayed");
    // Each key counted its ids one by one, each count committed once: the state never went back.
    let mut counts = sink.records();
    counts.sort_unstable();
    let expected = (0..KEYS).flat_map(|key| (1..=RECORDS / KEYS).map(move |count| key * RECORDS + count));
    assert_eq!(counts.len() as u64, RECORDS, "every count committed once");
    assert!(counts.iter().copied().eq(expected), "every key's counts 1..={} committed exactly once", RECORDS / KEYS);
    let newest = recorded.location.lock().unwrap().clone().map(|(id, _)| id);
    assert!(
        newest.is_some_and(|id| id > last_id),
        "the new coordinator completed checkpoints above the old one's: {newest:?} after {last_id}"
    );
}
