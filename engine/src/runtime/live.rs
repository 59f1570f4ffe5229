//! Live figures of running subtasks, for the views of people operating a job (the console's job
//! graph): what each subtask has taken in and sent out so far, how long it was busy, how long it
//! waited for credit with output ready (backpressured), and its watermark. A task publishes its
//! figures on the [`LiveBoard`] of its job in its process at most every [`PUBLISH_INTERVAL`], and
//! once more when it ends; rates and ratios are differences between two readings. Workers send
//! their board's readings to the job's coordinator (`ToCoordinator::Live`), whose board then
//! holds every subtask of the job.
//!
//! Sinks that can describe their records sample what they write on the same board
//! ([`OutputTap`], [`OutputSampler`]): a bounded number of records a second per subtask, the
//! newest [`OUTPUT_ROWS_KEPT`] kept, carried to the coordinator with the figures; the console's
//! live results read them there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a running task publishes at most.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);

/// One subtask's figures since it started (counters only grow while it runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SubtaskLive {
    /// Its task (a vertex of the execution plan: a chain of operators).
    pub task: u32,
    /// Its index among the task's subtasks.
    pub subtask: u32,
    /// The attempt it belongs to (0 in one process).
    pub attempt: u32,
    /// Records it took in: through its input gate, or read by its source.
    pub records_in: u64,
    /// Records its last operator emitted (0 for a chain that ends in a sink).
    pub records_out: u64,
    /// Records in and out of each operator of its chain, head first.
    pub operators: Vec<(u64, u64)>,
    /// Nanoseconds since it started.
    pub elapsed_ns: u64,
    /// Nanoseconds it spent working (handling messages).
    pub busy_ns: u64,
    /// Nanoseconds its output waited for credit while it had more to send.
    pub backpressured_ns: u64,
    /// Its watermark (a source's emitted one, a gate's combined one); `None` before the first.
    pub watermark: Option<i64>,
    /// Whether it has ended (finished, failed or cancelled).
    pub ended: bool,
}

/// Sampled rows a sink subtask's entry on a board keeps, newest last.
pub const OUTPUT_ROWS_KEPT: usize = 128;
/// Rows a sink subtask samples per second at most (every row of a slower output is sampled).
pub const OUTPUT_SAMPLES_PER_SECOND: usize = 50;
/// Rows sampled from one frame at most, spread over it.
pub const OUTPUT_SAMPLES_PER_FRAME: usize = 16;

/// One record a sink subtask wrote, sampled for the live results view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SampledRecord {
    /// Its position in the subtask's output (1 for the first record it wrote): gaps are records
    /// not sampled.
    pub seq: u64,
    /// When it was written (milliseconds since the Unix epoch).
    pub written_at_ms: u64,
    /// The record as JSON, as the sink's sampler described it.
    pub json: String,
}

/// What one sink subtask wrote lately: a bounded sample of its records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OutputSample {
    /// The task whose chain ends in the sink.
    pub task: u32,
    /// The subtask.
    pub subtask: u32,
    /// The attempt of its job it belongs to (from 1, counted by the job's coordinator).
    pub attempt: u32,
    /// The sink operator's name.
    pub sink: String,
    /// The names of the fields of the records' JSON, as the sampler describes them.
    pub columns: Vec<String>,
    /// Their types, as the sampler names them.
    pub types: Vec<String>,
    /// Records the subtask has written so far.
    pub written: u64,
    /// Sampled records, oldest first, at most [`OUTPUT_ROWS_KEPT`].
    pub records: Vec<SampledRecord>,
}

/// The latest figures of a job's subtasks, by (task, subtask), and the latest records its sinks'
/// subtasks sampled.
#[derive(Debug, Default)]
pub struct LiveBoard {
    readings: Mutex<BTreeMap<(u32, u32), SubtaskLive>>,
    outputs: Mutex<BTreeMap<(u32, u32), OutputSample>>,
}

impl LiveBoard {
    /// A new, empty board.
    pub fn new() -> Arc<LiveBoard> {
        Arc::new(LiveBoard::default())
    }

