//! Checkpoints in one process: the coordinator that triggers them and completes them, and the
//! barrier alignment at an input gate. Both are pure decisions; the task and the job driver do
//! the messaging.
//!
//! A checkpoint starts at the sources: the coordinator asks every source subtask to take it, and
//! each snapshots its position and its chain's keyed state and sends barrier `id` on every output
//! channel, in-band behind the frames before it. A task with inputs takes the checkpoint when the
//! barrier has arrived on all of its open channels (`BarrierAligner`): in exactly-once mode a
//! channel that delivered the barrier takes no more input until then (alignment), so the snapshot
//! holds exactly the records before the barrier of every input; in at-least-once mode nothing
//! waits, and records after a barrier may be in the snapshot and replayed again after a restore.
//! A channel that ended counts as aligned. The checkpoint completes when every subtask has
//! acknowledged it or finished (Flink's checkpoints after tasks finish: a finished subtask has
//! emitted everything and keeps no state; its last position and final sink pre-commits are kept
//! by the job). Checkpoint ids only grow.

use std::time::{Duration, Instant};

/// Whether barriers are aligned (exactly-once state), unaligned (exactly-once state plus the
/// in-flight records), or neither (at-least-once), as Flink's `CheckpointingMode` and
/// unaligned checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum CheckpointingMode {
    /// A channel that delivered the barrier waits for the others. With
    /// `EngineConfig::aligned_checkpoint_timeout`, a checkpoint whose alignment takes longer
    /// switches to unaligned at that task.
    #[default]
    ExactlyOnce,
    /// The first barrier at a gate takes the checkpoint at once: barriers overtake the records
    /// queued before them (at the receiver and waiting for credit at the sender), and those
    /// records are stored in the checkpoint and replayed on restore. Exactly-once, and fast under
    /// backpressure; a restore needs the same parallelism where records were in flight.
    Unaligned,
    /// No channel waits; state may hold records after the barrier.
    AtLeastOnce,
}

/// What a gate does with a barrier that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarrierAction {
    /// Other channels have not delivered it yet.
    Wait,
    /// Every open channel delivered it: take the checkpoint, then go on with every channel.
    Checkpoint(u64),
}

/// Barrier alignment at one input gate.
#[derive(Debug)]
pub(crate) struct BarrierAligner {
    mode: CheckpointingMode,
    /// The checkpoint being aligned, if a barrier of it arrived.
    aligning: Option<u64>,
    /// When its first barrier arrived.
    aligning_since: Option<Instant>,
    /// Channels that delivered the barrier being aligned.
    delivered: Vec<bool>,
    /// Channels that ended.
    ended: Vec<bool>,
    /// The newest checkpoint taken here.
    last_taken: Option<u64>,
}

impl BarrierAligner {
    pub(crate) fn new(channels: usize, mode: CheckpointingMode) -> Self {
        BarrierAligner {
            mode,
            aligning: None,
            aligning_since: None,
            delivered: vec![false; channels],
            ended: vec![false; channels],
            last_taken: None,
        }
    }

    /// The checkpoint being aligned, if any.
    pub(crate) fn aligning(&self) -> Option<u64> {
        self.aligning
    }

    /// Whether `channel` delivered the barrier of the checkpoint being aligned, or ended.
    pub(crate) fn delivered_or_ended(&self, channel: usize) -> bool {
        (self.aligning.is_some() && self.delivered[channel]) || self.ended[channel]
    }

    /// Checkpoint `id` was taken at this gate without waiting for its barriers on every channel
    /// (unaligned, or an aligned one that timed out): every channel goes on, and the barriers of
    /// `id` still to come are ignored.
    pub(crate) fn taken_unaligned(&mut self, id: u64) {
        if self.aligning.is_some_and(|aligning| aligning <= id) {
            self.aligning = None;
            self.aligning_since = None;
        }
        self.last_taken = Some(self.last_taken.map_or(id, |taken| taken.max(id)));
    }

    /// Whether barrier `id` is one this gate has not taken yet.
    pub(crate) fn is_new(&self, id: u64) -> bool {
        self.last_taken.is_none_or(|taken| id > taken)
    }

