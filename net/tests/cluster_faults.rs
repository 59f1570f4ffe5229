//! A connection between the processes of a job cut in the middle of it (by a fault proxy in
//! front of worker 2): the attempt fails, naming the worker lost, and the job recovers from its
//! last checkpoint on the worker left, with every record in its exactly-once sink once.
//!
//! The coordinator and both workers run in this test process, each its own mesh node on
//! 127.0.0.1; everything that reaches worker 2 goes through the proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tethys_chaos::ChaosProxy;
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::{JobRegistry, WorkerSlots};
use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::collection::CollectionSource;
use tethys_engine::{EngineConfig, RestartStrategy, StreamEnvironment};
use tethys_net::cluster::{Addresses, Coordinator, Worker};
use tethys_net::{ClusterSecret, MeshOptions};

const RECORDS: u64 = 200_000;

/// Ids through a slow map (so the job outlasts a few checkpoints) into an exactly-once sink
/// shared by the job's definitions in this process.
fn registry(sink: CollectSink<u64>, seen: Arc<AtomicU64>) -> JobRegistry {
    Arc::new(move |_spec: &JobSpec, env: &StreamEnvironment| {
        let seen = Arc::clone(&seen);
        env.source("ids", CollectionSource::new((0..RECORDS).collect::<Vec<u64>>()))
            .uid("ids")
            .rebalance()
            .map(move |id: u64| {
                if seen.fetch_add(1, Ordering::SeqCst).is_multiple_of(2_000) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                id
            })
            .uid("slow")
            .sink("ids", sink.clone())
            .uid("sink");
        Ok(())
    })
}

#[test]
fn a_cut_connection_fails_the_attempt_and_the_job_recovers_on_the_worker_left() {
    let sink = CollectSink::exactly_once();
    let seen = Arc::new(AtomicU64::new(0));
    let secret: ClusterSecret = "a secret of this test, long enough".parse().unwrap();
    let listeners: Vec<std::net::TcpListener> = (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    let mut addresses: Addresses = listeners.iter().enumerate().map(|(node, l)| (node as u32, l.local_addr().unwrap())).collect();
    // Worker 2 is reached through the proxy (lower ids dial higher ones: the coordinator and
    // worker 1 both dial it).
    let proxy = ChaosProxy::start(addresses[&2]).unwrap();
    addresses.insert(2, proxy.addr());
    let job = JobSpec { name: "ids".into(), args: Vec::new() };
    let mut listeners = listeners.into_iter();
    let coordinator_listener = listeners.next().unwrap();
    let workers: Vec<std::thread::JoinHandle<Worker>> = listeners
        .enumerate()
        .map(|(index, listener)| {
            let (addresses, secret, registry) = (addresses.clone(), secret.clone(), registry(sink.clone(), Arc::clone(&seen)));
            std::thread::spawn(move || {
                Worker::start(index as u32 + 1, listener, &addresses, secret, registry, MeshOptions::default()).unwrap()
            })
        })
        .collect();
    let slots = vec![WorkerSlots { node: 1, slots: 1 }, WorkerSlots { node: 2, slots: 1 }];
    let coordinator = Coordinator::start(coordinator_listener, &addresses, secret, job.clone(), slots, MeshOptions::default()).unwrap();
    let workers: Vec<Worker> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    let config = EngineConfig {
        parallelism: 1,
        pin_slots: false,
        checkpoint_interval: Some(Duration::from_millis(10)),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_millis(10) }),
        ..EngineConfig::default()
    };
    let env = StreamEnvironment::new(config);
    registry(sink.clone(), Arc::clone(&seen))(&job, &env).unwrap();
    // Once a quarter of the records went through worker 2's map, its connections are cut.
    let cutter = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.load(Ordering::SeqCst) < RECORDS / 4 {
                assert!(Instant::now() < deadline, "the job made no progress");
                std::thread::sleep(Duration::from_millis(1));
            }
            proxy.cut();
            proxy.refuse(true);
            proxy
        })
    };
    let result = env.execute_on_cluster("ids", coordinator.cluster()).unwrap();
    let _proxy = cutter.join().unwrap();
    drop(coordinator);
    for worker in workers {
        worker.wait();
    }
    assert!(result.restarts >= 1, "the cut failed an attempt: {result:?}");
    let mut ids = sink.records();
    ids.sort_unstable();
    assert_eq!(ids.len() as u64, RECORDS, "every id committed once (restarts: {})", result.restarts);
    assert!(ids.iter().copied().eq(0..RECORDS), "every id committed exactly once");
}
