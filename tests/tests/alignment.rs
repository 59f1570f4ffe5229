//! Watermark alignment: off by default, so a diamond whose branches carry different watermarks
//! finishes; opt-in per group of sources, where a fast source waits for the slow ones to within
//! the max drift, also when they run on different worker processes; and a group never blocks
//! forever on a member that finished or went idle. Every job runs with a deadline.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::sink::collect::CollectSink;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::StreamEnvironment;
use tethys_engine::{
    EngineConfig, FrameOperator, JobResult, Output, OutputTag, SubtaskContext, TumblingEventTimeWindows, UserError, WatermarkStrategy,
    WindowResult,
};
use tethys_net::launcher::InProcessCluster;
use tethys_tests::{execute_with_config_within_deadline, execute_within_deadline, JOB_DEADLINE};

/// Sends every other pair of records (`value / 2` odd) to a side output, the rest on: each
/// subtask of the collection (which deals records round-robin) feeds both branches.
struct SplitPairs(OutputTag<i64>);

impl FrameOperator<i64, i64> for SplitPairs {
    fn process(&mut self, frame: Vec<i64>, out: &mut Output<'_, i64>) -> Result<(), UserError> {
        let (side, main): (Vec<i64>, Vec<i64>) = frame.into_iter().partition(|ts| (ts / 2) % 2 != 0);
        out.emit_frame(main);
        out.emit_side_frame(&self.0, side);
        Ok(())
    }
}

#[test]
fn a_diamond_of_main_and_side_output_with_two_strategies_finishes() {
    // The side branch's watermark trails the main branch's by 5 s of event time. Were the union's
    // gate to hold back the leading channel, the split task would stop on its full main output,
    // and the side branch, fed by the same task, would never catch up.
    // Small frames make the channels' credits small, so a held-back channel fills them at once.
    let records = 200_000i64;
    let out = CollectSink::new();
    let collected = out.clone();
    let config = EngineConfig { slots: 2, parallelism: 2, frame_records_max: 16, ..EngineConfig::default() };
    execute_with_config_within_deadline("diamond", config, move |env| {
        let side = OutputTag::<i64>::new("side");
        let tag = side.clone();
        let split =
            env.from_collection((0..records).collect::<Vec<i64>>()).process("split", move |_: &SubtaskContext| SplitPairs(tag.clone()));
        let side = split
            .side_output(&side)
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(5), |ts: &i64| *ts));
        split
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps(|ts: &i64| *ts))
            .union([side])
            .key_by(|ts: &i64| ts % 10)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)), |ts: &i64| *ts)
            .count()
            .sink("out", collected);
    })
    .unwrap();
    let counted: u64 = out.records().iter().map(|r: &WindowResult<i64, u64>| r.value).sum();
    assert_eq!(counted, records as u64);
}

/// What the readers of one test share: each one's last watermark, and the largest lead of the
/// fast reader over the slow one seen by either.
struct Watch {
    watermarks: [AtomicI64; 2],
    lead_max_ms: AtomicI64,
    /// Set when the fast reader has read everything: the slow one may then finish.
    fast_done: AtomicBool,
}

impl Watch {
    fn new() -> Arc<Watch> {
        Arc::new(Watch {
            watermarks: [AtomicI64::new(i64::MIN), AtomicI64::new(i64::MIN)],
            lead_max_ms: AtomicI64::new(i64::MIN),
            fast_done: AtomicBool::new(false),
        })
    }

    /// Records reader `index`'s watermark and the lead it makes.
    fn observe(&self, index: usize, watermark: i64) {
        self.watermarks[index].store(watermark, Ordering::SeqCst);
        let (fast, slow) = (self.watermarks[0].load(Ordering::SeqCst), self.watermarks[1].load(Ordering::SeqCst));
        if fast != i64::MIN && slow != i64::MIN {
            self.lead_max_ms.fetch_max(fast - slow, Ordering::SeqCst);
        }
    }
}

