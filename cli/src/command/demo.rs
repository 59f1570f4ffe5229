//! `tethys demo`: the platform as a new user first meets it. An embedded cluster (a master
//! serving the console, the HTTP API and `/metrics`, and two workers, all on 127.0.0.1) runs a
//! live example job submitted through the masters: bids at a steady rate, filtered and counted
//! per range of auctions in 10-second event-time windows, with a checkpoint every 500 ms. It
//! prints the console's URL and token, opens nothing by itself, and runs until interrupted (or
//! for `--seconds`).
//!
//! `tethys demo --local` runs a similar job on the embedded engine alone, in this process, for a
//! few seconds: a live progress line (events, rate, windows fired) and, at the end, the plan, the
//! per-operator counts and a sample of results.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tethys_engine::sink::sample::SampleSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, FrameOperator, Output, StreamEnvironment, TumblingEventTimeWindows, UserError, WindowResult};

use super::up::{Platform, SECRET};
use super::CliError;

/// Arguments of `tethys demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The engine alone, in this process, for a few seconds (no cluster, no console).
    #[arg(long)]
    pub local: bool,
    /// Bids per second over all source subtasks; at least 1 (default: 100000 on the cluster,
    /// 2000000 with --local).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// How long to run, in seconds; at least 1 (default: until interrupted on the cluster, 10
    /// with --local).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: Option<u64>,
    /// Parallelism, at least 1 (default: 1 on the cluster, where the console can rescale it; all
    /// cores with --local).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub parallelism: Option<usize>,
    /// Workers of the cluster.
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub workers: usize,
    /// Slots per worker.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub slots: u32,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if args.local {
        run_local(args)
    } else {
        run_platform(args)
    }
}

/// The example job's arguments (the `bench` job of `tethys_bench::jobs`): the bids window query,
/// practically unbounded, its source held at `rate` bids per second and fixed at one subtask (so
/// the job can be rescaled: a source keeps its parallelism across a restore).
fn example_job(rate: u64) -> Vec<String> {
    ["bench", "window", "1000000000000", "42", "sources=1"].iter().map(|arg| arg.to_string()).chain([format!("rate={rate}")]).collect()
}

fn run_platform(args: DemoArgs) -> Result<(), CliError> {
    super::init_logs(tracing::Level::WARN);
    let dir = std::env::temp_dir().join(format!("tethys-demo-{}", std::process::id()));
    super::service_runtime()?.block_on(async {
        let (platform, _) = Platform::start(args.workers, args.slots, dir).await?;
        let http = platform.http_addr;
        let parallelism = args.parallelism.unwrap_or(1) as u32;
        let job = example_job(args.rate.unwrap_or(100_000));
        let job_id = platform.submit(&job, parallelism, parallelism).await?;
        println!("Tethys is running: one master and {} workers of {} slots on 127.0.0.1.", args.workers, args.slots);
        println!();
        println!("  console  http://{http}/");
        println!("  token    {SECRET}");
        println!();
        println!("Example job {job_id}: {} (parallelism {parallelism}, a checkpoint every 500 ms).", job.join(" "));
        println!("The same through the command line: TETHYS_CLUSTER_SECRET={SECRET} tethys list --masters {}", platform.master_addr);
        println!(
            "HTTP API: http://{http}/api/jobs (header Authorization: Bearer {SECRET}); its description: http://{http}/api/openapi.json"
        );
        // Ctrl-C (SIGINT) stops it either way, and the cluster's directory is removed.
        let interrupted = tokio::signal::ctrl_c();
        match args.seconds {
            Some(seconds) => {
                println!("Stopping in {seconds} s, or at Ctrl-C.");
                let _ = tokio::time::timeout(Duration::from_secs(seconds), interrupted).await;
            }
            None => {
                println!("Ctrl-C stops it.");
                interrupted.await.map_err(|e| format!("cannot wait for a signal: {e}"))?;
            }
        }
        platform.stop(true).await;
        Ok(())
    })
}

/// Counts the records that pass, once per frame, for the live progress line.
struct CountFrames(Arc<AtomicU64>);

impl FrameOperator<Bid, Bid> for CountFrames {
    fn process(&mut self, frame: Vec<Bid>, out: &mut Output<'_, Bid>) -> Result<(), UserError> {
        self.0.fetch_add(frame.len() as u64, Ordering::Relaxed);
        out.emit_frame(frame);
        Ok(())
    }
}

