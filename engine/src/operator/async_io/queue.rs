//! The result queue of the async I/O operator: which finished results may go downstream now, and
//! when a held watermark may follow them. Pure bookkeeping without I/O or time: the operator feeds
//! it records (getting a ticket each), completions by ticket and watermarks, and emits what
//! `pop_ready` yields, so the ordering rules are tested by feeding events.
//!
//! Ordered mode emits results in input order: one slot per record, emitted from the front as soon
//! as it is complete, a watermark riding on the slot of the last record before it. Unordered mode
//! (Flink's) emits a result as soon as it completes but never across a watermark: the records
//! between two watermarks form a segment, only the oldest segment emits, and its closing watermark
//! follows once every record of it is done. In both modes every result emitted before a watermark
//! belongs to a record that came before it, so the operator makes no record late. Watermarks with
//! no record between them coalesce into the latest (they only ever grow).

use std::collections::VecDeque;

use super::AsyncMode;

/// What the queue lets go downstream, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Emission<Out> {
    Record(Out),
    Watermark(i64),
}

/// A record the queue holds, as a checkpoint sees it: still in flight (by its request id), or
/// done with a result not yet emitted.
pub(crate) enum Held<'a, Out> {
    Pending(u64),
    Done(&'a Out),
}

/// Results and watermarks held until their turn; one per operator instance.
pub(crate) struct ResultQueue<Out> {
    order: Order<Out>,
    /// Records pushed whose result has not yet been emitted or dropped (in flight, waiting to
    /// start, or done but held): what the operator's capacity bounds.
    held: usize,
    /// A watermark with nothing before it: emitted first by the next `pop_ready`.
    loose_watermark: Option<i64>,
}

enum Order<Out> {
    Ordered(OrderedSlots<Out>),
    Unordered(Segments<Out>),
}

/// Ordered mode: a slot per record in input order; a ticket is the record's sequence number.
struct OrderedSlots<Out> {
    /// Ticket of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot<Out>>,
}

struct Slot<Out> {
    /// The record's request id.
    request: u64,
    /// `None` while in flight; then the result, which may be no record (a timeout handler that
    /// gave no fallback).
    result: Option<Option<Out>>,
    /// The watermark that came after this record (and before the next one).
    watermark_after: Option<i64>,
}

/// Unordered mode: records grouped by the watermark that closes them; a ticket is the segment id.
struct Segments<Out> {
    /// Id of `segments[0]`.
    first: u64,
    /// Oldest first; never empty. Every segment but the last is closed by a watermark.
    segments: VecDeque<Segment<Out>>,
}

struct Segment<Out> {
    /// Records of the segment still in flight.
    in_flight: usize,
    /// Their request ids.
    pending: Vec<u64>,
    /// Completed results not yet emitted.
    done: VecDeque<Out>,
    /// The watermark after the segment's records; `None` for the open (last) segment.
    closing: Option<i64>,
}

impl<Out> Segment<Out> {
    fn open() -> Self {
        Segment { in_flight: 0, pending: Vec::new(), done: VecDeque::new(), closing: None }
    }

    fn is_empty(&self) -> bool {
        self.in_flight == 0 && self.done.is_empty()
    }
}

impl<Out> ResultQueue<Out> {
    pub(crate) fn new(mode: AsyncMode) -> Self {
        let order = match mode {
            AsyncMode::Ordered => Order::Ordered(OrderedSlots { first: 0, slots: VecDeque::new() }),
            AsyncMode::Unordered => Order::Unordered(Segments { first: 0, segments: VecDeque::from([Segment::open()]) }),
        };
        ResultQueue { order, held: 0, loose_watermark: None }
    }

    /// Takes in the record of request `request`; its result is due under the returned ticket.
    pub(crate) fn push_record(&mut self, request: u64) -> u64 {
        self.held += 1;
        match &mut self.order {
            Order::Ordered(o) => {
                o.slots.push_back(Slot { request, result: None, watermark_after: None });
                o.first + o.slots.len() as u64 - 1
            }
            Order::Unordered(u) => {
                let open = u.segments.back_mut().expect("segments are never empty");
                open.in_flight += 1;
                open.pending.push(request);
                u.first + u.segments.len() as u64 - 1
            }
        }
    }