/// Event time 0, 1, 2, ... ms, `per_poll` records per poll, until `end_ms`; its watermark is the
/// last timestamp read. The slow reader (index 1) may stop at `idle_from_ms` and report `Idle`
/// until the fast one is done.
#[derive(Clone)]
struct Paced {
    index: usize,
    per_poll: i64,
    end_ms: i64,
    idle_from_ms: Option<i64>,
    watch: Arc<Watch>,
}

struct PacedReader {
    spec: Paced,
    next_ms: i64,
}

impl Source<i64> for Paced {
    fn create_reader(&self, _context: &SubtaskContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        Ok(Box::new(PacedReader { spec: self.clone(), next_ms: 0 }))
    }
}

impl SourceReader<i64> for PacedReader {
    fn poll_frame(&mut self, frame: &mut Vec<i64>, _records_max: usize) -> Result<ReaderStatus, UserError> {
        let spec = &self.spec;
        if spec.idle_from_ms.is_some_and(|idle_from| self.next_ms >= idle_from) {
            return Ok(if spec.watch.fast_done.load(Ordering::SeqCst) { ReaderStatus::Finished } else { ReaderStatus::Idle });
        }
        if self.next_ms >= spec.end_ms {
            if spec.index == 0 {
                spec.watch.fast_done.store(true, Ordering::SeqCst);
            }
            return Ok(ReaderStatus::Finished);
        }
        let end = (self.next_ms + spec.per_poll).min(spec.end_ms);
        frame.extend(self.next_ms..end);
        self.next_ms = end;
        spec.watch.observe(spec.index, end - 1);
        Ok(ReaderStatus::Ready)
    }

    fn watermark(&self) -> Option<i64> {
        (self.next_ms > 0).then_some(self.next_ms - 1)
    }
}

const DRIFT_MS: i64 = 1_000;
/// Event time one poll of the fast reader covers.
const FAST_SPAN_MS: i64 = 100;

/// Defines a fast source (100 ms of event time per poll) and a slow one (1 ms per poll), in one
/// group if `aligned`, unioned into a sink.
fn define_fast_and_slow(env: &StreamEnvironment, slow: Paced, aligned: bool) {
    let fast = Paced { index: 0, per_poll: FAST_SPAN_MS, end_ms: 20_000, idle_from_ms: None, watch: Arc::clone(&slow.watch) };
    let mut fast = env.source("fast", fast).parallelism(1);
    let mut slow = env.source("slow", slow).parallelism(1).idle_timeout(Duration::from_millis(20));
    if aligned {
        fast = fast.watermark_alignment("g", Duration::from_millis(DRIFT_MS as u64));
        slow = slow.watermark_alignment("g", Duration::from_millis(DRIFT_MS as u64));
    }
    fast.union([slow]).sink("discard", DiscardSink::new());
}

/// Runs [`define_fast_and_slow`] in one process; returns the fast reader's largest lead over the
/// slow one.
fn run_fast_and_slow(job: &'static str, slow: Paced, aligned: bool) -> (JobResult, i64) {
    let watch = Arc::clone(&slow.watch);
    let result = execute_within_deadline(job, move |env| define_fast_and_slow(env, slow, aligned)).unwrap();
    (result, watch.lead_max_ms.load(Ordering::SeqCst))
}

/// Runs [`define_fast_and_slow`] on two workers, each its own mesh node on 127.0.0.1 with one
/// slot: the fast source on worker 1, the slow one on worker 2. Returns the job's result and the
/// fast reader's largest lead.
fn run_fast_and_slow_on_two_workers(slow: Paced, aligned: bool) -> (JobResult, i64) {
    let watch = Arc::clone(&slow.watch);
    let registry: JobRegistry = Arc::new(move |spec: &JobSpec, env: &StreamEnvironment| {
        define_fast_and_slow(env, slow.clone(), aligned);
        if spec.name == "fast-and-slow" {
            Ok(())
        } else {
            Err(format!("unknown job {}", spec.name))
        }
    });
    let job = JobSpec { name: "fast-and-slow".into(), args: Vec::new() };
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cluster = InProcessCluster::start(2, 1, Arc::clone(&registry), job.clone()).unwrap();
        let env = StreamEnvironment::new(EngineConfig { parallelism: 1, pin_slots: false, ..EngineConfig::default() });
        registry(&job, &env).unwrap();
        let plan = env.plan().unwrap();
        let slots: Vec<&[usize]> = plan.tasks.iter().map(|task| task.slots.as_slice()).collect();
        assert_eq!(&slots[..2], &[&[0][..], &[1][..]], "the fast source on worker 1's slot, the slow one on worker 2's");
        let _ = done_tx.send(env.execute_on_cluster("fast-and-slow", cluster.coordinator().cluster()));
    });
    let result = done.recv_timeout(JOB_DEADLINE).unwrap_or_else(|_| panic!("the job still runs after {JOB_DEADLINE:?}: it hangs"));
    (result.unwrap(), watch.lead_max_ms.load(Ordering::SeqCst))
}

