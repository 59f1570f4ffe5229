//! A running job as people operating it see it: its tasks (chains of operators) and the edges
//! between them, with live figures per task (records in and out per second, the share of time
//! busy and backpressured, watermark lag, skew across subtasks), the bottleneck marked, and the
//! last minutes of each task's figures. The leader samples the job's live board (what workers
//! send its coordinator) every [`SAMPLE_INTERVAL`]; `GET /api/jobs/{id}/live` shows it.
//!
//! The bottleneck, as Flink users find it by hand: the first task, in the plan's order, that is
//! busy ([`BUSY`] or more of its time) and not backpressured itself, while a task feeding it is
//! backpressured: the others wait on it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tethys_engine::{ExecutionPlan, JobGraph, LiveBoard, SubtaskLive};

/// How often the leader samples a running job.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Samples kept: five minutes.
pub const HISTORY_SAMPLES: usize = 300;
/// A task busy for this share of its time or more is busy.
pub const BUSY: f64 = 0.5;
/// A watermark further behind the wall clock than this (30 days) is not wall-clock time (a
/// generator's event time that starts at 0): no lag is shown for it.
const LAG_PLAUSIBLE_MS: i64 = 30 * 24 * 3600 * 1000;
/// A task backpressured for this share of its time or more is backpressured.
pub const BACKPRESSURED: f64 = 0.5;

/// A job's tasks and their figures now (`GET /api/jobs/{id}/live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobLiveView {
    /// The job.
    pub job: u64,
    /// The attempt the figures are of.
    pub attempt: u32,
    /// When the last sample was taken (milliseconds since the Unix epoch); 0 before the first.
    pub sampled_at_ms: u64,
    /// Its tasks, in the plan's (topological) order.
    pub tasks: Vec<TaskView>,
    /// The edges between tasks.
    pub edges: Vec<EdgeView>,
    /// The task the others wait on, if one is (see the module's documentation).
    pub bottleneck: Option<u32>,
    /// The checkpoints this leader completed for the job, oldest first (at most
    /// [`CHECKPOINTS_KEPT`]).
    pub checkpoints: Vec<CheckpointView>,
}

/// A completed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointView {
    /// Its id.
    pub id: u64,
    /// The attempt that took it.
    pub attempt: u32,
    /// When the masters committed it (milliseconds since the Unix epoch).
    pub completed_at_ms: u64,
    /// From its trigger to the last subtask's acknowledgement, in milliseconds.
    pub duration_ms: u64,
    /// Encoded size of the keyed state it holds, in bytes.
    pub state_bytes: u64,
    /// Bytes it wrote (incremental: only the key groups that changed).
    pub written_bytes: u64,
    /// Its directory, when the job keeps checkpoints on storage.
    pub location: Option<String>,
    /// Subtasks that took a part in it.
    #[serde(default)]
    pub subtasks: u32,
    /// The longest any subtask's gate waited for its last barrier, in milliseconds.
    #[serde(default)]
    pub alignment_max_ms: f64,
    /// The longest any subtask spent taking its snapshot on its slot, in milliseconds.
    #[serde(default)]
    pub sync_max_ms: f64,
}

/// One subtask's part of a checkpoint: a bar of its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubtaskCheckpointView {
    /// Its task (index in the plan).
    pub task: u32,
    /// The subtask.
    pub subtask: u32,
    /// From the checkpoint's trigger to its acknowledgement reaching the coordinator, in milliseconds.
    pub acknowledged_ms: f64,
    /// How long its gate waited from the first barrier to the last, in milliseconds (it ended
    /// when the snapshot began).
    pub alignment_ms: f64,
    /// How long it spent taking its snapshot on its slot, in milliseconds (just before its
    /// acknowledgement).
    pub sync_ms: f64,
    /// Key groups of state it snapshot.
    pub key_groups: u64,
}

