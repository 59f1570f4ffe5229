//! The interval join operator: joins each record of one keyed stream with the records of another
//! keyed stream whose event time lies within a bound of its own (Flink's interval join):
//! `left.ts + lower <= right.ts <= left.ts + upper`.
//!
//! Both inputs arrive as one stream of `JoinSide`s (a union, keyed by each side's key), so the
//! operator sees both sides of a key in one subtask and the watermark is the minimum of both. Per
//! key it buffers each side's records with their time; a new record is matched against the
//! other side's buffer and emitted pairs go out at once. A record is late, and dropped and
//! counted, when its time is below the watermark (Flink's `timestamp < watermark`); one at the
//! watermark still joins. So a buffered record leaves once the watermark passes the last time a
//! non-late record of the other side could match it: a left record once the watermark exceeds
//! `ts + upper`, a right record once it exceeds `ts - lower`. That time is an event-time timer of
//! the key in the engine's [`TimerService`], which keeps one timer per (key, time): timers are
//! bounded by keys and distinct times, not by records.
//!
//! A record may match many buffered ones. The operator stops emitting when its output blocks
//! (`Output::is_blocked`) and keeps where it was: the record being matched, the position in the
//! other side's buffer, and the rest of the input frame. Nothing changes the buffers meanwhile (the
//! chain gives it no input or watermark while it has pending output), so the position stays valid.

use crate::base::Key;

use super::keyed::KeyedStateMap;
use super::{FrameOperator, Output};
use crate::base::UserError;
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError, StateValue, TimeDomain, TimerService};

/// One record of either input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum JoinSide<L, R> {
    /// A record of the left input.
    Left(L),
    /// A record of the right input.
    Right(R),
}

/// The buffered records of one key.
#[derive(Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct JoinBuffers<L, R> {
    left: Vec<(i64, L)>,
    right: Vec<(i64, R)>,
}

pub(crate) struct IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F> {
    key_fn: KeyFn,
    left_time: LeftTime,
    right_time: RightTime,
    lower_ms: i64,
    upper_ms: i64,
    function: F,
    buffers: KeyedStateMap<K, JoinBuffers<L, R>>,
    /// One cleanup timer per (key, time) at which buffered records of the key expire.
    timers: TimerService<K>,
    late_dropped: u64,
    /// Records of the input frame not yet joined.
    input: std::vec::IntoIter<JoinSide<L, R>>,
    /// The record being matched when the output blocked.
    matching: Option<Matching<K, L, R>>,
}

/// A record part way through being matched against the other side's buffer of its key.
struct Matching<K, L, R> {
    key: K,
    time: i64,
    record: JoinSide<L, R>,
    /// Position in the other side's buffer of the next candidate.
    next: usize,
}

impl<K: Key, L: Clone, R: Clone, KeyFn, LeftTime, RightTime, F> IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F> {
    /// A join of the subtask owning `range` with bounds `[lower_ms, upper_ms]` (`lower_ms <= upper_ms`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_fn: KeyFn,
        left_time: LeftTime,
        right_time: RightTime,
        lower_ms: i64,
        upper_ms: i64,
        function: F,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Self {
        assert!(lower_ms <= upper_ms, "interval join bounds: lower {lower_ms} > upper {upper_ms}");
        IntervalJoinOperator {
            key_fn,
            left_time,
            right_time,
            lower_ms,
            upper_ms,
            function,
            buffers: KeyedStateMap::new(range, max_parallelism).tracking_changes(),
            timers: TimerService::new(range, max_parallelism),
            late_dropped: 0,
            input: Vec::new().into_iter(),
            matching: None,
        }
    }

    /// The first watermark at which a left record at `time` can match nothing more.
    fn left_expiry(&self, time: i64) -> i64 {
        time.saturating_add(self.upper_ms).saturating_add(1)
    }

    /// The first watermark at which a right record at `time` can match nothing more.
    fn right_expiry(&self, time: i64) -> i64 {
        time.saturating_sub(self.lower_ms).saturating_add(1)
    }

    fn schedule_cleanup(&mut self, key: &K, at: i64) {
        let scoped = self.timers.scope(key);
        self.timers.register_timer(TimeDomain::EventTime, scoped, at);
    }
}

