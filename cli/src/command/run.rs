//! `tethys run`: runs one job this program knows by name (its own, or `bench`, `digest`, `sql`:
//! see `tethys_bench::jobs`), in this process or on a local cluster of worker processes, and prints
//! its result as JSON. With workers, it prints each worker's process id first (`worker <n> pid
//! <pid>`), so a failure test can kill one.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::{EngineConfig, RestartStrategy, StreamEnvironment};
use tethys_net::launcher::{LocalCluster, LocalClusterSpec};

use super::CliError;

/// Arguments of `tethys run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The job's name (one of this program's: `program-info` lists them).
    pub job: String,
    /// The job's arguments (e.g. `filter 1000000 42 split` for `bench`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Worker processes of a local cluster to run it on; 0 runs it in this process.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Slots per worker (or in this process, without workers).
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Default parallelism of the job's operators.
    #[arg(long, default_value_t = 1)]
    pub parallelism: usize,
    /// Take checkpoints at this interval, in milliseconds.
    #[arg(long)]
    pub checkpoint_interval_ms: Option<u64>,
    /// Checkpoint store directory.
    #[arg(long)]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Restarts allowed after failures (fixed delay of 10 ms).
    #[arg(long, default_value_t = 0)]
    pub restarts: u32,
    /// With workers: mutual TLS on every connection, every node with these files.
    #[command(flatten)]
    pub tls: super::TlsArgs,
}

/// Runs the job and prints its result.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    let spec = JobSpec { name: args.job.clone(), args: args.args.clone() };
    let mut config = EngineConfig {
        slots: args.slots.max(1),
        parallelism: args.parallelism,
        checkpoint_interval: args.checkpoint_interval_ms.map(Duration::from_millis),
        checkpoint_dir: args.checkpoint_dir.clone(),
        ..EngineConfig::default()
    };
    if args.restarts > 0 {
        config.restart_strategy = Some(RestartStrategy::FixedDelay { attempts: args.restarts, delay: Duration::from_millis(10) });
    }
    let env = StreamEnvironment::new(config);
    crate::program::define(&spec, &env)?;
    let result = if args.workers == 0 {
        env.execute(&args.job)?
    } else {
        let mut cluster_spec = LocalClusterSpec::of_this_program(args.workers, args.slots.max(1))?;
        cluster_spec.tls = args.tls.files();
        let cluster = LocalCluster::start(&cluster_spec, spec)?;
        for node in 1..=args.workers as u32 {
            if let Some(pid) = cluster.pid(node) {
                println!("worker {node} pid {pid}");
            }
        }
        std::io::stdout().flush()?;
        env.execute_on_cluster(&args.job, cluster.coordinator().cluster())?
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