    /// Keeps `reading` as its subtask's latest, unless the board holds a newer attempt's.
    pub fn publish(&self, reading: SubtaskLive) {
        let mut readings = self.readings.lock().expect("the live board's lock is not poisoned");
        let key = (reading.task, reading.subtask);
        if readings.get(&key).is_none_or(|kept| kept.attempt <= reading.attempt) {
            readings.insert(key, reading);
        }
    }

    /// Every subtask's latest figures, by task and subtask.
    pub fn readings(&self) -> Vec<SubtaskLive> {
        self.readings.lock().expect("the live board's lock is not poisoned").values().cloned().collect()
    }

    /// Forgets the readings and samples of attempts before `attempt` (a new attempt starts).
    pub fn retain_attempt(&self, attempt: u32) {
        self.readings.lock().expect("the live board's lock is not poisoned").retain(|_, reading| reading.attempt >= attempt);
        self.outputs.lock().expect("the live board's lock is not poisoned").retain(|_, sample| sample.attempt >= attempt);
    }

    /// Takes in a sink subtask's newer records: those after the newest kept of its attempt (a
    /// newer attempt's replace an older's; an older attempt's are ignored), keeping the newest
    /// [`OUTPUT_ROWS_KEPT`].
    pub fn publish_output(&self, sample: OutputSample) {
        let mut outputs = self.outputs.lock().expect("the live board's lock is not poisoned");
        let key = (sample.task, sample.subtask);
        match outputs.get_mut(&key) {
            Some(kept) if kept.attempt > sample.attempt => {}
            Some(kept) if kept.attempt == sample.attempt => {
                let newest = kept.records.last().map_or(0, |record| record.seq);
                kept.records.extend(sample.records.into_iter().filter(|record| record.seq > newest));
                let excess = kept.records.len().saturating_sub(OUTPUT_ROWS_KEPT);
                kept.records.drain(..excess);
                kept.written = kept.written.max(sample.written);
                if kept.columns.is_empty() {
                    (kept.columns, kept.types) = (sample.columns, sample.types);
                }
            }
            _ => {
                let mut sample = sample;
                let excess = sample.records.len().saturating_sub(OUTPUT_ROWS_KEPT);
                sample.records.drain(..excess);
                outputs.insert(key, sample);
            }
        }
    }

    /// Every sink subtask's sampled records, by task and subtask.
    pub fn outputs(&self) -> Vec<OutputSample> {
        self.outputs.lock().expect("the live board's lock is not poisoned").values().cloned().collect()
    }
}

/// Where a sink subtask publishes samples of what it writes (the job's board in its process):
/// handed to sinks in their [`SubtaskContext`](crate::base::SubtaskContext). A sink that can
/// describe its records (the SQL sinks: as JSON rows) samples through an [`OutputSampler`].
#[derive(Debug, Clone)]
pub struct OutputTap {
    board: Arc<LiveBoard>,
    task: u32,
    subtask: u32,
    attempt: u32,
}

impl OutputTap {
    pub(crate) fn new(board: Arc<LiveBoard>, task: u32, subtask: u32, attempt: u32) -> OutputTap {
        OutputTap { board, task, subtask, attempt }
    }

    /// A sampler for the records of sink `sink` (as its users name it, e.g. its table),
    /// described as JSON with fields `columns` of types `types`.
    pub fn sampler(&self, sink: impl Into<String>, columns: Vec<String>, types: Vec<String>) -> OutputSampler {
        assert_eq!(columns.len(), types.len(), "a type per column");
        OutputSampler {
            tap: self.clone(),
            sink: sink.into(),
            columns,
            types,
            written: 0,
            second_began: Instant::now(),
            taken_this_second: 0,
            taken: Vec::new(),
            published: None,
        }
    }
}

