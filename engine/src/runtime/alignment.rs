//! Watermark alignment between sources, as Flink does it: opt-in, per named group of sources.
//!
//! The source subtasks of one group share their current watermarks. A subtask whose watermark
//! leads the group's minimum by more than its max drift stops polling its reader (it stays live)
//! until the others catch up, so a fast source does
//! not fill windows and buffers far ahead of a slow one. Idle and finished subtasks leave the
//! minimum, so they never hold the group back; a subtask that has not reported a watermark yet
//! holds it at the very start (as Flink's initial `Long.MIN_VALUE` does) until it reports one,
//! goes idle (its source's idle timeout) or finishes. A subtask never waits for itself, so the
//! minimum's owner always runs and the group always moves.
//!
//! A waiting subtask does not poll: it leaves a wake-up with the group (`AlignmentMember::wait`),
//! and whichever member's report, idleness or end lets it go calls it. With event time that moves
//! fast against the drift (a generator at millions of records per event-time second), members
//! take turns frame by frame, so polling on a timer would cost a timer period per frame.
//!
//! Alignment acts only at sources, never on channels between tasks: pausing a channel of a shared
//! upstream (a diamond, where one task feeds two branches that meet again) can stall the very
//! task the laggard waits for. The decision (`must_wait`, `group_minimum`) is pure; the table of
//! watermarks is the in-process transport, one atomic per source subtask.
//!
//! **Across processes** every process of a job holds the whole table. A change a member makes to
//! its own seat is told to the group's relay ([`AlignmentGroup::set_relay`]): a worker sends it,
//! coalesced, to the coordinator, which passes it on to the other workers, where it is applied to
//! their copy ([`AlignmentGroup::apply`]) and wakes whom it releases there. A seat's watermark only
//! moves forward, so a late or repeated message never moves a copy back.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// What a waiting member leaves to be woken with: sends its task a message.
pub(crate) type AlignmentWake = Box<dyn FnOnce() + Send>;

/// Told the seat of each change a member in this process makes to it (see the module doc).
pub(crate) type AlignmentRelay = Arc<dyn Fn(usize) + Send + Sync>;

/// A member's watermark before it reported one: it holds the group at the start.
const UNREPORTED: i64 = i64::MIN;
/// A finished member's watermark: it never lowers the minimum again.
const FINISHED: i64 = i64::MAX;

/// What one source subtask of a group last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberReport {
    /// Its watermark (`i64::MIN` before the first, `i64::MAX` once finished).
    pub watermark: i64,
    /// Whether it has declared itself idle.
    pub idle: bool,
}

/// The group's minimum: over the members that are active and not finished; `None` when no
/// member holds the group back.
pub(crate) fn group_minimum(reports: impl IntoIterator<Item = MemberReport>) -> Option<i64> {
    reports.into_iter().filter(|r| !r.idle && r.watermark != FINISHED).map(|r| r.watermark).min()
}

/// Whether a member at `own` must stop polling: it leads the group's minimum by more than the
/// max drift. A member that is itself the minimum never waits, so some member can always move.
pub(crate) fn must_wait(own: i64, minimum: Option<i64>, max_drift_ms: i64) -> bool {
    minimum.is_some_and(|minimum| own != UNREPORTED && own > minimum.saturating_add(max_drift_ms))
}

/// The shared watermarks of one alignment group's source subtasks.
pub(crate) struct AlignmentGroup {
    name: String,
    watermarks: Vec<AtomicI64>,
    idle: Vec<AtomicBool>,
    /// Per member, its max drift (set when its seat is taken).
    max_drifts_ms: Vec<AtomicI64>,
    /// Per member, the wake-up it left while it waits.
    waiting: Mutex<Vec<Option<AlignmentWake>>>,
    /// Members with a wake-up left: lets a report skip the lock when nobody waits. Incremented
    /// before a waiter checks the watermarks and read after a report stores one (both SeqCst),
    /// so either the waiter sees the report or the reporter sees the waiter: no lost wake-up.
    waiting_count: AtomicUsize,
    /// Where changes made in this process go, when the group spans processes.
    relay: OnceLock<AlignmentRelay>,
}

impl std::fmt::Debug for AlignmentGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignmentGroup").field("name", &self.name).field("watermarks", &self.watermarks).finish()
    }
}

impl AlignmentGroup {
    /// A group of `members` source subtasks, none reported yet.
    pub(crate) fn new(name: &str, members: usize) -> Arc<AlignmentGroup> {
        Arc::new(AlignmentGroup {
            name: name.to_string(),
            watermarks: (0..members).map(|_| AtomicI64::new(UNREPORTED)).collect(),
            idle: (0..members).map(|_| AtomicBool::new(false)).collect(),
            max_drifts_ms: (0..members).map(|_| AtomicI64::new(0)).collect(),
            waiting: Mutex::new((0..members).map(|_| None).collect()),
            waiting_count: AtomicUsize::new(0),
            relay: OnceLock::new(),
        })
    }