/// A checkpoint with each subtask's part (`GET /api/jobs/{id}/checkpoints/{checkpoint}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckpointDetails {
    /// The checkpoint.
    pub checkpoint: CheckpointView,
    /// Its subtasks' parts, in the order they acknowledged.
    pub subtasks: Vec<SubtaskCheckpointView>,
}

/// Checkpoints kept per job.
pub const CHECKPOINTS_KEPT: usize = 100;
/// Checkpoints (the newest) whose subtasks' parts are kept.
pub const CHECKPOINT_DETAILS_KEPT: usize = 20;

/// The checkpoints a job completed, as this master saw them (its drivers', or mirrored from the
/// leader), with each subtask's part for the newest [`CHECKPOINT_DETAILS_KEPT`].
#[derive(Debug, Default)]
pub struct CheckpointHistory {
    completed: Mutex<VecDeque<KeptCheckpoint>>,
}

/// A kept checkpoint, and its subtasks' parts while they are kept.
type KeptCheckpoint = (CheckpointView, Option<Arc<Vec<SubtaskCheckpointView>>>);

impl CheckpointHistory {
    /// Keeps `checkpoint` with its subtasks' parts (none: not known here), dropping the oldest
    /// beyond [`CHECKPOINTS_KEPT`], and the parts of those beyond [`CHECKPOINT_DETAILS_KEPT`].
    pub fn record(&self, checkpoint: CheckpointView, subtasks: Option<Vec<SubtaskCheckpointView>>) {
        let mut completed = self.completed.lock().expect("the history's lock is not poisoned");
        if completed.len() == CHECKPOINTS_KEPT {
            completed.pop_front();
        }
        completed.push_back((checkpoint, subtasks.map(Arc::new)));
        let older = completed.len().saturating_sub(CHECKPOINT_DETAILS_KEPT);
        if let Some((_, details)) = completed.get_mut(older.wrapping_sub(1)) {
            *details = None;
        }
    }

    /// Every kept checkpoint, oldest first.
    pub fn all(&self) -> Vec<CheckpointView> {
        self.completed.lock().expect("the history's lock is not poisoned").iter().map(|(view, _)| view.clone()).collect()
    }

    /// Checkpoint `id` with its subtasks' parts, if both are kept.
    pub fn details(&self, id: u64) -> Option<CheckpointDetails> {
        let completed = self.completed.lock().expect("the history's lock is not poisoned");
        let (checkpoint, subtasks) = completed.iter().rev().find(|(view, _)| view.id == id)?;
        Some(CheckpointDetails { checkpoint: checkpoint.clone(), subtasks: subtasks.as_ref()?.as_ref().clone() })
    }

    /// The newest kept checkpoint's id.
    fn newest(&self) -> Option<u64> {
        self.completed.lock().expect("the history's lock is not poisoned").back().map(|(view, _)| view.id)
    }
}

/// What a master keeps of a job across its attempts: the last minutes of each task's figures and
/// the completed checkpoints. The leader fills it as it samples; followers mirror the leader's
/// (`absorb`), so a new leader's views go on from the old one's history.
#[derive(Debug, Default)]
pub struct JobHistory {
    /// Per sample (oldest first), one point per task.
    points: Mutex<VecDeque<Vec<TaskPoint>>>,
    checkpoints: CheckpointHistory,
    outputs: crate::output::JobOutputs,
}

impl JobHistory {
    /// Its completed checkpoints.
    pub fn checkpoints(&self) -> &CheckpointHistory {
        &self.checkpoints
    }

    /// Its sinks' sampled rows (kept by the leader that takes them in; not mirrored).
    pub fn outputs(&self) -> &crate::output::JobOutputs {
        &self.outputs
    }

    fn push_points(&self, points: Vec<TaskPoint>) {
        let mut kept = self.points.lock().expect("the history's lock is not poisoned");
        if kept.len() == HISTORY_SAMPLES {
            kept.pop_front();
        }
        kept.push_back(points);
    }

