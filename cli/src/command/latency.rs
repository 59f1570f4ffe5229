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
    /// Seconds per rate.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Parallelism.
    #[arg(long, default_value_t = 1)]
    pub parallelism: usize,
    /// Linger time of partly filled frames, in microseconds (default: the engine's).
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Watermark alignment drift in event-time milliseconds; 0 turns alignment off (default: the
    /// engine's).
    #[arg(long)]
    pub alignment_drift_ms: Option<u64>,
}

/// Runs the latency measurement at each rate.
pub fn run(args: LatencyArgs) -> Result<(), CliError> {
    for rate in args.rates.split(',') {
        let events_per_second: u64 = rate.trim().parse().map_err(|e| format!("bad rate '{rate}': {e}"))?;
        let mut config = EngineConfig { parallelism: args.parallelism, ..EngineConfig::default() };
        if let Some(linger_us) = args.linger_us {
            config.linger = Duration::from_micros(linger_us);
        }
        if let Some(drift_ms) = args.alignment_drift_ms {
            config.watermark_alignment_max_drift = (drift_ms > 0).then(|| Duration::from_millis(drift_ms));
        }
        let spec = LatencySpec { events_per_second, duration: Duration::from_secs(args.seconds), seed: 42, config };
        println!("{}", run_latency(&spec)?);
    }
    Ok(())
}