/// Samples a sink subtask's frames: at most [`OUTPUT_SAMPLES_PER_FRAME`] records of a frame,
/// spread over it, and [`OUTPUT_SAMPLES_PER_SECOND`] a second; published on the board when it
/// took some, and at most every [`PUBLISH_INTERVAL`] otherwise (for the count written). Costs a
/// clock reading per frame while it takes nothing.
#[derive(Debug)]
pub struct OutputSampler {
    tap: OutputTap,
    sink: String,
    columns: Vec<String>,
    types: Vec<String>,
    written: u64,
    second_began: Instant,
    taken_this_second: usize,
    taken: Vec<SampledRecord>,
    published: Option<Instant>,
}

impl OutputSampler {
    /// A frame of `len` records is being written; `describe(i)` gives record `i` as JSON, asked
    /// only of the records sampled.
    pub fn frame(&mut self, len: usize, mut describe: impl FnMut(usize) -> String) {
        let now = Instant::now();
        if now.saturating_duration_since(self.second_began) >= Duration::from_secs(1) {
            self.second_began = now;
            self.taken_this_second = 0;
        }
        let take = len.min(OUTPUT_SAMPLES_PER_FRAME).min(OUTPUT_SAMPLES_PER_SECOND - self.taken_this_second);
        if take > 0 {
            let written_at_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
            for k in 0..take {
                // Spread over the frame, its last record included.
                let index = len - 1 - (take - 1 - k) * len / take;
                self.taken.push(SampledRecord { seq: self.written + index as u64 + 1, written_at_ms, json: describe(index) });
            }
            self.taken_this_second += take;
        }
        self.written += len as u64;
        if take > 0 || self.published.is_none_or(|at| now.saturating_duration_since(at) >= PUBLISH_INTERVAL) {
            self.publish(now);
        }
    }

    /// The sink's input ended: the count written is published as it is now.
    pub fn finish(&mut self) {
        self.publish(Instant::now());
    }

    fn publish(&mut self, now: Instant) {
        self.tap.board.publish_output(OutputSample {
            task: self.tap.task,
            subtask: self.tap.subtask,
            attempt: self.tap.attempt,
            sink: self.sink.clone(),
            columns: self.columns.clone(),
            types: self.types.clone(),
            written: self.written,
            records: std::mem::take(&mut self.taken),
        });
        self.published = Some(now);
    }
}

/// A task's clock: when it works, when its output waits for credit, and when to publish.
pub(crate) struct LiveRecorder {
    board: Arc<LiveBoard>,
    attempt: u32,
    started: Instant,
    busy: Duration,
    backpressured: Duration,
    blocked_since: Option<Instant>,
    published: Option<Instant>,
}

impl LiveRecorder {
    pub(crate) fn new(board: Arc<LiveBoard>, attempt: u32) -> LiveRecorder {
        LiveRecorder {
            board,
            attempt,
            started: Instant::now(),
            busy: Duration::ZERO,
            backpressured: Duration::ZERO,
            blocked_since: None,
            published: None,
        }
    }

    /// A message starts being handled at `now`: a wait for credit, if there was one, ends.
    pub(crate) fn begin(&mut self, now: Instant) {
        if let Some(since) = self.blocked_since.take() {
            self.backpressured += now.saturating_duration_since(since);
        }
    }

    /// The message begun at `began` was handled by `now`; `blocked`: the output now waits for
    /// credit with more to send. Whether a reading is due.
    pub(crate) fn end(&mut self, began: Instant, now: Instant, blocked: bool) -> bool {
        self.busy += now.saturating_duration_since(began);
        if blocked {
            self.blocked_since = Some(now);
        }
        self.published.is_none_or(|at| now.saturating_duration_since(at) >= PUBLISH_INTERVAL)
    }