    /// The group's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its number of seats (source subtasks).
    pub(crate) fn seats(&self) -> usize {
        self.watermarks.len()
    }

    /// Sends every change a member of this process makes to its seat to `relay` (set once, before
    /// the members run).
    pub(crate) fn set_relay(&self, relay: AlignmentRelay) {
        assert!(self.relay.set(relay).is_ok(), "alignment group '{}' has one relay", self.name);
    }

    /// What seat `index` holds now.
    pub(crate) fn seat(&self, index: usize) -> MemberReport {
        MemberReport { watermark: self.watermarks[index].load(Ordering::SeqCst), idle: self.idle[index].load(Ordering::SeqCst) }
    }

    /// Applies what the member of seat `index`, in another process, reported (its watermark never
    /// goes back), and wakes the members here it releases. Not relayed again.
    pub(crate) fn apply(&self, index: usize, report: MemberReport) {
        assert!(index < self.seats(), "seat {index} of alignment group '{}' with {} seats", self.name, self.seats());
        self.watermarks[index].fetch_max(report.watermark, Ordering::SeqCst);
        self.idle[index].store(report.idle, Ordering::SeqCst);
        self.wake_released();
    }

    fn relay(&self, index: usize) {
        if let Some(relay) = self.relay.get() {
            relay(index);
        }
    }

    /// The seat of member `index` that may wait at most `max_drift_ms` ahead of the group.
    pub(crate) fn member(self: &Arc<Self>, index: usize, max_drift_ms: i64) -> AlignmentMember {
        assert!(index < self.watermarks.len(), "member {index} of alignment group '{}' with {} members", self.name, self.watermarks.len());
        assert!(max_drift_ms >= 0, "a max drift is not negative");
        self.max_drifts_ms[index].store(max_drift_ms, Ordering::SeqCst);
        AlignmentMember { group: Arc::clone(self), index, max_drift_ms }
    }

    fn reports(&self) -> impl Iterator<Item = MemberReport> + '_ {
        self.watermarks
            .iter()
            .zip(&self.idle)
            .map(|(watermark, idle)| MemberReport { watermark: watermark.load(Ordering::SeqCst), idle: idle.load(Ordering::SeqCst) })
    }

    /// Whether member `index` at `max_drift_ms` must wait now.
    fn must_wait(&self, index: usize, max_drift_ms: i64) -> bool {
        let own = self.watermarks[index].load(Ordering::SeqCst);
        must_wait(own, group_minimum(self.reports()), max_drift_ms)
    }

    /// Calls the wake-ups of the waiting members that may go on now.
    fn wake_released(&self) {
        if self.waiting_count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let released: Vec<AlignmentWake> = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut released = Vec::new();
            for (member, wake) in waiting.iter_mut().enumerate() {
                if wake.is_some() && !self.must_wait(member, self.max_drifts_ms[member].load(Ordering::SeqCst)) {
                    released.extend(wake.take());
                }
            }
            released
        };
        self.waiting_count.fetch_sub(released.len(), Ordering::SeqCst);
        for wake in released {
            wake();
        }
    }
}

/// One source subtask's place in its alignment group.
#[derive(Debug, Clone)]
pub(crate) struct AlignmentMember {
    group: Arc<AlignmentGroup>,
    index: usize,
    max_drift_ms: i64,
}

impl AlignmentMember {
    /// Publishes the member's current watermark; it only moves forward.
    pub(crate) fn report(&self, watermark: i64) {
        let previous = self.group.watermarks[self.index].fetch_max(watermark, Ordering::SeqCst);
        if watermark > previous {
            self.group.relay(self.index);
            self.wake_released();
        }
    }

    /// Declares the member idle (it leaves the minimum) or active again.
    pub(crate) fn set_idle(&self, idle: bool) {
        if self.group.idle[self.index].swap(idle, Ordering::SeqCst) != idle {
            self.group.relay(self.index);
        }
        self.wake_released();
    }

