//! `tethys recovery-demo`: a checkpointed job that fails and recovers with its results unchanged.
//!
//! Bids arrive at a steady rate; the job counts them per range of 1000 auctions in 1-second
//! event-time windows and writes the counts to an embedded topic with exactly-once delivery.
//! Checkpoints go to a directory every `--checkpoint-ms`; halfway through, an operator fails on
//! purpose. The engine restarts the job from its newest checkpoint (sources rewind, window state
//! comes back, what the sink wrote after the checkpoint is aborted). Then the same job runs again
//! without the failure, and the two topics' committed contents are compared: they are equal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tethys_engine::sink::topic::TopicSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, JobResult, RestartStrategy, StreamEnvironment, Topic, TumblingEventTimeWindows, WindowResult};

use super::CliError;

/// Arguments of `tethys recovery-demo`.
#[derive(Args, Debug)]
pub struct RecoveryDemoArgs {
    /// Bids per second; at least 1.
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// How long the input lasts, in seconds; at least 2.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..))]
    pub seconds: u64,
    /// Time between checkpoints in milliseconds; at least 1.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_ms: u64,
    /// Wait before restarting after the failure, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub restart_delay_ms: u64,
    /// Directory for the topics and checkpoints (default: a new one under the system temp dir,
    /// removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The counts a run committed: (range of auctions, window start) -> bids.
type Counts = BTreeMap<(i64, i64), u64>;

/// Runs the job with a failure, then without, and compares what they committed.
pub fn run(args: RecoveryDemoArgs) -> Result<(), CliError> {
    let (dir, remove) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("tethys-recovery-demo-{}", std::process::id())), true),
    };
    if dir.exists() {
        return Err(format!("{} exists: give a new directory with --dir", dir.display()).into());
    }
    let events = args.rate.saturating_mul(args.seconds);
    println!("Counting {events} bids ({} bids/s) per 1000 auctions in 1 s windows, into a topic, exactly once.", args.rate);
    println!("Checkpoints every {} ms into {}.", args.checkpoint_ms, dir.join("checkpoints").display());

    // The injected panic is caught by the engine, which reports it; one line is enough here.
    std::panic::set_hook(Box::new(|info| {
        let message = info.payload().downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".to_string());
        eprintln!("\n  an operator panicked: {message}");
    }));
    println!("\nRun 1: a failure is injected halfway.");
    let failed = run_job(&args, &dir.join("run-1"), Some(events / 2))?;
    println!("\nRun 2: the same job without a failure.");
    let clean = run_job(&args, &dir.join("run-2"), None)?;

    let windows: u64 = clean.values().sum();
    println!(
        "\nRun 1 committed {} window counts over {} bids; run 2 {} over {}.",
        failed.len(),
        failed.values().sum::<u64>(),
        clean.len(),
        windows
    );
    let same = failed == clean;
    if same {
        println!("The results are the same: nothing was lost or counted twice through the failure.");
    } else {
        let differing = clean.iter().filter(|(window, count)| failed.get(window) != Some(count)).count();
        println!("The results differ in {differing} windows.");
    }
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if same {
        Ok(())
    } else {
        Err("the run with a failure committed other results than the run without".into())
    }
}

/// Runs the job once into `dir`; with `fail_at`, one operator fails when that many bids have
/// passed it. Returns what the topic holds committed.
fn run_job(args: &RecoveryDemoArgs, dir: &Path, fail_at: Option<u64>) -> Result<Counts, CliError> {
    let topic = Topic::create(dir.join("counts"), 1)?;
    let checkpoints = dir.join("checkpoints");
    let config = EngineConfig {
        parallelism: 1,
        checkpoint_interval: Some(Duration::from_millis(args.checkpoint_ms)),
        checkpoint_dir: Some(checkpoints.clone()),
        restart_strategy: Some(RestartStrategy::FixedDelay { attempts: 3, delay: Duration::from_millis(args.restart_delay_ms) }),
        ..EngineConfig::default()
    };
    let events = args.rate.saturating_mul(args.seconds);
    let env = StreamEnvironment::new(config);
    let seen = Arc::new(AtomicU64::new(0));
    let armed = Arc::new(AtomicBool::new(fail_at.is_some()));
    let (counter, trap) = (Arc::clone(&seen), Arc::clone(&armed));
    let fail_at = fail_at.unwrap_or(u64::MAX);
    env.source("bids", BidsSource::new(events, 42).with_rate(args.rate))
        .uid("bids")
        .map(move |bid: Bid| {
            if counter.fetch_add(1, Ordering::Relaxed) + 1 == fail_at && trap.swap(false, Ordering::Relaxed) {
                panic!("injected failure after {fail_at} bids");
            }
            bid
        })
        .uid("failure-injector")
        .key_by(|bid: &Bid| bid.auction / 1000)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)), |bid: &Bid| bid.ts)
        .count()
        .uid("counts")
        .sink("topic", TopicSink::exactly_once(topic.clone()))
        .uid("topic");

    let running = Arc::new(AtomicBool::new(true));
    let progress = {
        let (running, seen, checkpoints) = (Arc::clone(&running), Arc::clone(&seen), checkpoints.clone());
        std::thread::spawn(move || show_progress(&running, &seen, &checkpoints))
    };
    let result = env.execute("recovery-demo");
    running.store(false, Ordering::Relaxed);
    let _ = progress.join();
    let result: JobResult = result?;
    println!(
        "  finished: {} checkpoints completed (last took {:.1} ms, {} bytes of state), {} restart(s){}.",
        result.checkpoints.completed,
        result.checkpoints.latest_duration.as_secs_f64() * 1e3,
        result.checkpoints.latest_state_bytes,
        result.restarts,
        result.last_recovery.map_or(String::new(), |took| format!(
            ", running again {:.1} ms after the failure (restart delay {} ms)",
            took.as_secs_f64() * 1e3,
            args.restart_delay_ms
        ))
    );
    let mut counts = Counts::new();
    for (_, window) in topic.read_committed::<WindowResult<i64, u64>>(0, 0)? {
        *counts.entry((window.key, window.window.start)).or_insert(0) += window.value;
    }
    Ok(counts)
}

/// Shows bids processed (replays included) and the newest checkpoint in the store, until
/// `running` turns false.
fn show_progress(running: &AtomicBool, seen: &AtomicU64, checkpoints: &Path) {
    while running.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let newest = std::fs::read_dir(checkpoints)
            .map(|entries| {
                entries.filter_map(|entry| entry.ok()?.file_name().to_string_lossy().strip_prefix("chk-")?.parse::<u64>().ok()).max()
            })
            .ok()
            .flatten();
        let newest = newest.map_or("none yet".to_string(), |id| format!("chk-{id}"));
        print!("\r  {:>10} bids processed   newest checkpoint: {newest:<12}", seen.load(Ordering::Relaxed));
        let _ = std::io::stdout().flush();
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_and_a_clean_run_commit_the_same_counts() {
        let dir = std::env::temp_dir().join(format!("tethys-recovery-demo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = RecoveryDemoArgs { rate: 200_000, seconds: 2, checkpoint_ms: 50, restart_delay_ms: 0, dir: Some(dir.clone()) };
        let outcome = run(args);
        let _ = std::fs::remove_dir_all(&dir);
        outcome.unwrap();
    }
}
