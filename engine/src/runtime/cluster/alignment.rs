//! Watermark alignment groups whose members run on several workers (see `runtime/alignment.rs`):
//! each worker holds a copy of every group, sends the seats its own members changed to the
//! coordinator (which passes them on to the other workers), and applies the seats the others
//! changed to its copy.
//!
//! Sending is coalesced: the first change goes at once, and what changes in the next
//! [`UPDATE_INTERVAL`] goes in one message after it, each seat as it is then; members reporting
//! a new watermark with every frame cost a message per interval, not one per frame. Every
//! [`RESEND_INTERVAL`] a worker also sends all its seats again, so a message lost with a
//! coordinator (a new one adopting the attempt) delays a waiting member by that much at most.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::protocol::{self, AlignmentSeat, ToCoordinator};
use crate::runtime::alignment::{AlignmentGroup, MemberReport};

/// How long a worker gathers changes to its seats before it sends them. Short, because sources
/// whose event time runs fast against the max drift take turns at the pace of these messages:
/// the bids window query at p=2 on two workers (a 2 s drift is 2,000 bids of one subtask) ran
/// at 1.6 M events/s with 2 ms, 4.9 M/s with 500 us and 6.5-8.1 M/s with 100 us, beside
/// 9.4-10.9 M/s unaligned (bench/RESULTS.md). At most one message per interval per worker.
pub(crate) const UPDATE_INTERVAL: Duration = Duration::from_micros(100);

/// How often a worker sends every seat of its members again.
pub(crate) const RESEND_INTERVAL: Duration = Duration::from_millis(500);

/// What sends an encoded `ToCoordinator` message to the coordinator.
pub(crate) type SendToCoordinator = Box<dyn Fn(Vec<u8>) + Send>;

/// One attempt's alignment groups on one worker, shared with the workers running the groups'
/// other members.
pub(crate) struct SharedAlignment {
    attempt: u32,
    /// The groups, by name.
    groups: Vec<Arc<AlignmentGroup>>,
    pending: Mutex<Pending>,
    changed: Condvar,
}