    /// Leaves `wake` with the group, to be called once when the member may poll again; returns
    /// false, keeping nothing, if it may poll already.
    pub(crate) fn wait(&self, wake: AlignmentWake) -> bool {
        let mut waiting = self.group.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if waiting[self.index].is_none() {
            self.group.waiting_count.fetch_add(1, Ordering::SeqCst);
        }
        if !self.group.must_wait(self.index, self.max_drift_ms) {
            waiting[self.index] = None;
            self.group.waiting_count.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        waiting[self.index] = Some(wake);
        true
    }

    /// Wakes the members this member's report may have released.
    fn wake_released(&self) {
        self.group.wake_released();
    }

    /// The member's input has ended: it never holds the group back again.
    pub(crate) fn finish(&self) {
        self.report(FINISHED);
    }

    /// Whether the member must not poll its reader now.
    pub(crate) fn must_wait(&self) -> bool {
        self.group.must_wait(self.index, self.max_drift_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(watermark: i64) -> MemberReport {
        MemberReport { watermark, idle: false }
    }

    #[test]
    fn the_minimum_leaves_out_idle_and_finished_members() {
        assert_eq!(group_minimum([active(10), active(5), active(7)]), Some(5));
        assert_eq!(group_minimum([active(10), MemberReport { watermark: 5, idle: true }]), Some(10));
        assert_eq!(group_minimum([active(10), active(FINISHED)]), Some(10));
        assert_eq!(group_minimum([active(10), active(UNREPORTED)]), Some(UNREPORTED), "not reported yet: holds the start");
        assert_eq!(group_minimum([active(FINISHED), MemberReport { watermark: 3, idle: true }]), None);
    }

    #[test]
    fn only_a_member_beyond_the_drift_waits() {
        assert!(!must_wait(1_000, Some(0), 1_000), "exactly the drift ahead may poll");
        assert!(must_wait(1_001, Some(0), 1_000));
        assert!(!must_wait(5, Some(5), 0), "the minimum itself never waits");
        assert!(!must_wait(1_000_000, None, 0), "nobody holds the group back");
        assert!(!must_wait(UNREPORTED, Some(0), 0));
    }

    #[test]
    fn a_leader_waits_until_the_laggard_catches_up_finishes_or_goes_idle() {
        let group = AlignmentGroup::new("g", 2);
        let (leader, laggard) = (group.member(0, 100), group.member(1, 100));
        assert!(!leader.must_wait() && !laggard.must_wait(), "nobody has reported: everybody reads");
        leader.report(500);
        assert!(leader.must_wait(), "the laggard has not reported yet: it holds the start");
        assert!(!laggard.must_wait());
        laggard.report(300);
        assert!(leader.must_wait());
        assert!(!laggard.must_wait());
        laggard.report(400);
        assert!(!leader.must_wait(), "caught up to within the drift");
        laggard.report(0);
        assert!(!leader.must_wait(), "a reported watermark never goes back");
        leader.report(1_000);
        assert!(leader.must_wait());
        laggard.set_idle(true);
        assert!(!leader.must_wait(), "an idle laggard holds nothing back");
        laggard.set_idle(false);
        assert!(leader.must_wait());
        laggard.finish();
        assert!(!leader.must_wait(), "a finished laggard holds nothing back");
    }

    #[test]
    fn a_waiting_member_is_woken_once_by_the_report_that_releases_it() {
        use std::sync::atomic::AtomicU32;
        let group = AlignmentGroup::new("g", 2);
        let (leader, laggard) = (group.member(0, 100), group.member(1, 100));
        let woken = Arc::new(AtomicU32::new(0));
        let wake = || {
            let woken = Arc::clone(&woken);
            Box::new(move || {
                woken.fetch_add(1, Ordering::SeqCst);
            }) as AlignmentWake
        };
        laggard.report(0);
        leader.report(500);
        assert!(!laggard.wait(wake()), "the minimum itself never waits: nothing is kept");
        assert!(leader.wait(wake()));
        laggard.report(300);
        assert_eq!(woken.load(Ordering::SeqCst), 0, "still beyond the drift");
        laggard.report(450);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "released by the laggard's report");
        laggard.report(460);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "a wake-up is used once");
        leader.report(1_000);
        assert!(leader.wait(wake()));
        laggard.finish();
        assert_eq!(woken.load(Ordering::SeqCst), 2, "released by the laggard's end");
        assert_eq!(group.waiting_count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn copies_in_two_processes_agree_through_the_relay() {
        // Seat 0 runs "here", seat 1 "there"; each copy relays its own member's changes to the
        // other, as the coordinator passes them on.
        let (here, there) = (AlignmentGroup::new("g", 2), AlignmentGroup::new("g", 2));
        let relayed = |from: &Arc<AlignmentGroup>, to: &Arc<AlignmentGroup>| -> AlignmentRelay {
            let (from, to) = (Arc::downgrade(from), Arc::clone(to));
            Arc::new(move |seat| {
                let report = from.upgrade().expect("alive while its members report").seat(seat);
                to.apply(seat, report);
            })
        };
        here.set_relay(relayed(&here, &there));
        there.set_relay(relayed(&there, &here));
        let (leader, laggard) = (here.member(0, 100), there.member(1, 100));
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        leader.report(500);
        assert!(leader.must_wait(), "the laggard elsewhere has not reported: it holds the start");
        assert!(leader.wait(Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })));
        laggard.report(450);
        assert_eq!(woken.load(Ordering::SeqCst), 1, "the laggard's report, applied here, released the leader");
        assert_eq!(there.seat(0), MemberReport { watermark: 500, idle: false }, "the leader's seat reached the other copy");
        leader.report(2_000);
        laggard.set_idle(true);
        assert!(!leader.must_wait(), "an idle laggard elsewhere holds nothing back");
        here.apply(1, MemberReport { watermark: 100, idle: true });
        assert_eq!(here.seat(1).watermark, 450, "a late report never moves a seat back");
        laggard.finish();
        assert_eq!(here.seat(1).watermark, FINISHED);
    }
}