impl<K, L, R, O, KeyFn, LeftTime, RightTime, F> IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F>
where
    K: Key,
    L: Clone,
    R: Clone,
    O: Record,
    KeyFn: Fn(&JoinSide<L, R>) -> K,
    LeftTime: Fn(&L) -> i64,
    RightTime: Fn(&R) -> i64,
    F: FnMut(&L, &R) -> O,
{
    /// Joins the record being matched, then the rest of the input frame, until the output blocks.
    fn join_input(&mut self, out: &mut Output<'_, O>) {
        loop {
            if let Some(matching) = self.matching.take() {
                if let Some(stopped) = self.match_record(matching, out) {
                    self.matching = Some(stopped);
                    return;
                }
            }
            let Some(record) = self.input.next() else { return };
            let key = (self.key_fn)(&record);
            let time = match &record {
                JoinSide::Left(l) => (self.left_time)(l),
                JoinSide::Right(r) => (self.right_time)(r),
            };
            if time < self.timers.current_watermark() {
                self.late_dropped += 1;
                continue;
            }
            self.matching = Some(Matching { key, time, record, next: 0 });
        }
    }

    /// Emits the pairs of `matching`'s record with the other side's buffer from its position on,
    /// then buffers the record and schedules its cleanup. Returns it, moved on, if the output
    /// blocked first. One lookup of the key's buffers either way.
    fn match_record(&mut self, mut matching: Matching<K, L, R>, out: &mut Output<'_, O>) -> Option<Matching<K, L, R>> {
        let (lower, upper) = (self.lower_ms, self.upper_ms);
        let time = matching.time;
        let cleanup_at = match &matching.record {
            JoinSide::Left(_) => self.left_expiry(time),
            JoinSide::Right(_) => self.right_expiry(time),
        };
        let function = &mut self.function;
        let matched = self.buffers.update(
            matching.key.clone(),
            || JoinBuffers { left: Vec::new(), right: Vec::new() },
            move |_, buffers| {
                match &matching.record {
                    JoinSide::Left(l) => {
                        while let Some((right_time, r)) = buffers.right.get(matching.next) {
                            matching.next += 1;
                            if time.saturating_add(lower) <= *right_time && *right_time <= time.saturating_add(upper) {
                                out.emit(function(l, r));
                                if out.is_blocked() {
                                    return Err(matching);
                                }
                            }
                        }
                    }
                    JoinSide::Right(r) => {
                        while let Some((left_time, l)) = buffers.left.get(matching.next) {
                            matching.next += 1;
                            if left_time.saturating_add(lower) <= time && time <= left_time.saturating_add(upper) {
                                out.emit(function(l, r));
                                if out.is_blocked() {
                                    return Err(matching);
                                }
                            }
                        }
                    }
                }
                match matching.record {
                    JoinSide::Left(l) => buffers.left.push((time, l)),
                    JoinSide::Right(r) => buffers.right.push((time, r)),
                }
                Ok(matching.key)
            },
        );
        match matched {
            Ok(key) => {
                self.schedule_cleanup(&key, cleanup_at);
                None
            }
            Err(stopped) => Some(stopped),
        }
    }
}

impl<K, L, R, O, KeyFn, LeftTime, RightTime, F> FrameOperator<JoinSide<L, R>, O>
    for IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F>