/// Seats are (index of the group in `groups`, seat).
#[derive(Default)]
struct Pending {
    /// Seats changed here since they were last sent.
    dirty: BTreeSet<(usize, usize)>,
    /// Every seat a member here has changed: the ones this worker owns.
    own: BTreeSet<(usize, usize)>,
    /// Send every seat of `own` with the next message.
    resend: bool,
    ended: bool,
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SharedAlignment {
    /// Shares the groups of `alignment` (the deployment's, by source node) for `attempt`, sending
    /// through `send` from a thread of its own until [`Self::end`]; `None` if the job has no group.
    pub(crate) fn start(
        attempt: u32,
        alignment: &HashMap<usize, (Arc<AlignmentGroup>, usize, i64)>,
        send: SendToCoordinator,
    ) -> std::io::Result<Option<Arc<SharedAlignment>>> {
        let mut groups: Vec<Arc<AlignmentGroup>> = Vec::new();
        for (group, _, _) in alignment.values() {
            if !groups.iter().any(|known| Arc::ptr_eq(known, group)) {
                groups.push(Arc::clone(group));
            }
        }
        if groups.is_empty() {
            return Ok(None);
        }
        groups.sort_by(|a, b| a.name().cmp(b.name()));
        let shared = Arc::new(SharedAlignment { attempt, groups, pending: Mutex::new(Pending::default()), changed: Condvar::new() });
        for (index, group) in shared.groups.iter().enumerate() {
            // Weak: the groups hold their relay, and the relay must not keep them alive.
            let relay_to: Weak<SharedAlignment> = Arc::downgrade(&shared);
            group.set_relay(Arc::new(move |seat| {
                if let Some(shared) = relay_to.upgrade() {
                    shared.changed_here(index, seat);
                }
            }));
        }
        let sender = Arc::clone(&shared);
        std::thread::Builder::new().name(format!("tethys-alignment-{attempt}")).spawn(move || sender.send_changes(send))?;
        Ok(Some(shared))
    }

    /// The attempt whose groups these are.
    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    fn changed_here(&self, group: usize, seat: usize) {
        let mut pending = lock(&self.pending);
        pending.own.insert((group, seat));
        if pending.dirty.insert((group, seat)) && pending.dirty.len() == 1 {
            self.changed.notify_one();
        }
    }

    /// Applies seats other workers' members changed; a seat of an unknown group or beyond its
    /// group, or one a member here owns, is ignored.
    pub(crate) fn apply(&self, seats: &[AlignmentSeat]) {
        // Held while applying: a member here changing its seat meanwhile only waits to mark it.
        let own = &lock(&self.pending).own;
        for seat in seats {
            let Ok(index) = self.groups.binary_search_by(|group| group.name().cmp(seat.group.as_str())) else { continue };
            let position = seat.seat as usize;
            if position < self.groups[index].seats() && !own.contains(&(index, position)) {
                self.groups[index].apply(position, MemberReport { watermark: seat.watermark, idle: seat.idle });
            }
        }
    }

    /// Sends every seat owned here with the next message (a new coordinator adopted the attempt).
    pub(crate) fn resend(&self) {
        lock(&self.pending).resend = true;
        self.changed.notify_one();
    }

    /// Stops sending once what changed is sent: the attempt has ended here.
    pub(crate) fn end(&self) {
        lock(&self.pending).ended = true;
        self.changed.notify_one();
    }

    /// The sending thread: waits for changes (or the periodic resend), sends them, then gathers
    /// for one interval.
    fn send_changes(&self, send: SendToCoordinator) {
        let mut resent_at = Instant::now();
        let mut ended = false;
        while !ended {
            let seats: Vec<(usize, usize)> = {
                let mut pending = lock(&self.pending);
                loop {
                    if pending.ended {
                        // What changed last (a member's end as its subtask finished) still goes.
                        ended = true;
                        break std::mem::take(&mut pending.dirty).into_iter().collect();
                    }
                    if pending.resend || resent_at.elapsed() >= RESEND_INTERVAL {
                        pending.resend = false;
                        pending.dirty.clear();
                        resent_at = Instant::now();
                        break pending.own.iter().copied().collect();
                    }
                    if !pending.dirty.is_empty() {
                        break std::mem::take(&mut pending.dirty).into_iter().collect();
                    }
                    let wait = RESEND_INTERVAL.saturating_sub(resent_at.elapsed());
                    pending = self.changed.wait_timeout(pending, wait).unwrap_or_else(std::sync::PoisonError::into_inner).0;
                }
            };
            if !seats.is_empty() {
                let seats = seats
                    .into_iter()
                    .map(|(group, seat)| {
                        let report = self.groups[group].seat(seat);
                        AlignmentSeat {
                            group: self.groups[group].name().to_string(),
                            seat: seat as u32,
                            watermark: report.watermark,
                            idle: report.idle,
                        }
                    })
                    .collect();
                let message = ToCoordinator::Alignment { attempt: self.attempt, seats };
                send(protocol::encode(&message).expect("control messages always encode"));
            }
            if !ended {
                std::thread::sleep(UPDATE_INTERVAL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Receiver};

    use super::*;

    fn decode_seats(messages: &Receiver<Vec<u8>>) -> Vec<AlignmentSeat> {
        let bytes = messages.recv_timeout(Duration::from_secs(10)).expect("a message within the deadline");
        match protocol::decode::<ToCoordinator>(&bytes).unwrap() {
            ToCoordinator::Alignment { attempt: 3, seats } => seats,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn changes_here_are_sent_coalesced_and_seats_from_elsewhere_are_applied() {
        let group = AlignmentGroup::new("g", 2);
        let alignment = HashMap::from([(0, (Arc::clone(&group), 0, 10)), (1, (Arc::clone(&group), 1, 10))]);
        let (sent, messages) = channel();
        let sent = Mutex::new(sent);
        let shared = SharedAlignment::start(3, &alignment, Box::new(move |bytes| sent.lock().unwrap().send(bytes).unwrap()))
            .unwrap()
            .expect("a group");
        let here = group.member(0, 10);
        here.report(5);
        let first = decode_seats(&messages);
        assert_eq!(first, vec![AlignmentSeat { group: "g".into(), seat: 0, watermark: 5, idle: false }]);
        // Several reports within one interval go as one seat, as it is when sent.
        for watermark in 6..=40 {
            here.report(watermark);
        }
        let mut last = decode_seats(&messages);
        while last[0].watermark != 40 {
            last = decode_seats(&messages);
        }
        assert_eq!(last.len(), 1);

        // The other seat is owned elsewhere: applied here, and it releases the member here.
        assert!(here.must_wait(), "seat 1 has not reported: it holds the group");
        shared.apply(&[AlignmentSeat { group: "g".into(), seat: 1, watermark: 35, idle: false }]);
        assert!(!here.must_wait());
        // Not its own seat, nor an unknown group or seat.
        shared.apply(&[
            AlignmentSeat { group: "g".into(), seat: 0, watermark: i64::MAX, idle: true },
            AlignmentSeat { group: "h".into(), seat: 0, watermark: 1, idle: false },
            AlignmentSeat { group: "g".into(), seat: 9, watermark: 1, idle: false },
        ]);
        assert_eq!(group.seat(0), MemberReport { watermark: 40, idle: false });

        // A new coordinator gets every seat owned here again, at once.
        shared.resend();
        assert_eq!(decode_seats(&messages), vec![AlignmentSeat { group: "g".into(), seat: 0, watermark: 40, idle: false }]);
        shared.end();
    }
}
