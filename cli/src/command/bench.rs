//! `tethys bench`: runs each (query, parallelism) in a fresh child process, so each line's peak
//! memory is that run's own, and prints one line per run plus the median of repeated runs.

use std::process::Command;
use std::time::Duration;

use clap::Args;
use tethys_bench::harness::{run as run_bench, BenchSpec, Query};
use tethys_engine::EngineConfig;

use super::CliError;

/// Engine settings shared by `bench` and `bench-run`.
#[derive(Args, Clone, Debug)]
pub struct EngineArgs {
    /// Events generated per run.
    #[arg(long, default_value_t = 50_000_000)]
    pub events: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Slots (pinned cores); default: all cores.
    #[arg(long)]
    pub slots: Option<usize>,
    /// Records per frame.
    #[arg(long)]
    pub frame: Option<usize>,
    /// Linger time of partly filled frames, in microseconds.
    #[arg(long)]
    pub linger_us: Option<u64>,
    /// Take an exactly-once checkpoint at this interval (`1s`, `250ms`), written to
    /// `--checkpoint-dir`.
    #[arg(long, value_parser = parse_interval)]
    pub checkpoint_interval: Option<Duration>,
    /// Checkpoint store directory (default: a fresh one under the system temp dir per run,
    /// removed afterwards).
    #[arg(long)]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Where keyed state lives: `heap` (memory) or `disk` (fjall, under a fresh directory in the
    /// system temp dir per run, removed afterwards).
    #[arg(long, default_value = "heap", value_parser = ["heap", "disk"])]
    pub state_backend: String,
    /// Memory each keyed subtask's disk state may keep in memory, in MiB (with
    /// `--state-backend disk`; default: the backend's, 96 MiB).
    #[arg(long)]
    pub state_cache_mb: Option<u64>,
    /// Run each query on this many worker processes of a local cluster (the run's own process
    /// coordinates; the slots are split among the workers; the passthrough and filter queries
    /// put source and sink in different workers); 0 runs it in one process.
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// With `--workers`: keep the connections between the processes on TCP instead of shared memory.
    #[arg(long)]
    pub no_shared_memory: bool,
    /// Buffers (credits) each channel's receiver reserves for it (default: the engine's, 2).
    #[arg(long)]
    pub exclusive_credits: Option<u32>,
    /// Buffers each input gate lends to channels with a backlog (default: the engine's, 8).
    #[arg(long)]
    pub floating_credits: Option<u32>,
    /// Buffers each channel whose producer runs in another process reserves for it (default:
    /// the engine's, 32; at least `--exclusive-credits`).
    #[arg(long)]
    pub remote_exclusive_credits: Option<u32>,
}

/// Parses `<n>ms`, `<n>s` or `<n>m` (at least 1 ms).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, ""), |at| text.split_at(at));
    let value: u64 = number.parse().map_err(|_| format!("'{text}' is not a duration such as 1s or 250ms"))?;
    let interval = match unit {
        "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value * 60),
        _ => return Err(format!("'{text}': the unit must be ms, s or m")),
    };
    if interval < Duration::from_millis(1) {
        return Err(format!("'{text}': at least 1ms"));
    }
    Ok(interval)
}

impl EngineArgs {
    /// Refuses flags that do not go together.
    fn check(&self) -> Result<(), CliError> {
        if self.state_cache_mb.is_some() && self.state_backend != "disk" {
            return Err("--state-cache-mb sizes the disk state backend's cache: it needs --state-backend disk".into());
        }
        Ok(())
    }

    fn config(&self, parallelism: usize) -> EngineConfig {
        let mut config = EngineConfig { parallelism, ..EngineConfig::default() };
        if let Some(slots) = self.slots {
            config.slots = slots;
        }
        if let Some(frame) = self.frame {
            config.frame_records_max = frame;
        }
        if let Some(linger_us) = self.linger_us {
            config.linger = Duration::from_micros(linger_us);
        }
        if let Some(credits) = self.exclusive_credits {
            config.exclusive_credits_per_channel = credits;
        }
        if let Some(credits) = self.remote_exclusive_credits {
            config.remote_exclusive_credits_per_channel = credits;
        }
        if let Some(credits) = self.floating_credits {
            config.floating_credits_per_gate = credits;
        }
        if self.state_backend == "disk" {
            let dir = std::env::temp_dir().join(format!("tethys-bench-state-{}", std::process::id()));
            // Too large a size saturates, and the configuration's check refuses it by name.
            let cache_bytes =
                self.state_cache_mb.map_or(tethys_engine::state::disk::DISK_CACHE_BYTES_DEFAULT, |mb| mb.saturating_mul(1024 * 1024));
            config.state_backend = tethys_engine::state::StateBackendConfig::Disk { dir, cache_bytes };
        }
        config.checkpoint_interval = self.checkpoint_interval;
        if config.checkpoint_interval.is_some() {
            config.checkpoint_dir = Some(
                self.checkpoint_dir
                    .clone()
                    .unwrap_or_else(|| std::env::temp_dir().join(format!("tethys-bench-checkpoints-{}", std::process::id()))),
            );
        }
        config
    }