    /// Whether `channel` takes no input now (exactly-once: it delivered the barrier being
    /// aligned).
    pub(crate) fn is_blocked(&self, channel: usize) -> bool {
        // Unaligned mode aligns the barriers that are not unaligned: those of savepoints.
        self.mode != CheckpointingMode::AtLeastOnce && self.aligning.is_some() && self.delivered[channel]
    }

    /// Barrier `id` arrived on `channel`.
    pub(crate) fn on_barrier(&mut self, channel: usize, id: u64) -> BarrierAction {
        if self.last_taken.is_some_and(|taken| id <= taken) {
            return BarrierAction::Wait; // an old checkpoint, already taken here
        }
        match self.aligning {
            Some(current) if id < current => return BarrierAction::Wait,
            // A newer checkpoint overtook the one being aligned (only possible when the older one
            // was abandoned upstream): start over with it.
            Some(current) if id > current => self.start(id),
            Some(_) => {}
            None => self.start(id),
        }
        self.delivered[channel] = true;
        self.complete_if_aligned()
    }

    /// `channel` ended: it counts as aligned for this and every later checkpoint.
    pub(crate) fn on_end_of_input(&mut self, channel: usize) -> BarrierAction {
        self.ended[channel] = true;
        if self.aligning.is_some() {
            return self.complete_if_aligned();
        }
        BarrierAction::Wait
    }

    /// How long the checkpoint being aligned has waited for its last barrier.
    pub(crate) fn alignment_duration(&self) -> Duration {
        self.aligning_since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    fn start(&mut self, id: u64) {
        self.aligning = Some(id);
        self.aligning_since = Some(Instant::now());
        self.delivered.iter_mut().for_each(|delivered| *delivered = false);
    }

    fn complete_if_aligned(&mut self) -> BarrierAction {
        let Some(id) = self.aligning else { return BarrierAction::Wait };
        if self.delivered.iter().zip(&self.ended).all(|(delivered, ended)| *delivered || *ended) {
            self.aligning = None;
            self.aligning_since = None;
            self.last_taken = Some(id);
            return BarrierAction::Checkpoint(id);
        }
        BarrierAction::Wait
    }
}

/// Figures of the checkpoints of one job run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointStats {
    /// Checkpoints completed.
    pub completed: u64,
    /// Checkpoints abandoned (a subtask ended before acknowledging).
    pub aborted: u64,
    /// Id of the newest completed checkpoint.
    pub latest_id: Option<u64>,
    /// From trigger to the last acknowledgement, of the newest completed checkpoint.
    pub latest_duration: Duration,
    /// Longest time any gate waited for its last barrier, over all checkpoints.
    pub alignment_max: Duration,
    /// Keyed state entries (key groups with state) in the newest completed checkpoint.
    pub latest_key_groups: u64,
    /// Encoded size of the keyed state of the newest completed checkpoint, in bytes.
    pub latest_state_bytes: u64,
    /// Most in-flight record bytes an unaligned checkpoint stored, over all checkpoints.
    pub in_flight_bytes_max: u64,
    /// Bytes the newest checkpoint wrote to the checkpoint store: with incremental checkpoints,
    /// only the key groups that changed since the one before (the others are linked).
    pub latest_written_bytes: u64,
    /// Longest time a task spent on its slot taking a snapshot (copying state, pre-committing,
    /// sending barriers), over all checkpoints; encoding and writing run on the driver.
    pub sync_max: Duration,
}

/// When one subtask took its part of a checkpoint: what a per-subtask timeline (a Gantt chart of
/// the checkpoint) shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubtaskCheckpoint {
    /// The task (its index in the plan).
    pub task: u32,
    /// The subtask of that task.
    pub subtask: u32,
    /// From the checkpoint's trigger to this subtask's acknowledgement reaching the coordinator.
    pub acknowledged_after: Duration,
    /// How long its gate waited from the first barrier to the last (aligned checkpoints).
    pub alignment: Duration,
    /// How long it spent on its slot taking its snapshot.
    pub sync: Duration,
    /// Key groups of state it snapshot.
    pub key_groups: u64,
}

