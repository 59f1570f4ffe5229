//! Live figures of running subtasks, for the views of people operating a job (the console's job
//! graph): what each subtask has taken in and sent out so far, how long it was busy, how long it
//! waited for credit with output ready (backpressured), and its watermark. A task publishes its
//! figures on the [`LiveBoard`] of its job in its process at most every [`PUBLISH_INTERVAL`], and
//! once more when it ends; rates and ratios are differences between two readings. Workers send
//! their board's readings to the job's coordinator (`ToCoordinator::Live`), whose board then
//! holds every subtask of the job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often a running task publishes at most.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);

/// One subtask's figures since it started (counters only grow while it runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
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

/// The latest figures of a job's subtasks, by (task, subtask).
#[derive(Debug, Default)]
pub struct LiveBoard {
    readings: Mutex<BTreeMap<(u32, u32), SubtaskLive>>,
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

    /// Forgets the readings of attempts before `attempt` (a new attempt starts).
    pub fn retain_attempt(&self, attempt: u32) {
        self.readings.lock().expect("the live board's lock is not poisoned").retain(|_, reading| reading.attempt >= attempt);
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