    /// Publishes the figures at `now` (`reading` carries the counts; the times are filled here).
    pub(crate) fn publish(&mut self, now: Instant, mut reading: SubtaskLive) {
        reading.attempt = self.attempt;
        reading.elapsed_ns = duration_ns(now.saturating_duration_since(self.started));
        reading.busy_ns = duration_ns(self.busy);
        reading.backpressured_ns =
            duration_ns(self.backpressured + self.blocked_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since)));
        self.board.publish(reading);
        self.published = Some(now);
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_backpressured_time_add_up_between_messages() {
        let board = LiveBoard::new();
        let mut recorder = LiveRecorder::new(Arc::clone(&board), 3);
        let t0 = Instant::now();
        recorder.begin(t0);
        assert!(recorder.end(t0, t0 + Duration::from_millis(5), true), "the first reading is due at once");
        recorder.publish(t0 + Duration::from_millis(5), SubtaskLive { task: 1, subtask: 0, records_in: 10, ..Default::default() });
        // Blocked from 5 ms to 50 ms, then 10 ms of work.
        recorder.begin(t0 + Duration::from_millis(50));
        assert!(!recorder.end(t0 + Duration::from_millis(50), t0 + Duration::from_millis(60), false), "within the interval");
        recorder.publish(t0 + Duration::from_millis(60), SubtaskLive { task: 1, subtask: 0, records_in: 20, ..Default::default() });
        let reading = &board.readings()[0];
        assert_eq!((reading.busy_ns, reading.backpressured_ns, reading.records_in, reading.attempt), (15_000_000, 45_000_000, 20, 3));
    }

    #[test]
    fn a_sampler_takes_a_bounded_spread_of_each_frame_and_the_board_keeps_the_newest() {
        let board = LiveBoard::new();
        let tap = OutputTap::new(Arc::clone(&board), 2, 1, 0);
        let mut sampler = tap.sampler("out", vec!["n".into()], vec!["BIGINT".into()]);
        sampler.frame(3, |i| format!("[{i}]"));
        let outputs = board.outputs();
        assert_eq!(outputs.len(), 1);
        let seqs: Vec<u64> = outputs[0].records.iter().map(|r| r.seq).collect();
        assert_eq!(
            (seqs, outputs[0].records[2].json.as_str(), outputs[0].written),
            (vec![1, 2, 3], "[2]", 3),
            "a small frame is taken whole"
        );
        // A large frame: 16 records spread over it, its last among them.
        sampler.frame(1000, |i| format!("[{i}]"));
        let records = &board.outputs()[0].records;
        assert_eq!(records.len(), 3 + OUTPUT_SAMPLES_PER_FRAME);
        assert_eq!(records.last().map(|r| r.seq), Some(1003));
        assert!(records.windows(2).all(|pair| pair[0].seq < pair[1].seq), "in order");
        // The second's budget runs out; the count written still grows.
        for _ in 0..10 {
            sampler.frame(1000, |i| format!("[{i}]"));
        }
        let output = &board.outputs()[0];
        assert!(output.records.len() <= OUTPUT_ROWS_KEPT);
        assert!(output.records.last().unwrap().seq <= 3 + 1000 * 4, "no more than the second's budget: {:?}", output.records.last());
        // A newer attempt replaces the samples; an older one is ignored.
        board.publish_output(OutputSample {
            task: 2,
            subtask: 1,
            attempt: 1,
            records: vec![SampledRecord { seq: 1, ..Default::default() }],
            ..Default::default()
        });
        board.publish_output(OutputSample {
            task: 2,
            subtask: 1,
            attempt: 0,
            records: vec![SampledRecord { seq: 9, ..Default::default() }],
            ..Default::default()
        });
        assert_eq!(board.outputs()[0].records.len(), 1);
        board.retain_attempt(2);
        assert!(board.outputs().is_empty());
    }

    #[test]
    fn an_older_attempt_does_not_replace_a_newer_one() {
        let board = LiveBoard::new();
        board.publish(SubtaskLive { task: 0, subtask: 0, attempt: 2, records_in: 5, ..Default::default() });
        board.publish(SubtaskLive { task: 0, subtask: 0, attempt: 1, records_in: 9, ..Default::default() });
        board.publish(SubtaskLive { task: 0, subtask: 1, attempt: 1, records_in: 1, ..Default::default() });
        assert_eq!(board.readings().iter().map(|r| r.records_in).collect::<Vec<_>>(), [5, 1]);
        board.retain_attempt(2);
        assert_eq!(board.readings().len(), 1);
    }
}