/// Triggers checkpoints at an interval (and savepoints on demand) and completes them when every
/// subtask acknowledged.
#[derive(Debug)]
pub(crate) struct CheckpointCoordinator {
    /// `None`: no periodic checkpoints, only savepoints.
    interval: Option<Duration>,
    subtasks: usize,
    /// Subtasks that finished in this attempt: they acknowledge nothing more.
    finished: std::collections::HashSet<(usize, usize)>,
    next_id: u64,
    last_trigger: Option<Instant>,
    pending: Option<PendingCheckpoint>,
    stats: CheckpointStats,
    /// Each subtask's part of the newest completed checkpoint, in the order they acknowledged.
    latest_subtasks: Vec<SubtaskCheckpoint>,
}

#[derive(Debug)]
struct PendingCheckpoint {
    id: u64,
    triggered_at: Instant,
    acknowledged: std::collections::HashSet<(usize, usize)>,
    key_groups: u64,
    subtasks: Vec<SubtaskCheckpoint>,
}

impl CheckpointCoordinator {
    /// A coordinator for a job of `subtasks` subtasks, one checkpoint every `interval`, whose
    /// first checkpoint gets id `first_id` (above every checkpoint the job took before).
    pub(crate) fn new(interval: Option<Duration>, subtasks: usize, first_id: u64) -> Self {
        assert!(subtasks > 0, "a job has subtasks");
        assert!(first_id > 0, "checkpoint ids start at 1");
        CheckpointCoordinator {
            interval,
            subtasks,
            finished: Default::default(),
            next_id: first_id,
            last_trigger: None,
            pending: None,
            stats: CheckpointStats::default(),
            latest_subtasks: Vec::new(),
        }
    }

    /// The job restarts: a pending checkpoint is abandoned, the interval counts from the new
    /// start, and ids go on growing.
    pub(crate) fn restart(&mut self) {
        self.abort_pending();
        self.finished.clear();
        self.last_trigger = None;
    }

    /// Checkpoint `id` was seen by the job (taken under an earlier driver): the next one is above it.
    pub(crate) fn skip_past(&mut self, id: u64) {
        self.next_id = self.next_id.max(id + 1);
    }

    /// The id the next checkpoint will get.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// When the next checkpoint is due (none while one is pending).
    pub(crate) fn next_due(&self, started: Instant) -> Option<Instant> {
        if self.pending.is_some() {
            return None;
        }
        Some(self.last_trigger.unwrap_or(started) + self.interval?)
    }

    /// The id of a checkpoint (a savepoint) to trigger now, unless one is pending.
    pub(crate) fn trigger_now(&mut self, now: Instant) -> Option<u64> {
        if self.pending.is_some() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.last_trigger = Some(now);
        self.pending =
            Some(PendingCheckpoint { id, triggered_at: now, acknowledged: Default::default(), key_groups: 0, subtasks: Vec::new() });
        Some(id)
    }

    /// The id of a checkpoint to trigger now, if one is due (none once every subtask finished:
    /// there is nothing left to take).
    pub(crate) fn trigger_if_due(&mut self, started: Instant, now: Instant) -> Option<u64> {
        if self.next_due(started)? > now || self.finished.len() >= self.subtasks {
            return None;
        }
        self.trigger_now(now)
    }

    /// `subtask` acknowledged checkpoint `id` with `key_groups` key groups of state and the time
    /// its gate spent aligning. Returns the id if the checkpoint is now complete.
    pub(crate) fn acknowledge(
        &mut self,
        id: u64,
        subtask: (usize, usize),
        key_groups: u64,
        alignment: Duration,
        sync: Duration,
    ) -> Option<u64> {
        self.stats.alignment_max = self.stats.alignment_max.max(alignment);
        self.stats.sync_max = self.stats.sync_max.max(sync);
        let pending = self.pending.as_mut().filter(|pending| pending.id == id)?;
        let first = pending.acknowledged.insert(subtask);
        debug_assert!(first, "checkpoint {id} acknowledged twice by subtask {subtask:?}");
        pending.key_groups += key_groups;
        pending.subtasks.push(SubtaskCheckpoint {
            task: subtask.0 as u32,
            subtask: subtask.1 as u32,
            acknowledged_after: pending.triggered_at.elapsed(),
            alignment,
            sync,
            key_groups,
        });
        self.complete_if_done()
    }

