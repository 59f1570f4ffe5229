//! Flow control across processes, on a cluster whose coordinator and two workers run in this test
//! process (each with its own mesh node on 127.0.0.1, as separate processes would): a slow
//! consumer does not hold up another channel on the same connection, and what a sender has queued
//! on the connection stays within the credits its consumers gave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::collection::CollectionSource;
use tethys_engine::{EngineConfig, StreamEnvironment};
use tethys_net::launcher::InProcessCluster;

/// Records of each source.
const RECORDS: u64 = 400_000;
/// The slow consumer sleeps this long after every this many records.
const SLOW_EVERY: u64 = 1_024;
const SLOW_SLEEP: Duration = Duration::from_millis(2);

/// What the consuming subtasks saw, shared by the job's definitions in this process.
#[derive(Default)]
struct Seen {
    slow: AtomicU64,
    fast: AtomicU64,
    /// Records the slow consumer had seen when the fast one saw its last.
    slow_when_fast_done: Mutex<Option<u64>>,
}

/// Two sources (nodes 0 and 1, placed on worker 1's slots), each behind a rebalance to its
/// consumer (placed on worker 2's): a slow one and a fast one, both channels on the connection
/// from worker 1 to worker 2.
fn registry(seen: Arc<Seen>) -> JobRegistry {
    Arc::new(move |spec: &JobSpec, env: &StreamEnvironment| {
        if spec.name != "two-channels" {
            return Err(format!("unknown job {}", spec.name));
        }
        let slow_source = env.source("slow-source", CollectionSource::new((0..RECORDS).collect::<Vec<u64>>()));
        let fast_source = env.source("fast-source", CollectionSource::new((0..RECORDS).collect::<Vec<u64>>()));
        let slow_seen = Arc::clone(&seen);
        slow_source
            .rebalance()
            .map(move |x: u64| {
                let n = slow_seen.slow.fetch_add(1, Ordering::SeqCst) + 1;
                if n.is_multiple_of(SLOW_EVERY) {
                    std::thread::sleep(SLOW_SLEEP);
                }
                x
            })
            .sink("slow", DiscardSink::new());
        let fast_seen = Arc::clone(&seen);
        fast_source
            .rebalance()
            .map(move |x: u64| {
                if fast_seen.fast.fetch_add(1, Ordering::SeqCst) + 1 == RECORDS {
                    *fast_seen.slow_when_fast_done.lock().unwrap() = Some(fast_seen.slow.load(Ordering::SeqCst));
                }
                x
            })
            .sink("fast", DiscardSink::new());
        Ok(())
    })
}

#[test]
fn a_slow_consumer_does_not_stall_another_channel_and_the_sender_stays_within_its_credits() {
    let seen = Arc::new(Seen::default());
    let job = JobSpec { name: "two-channels".into(), args: Vec::new() };
    let cluster = InProcessCluster::start(2, 2, registry(Arc::clone(&seen)), job.clone()).unwrap();

    let config = EngineConfig { parallelism: 1, pin_slots: false, ..EngineConfig::default() };
    let (exclusive, floating, frame_records) =
        (config.remote_exclusive_credits_per_channel, config.floating_credits_per_gate, config.frame_records_max);
    let env = StreamEnvironment::new(config);
    registry(Arc::clone(&seen))(&job, &env).unwrap();
    let plan = env.plan().unwrap();
    assert_eq!(plan.tasks.len(), 4, "{}", env.explain().unwrap());

    // Worker 1's connection to worker 2 carries both channels; its queued bytes are sampled
    // while the job runs.
    let towards_consumers = cluster.worker(1).connection(2).unwrap();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let running = Arc::clone(&running);
        std::thread::spawn(move || {
            let mut most = 0;
            while running.load(Ordering::SeqCst) {
                most = most.max(towards_consumers.stats().bytes_queued);
                std::thread::sleep(Duration::from_micros(100));
            }
            most
        })
    };
    let started = Instant::now();
    let result = env.execute_on_cluster("two-channels", cluster.coordinator().cluster()).unwrap();
    running.store(false, Ordering::SeqCst);
    let most_queued = sampler.join().unwrap();
    let elapsed = started.elapsed();
    drop(cluster);

    assert_eq!(seen.slow.load(Ordering::SeqCst), RECORDS);
    assert_eq!(seen.fast.load(Ordering::SeqCst), RECORDS);
    let slow_then = seen.slow_when_fast_done.lock().unwrap().expect("the fast consumer saw every record");
    // The slow consumer needs RECORDS / SLOW_EVERY sleeps; the fast one finished long before.
    assert!(
        slow_then < RECORDS / 2,
        "the fast channel finished only after the slow consumer had {slow_then} of {RECORDS} records (job took {elapsed:?})"
    );
    // Each consumer's gate has one channel, from the other process: at most its exclusive (for a
    // remote channel) and floating credits in frames
    // in flight, each frame at most `frame_records` u64s (8 bytes each, and an archive's few more
    // bytes), plus the small event messages and message headers.
    let frame_bytes = frame_records as u64 * 8 + 64;
    let bound = 2 * u64::from(exclusive + floating) * (frame_bytes + 24) + 4096;
    assert!(most_queued <= bound, "worker 1 queued {most_queued} bytes towards worker 2, over the credit bound of {bound}");
    assert!(result.channels.encoded_bytes >= 2 * RECORDS * 8, "{:?}", result.channels);
}