#[test]
fn sources_of_one_group_stay_within_the_max_drift() {
    let slow = |watch| Paced { index: 1, per_poll: 1, end_ms: 20_000, idle_from_ms: None, watch };
    let (result, lead_max_ms) = run_fast_and_slow("aligned", slow(Watch::new()), true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 20_000);
    // The fast source checks before each poll and a poll moves it one span ahead.
    assert!(lead_max_ms <= DRIFT_MS + FAST_SPAN_MS, "fast led slow by {lead_max_ms} ms; max drift {DRIFT_MS} ms");
    assert!(lead_max_ms > 0, "the fast source did lead");

    // Off unless asked for: the same sources unaligned drift far apart.
    let (_, unaligned_lead_ms) = run_fast_and_slow("unaligned", slow(Watch::new()), false);
    assert!(unaligned_lead_ms > DRIFT_MS + FAST_SPAN_MS, "without alignment the fast source led by only {unaligned_lead_ms} ms");
}

#[test]
fn sources_on_two_worker_processes_stay_within_the_max_drift() {
    let slow = |watch| Paced { index: 1, per_poll: 1, end_ms: 20_000, idle_from_ms: None, watch };
    let (result, lead_max_ms) = run_fast_and_slow_on_two_workers(slow(Watch::new()), true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 20_000);
    // The same bound as in one process: the fast source's worker knows the slow seat as it was a
    // moment ago, never ahead of it, so a late copy only makes the fast source wait longer.
    assert!(lead_max_ms <= DRIFT_MS + FAST_SPAN_MS, "fast led slow by {lead_max_ms} ms; max drift {DRIFT_MS} ms");
    assert!(lead_max_ms > 0, "the fast source did lead");

    let (_, unaligned_lead_ms) = run_fast_and_slow_on_two_workers(slow(Watch::new()), false);
    assert!(unaligned_lead_ms > DRIFT_MS + FAST_SPAN_MS, "without alignment the fast source led by only {unaligned_lead_ms} ms");
}

#[test]
fn a_source_on_another_worker_that_goes_idle_or_finishes_does_not_hold_its_group_back() {
    let idles = Paced { index: 1, per_poll: 1, end_ms: 20_000, idle_from_ms: Some(500), watch: Watch::new() };
    let (result, _) = run_fast_and_slow_on_two_workers(idles, true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 500);
    let finishes = Paced { index: 1, per_poll: 1, end_ms: 500, idle_from_ms: None, watch: Watch::new() };
    let (result, _) = run_fast_and_slow_on_two_workers(finishes, true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 500);
}

#[test]
fn a_finished_source_does_not_hold_its_group_back() {
    let slow = Paced { index: 1, per_poll: 1, end_ms: 500, idle_from_ms: None, watch: Watch::new() };
    let (result, _) = run_fast_and_slow("slow-finishes", slow, true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 500);
}

#[test]
fn an_idle_source_does_not_hold_its_group_back() {
    // The slow source stops at 500 ms and only finishes once the fast one has read everything,
    // 19.5 s of event time past the slow one's watermark.
    let slow = Paced { index: 1, per_poll: 1, end_ms: 20_000, idle_from_ms: Some(500), watch: Watch::new() };
    let (result, _) = run_fast_and_slow("slow-idles", slow, true);
    assert_eq!(result.operator("Source: fast").unwrap().records_out, 20_000);
    assert_eq!(result.operator("Source: slow").unwrap().records_out, 500);
}
