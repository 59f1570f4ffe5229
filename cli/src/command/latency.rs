//! `tethys latency`: end-to-end latency of the filter query at fixed input rates (bench/WORKLOADS.md
//! section 3), one line per rate with p50, p99, p99.9 and the maximum.

use std::time::Duration;

use clap::Args;
use tethys_bench::latency::{run as run_latency, LatencySpec};
use tethys_engine::EngineConfig;

use super::CliError;

/// Arguments of `tethys latency`.
#[derive(Args, Debug)]
pub struct LatencyArgs {
    /// Input rates to measure at, events per second over all sources, comma-separated.
    #[arg(long, default_value = "2000000,10000000")]
    pub rates: String,
    /// Seconds per rate; at least 1.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Parallelism; at least 1.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub parallelism: usize,
    /// Linger time of partly filled frames, in microseconds (default: the engine's).
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Aligns the watermarks of the source's subtasks with this max drift, in event-time
    /// milliseconds (Flink's watermark alignment). Off unless given, as in Flink.
    #[arg(long)]
    pub alignment_drift_ms: Option<u64>,
    /// Run on this many workers of a cluster in this process (source and sink on different
    /// workers, joined by a TCP connection on 127.0.0.1): the latency of a hop between processes.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

/// Runs the latency measurement at each rate.
pub fn run(args: LatencyArgs) -> Result<(), CliError> {
    for rate in args.rates.split(',') {
        let events_per_second: u64 = rate.trim().parse().map_err(|e| format!("bad rate '{rate}': {e}"))?;
        if events_per_second == 0 {
            return Err(format!("bad rate '{rate}': at least 1 event per second").into());
        }
        let mut config = EngineConfig { parallelism: args.parallelism, ..EngineConfig::default() };
        if let Some(linger_us) = args.linger_us {
            config.linger = Duration::from_micros(linger_us);
        }
        let spec = LatencySpec {
            events_per_second,
            duration: Duration::from_secs(args.seconds),
            seed: 42,
            config,
            alignment_max_drift: args.alignment_drift_ms.map(Duration::from_millis),
            workers: args.workers,
        };
        println!("{}", run_latency(&spec)?);
    }
    Ok(())
}