    /// Task `task`'s points, oldest first.
    fn task_points(&self, task: usize) -> Vec<TaskPoint> {
        let kept = self.points.lock().expect("the history's lock is not poisoned");
        kept.iter().filter_map(|points| points.get(task).cloned()).collect()
    }

    /// Takes in what `view` (the leader's) holds that this history does not: samples after its
    /// newest, checkpoints after its newest.
    pub fn absorb(&self, view: &JobLiveView) {
        let newest_ms =
            self.points.lock().expect("the history's lock is not poisoned").back().and_then(|points| points.first()).map(|p| p.at_ms);
        let samples = view.tasks.iter().map(|task| task.history.len()).min().unwrap_or(0);
        for sample in 0..samples {
            let points: Vec<TaskPoint> = view.tasks.iter().map(|task| task.history[sample].clone()).collect();
            if newest_ms.is_none_or(|newest| points[0].at_ms > newest) {
                self.push_points(points);
            }
        }
        let newest_checkpoint = self.checkpoints.newest();
        for checkpoint in &view.checkpoints {
            if newest_checkpoint.is_none_or(|newest| checkpoint.id > newest) {
                self.checkpoints.record(checkpoint.clone(), None);
            }
        }
    }
}

/// A task: a chain of operators and its figures over the last sampling interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskView {
    /// Its index in the plan.
    pub id: u32,
    /// Its operators' names, head first.
    pub operators: Vec<String>,
    /// Its subtasks.
    pub parallelism: u32,
    /// Records taken in per second, over all subtasks.
    pub records_in_per_s: f64,
    /// Records sent out per second, over all subtasks.
    pub records_out_per_s: f64,
    /// Share of time busy (0 to 1), the mean over subtasks.
    pub busy: f64,
    /// Share of time waiting for credit with output ready (0 to 1), the mean over subtasks.
    pub backpressured: f64,
    /// Its watermark: the lowest of its subtasks' (milliseconds of event time); null before one.
    pub watermark: Option<i64>,
    /// How far its watermark is behind the wall clock, in milliseconds; null without one, or when
    /// its event time is not wall-clock time (more than 30 days behind).
    pub watermark_lag_ms: Option<i64>,
    /// The busiest subtask's records in per second over the mean (1: even; null when idle).
    pub skew: Option<f64>,
    /// Records taken in and sent out since the attempt started, over all subtasks.
    pub records_in: u64,
    /// Records sent out since the attempt started.
    pub records_out: u64,
    /// Each subtask's figures over the last interval.
    pub subtasks: Vec<SubtaskView>,
    /// The last minutes, oldest first: one point per sample.
    pub history: Vec<TaskPoint>,
}

/// One subtask's figures over the last interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubtaskView {
    /// Its index.
    pub subtask: u32,
    /// Records taken in per second.
    pub records_in_per_s: f64,
    /// Records sent out per second.
    pub records_out_per_s: f64,
    /// Share of time busy.
    pub busy: f64,
    /// Share of time backpressured.
    pub backpressured: f64,
    /// Its watermark.
    pub watermark: Option<i64>,
    /// Whether it has ended.
    pub ended: bool,
}

/// A task's figures at one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPoint {
    /// When (milliseconds since the Unix epoch).
    pub at_ms: u64,
    /// Records in per second over the interval before it.
    pub records_in_per_s: f64,
    /// Records out per second.
    pub records_out_per_s: f64,
    /// Share of time busy.
    pub busy: f64,
    /// Share of time backpressured.
    pub backpressured: f64,
}

/// An edge: records of task `from` go to task `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeView {
    /// The producing task.
    pub from: u32,
    /// The consuming task.
    pub to: u32,
    /// How records are spread: forward, rebalance, hash, broadcast, ...
    pub partitioning: String,
    /// Whether the producer waits for the consumer's credit (it is backpressured).
    pub starved: bool,
}