where
    K: Key,
    L: Record + StateValue,
    R: Record + StateValue,
    O: Record,
    KeyFn: Fn(&JoinSide<L, R>) -> K + Send + 'static,
    LeftTime: Fn(&L) -> i64 + Send + 'static,
    RightTime: Fn(&R) -> i64 + Send + 'static,
    F: FnMut(&L, &R) -> O + Send + 'static,
{
    fn process(&mut self, frame: Vec<JoinSide<L, R>>, out: &mut Output<'_, O>) -> Result<(), UserError> {
        debug_assert!(!self.has_pending_output(), "input while output is pending");
        self.input = frame.into_iter();
        self.join_input(out);
        Ok(())
    }

    fn has_pending_output(&self) -> bool {
        self.matching.is_some() || self.input.len() > 0
    }

    fn resume_output(&mut self, out: &mut Output<'_, O>) -> Result<(), UserError> {
        self.join_input(out);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Output<'_, O>) -> Result<(), UserError> {
        let (lower, upper) = (self.lower_ms, self.upper_ms);
        while let Some(timer) = self.timers.poll_event_time(watermark) {
            // Keep what a record at or after the watermark can still match.
            let emptied = self.buffers.with_existing(&timer.key, |buffers| {
                buffers.left.retain(|(time, _)| time.saturating_add(upper) >= watermark);
                buffers.right.retain(|(time, _)| time.saturating_sub(lower) >= watermark);
                buffers.left.is_empty() && buffers.right.is_empty()
            });
            if emptied == Some(true) {
                self.buffers.remove(&timer.key);
            }
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("late_records_dropped", self.late_dropped),
            ("state_keys", self.buffers.len() as u64),
            ("event_timers", self.timers.len(TimeDomain::EventTime) as u64),
        ]
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K: Key, L: Record + StateValue, R: Record + StateValue, KeyFn, LeftTime, RightTime, F> KeyGroupedState
    for IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F>
{
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        OperatorKeyGroupSnapshot::new(key_group, self.buffers.max_parallelism, &self.buffers.snapshot_group(key_group))
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        Ok(self.buffers.snapshot_group_deferred(key_group))
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        self.buffers.take_changes()
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (key_group, entries) = snapshot.into_data::<Vec<(K, JoinBuffers<L, R>)>>(self.buffers.range(), self.buffers.max_parallelism)?;
        // The cleanup timers are derived from the buffered times.
        for (key, buffers) in &entries {
            let left = buffers.left.iter().map(|(time, _)| self.left_expiry(*time));
            let right = buffers.right.iter().map(|(time, _)| self.right_expiry(*time));
            let expiries: Vec<i64> = left.chain(right).collect();
            for at in expiries {
                self.schedule_cleanup(key, at);
            }
        }
        self.buffers.restore_group(key_group, entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SubtaskContext;
    use crate::frame::AnyFrame;
    use crate::key_group::{assign_key_group, KeyGroupRange};
    use crate::operator::rescale_test::{assert_rescale_keeps_results, Collected, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};

    type Side = JoinSide<(i64, i64), (i64, i64)>;

    fn key(side: &Side) -> i64 {
        match side {
            JoinSide::Left(l) => l.0,
            JoinSide::Right(r) => r.0,
        }
    }

    fn interval_join(lower_ms: i64, upper_ms: i64) -> OperatorChain {
        let range = KeyGroupRange::for_subtask(0, 1, MAX_PARALLELISM);
        let operator = IntervalJoinOperator::new(
            key,
            |l: &(i64, i64)| l.1,
            |r: &(i64, i64)| r.1,
            lower_ms,
            upper_ms,
            |l: &(i64, i64), r: &(i64, i64)| (l.1, r.1),
            range,
            MAX_PARALLELISM,
        );
        OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
    }

    fn metric(chain: &OperatorChain, name: &str) -> u64 {
        chain.counts()[0].extra(name).unwrap_or_else(|| panic!("no metric {name}"))
    }

    #[test]
    fn cleanup_timers_are_bounded_by_keys_and_distinct_times() {
        // 10,000 records of 3 keys at 10 distinct times: at most one cleanup timer per key, side
        // and time (60), however many records share them.
        let mut chain = interval_join(-5, 5);
        let mut out = Collected::<(i64, i64)>(Vec::new());
        for round in 0..10i64 {
            let frame: Vec<Side> = (0..1_000i64)
                .map(|i| if i % 2 == 0 { JoinSide::Left((i % 3, i % 10)) } else { JoinSide::Right((i % 3, i % 10)) })
                .collect();
            chain.process(AnyFrame::new(frame), &mut out).unwrap();
            chain.watermark(-100 + round, &mut out).unwrap();
            assert!(metric(&chain, "event_timers") <= 60, "{} timers for 3 keys and 10 times", metric(&chain, "event_timers"));
        }
        chain.watermark(i64::MAX, &mut out).unwrap();
        assert_eq!(metric(&chain, "event_timers"), 0);
        assert_eq!(metric(&chain, "state_keys"), 0, "every buffer is cleaned up at the end");
    }

    #[test]
    fn a_record_at_the_watermark_is_not_late_and_one_before_it_is() {
        // Flink: late means `timestamp < watermark`.
        let mut chain = interval_join(0, 0);
        let mut out = Collected::<(i64, i64)>(Vec::new());
        chain.process(AnyFrame::new(vec![Side::Right((1, 100))]), &mut out).unwrap();
        chain.watermark(100, &mut out).unwrap();
        chain.process(AnyFrame::new(vec![Side::Left((1, 100)), Side::Left((1, 99))]), &mut out).unwrap();
        assert_eq!(out.0, [(100, 100)], "the record at the watermark joins the buffered one at the same time");
        assert_eq!(metric(&chain, "late_records_dropped"), 1, "the record one before the watermark is late");
        chain.watermark(101, &mut out).unwrap();
        assert_eq!(metric(&chain, "state_keys"), 0, "nothing at or after 101 can match time 100");
    }

    #[test]
    fn join_buffers_moved_by_key_group_give_the_same_pairs() {
        let records: Vec<Side> =
            (0..3_000i64).map(|i| if i % 2 == 0 { JoinSide::Left((i % 11, i * 4)) } else { JoinSide::Right((i % 11, i * 4)) }).collect();
        let time = |s: &Side| match s {
            JoinSide::Left(l) => l.1,
            JoinSide::Right(r) => r.1,
        };
        let frames: Vec<(Vec<Side>, i64)> = records.chunks(150).map(|c| (c.to_vec(), time(c.last().unwrap()) - 10)).collect();
        assert_rescale_keeps_results::<_, (i64, i64)>(
            |subtask, parallelism| {
                let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
                let operator = IntervalJoinOperator::new(
                    key,
                    |l: &(i64, i64)| l.1,
                    |r: &(i64, i64)| r.1,
                    -60,
                    100,
                    |l: &(i64, i64), r: &(i64, i64)| (l.1, r.1),
                    range,
                    MAX_PARALLELISM,
                );
                OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
            },
            &frames,
            |s| assign_key_group(&key(s), MAX_PARALLELISM),
        );
    }
}
