//! Runs one benchmark query and measures it.
//!
//! Throughput is events generated per second over the job's run time (tasks started to last task
//! finished: generator included, process start excluded), as bench/WORKLOADS.md defines it. Peak memory is
//! the process's peak resident set, so the `tethys bench` command runs each query in a fresh
//! process.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::bids::BidsSource;
use tethys_engine::source::nexmark::NexmarkSource;
use tethys_engine::{EngineConfig, JobError, StreamEnvironment};

use tethys_net::launcher::{LocalCluster, LocalClusterSpec};

use crate::bids::{self, BidsQuery};
use crate::bursts::{self, BurstQuery};
use crate::jobs;
use crate::memory::peak_rss_bytes;
use crate::nexmark::{self, NexmarkQuery};

/// A benchmark query: one of the bids workload or of Nexmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// A bids workload query.
    Bids(BidsQuery),
    /// A Nexmark query.
    Nexmark(NexmarkQuery),
    /// A job emitting bursts behind a slow consumer (memory against the credit bound); not in
    /// `all()`: its throughput is the slow stage's.
    Burst(BurstQuery),
    /// A Nexmark query in SQL (`bench/nexmark-sql/qN.sql`), by number: `sql-qN`.
    NexmarkSql(u8),
}

impl Query {
    /// Every query, bids workload first.
    pub fn all() -> Vec<Query> {
        BidsQuery::ALL.into_iter().map(Query::Bids).chain(NexmarkQuery::ALL.into_iter().map(Query::Nexmark)).collect()
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Bids(query) => query.fmt(f),
            Query::Nexmark(query) => query.fmt(f),
            Query::Burst(query) => query.fmt(f),
            Query::NexmarkSql(number) => write!(f, "sql-q{number}"),
        }
    }
}

impl std::str::FromStr for Query {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<BidsQuery>()
            .map(Query::Bids)
            .or_else(|_| s.parse::<NexmarkQuery>().map(Query::Nexmark))
            .or_else(|_| s.parse::<BurstQuery>().map(Query::Burst))
            .or_else(|_| match s.strip_prefix("sql-q").and_then(|number| number.parse::<u8>().ok()) {
                Some(number) if crate::nexmark_sql::query(number).is_some() => Ok(Query::NexmarkSql(number)),
                _ => Err(()),
            })
            .map_err(|_| {
                let sql: Vec<String> = crate::nexmark_sql::QUERIES.iter().map(|(number, _)| format!("sql-q{number}")).collect();
                format!("unknown query '{s}' (passthrough, filter, window, agg, q0, q1, q2, q5, q7, q8, {})", sql.join(", "))
            })
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSpec {
    /// The query.
    pub query: Query,
    /// Events the source generates.
    pub events: u64,
    /// Generator seed.
    pub seed: u64,
    /// Engine settings (slots, parallelism, frame size, linger, credits).
    pub config: EngineConfig,
    /// Worker processes to run the job on (a local cluster; this process coordinates and its
    /// slots are split evenly among them); 0 runs it in this process.
    pub workers: usize,
    /// With workers: their connections move bytes through shared memory (else TCP only).
    pub shared_memory: bool,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Query name.
    pub query: String,
    /// Parallelism.
    pub parallelism: usize,
    /// Slots (cores) used.
    pub slots: usize,
    /// Events generated.
    pub events: u64,
    /// Records the sink received.
    pub sink_records: u64,
    /// Job run time.
    pub elapsed: Duration,
    /// Events per second.
    pub events_per_second: f64,
    /// Peak resident memory of the process, if known.
    pub peak_rss_bytes: Option<u64>,
    /// Records per frame.
    pub frame_records_max: usize,
    /// Keyed state entries held by the job's stateful operators (per key, or per window and key at
    /// the peak), summed over subtasks; 0 for stateless queries.
    pub state_keys: u64,
    /// Most frames that waited for credit on one output channel at once.
    pub backlog_frames_peak: u32,
    /// Most frames queued at one input gate at once, and the smallest gate capacity (its bound).
    pub gate_frames_peak: (u32, u32),
    /// Checkpoints completed, and the duration of the newest.
    pub checkpoints: (u64, Duration),
    /// Encoded keyed state of the newest checkpoint, bytes; longest barrier alignment.
    pub checkpoint_state: (u64, Duration),
    /// Bytes the newest checkpoint wrote (incremental: changed key groups only).
    pub checkpoint_written: u64,
    /// Longest synchronous part of a snapshot on a task's slot.
    pub checkpoint_sync_max: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query={:<12} p={} slots={} events={} elapsed={:.3}s events/s={:.2}M sink_records={} peak_rss={} frame={} state_keys={} backlog_peak={} gate_peak={}/{} checkpoints={} last_checkpoint={:.1}ms state={}B written={}B alignment_max={:.1}ms sync_max={:.2}ms",
            self.query,
            self.parallelism,
            self.slots,
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_second / 1e6,
            self.sink_records,
            self.peak_rss_bytes.map_or("unknown".to_string(), |b| format!("{:.1}MiB", b as f64 / (1 << 20) as f64)),
            self.frame_records_max,
            self.state_keys,
            self.backlog_frames_peak,
            self.gate_frames_peak.0,
            self.gate_frames_peak.1,
            self.checkpoints.0,
            self.checkpoints.1.as_secs_f64() * 1e3,
            self.checkpoint_state.0,
            self.checkpoint_written,
            self.checkpoint_state.1.as_secs_f64() * 1e3,
            self.checkpoint_sync_max.as_secs_f64() * 1e3,
        )
    }
}