/// One sample: every subtask's reading at a moment, by task and subtask.
struct Sample {
    at_ms: u64,
    readings: Vec<SubtaskLive>,
}

/// What is kept of the samples: the last two whole (for the subtasks' figures over the last
/// interval); each task's figures at every sample, computed once when the sample is taken, go to
/// the job's history.
#[derive(Default)]
struct Samples {
    latest: Option<Sample>,
    previous: Option<Sample>,
}

/// A running attempt's figures as the leader samples them.
pub struct JobLive {
    job: u64,
    attempt: u32,
    tasks: Vec<(Vec<String>, u32)>,
    edges: Vec<(u32, u32, String)>,
    board: Arc<LiveBoard>,
    samples: Mutex<Samples>,
    history: Arc<JobHistory>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

impl JobLive {
    /// The figures of `attempt` of job `job`, planned as `plan`, read from `board`, going on from
    /// (and into) the job's `history`.
    pub fn new(
        job: u64,
        attempt: u32,
        graph: &JobGraph,
        plan: &ExecutionPlan,
        board: Arc<LiveBoard>,
        history: Arc<JobHistory>,
    ) -> Arc<JobLive> {
        let tasks = plan
            .tasks
            .iter()
            .map(|task| (task.nodes.iter().map(|&node| graph.nodes[node].name.clone()).collect(), task.parallelism as u32))
            .collect();
        let edges = plan
            .tasks
            .iter()
            .flat_map(|task| {
                task.inputs
                    .iter()
                    .map(move |input| (input.from_task as u32, task.id as u32, format!("{:?}", input.partitioning).to_lowercase()))
            })
            .collect();
        Arc::new(JobLive { job, attempt, tasks, edges, board, samples: Mutex::default(), history })
    }

    /// Takes a sample of the board now.
    pub fn sample(&self) {
        self.push(Sample { at_ms: now_ms(), readings: self.board.readings() });
        self.history.outputs.absorb(self.attempt, self.board.outputs());
    }

    fn push(&self, sample: Sample) {
        debug_assert!(sample.readings.is_sorted_by_key(|r| (r.task, r.subtask)), "a board's readings come by task and subtask");
        let mut samples = self.samples.lock().expect("the samples' lock is not poisoned");
        if let Some(before) = &samples.latest {
            let points = (0..self.tasks.len() as u32)
                .map(|task| {
                    let (records_in_per_s, records_out_per_s, busy, backpressured) = totals(&subtask_views(task, &sample, Some(before)));
                    TaskPoint { at_ms: sample.at_ms, records_in_per_s, records_out_per_s, busy, backpressured }
                })
                .collect();
            self.history.push_points(points);
        }
        samples.previous = samples.latest.replace(sample);
    }

    /// The view now.
    pub fn view(&self) -> JobLiveView {
        let samples = self.samples.lock().expect("the samples' lock is not poisoned");
        let now = now_ms();
        let (latest, previous) = (samples.latest.as_ref(), samples.previous.as_ref());
        let tasks: Vec<TaskView> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(id, (operators, parallelism))| {
                let id = id as u32;
                let subtasks = latest.map_or_else(Vec::new, |latest| subtask_views(id, latest, previous));
                let history = self.history.task_points(id as usize);
                let (records_in_per_s, records_out_per_s, busy, backpressured) = totals(&subtasks);
                let readings = latest.map_or(&[][..], |latest| of_task(latest, id));
                let watermark =
                    readings.iter().map(|reading| reading.watermark).collect::<Option<Vec<_>>>().and_then(|all| all.into_iter().min());
                let mean_in = records_in_per_s / subtasks.len().max(1) as f64;
                let busiest = subtasks.iter().map(|subtask| subtask.records_in_per_s).fold(0.0, f64::max);
                TaskView {
                    id,
                    operators: operators.clone(),
                    parallelism: *parallelism,
                    records_in_per_s,
                    records_out_per_s,
                    busy,
                    backpressured,
                    watermark,
                    watermark_lag_ms: watermark.map(|w| now as i64 - w).filter(|lag| (0..LAG_PLAUSIBLE_MS).contains(lag)),
                    skew: (mean_in > 0.0).then(|| busiest / mean_in),
                    records_in: readings.iter().map(|reading| reading.records_in).sum(),
                    records_out: readings.iter().map(|reading| reading.records_out).sum(),
                    subtasks,
                    history,
                }
            })
            .collect();
        let edges: Vec<EdgeView> = self
            .edges
            .iter()
            .map(|(from, to, partitioning)| EdgeView {
                from: *from,
                to: *to,
                partitioning: partitioning.clone(),
                starved: tasks[*from as usize].backpressured >= BACKPRESSURED,
            })
            .collect();
        let bottleneck = bottleneck(&tasks, &edges);
        JobLiveView {
            job: self.job,
            attempt: self.attempt,
            sampled_at_ms: latest.map_or(0, |latest| latest.at_ms),
            tasks,
            edges,
            bottleneck,
            checkpoints: self.history.checkpoints.all(),
        }
    }
}