/// Runs the demo job in this process and reports on it live.
fn run_local(args: DemoArgs) -> Result<(), CliError> {
    let mut config = EngineConfig::default();
    if let Some(parallelism) = args.parallelism {
        config.parallelism = parallelism;
    }
    let (rate, seconds) = (args.rate.unwrap_or(2_000_000), args.seconds.unwrap_or(10));
    let events = rate.saturating_mul(seconds);
    let env = StreamEnvironment::new(config);
    let generated = Arc::new(AtomicU64::new(0));
    let sink = SampleSink::new(5);
    let counter = Arc::clone(&generated);
    env.source("bids", BidsSource::new(events, 42).with_rate(rate))
        .process("CountInput", move |_| CountFrames(Arc::clone(&counter)))
        .filter(|b: &Bid| b.auction % 123 == 0 || b.price > 50_000)
        .key_by(|b: &Bid| b.auction / 1000)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |b: &Bid| b.ts)
        .count()
        .sink("sample", sink.clone());
    println!("{}", env.explain()?);
    println!("Running {events} bids at {rate} bids/s for {seconds} s ...");

    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let progress = {
        let (running, generated, sink) = (Arc::clone(&running), Arc::clone(&generated), sink.clone());
        std::thread::spawn(move || show_progress(&running, &generated, &sink, events))
    };
    let started = Instant::now();
    // The environment is built on this thread and runs the job here; the progress line is drawn
    // by the other thread from shared counters.
    let result = env.execute("demo");
    running.store(false, Ordering::Relaxed);
    let _ = progress.join();
    let result = result?;
    println!("Finished '{}' in {:.2} s (wall {:.2} s).", result.job, result.elapsed.as_secs_f64(), started.elapsed().as_secs_f64());
    for operator in &result.operators {
        println!("  {:<20} x{}  in {:>11}  out {:>11}", operator.name, operator.parallelism, operator.records_in, operator.records_out);
    }
    println!("Sampled results (bids per range of 1000 auctions in a 10 s event-time window):");
    for result in sink.samples() {
        println!(
            "  auctions {:>2}xxx: {:>4} bids in [{} s, {} s)",
            result.key,
            result.value,
            result.window.start / 1000,
            result.window.end / 1000
        );
    }
    Ok(())
}

/// Redraws one progress line until `running` turns false.
fn show_progress(running: &std::sync::atomic::AtomicBool, generated: &AtomicU64, sink: &SampleSink<WindowResult<i64, u64>>, events: u64) {
    let mut last = (Instant::now(), 0u64);
    while running.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let done = generated.load(Ordering::Relaxed);
        let rate = (done - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), done);
        let fraction = done as f64 / events.max(1) as f64;
        let bar: String = (0..30).map(|i| if (i as f64) < fraction * 30.0 { '#' } else { '.' }).collect();
        let latest = sink.samples().last().map_or(String::new(), |r| {
            format!("  latest: auctions {}xxx had {} bids in [{} s, {} s)", r.key, r.value, r.window.start / 1000, r.window.end / 1000)
        });
        print!(
            "\r[{bar}] {:5.1}%  {:>11} bids  {:6.2}M bids/s  {:>9} window results{latest}   ",
            fraction * 100.0,
            done,
            rate / 1e6,
            sink.records()
        );
        let _ = std::io::stdout().flush();
    }
    println!();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::DemoArgs;

    #[derive(Parser)]
    struct Demo {
        #[command(flatten)]
        args: DemoArgs,
    }

    #[test]
    fn zero_rate_seconds_or_parallelism_are_refused_before_the_job_starts() {
        for (flag, value) in [("--rate", "0"), ("--seconds", "0"), ("--parallelism", "0"), ("--workers", "0"), ("--slots", "0")] {
            let error = Demo::try_parse_from(["demo", flag, value]).err().unwrap_or_else(|| panic!("{flag} {value} accepted"));
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{flag}");
        }
        let parsed = Demo::try_parse_from(["demo", "--local", "--rate", "1"]).unwrap();
        assert_eq!((parsed.args.local, parsed.args.rate), (true, Some(1)));
        // The example job is one the program defines, with its options.
        let job = super::example_job(5);
        let spec = tethys_engine::cluster::protocol::JobSpec { name: job[0].clone(), args: job[1..].to_vec() };
        let env = tethys_engine::StreamEnvironment::new(tethys_engine::EngineConfig { slots: 1, parallelism: 1, ..Default::default() });
        crate::program::define(&spec, &env).unwrap();
    }
}