    /// `subtask` finished: it acknowledges nothing more, and a pending checkpoint no longer waits
    /// for it. Returns the id of the pending checkpoint if that completes it.
    pub(crate) fn subtask_finished(&mut self, subtask: (usize, usize)) -> Option<u64> {
        self.finished.insert(subtask);
        self.complete_if_done()
    }

    fn complete_if_done(&mut self) -> Option<u64> {
        let pending = self.pending.as_ref()?;
        let finished_without_ack = self.finished.iter().filter(|subtask| !pending.acknowledged.contains(subtask)).count();
        if pending.acknowledged.len() + finished_without_ack < self.subtasks {
            return None;
        }
        let done = self.pending.take().expect("pending checked above");
        if done.acknowledged.is_empty() {
            // Every subtask finished before it took its part: it holds nothing, and completing
            // it would make an empty checkpoint the newest.
            return None;
        }
        self.stats.completed += 1;
        self.stats.latest_id = Some(done.id);
        self.stats.latest_duration = done.triggered_at.elapsed();
        self.stats.latest_key_groups = done.key_groups;
        self.latest_subtasks = done.subtasks;
        Some(done.id)
    }

    /// Abandons the pending checkpoint, if any (the job restarts or stops); returns its id.
    pub(crate) fn abort_pending(&mut self) -> Option<u64> {
        let aborted = self.pending.take()?;
        self.stats.aborted += 1;
        Some(aborted.id)
    }

    /// Records the encoded sizes of the newest completed checkpoint: keyed state, in-flight records.
    pub(crate) fn record_size(&mut self, state_bytes: u64, in_flight_bytes: u64, written_bytes: u64) {
        self.stats.latest_state_bytes = state_bytes;
        self.stats.latest_written_bytes = written_bytes;
        self.stats.in_flight_bytes_max = self.stats.in_flight_bytes_max.max(in_flight_bytes);
    }

    /// Each subtask's part of the newest completed checkpoint, in the order they acknowledged.
    pub(crate) fn latest_subtasks(&self) -> &[SubtaskCheckpoint] {
        &self.latest_subtasks
    }

    pub(crate) fn stats(&self) -> CheckpointStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_once_blocks_channels_that_delivered_until_all_have() {
        let mut gate = BarrierAligner::new(3, CheckpointingMode::ExactlyOnce);
        assert_eq!(gate.on_barrier(1, 1), BarrierAction::Wait);
        assert!(gate.is_blocked(1) && !gate.is_blocked(0) && !gate.is_blocked(2));
        assert_eq!(gate.on_barrier(0, 1), BarrierAction::Wait);
        assert_eq!(gate.on_end_of_input(2), BarrierAction::Checkpoint(1), "an ended channel counts as aligned");
        assert!(!gate.is_blocked(0) && !gate.is_blocked(1), "after the checkpoint every channel goes on");
        assert_eq!(gate.on_barrier(0, 2), BarrierAction::Wait);
        assert_eq!(gate.on_barrier(1, 2), BarrierAction::Checkpoint(2), "the ended channel stays aligned");
    }

    #[test]
    fn at_least_once_blocks_nothing_and_old_barriers_are_ignored() {
        let mut gate = BarrierAligner::new(2, CheckpointingMode::AtLeastOnce);
        assert_eq!(gate.on_barrier(0, 5), BarrierAction::Wait);
        assert!(!gate.is_blocked(0));
        assert_eq!(gate.on_barrier(1, 5), BarrierAction::Checkpoint(5));
        assert_eq!(gate.on_barrier(0, 4), BarrierAction::Wait, "older than the one taken");
        assert_eq!(gate.on_barrier(0, 5), BarrierAction::Wait, "already taken");
    }