/// The figures of task `task`'s subtasks between `before` and `after` (since they started when
/// there is no `before`, or the subtask is new in `after` or of another attempt).
fn subtask_views(task: u32, after: &Sample, before: Option<&Sample>) -> Vec<SubtaskView> {
    of_task(after, task)
        .iter()
        .map(|now| {
            let earlier = before
                .and_then(|before| {
                    let at = before.readings.binary_search_by_key(&(task, now.subtask), |r| (r.task, r.subtask)).ok()?;
                    Some(&before.readings[at])
                })
                .filter(|earlier| earlier.attempt == now.attempt && earlier.elapsed_ns < now.elapsed_ns);
            let zero = SubtaskLive::default();
            let earlier = earlier.unwrap_or(&zero);
            let elapsed = now.elapsed_ns.saturating_sub(earlier.elapsed_ns).max(1);
            let per_second = |now: u64, then: u64| now.saturating_sub(then) as f64 * 1e9 / elapsed as f64;
            let share = |now: u64, then: u64| (now.saturating_sub(then) as f64 / elapsed as f64).min(1.0);
            SubtaskView {
                subtask: now.subtask,
                records_in_per_s: per_second(now.records_in, earlier.records_in),
                records_out_per_s: per_second(now.records_out, earlier.records_out),
                busy: share(now.busy_ns, earlier.busy_ns),
                backpressured: share(now.backpressured_ns, earlier.backpressured_ns),
                watermark: now.watermark,
                ended: now.ended,
            }
        })
        .collect()
}

/// The readings of task `task` in `sample` (found by search: they come by task and subtask).
fn of_task(sample: &Sample, task: u32) -> &[SubtaskLive] {
    let start = sample.readings.partition_point(|reading| reading.task < task);
    let end = sample.readings.partition_point(|reading| reading.task <= task);
    &sample.readings[start..end]
}

/// Sums of rates and means of shares over subtasks.
fn totals(subtasks: &[SubtaskView]) -> (f64, f64, f64, f64) {
    let count = subtasks.len().max(1) as f64;
    (
        subtasks.iter().map(|s| s.records_in_per_s).sum(),
        subtasks.iter().map(|s| s.records_out_per_s).sum(),
        subtasks.iter().map(|s| s.busy).sum::<f64>() / count,
        subtasks.iter().map(|s| s.backpressured).sum::<f64>() / count,
    )
}

