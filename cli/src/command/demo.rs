//! `tethys demo`: a live job on the embedded engine.
//!
//! Bids arrive at a steady rate; the job keeps the ones of interest (the filter query's
//! predicate), counts them per range of 1000 auctions in 10-second event-time windows (bid `ts` is its event
//! time; the generator's watermark trails it by 1 s), and shows a live progress line (events,
//! rate, windows fired) and, at the end, the plan, the per-operator counts and a sample of results.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tethys_engine::sink::sample::SampleSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{EngineConfig, FrameOperator, Output, StreamEnvironment, TumblingEventTimeWindows, UserError, WindowResult};

use super::CliError;

/// Arguments of `tethys demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Bids per second over all source subtasks; at least 1.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: u64,
    /// How long to run, in seconds; at least 1.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// Parallelism, at least 1; default: all cores.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub parallelism: Option<usize>,
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

/// Runs the demo job and reports on it live.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    let mut config = EngineConfig::default();
    if let Some(parallelism) = args.parallelism {
        config.parallelism = parallelism;
    }
    let events = args.rate.saturating_mul(args.seconds);
    let env = StreamEnvironment::new(config);
    let generated = Arc::new(AtomicU64::new(0));
    let sink = SampleSink::new(5);
    let counter = Arc::clone(&generated);
    env.source("bids", BidsSource::new(events, 42).with_rate(args.rate))
        .process("CountInput", move |_| CountFrames(Arc::clone(&counter)))
        .filter(|b: &Bid| b.auction % 123 == 0 || b.price > 50_000)
        .key_by(|b: &Bid| b.auction / 1000)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |b: &Bid| b.ts)
        .count()
        .sink("sample", sink.clone());
    println!("{}", env.explain()?);
    println!("Running {events} bids at {} bids/s for {} s ...", args.rate, args.seconds);

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
        for (flag, value) in [("--rate", "0"), ("--seconds", "0"), ("--parallelism", "0")] {
            let error = Demo::try_parse_from(["demo", flag, value]).err().unwrap_or_else(|| panic!("{flag} {value} accepted"));
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{flag}");
        }
        let parsed = Demo::try_parse_from(["demo", "--rate", "1"]).unwrap();
        assert_eq!(parsed.args.rate, 1);
    }
}