    #[test]
    fn a_newer_barrier_restarts_an_abandoned_alignment() {
        let mut gate = BarrierAligner::new(2, CheckpointingMode::ExactlyOnce);
        assert_eq!(gate.on_barrier(0, 1), BarrierAction::Wait);
        assert_eq!(gate.on_barrier(1, 2), BarrierAction::Wait, "checkpoint 1 was abandoned upstream");
        assert!(!gate.is_blocked(0) && gate.is_blocked(1));
        assert_eq!(gate.on_barrier(0, 2), BarrierAction::Checkpoint(2));
    }

    #[test]
    fn the_coordinator_completes_a_checkpoint_when_every_subtask_acknowledged() {
        let start = Instant::now();
        let mut coordinator = CheckpointCoordinator::new(Some(Duration::from_millis(10)), 2, 1);
        assert_eq!(coordinator.trigger_if_due(start, start), None, "not due yet");
        let due = start + Duration::from_millis(10);
        assert_eq!(coordinator.trigger_if_due(start, due), Some(1));
        assert_eq!(coordinator.trigger_if_due(start, due + Duration::from_secs(1)), None, "one at a time");
        assert_eq!(coordinator.acknowledge(1, (0, 0), 3, Duration::from_millis(2), Duration::ZERO), None);
        assert_eq!(coordinator.acknowledge(7, (0, 1), 0, Duration::ZERO, Duration::ZERO), None, "not the pending one");
        assert_eq!(coordinator.acknowledge(1, (0, 1), 4, Duration::ZERO, Duration::ZERO), Some(1));
        let parts = coordinator.latest_subtasks();
        assert_eq!(parts.iter().map(|part| (part.task, part.subtask, part.key_groups)).collect::<Vec<_>>(), [(0, 0, 3), (0, 1, 4)]);
        assert_eq!(parts[0].alignment, Duration::from_millis(2));
        assert!(parts[0].acknowledged_after <= parts[1].acknowledged_after, "in the order they acknowledged");
        let stats = coordinator.stats();
        assert_eq!((stats.completed, stats.latest_id, stats.latest_key_groups), (1, Some(1), 7));
        assert_eq!(stats.alignment_max, Duration::from_millis(2));
        assert_eq!(coordinator.trigger_if_due(start, due + Duration::from_millis(20)), Some(2), "ids only grow");
        assert_eq!(coordinator.abort_pending(), Some(2));
        assert_eq!(coordinator.stats().aborted, 1);
    }

    #[test]
    fn a_checkpoint_no_subtask_took_part_in_is_dropped_and_none_is_due_once_all_finished() {
        let mut coordinator = CheckpointCoordinator::new(Some(Duration::from_millis(1)), 2, 1);
        let started = Instant::now();
        let later = started + Duration::from_millis(5);
        let id = coordinator.trigger_if_due(started, later).unwrap();
        assert_eq!(coordinator.subtask_finished((0, 0)), None);
        assert_eq!(coordinator.subtask_finished((1, 0)), None, "both finished before taking part: nothing completes");
        assert_eq!(coordinator.stats().completed, 0);
        assert_eq!(coordinator.trigger_if_due(started, later + Duration::from_millis(5)), None, "nothing left to take");
        assert!(coordinator.next_id() > id);
    }

    #[test]
    fn a_finished_subtask_no_longer_holds_checkpoints_back() {
        let start = Instant::now();
        let mut coordinator = CheckpointCoordinator::new(Some(Duration::from_millis(1)), 3, 1);
        let id = coordinator.trigger_if_due(start, start + Duration::from_millis(1)).unwrap();
        assert_eq!(coordinator.acknowledge(id, (0, 0), 0, Duration::ZERO, Duration::ZERO), None);
        assert_eq!(coordinator.subtask_finished((0, 0)), None, "it had acknowledged: nothing changes");
        assert_eq!(coordinator.subtask_finished((1, 0)), None);
        assert_eq!(coordinator.acknowledge(id, (1, 1), 0, Duration::ZERO, Duration::ZERO), Some(id), "two acknowledged, one finished");
        let next = coordinator.trigger_now(start + Duration::from_millis(5)).unwrap();
        assert_eq!(coordinator.acknowledge(next, (1, 1), 0, Duration::ZERO, Duration::ZERO), Some(next), "the finished ones count as done");
    }
}