/// The first task (in plan order) that is busy and not backpressured while a task feeding it is
/// backpressured.
pub fn bottleneck(tasks: &[TaskView], edges: &[EdgeView]) -> Option<u32> {
    tasks
        .iter()
        .find(|task| {
            task.busy >= BUSY
                && task.backpressured < BACKPRESSURED
                && edges.iter().any(|edge| edge.to == task.id && tasks[edge.from as usize].backpressured >= BACKPRESSURED)
        })
        .map(|task| task.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(task: u32, elapsed_s: u64, records: u64, busy_s: f64, backpressured_s: f64) -> SubtaskLive {
        SubtaskLive {
            task,
            attempt: 1,
            records_in: records,
            records_out: records,
            elapsed_ns: elapsed_s * 1_000_000_000,
            busy_ns: (busy_s * 1e9) as u64,
            backpressured_ns: (backpressured_s * 1e9) as u64,
            watermark: Some(1_000),
            ..Default::default()
        }
    }

    fn job(graph_tasks: usize) -> JobLive {
        JobLive {
            job: 7,
            attempt: 1,
            tasks: (0..graph_tasks).map(|task| (vec![format!("task {task}")], 1)).collect(),
            edges: (1..graph_tasks).map(|task| (task as u32 - 1, task as u32, "rebalance".to_string())).collect(),
            board: LiveBoard::new(),
            samples: Mutex::default(),
            history: Arc::default(),
        }
    }

    fn checkpoint(id: u64) -> CheckpointView {
        CheckpointView {
            id,
            attempt: 1,
            completed_at_ms: id,
            duration_ms: 3,
            state_bytes: 10,
            written_bytes: 4,
            location: None,
            subtasks: 1,
            alignment_max_ms: 0.5,
            sync_max_ms: 0.25,
        }
    }

    fn part(subtask: u32) -> SubtaskCheckpointView {
        SubtaskCheckpointView { task: 0, subtask, acknowledged_ms: 2.0, alignment_ms: 0.5, sync_ms: 0.25, key_groups: 3 }
    }

    #[test]
    fn rates_and_shares_are_over_the_last_interval_and_the_waited_on_task_is_the_bottleneck() {
        let live = job(3);
        // Source -> map -> slow sink: from second 1 to 3 the source is backpressured 90% of the
        // time, the map 80%, the sink busy 95%.
        live.push(Sample {
            at_ms: 1_000,
            readings: vec![reading(0, 1, 1_000, 0.5, 0.0), reading(1, 1, 1_000, 0.5, 0.0), reading(2, 1, 1_000, 0.5, 0.0)],
        });
        live.push(Sample {
            at_ms: 3_000,
            readings: vec![reading(0, 3, 3_000, 0.6, 1.8), reading(1, 3, 3_000, 0.7, 1.6), reading(2, 3, 3_000, 2.4, 0.0)],
        });
        let view = live.view();
        assert_eq!(view.tasks[0].records_in_per_s, 1_000.0);
        assert!((view.tasks[0].backpressured - 0.9).abs() < 1e-9);
        assert!((view.tasks[2].busy - 0.95).abs() < 1e-9);
        assert_eq!(view.bottleneck, Some(2));
        assert_eq!(view.edges.iter().map(|edge| edge.starved).collect::<Vec<_>>(), [true, true]);
        assert_eq!(view.tasks[2].history.len(), 1);
        assert_eq!((view.tasks[2].records_in, view.tasks[2].skew), (3_000, Some(1.0)));
    }

    #[test]
    fn thousands_of_subtasks_each_get_their_own_figures() {
        let live = job(2);
        for second in 1..=5u64 {
            let readings = (0..2u32)
                .flat_map(|task| {
                    (0..2_000u32)
                        .map(move |subtask| SubtaskLive { subtask, ..reading(task, second, second * u64::from(subtask), 0.0, 0.0) })
                })
                .collect();
            live.push(Sample { at_ms: second * 1_000, readings });
        }
        let view = live.view();
        assert_eq!((view.tasks[1].subtasks.len(), view.tasks[1].history.len()), (2_000, 4));
        // Subtask k takes k records more each second.
        assert_eq!(view.tasks[1].subtasks[1_999].records_in_per_s, 1_999.0);
        assert_eq!(view.tasks[0].subtasks[7].records_in_per_s, 7.0);
    }

    #[test]
    fn the_checkpoint_history_keeps_the_newest_and_the_subtasks_parts_of_the_newest_few() {
        let history = JobHistory::default();
        let newest = CHECKPOINTS_KEPT as u64 + 5;
        for id in 1..=newest {
            history.checkpoints.record(checkpoint(id), Some(vec![part(0), part(1)]));
        }
        let kept = history.checkpoints.all();
        assert_eq!((kept.len(), kept[0].id, kept.last().unwrap().id), (CHECKPOINTS_KEPT, 6, newest));
        let details = history.checkpoints.details(newest).unwrap();
        assert_eq!((details.checkpoint.id, details.subtasks.len()), (newest, 2));
        let oldest_detailed = newest - CHECKPOINT_DETAILS_KEPT as u64 + 1;
        assert!(history.checkpoints.details(oldest_detailed).is_some());
        assert_eq!(history.checkpoints.details(oldest_detailed - 1), None, "only the newest keep their parts");
        assert_eq!(history.checkpoints.details(2), None, "gone");
        let live = JobLive { history: Arc::new(history), ..job(1) };
        assert_eq!(live.view().checkpoints.len(), CHECKPOINTS_KEPT);
    }

    #[test]
    fn a_jobs_history_goes_on_across_attempts_and_is_mirrored_from_the_leaders_views() {
        // Attempt 1 samples three times; attempt 2 (a restart, or a new leader) goes on in the same history.
        let history = Arc::new(JobHistory::default());
        let first = JobLive { history: Arc::clone(&history), ..job(2) };
        for second in 1..=3 {
            first.push(Sample {
                at_ms: second * 1_000,
                readings: vec![reading(0, second, 10 * second, 0.5, 0.0), reading(1, second, 10 * second, 0.5, 0.0)],
            });
        }
        history.checkpoints.record(checkpoint(1), Some(vec![part(0)]));
        let second = JobLive { attempt: 2, history: Arc::clone(&history), ..job(2) };
        second.push(Sample { at_ms: 5_000, readings: vec![reading(0, 1, 10, 0.5, 0.0), reading(1, 1, 10, 0.5, 0.0)] });
        second.push(Sample { at_ms: 6_000, readings: vec![reading(0, 2, 20, 0.5, 0.0), reading(1, 2, 20, 0.5, 0.0)] });
        let view = second.view();
        assert_eq!(view.attempt, 2);
        let at: Vec<u64> = view.tasks[1].history.iter().map(|point| point.at_ms).collect();
        assert_eq!(at, [2_000, 3_000, 6_000], "the first attempt's points, then the second's");
        assert_eq!(view.checkpoints.iter().map(|c| c.id).collect::<Vec<_>>(), [1]);

        // A follower mirrors the leader's views: it takes what is new each time, once.
        let mirror = JobHistory::default();
        mirror.absorb(&first.view());
        mirror.absorb(&view);
        mirror.absorb(&view);
        assert_eq!(mirror.task_points(1).iter().map(|point| point.at_ms).collect::<Vec<_>>(), at);
        assert_eq!(mirror.task_points(0).len(), 3);
        assert_eq!(mirror.checkpoints.all().iter().map(|c| c.id).collect::<Vec<_>>(), [1]);
        assert_eq!(mirror.checkpoints.details(1), None, "the parts stay with the leader that took it");
    }

    #[test]
    fn no_task_is_the_bottleneck_when_nobody_waits() {
        let live = job(2);
        live.push(Sample { at_ms: 1_000, readings: vec![reading(0, 1, 10, 0.9, 0.0), reading(1, 1, 10, 0.9, 0.0)] });
        assert_eq!(live.view().bottleneck, None, "busy, but nothing feeding it waits");
        assert!(job(2).view().tasks.iter().all(|task| task.subtasks.is_empty() && task.history.is_empty()), "no sample yet");
    }
}