    /// Every record held, oldest first in ordered mode (segment by segment in unordered mode):
    /// what a checkpoint stores.
    pub(crate) fn held_records(&self) -> Vec<Held<'_, Out>> {
        let mut held = Vec::with_capacity(self.held);
        match &self.order {
            Order::Ordered(o) => {
                for slot in &o.slots {
                    match &slot.result {
                        None => held.push(Held::Pending(slot.request)),
                        Some(Some(record)) => held.push(Held::Done(record)),
                        Some(None) => {}
                    }
                }
            }
            Order::Unordered(u) => {
                for segment in &u.segments {
                    held.extend(segment.done.iter().map(Held::Done));
                    held.extend(segment.pending.iter().map(|&request| Held::Pending(request)));
                }
            }
        }
        held
    }

    /// Records the result of the record with `ticket` and request id `request`; `None`: the
    /// record yields no output.
    pub(crate) fn complete(&mut self, ticket: u64, request: u64, result: Option<Out>) {
        match &mut self.order {
            Order::Ordered(o) => {
                let index = ticket.checked_sub(o.first).and_then(|i| usize::try_from(i).ok());
                let slot = index.and_then(|i| o.slots.get_mut(i)).expect("a completion for a record the queue holds");
                assert!(slot.result.is_none(), "record {ticket} completed twice");
                slot.result = Some(result);
            }
            Order::Unordered(u) => {
                let index = ticket.checked_sub(u.first).and_then(|i| usize::try_from(i).ok());
                let segment = index.and_then(|i| u.segments.get_mut(i)).expect("a completion for a segment the queue holds");
                assert!(segment.in_flight > 0, "more completions than records in segment {ticket}");
                segment.in_flight -= 1;
                segment.pending.retain(|&pending| pending != request);
                match result {
                    Some(record) => segment.done.push_back(record),
                    None => self.held -= 1,
                }
            }
        }
    }

    /// Takes a watermark in, behind every record pushed before it.
    pub(crate) fn push_watermark(&mut self, watermark: i64) {
        let nothing_held = match &mut self.order {
            Order::Ordered(o) => match o.slots.back_mut() {
                Some(last) => {
                    debug_assert!(last.watermark_after.is_none_or(|w| w <= watermark), "watermark went backwards");
                    last.watermark_after = Some(watermark);
                    false
                }
                None => true,
            },
            Order::Unordered(u) => {
                let open = u.segments.back_mut().expect("segments are never empty");
                if !open.is_empty() {
                    open.closing = Some(watermark);
                    u.segments.push_back(Segment::open());
                    false
                } else if u.segments.len() > 1 {
                    // No record since the last watermark: the new one replaces it.
                    let closed = u.segments.len() - 2;
                    u.segments[closed].closing = Some(watermark);
                    false
                } else {
                    true
                }
            }
        };
        if nothing_held {
            debug_assert!(self.loose_watermark.is_none_or(|w| w <= watermark), "watermark went backwards");
            self.loose_watermark = Some(watermark);
        }
    }

    /// The next record or watermark that may go downstream now, if any.
    pub(crate) fn pop_ready(&mut self) -> Option<Emission<Out>> {
        if let Some(watermark) = self.loose_watermark.take() {
            return Some(Emission::Watermark(watermark));
        }
        match &mut self.order {
            Order::Ordered(o) => loop {
                o.slots.front()?.result.as_ref()?;
                let slot = o.slots.pop_front().expect("front exists");
                o.first += 1;
                self.held -= 1;
                self.loose_watermark = slot.watermark_after;
                match slot.result.flatten() {
                    Some(record) => return Some(Emission::Record(record)),
                    None => {
                        if let Some(watermark) = self.loose_watermark.take() {
                            return Some(Emission::Watermark(watermark));
                        }
                    }
                }
            },
            Order::Unordered(u) => {
                let oldest = u.segments.front_mut().expect("segments are never empty");
                if let Some(record) = oldest.done.pop_front() {
                    self.held -= 1;
                    return Some(Emission::Record(record));
                }
                if oldest.in_flight > 0 {
                    return None;
                }
                let closing = oldest.closing?;
                debug_assert!(u.segments.len() > 1, "a closed segment has a successor");
                u.segments.pop_front();
                u.first += 1;
                Some(Emission::Watermark(closing))
            }
        }
    }

    /// Records taken in whose result has not yet been emitted (or dropped).
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Whether nothing is held: no record and no watermark.
    pub(crate) fn is_empty(&self) -> bool {
        self.held == 0
            && self.loose_watermark.is_none()
            && match &self.order {
                Order::Ordered(o) => o.slots.is_empty(),
                Order::Unordered(u) => u.segments.len() == 1,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emission::{Record, Watermark};

    fn drain(queue: &mut ResultQueue<u32>) -> Vec<Emission<u32>> {
        std::iter::from_fn(|| queue.pop_ready()).collect()
    }

    #[test]
    fn ordered_results_leave_in_input_order_with_their_watermarks() {
        let mut queue = ResultQueue::new(AsyncMode::Ordered);
        let a = queue.push_record(0);
        let b = queue.push_record(0);
        queue.push_watermark(10);
        let c = queue.push_record(0);
        queue.complete(c, 0, Some(3));
        queue.complete(b, 0, Some(2));
        assert_eq!(drain(&mut queue), vec![], "a is still in flight");
        assert_eq!(queue.held(), 3);
        queue.complete(a, 0, Some(1));
        assert_eq!(drain(&mut queue), vec![Record(1), Record(2), Watermark(10), Record(3)]);
        assert!(queue.is_empty());
    }

    #[test]
    fn ordered_record_without_result_still_releases_its_watermark() {
        let mut queue = ResultQueue::new(AsyncMode::Ordered);
        let a = queue.push_record(0);
        queue.push_watermark(5);
        queue.push_watermark(7);
        queue.complete(a, 0, None);
        assert_eq!(drain(&mut queue), vec![Watermark(7)], "no record, and the two watermarks coalesce");
        assert!(queue.is_empty());
    }

    #[test]
    fn a_watermark_with_nothing_held_goes_at_once() {
        for mode in [AsyncMode::Ordered, AsyncMode::Unordered] {
            let mut queue = ResultQueue::<u32>::new(mode);
            queue.push_watermark(1);
            assert!(!queue.is_empty());
            assert_eq!(drain(&mut queue), vec![Watermark(1)], "{mode:?}");
            assert!(queue.is_empty());
        }
    }

    #[test]
    fn unordered_results_leave_as_they_complete_within_a_segment() {
        let mut queue = ResultQueue::new(AsyncMode::Unordered);
        let tickets: Vec<u64> = (0..3).map(|_| queue.push_record(0)).collect();
        queue.complete(tickets[2], 0, Some(3));
        assert_eq!(drain(&mut queue), vec![Record(3)]);
        queue.complete(tickets[0], 0, Some(1));
        queue.complete(tickets[1], 0, Some(2));
        assert_eq!(drain(&mut queue), vec![Record(1), Record(2)]);
        assert!(queue.is_empty());
    }

    #[test]
    fn unordered_results_never_cross_a_watermark() {
        let mut queue = ResultQueue::new(AsyncMode::Unordered);
        let early = queue.push_record(0);
        queue.push_watermark(10);
        let late_a = queue.push_record(0);
        let late_b = queue.push_record(0);
        queue.push_watermark(20);
        let last = queue.push_record(0);
        // Everything after the first watermark completes first: it must wait.
        queue.complete(last, 0, Some(5));
        queue.complete(late_b, 0, Some(3));
        queue.complete(late_a, 0, None);
        assert_eq!(drain(&mut queue), vec![]);
        assert_eq!(queue.held(), 3, "early in flight, late_b and last done but held; late_a dropped");
        queue.complete(early, 0, Some(1));
        assert_eq!(drain(&mut queue), vec![Record(1), Watermark(10), Record(3), Watermark(20), Record(5)]);
        assert!(queue.is_empty());
    }

    #[test]
    fn unordered_watermarks_without_records_between_coalesce() {
        let mut queue = ResultQueue::new(AsyncMode::Unordered);
        let a = queue.push_record(0);
        queue.push_watermark(10);
        queue.push_watermark(11);
        queue.push_watermark(12);
        let b = queue.push_record(0);
        queue.complete(b, 0, Some(2));
        queue.complete(a, 0, Some(1));
        assert_eq!(drain(&mut queue), vec![Record(1), Watermark(12), Record(2)]);
    }

    #[test]
    fn unordered_completions_in_later_segments_are_held_until_earlier_ones_are_done() {
        // A long run of segments completing in reverse: nothing leaves until the first is done,
        // then everything leaves in segment order with each watermark after its records.
        let mut queue = ResultQueue::new(AsyncMode::Unordered);
        let mut tickets = Vec::new();
        for segment in 0..50u32 {
            tickets.push((queue.push_record(0), segment * 2));
            tickets.push((queue.push_record(0), segment * 2 + 1));
            queue.push_watermark(i64::from(segment));
        }
        for &(ticket, value) in tickets.iter().rev() {
            queue.complete(ticket, 0, Some(value));
            if ticket != 0 {
                assert_eq!(queue.pop_ready(), None);
            }
        }
        let emitted = drain(&mut queue);
        let mut last_watermark = -1i64;
        let mut records = 0;
        for emission in emitted {
            match emission {
                Record(value) => {
                    assert_eq!(i64::from(value / 2), last_watermark + 1, "record {value} crossed a watermark");
                    records += 1;
                }
                Watermark(w) => last_watermark = w,
            }
        }
        assert_eq!((records, last_watermark), (100, 49));
        assert!(queue.is_empty());
    }

    #[test]
    fn held_records_list_pending_requests_and_unemitted_results_in_order() {
        let mut ordered = ResultQueue::new(AsyncMode::Ordered);
        let a = ordered.push_record(10);
        let b = ordered.push_record(11);
        ordered.complete(b, 11, Some("b"));
        let held: Vec<String> = ordered
            .held_records()
            .iter()
            .map(|held| match held {
                Held::Pending(request) => format!("pending {request}"),
                Held::Done(record) => format!("done {record}"),
            })
            .collect();
        assert_eq!(held, vec!["pending 10", "done b"]);
        ordered.complete(a, 10, Some("a"));
        let mut unordered = ResultQueue::new(AsyncMode::Unordered);
        let first = unordered.push_record(1);
        unordered.push_record(2);
        unordered.complete(first, 1, Some("one"));
        assert!(matches!(unordered.held_records()[..], [Held::Done(&"one"), Held::Pending(2)]));
    }
}