/// Runs one query to completion and measures it.
pub fn run(spec: &BenchSpec) -> Result<BenchReport, JobError> {
    let env = StreamEnvironment::new(spec.config.clone());
    let sink = DiscardSink::new();
    let name = format!("bench-{}", spec.query);
    let result = if spec.workers == 0 {
        match spec.query {
            Query::Bids(query) => bids::define(&env, query, BidsSource::new(spec.events, spec.seed), sink.clone()),
            Query::Nexmark(query) => nexmark::define(&env, query, NexmarkSource::new(spec.events, spec.seed), sink.clone()),
            Query::Burst(query) => bursts::define(&env, query, BidsSource::new(spec.events, spec.seed), sink.clone()),
            Query::NexmarkSql(number) => {
                let failed = |reason: String| JobError::Runtime { job: name.clone(), reason };
                let session = crate::nexmark_sql::session(spec.events, spec.seed, spec.config.clone()).map_err(failed)?;
                let job = crate::nexmark_sql::job(&session, number, sink.clone()).map_err(failed)?;
                return finish(spec, &sink, job.env.execute(&name)?);
            }
        }
        env.execute(&name)?
    } else {
        // Source and sink of the stateless queries go to different processes.
        let job = jobs::bench_spec(spec.query, spec.events, spec.seed, true);
        let failed = |reason: String| JobError::Runtime { job: name.clone(), reason };
        jobs::define(&job, &env).map_err(failed)?;
        let slots_per_worker = spec.config.slots.div_ceil(spec.workers).max(1);
        let mut cluster_spec =
            LocalClusterSpec::of_this_program(spec.workers, slots_per_worker).map_err(|error| failed(error.to_string()))?;
        cluster_spec.shared_memory = spec.shared_memory;
        let cluster = LocalCluster::start(&cluster_spec, job).map_err(|error| failed(error.to_string()))?;
        env.execute_on_cluster(&name, cluster.coordinator().cluster())?
    };
    finish(spec, &sink, result)
}

/// The report of a finished run; the sink counts where it runs: here, or on a worker (then its
/// operator metrics say).
fn finish(spec: &BenchSpec, sink: &DiscardSink, result: tethys_engine::JobResult) -> Result<BenchReport, JobError> {
    let sink_records = match spec.workers {
        0 => sink.records(),
        _ => result.operator("Sink: discard").map_or(0, |sink| sink.records_in),
    };
    let seconds = result.elapsed.as_secs_f64().max(1e-9);
    Ok(BenchReport {
        query: spec.query.to_string(),
        parallelism: spec.config.parallelism,
        slots: spec.config.slots,
        events: spec.events,
        sink_records,
        elapsed: result.elapsed,
        events_per_second: spec.events as f64 / seconds,
        peak_rss_bytes: peak_rss_bytes(),
        frame_records_max: spec.config.frame_records_max,
        state_keys: result
            .operators
            .iter()
            .flat_map(|o| o.extra.iter())
            .filter(|(name, _)| name.starts_with("state_keys"))
            .map(|(_, keys)| keys)
            .sum(),
        backlog_frames_peak: result.channels.output_backlog_frames_peak,
        gate_frames_peak: (result.channels.gate_queued_frames_peak, result.channels.gate_capacity_min),
        checkpoints: (result.checkpoints.completed, result.checkpoints.latest_duration),
        checkpoint_state: (result.checkpoints.latest_state_bytes, result.checkpoints.alignment_max),
        checkpoint_written: result.checkpoints.latest_written_bytes,
        checkpoint_sync_max: result.checkpoints.sync_max,
    })
}
