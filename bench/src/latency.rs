//! End-to-end latency at a fixed input rate (bench/WORKLOADS.md section 3): the filter query of the bids
//! workload, with the sink in its own task behind a rebalance so every record crosses a channel
//! (frame building, linger, credits, an actor message) as it would between a source and a sink
//! task of a real job.
//!
//! Each record is stamped with the instant it leaves the source reader (the generator produces at
//! the given rate, so this is its generation time); the sink records `now - stamp` per record in
//! an HdrHistogram, one per sink subtask, merged at the end.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tethys_engine::sink::{Sink, SinkWriter};
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::UserError;
use tethys_engine::{EngineConfig, JobError, StreamEnvironment, SubtaskContext};

use tethys_engine::cluster::protocol::JobSpec;
use tethys_net::launcher::InProcessCluster;

use crate::bids::filter_predicate;

/// Largest latency the histogram holds, in microseconds (a minute).
const LATENCY_MAX_US: u64 = 60_000_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct LatencySpec {
    /// Input rate over all source subtasks, events per second.
    pub events_per_second: u64,
    /// How long to run.
    pub duration: Duration,
    /// Generator seed.
    pub seed: u64,
    /// Engine settings.
    pub config: EngineConfig,
    /// Watermark alignment of the source's subtasks with this max drift; `None`: off.
    pub alignment_max_drift: Option<Duration>,
    /// Workers of a cluster in this process to run on (each its own node on 127.0.0.1, so the
    /// source and the sink are on different workers and every record crosses a TCP connection
    /// and its encoding: the latency of a hop between processes); 0: one process, no network.
    pub workers: usize,
}

/// What one latency run measured.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Input rate, events per second.
    pub events_per_second: u64,
    /// Parallelism.
    pub parallelism: usize,
    /// Records measured at the sink.
    pub records: u64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest latency seen.
    pub max: Duration,
    /// Linger time used.
    pub linger: Duration,
}

impl fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "latency query=filter rate={:.2}M/s p={} records={} p50={:?} p99={:?} p99.9={:?} max={:?} linger={:?}",
            self.events_per_second as f64 / 1e6,
            self.parallelism,
            self.records,
            self.p50,
            self.p99,
            self.p999,
            self.max,
            self.linger
        )
    }
}

/// A filtered bid with the time it was generated (nanoseconds since this process's `EPOCH`:
/// records carry plain numbers, as the codec requires, not `Instant`s).
#[derive(Debug, Clone, Copy, tethys_engine::rkyv::Archive, tethys_engine::rkyv::Serialize, tethys_engine::rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
struct StampedEuroBid {
    auction: i64,
    euro: f64,
    created_ns: u64,
}

/// The instant latency stamps count from.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Nanoseconds since `EPOCH`.
fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Records per-record latency into a shared histogram.
#[derive(Clone)]
struct LatencySink {
    merged: Arc<Mutex<Histogram<u64>>>,
}

struct LatencyWriter {
    local: Histogram<u64>,
    merged: Arc<Mutex<Histogram<u64>>>,
}

impl Sink<StampedEuroBid> for LatencySink {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<StampedEuroBid>>, UserError> {
        let local = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)?;
        Ok(Box::new(LatencyWriter { local, merged: Arc::clone(&self.merged) }))
    }
}

impl SinkWriter<StampedEuroBid> for LatencyWriter {
    fn write_frame(&mut self, frame: Vec<StampedEuroBid>) -> Result<(), UserError> {
        let now = now_ns();
        for record in &frame {
            std::hint::black_box((record.auction, record.euro));
            let micros = now.saturating_sub(record.created_ns) / 1_000;
            self.local.saturating_record(micros.clamp(1, LATENCY_MAX_US));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.merged.lock().unwrap_or_else(PoisonError::into_inner).add(&self.local)?;
        Ok(())
    }
}

/// Runs the filter query at a fixed rate and measures its latency.
pub fn run(spec: &LatencySpec) -> Result<LatencyReport, JobError> {
    let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static histogram bounds are valid");
    let merged = Arc::new(Mutex::new(histogram));
    let env = StreamEnvironment::new(spec.config.clone());
    let events = (spec.events_per_second as f64 * spec.duration.as_secs_f64()) as u64;
    let (rate, seed, alignment) = (spec.events_per_second, spec.seed, spec.alignment_max_drift);
    let sink_histogram = Arc::clone(&merged);
    let define = move |env: &StreamEnvironment| {
        let mut bids = env.source("bids", BidsSource::new(events, seed).with_rate(rate));
        if let Some(max_drift) = alignment {
            bids = bids.watermark_alignment("bids", max_drift);
        }
        bids.map(|bid: Bid| (bid, now_ns()))
            .name("stamp")
            .filter(|(bid, _): &(Bid, u64)| filter_predicate(bid))
            .map(|(bid, created_ns): (Bid, u64)| StampedEuroBid { auction: bid.auction, euro: bid.price as f64 * 0.908, created_ns })
            .rebalance()
            .sink("latency", LatencySink { merged: Arc::clone(&sink_histogram) });
    };
    define(&env);
    now_ns(); // the epoch starts before the first record
    if spec.workers == 0 {
        env.execute("latency-filter")?;
    } else {
        // Every node of the cluster is in this process: the sink's histogram is this one.
        let job = JobSpec { name: "latency-filter".into(), args: Vec::new() };
        let registry: tethys_engine::cluster::JobRegistry = Arc::new(move |_spec: &JobSpec, env: &StreamEnvironment| {
            define(env);
            Ok(())
        });
        let slots_per_worker = spec.config.slots.div_ceil(spec.workers).max(1);
        let cluster = InProcessCluster::start(spec.workers, slots_per_worker, registry, job)
            .map_err(|error| JobError::Runtime { job: "latency-filter".into(), reason: error.to_string() })?;
        env.execute_on_cluster("latency-filter", cluster.coordinator().cluster())?;
    }
    let histogram = merged.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let at = |q: f64| Duration::from_micros(histogram.value_at_quantile(q));
    Ok(LatencyReport {
        events_per_second: spec.events_per_second,
        parallelism: spec.config.parallelism,
        records: histogram.len(),
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_micros(histogram.max()),
        linger: spec.config.linger,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_passing_record_is_measured() {
        for workers in [0, 2] {
            every_passing_record_is_measured_on(workers);
        }
    }

    fn every_passing_record_is_measured_on(workers: usize) {
        let spec = LatencySpec {
            events_per_second: 200_000,
            duration: Duration::from_millis(100),
            seed: 3,
            config: EngineConfig { slots: 2, parallelism: 1, pin_slots: false, ..EngineConfig::default() },
            alignment_max_drift: None,
            workers,
        };
        let report = run(&spec).unwrap();
        let source = BidsSource::new(20_000, 3);
        let passing = (1..=20_000).filter(|&id| filter_predicate(&source.bid(id))).count() as u64;
        assert_eq!(report.records, passing);
        assert!(report.p50 <= report.p99 && report.p99 <= report.p999 && report.p999 <= report.max);
    }
}