    fn to_flags(&self) -> Vec<String> {
        let mut flags = vec!["--events".into(), self.events.to_string(), "--seed".into(), self.seed.to_string()];
        for (flag, value) in
            [("--slots", self.slots.map(|v| v as u64)), ("--frame", self.frame.map(|v| v as u64)), ("--linger-us", self.linger_us)]
        {
            if let Some(value) = value {
                flags.push(flag.into());
                flags.push(value.to_string());
            }
        }
        if self.state_backend != "heap" {
            flags.push("--state-backend".into());
            flags.push(self.state_backend.clone());
        }
        if let Some(mb) = self.state_cache_mb {
            flags.push("--state-cache-mb".into());
            flags.push(mb.to_string());
        }
        if let Some(interval) = self.checkpoint_interval {
            flags.push("--checkpoint-interval".into());
            flags.push(format!("{}ms", interval.as_millis()));
        }
        if let Some(dir) = &self.checkpoint_dir {
            flags.push("--checkpoint-dir".into());
            flags.push(dir.display().to_string());
        }
        if self.workers > 0 {
            flags.push("--workers".into());
            flags.push(self.workers.to_string());
        }
        if self.no_shared_memory {
            flags.push("--no-shared-memory".into());
        }
        let credits = [
            ("--exclusive-credits", self.exclusive_credits),
            ("--floating-credits", self.floating_credits),
            ("--remote-exclusive-credits", self.remote_exclusive_credits),
        ];
        for (flag, value) in credits {
            if let Some(value) = value {
                flags.push(flag.into());
                flags.push(value.to_string());
            }
        }
        flags
    }
}

/// Arguments of `tethys bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Queries to run, comma-separated: passthrough, filter, window, agg, q0, q1, q2, or all.
    #[arg(long, default_value = "all")]
    pub queries: String,
    /// Parallelisms to run each query at, comma-separated.
    #[arg(long, default_value = "1,2")]
    pub parallelism: String,
    /// Runs per (query, parallelism); the median is printed after them.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Arguments of the hidden `tethys bench-run`.
#[derive(Args, Debug)]
pub struct BenchRunArgs {
    /// The query.
    #[arg(long)]
    pub query: String,
    /// Parallelism.
    #[arg(long)]
    pub parallelism: usize,
    #[command(flatten)]
    pub engine: EngineArgs,
}

fn parse_list<T: std::str::FromStr>(text: &str, what: &str) -> Result<Vec<T>, CliError>
where
    T::Err: std::fmt::Display,
{
    text.split(',').map(|s| s.trim().parse::<T>().map_err(|e| format!("bad {what} '{s}': {e}").into())).collect()
}

/// Runs the benchmark matrix, one child process per run.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    args.engine.check()?;
    let queries: Vec<Query> = if args.queries == "all" { Query::all() } else { parse_list(&args.queries, "query")? };
    let parallelisms: Vec<usize> = parse_list(&args.parallelism, "parallelism")?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the tethys binary: {e}"))?;
    println!(
        "# tethys bench: {} events per run, {} run(s) each, {} cores",
        args.engine.events,
        args.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for query in &queries {
        for &parallelism in &parallelisms {
            let mut rates = Vec::new();
            for _ in 0..args.runs.max(1) {
                let output = Command::new(&exe)
                    .arg("bench-run")
                    .args(["--query", &query.to_string(), "--parallelism", &parallelism.to_string()])
                    .args(args.engine.to_flags())
                    .output()
                    .map_err(|e| format!("cannot start a bench run: {e}"))?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                if !output.status.success() {
                    return Err(
                        format!("bench run {query} p={parallelism} failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr)).into()
                    );
                }
                print!("{stdout}");
                let rate = stdout
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("events/s="))
                    .and_then(|v| v.trim_end_matches('M').parse::<f64>().ok());
                rates.extend(rate);
            }
            if rates.len() > 1 {
                rates.sort_by(f64::total_cmp);
                println!("median query={query} p={parallelism} events/s={:.2}M over {} runs", rates[rates.len() / 2], rates.len());
            }
        }
    }
    Ok(())
}

/// Runs one benchmark in this process and prints its line.
pub fn run_one(args: BenchRunArgs) -> Result<(), CliError> {
    args.engine.check()?;
    let spec = BenchSpec {
        query: args.query.parse()?,
        events: args.engine.events,
        seed: args.engine.seed,
        config: args.engine.config(args.parallelism),
        workers: args.engine.workers,
        shared_memory: !args.engine.no_shared_memory,
    };
    let report = run_bench(&spec);
    // A checkpoint directory the user did not name is this run's own.
    if let (None, Some(dir)) = (&args.engine.checkpoint_dir, &spec.config.checkpoint_dir) {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let tethys_engine::state::StateBackendConfig::Disk { dir, .. } = &spec.config.state_backend {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!("{}", report?);
    Ok(())
}
