//! The interval join operator: joins each record of one keyed stream with the records of another
//! keyed stream whose event time lies within a bound of its own (Flink's interval join):
//! `left.ts + lower <= right.ts <= left.ts + upper`.
//!
//! Both inputs arrive as one stream of `JoinSide`s (a union, keyed by each side's key), so the
//! operator sees both sides of a key in one subtask and the watermark is the minimum of both. Per
//! key it buffers each side's records with their time; a new record is matched against the
//! other side's buffer and emitted pairs go out at once. A buffered record leaves when no future
//! record of the other side can match it: a left record once the watermark passes
//! `ts + upper`, a right record once it passes `ts - lower` (later records have times above the
//! watermark). A cleanup index by time says which keys to look at. Records behind the watermark
//! (late) are dropped and counted, as Flink does.

use std::collections::BTreeMap;

use crate::base::Key;

use super::keyed::KeyedStateMap;
use super::{FrameOperator, Output};
use crate::base::UserError;
use crate::frame::Record;
use crate::state::{KeyGroupedState, OperatorKeyGroupSnapshot, StateError};

/// One record of either input of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinSide<L, R> {
    /// A record of the left input.
    Left(L),
    /// A record of the right input.
    Right(R),
}

/// The buffered records of one key.
#[derive(Clone)]
pub(crate) struct JoinBuffers<L, R> {
    left: Vec<(i64, L)>,
    right: Vec<(i64, R)>,
}

pub(crate) struct IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F> {
    pub key_fn: KeyFn,
    pub left_time: LeftTime,
    pub right_time: RightTime,
    pub lower_ms: i64,
    pub upper_ms: i64,
    pub function: F,
    pub buffers: KeyedStateMap<K, JoinBuffers<L, R>>,
    /// Keys to clean up when the watermark passes each time.
    pub cleanup_index: BTreeMap<i64, Vec<K>>,
    pub watermark: i64,
    pub late_dropped: u64,
}

impl<K: Key, L, R, KeyFn, LeftTime, RightTime, F> IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F> {
    fn schedule_cleanup(&mut self, key: &K, at: i64) {
        self.cleanup_index.entry(at).or_default().push(key.clone());
    }
}

impl<K, L, R, O, KeyFn, LeftTime, RightTime, F> FrameOperator<JoinSide<L, R>, O>
    for IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F>
where
    K: Key,
    L: Record + Clone,
    R: Record + Clone,
    O: Record,
    KeyFn: Fn(&JoinSide<L, R>) -> K + Send + 'static,
    LeftTime: Fn(&L) -> i64 + Send + 'static,
    RightTime: Fn(&R) -> i64 + Send + 'static,
    F: FnMut(&L, &R) -> O + Send + 'static,
{
    fn process(&mut self, frame: Vec<JoinSide<L, R>>, out: &mut Output<'_, O>) -> Result<(), UserError> {
        let (lower, upper) = (self.lower_ms, self.upper_ms);
        for record in frame {
            let key = (self.key_fn)(&record);
            let time = match &record {
                JoinSide::Left(l) => (self.left_time)(l),
                JoinSide::Right(r) => (self.right_time)(r),
            };
            if time <= self.watermark {
                self.late_dropped += 1;
                continue;
            }
            let function = &mut self.function;
            let cleanup_at = self.buffers.update(
                key.clone(),
                || JoinBuffers { left: Vec::new(), right: Vec::new() },
                |_, buffers| match record {
                    JoinSide::Left(l) => {
                        for (right_time, r) in &buffers.right {
                            if time + lower <= *right_time && *right_time <= time + upper {
                                out.emit(function(&l, r));
                            }
                        }
                        buffers.left.push((time, l));
                        time.saturating_add(upper)
                    }
                    JoinSide::Right(r) => {
                        for (left_time, l) in &buffers.left {
                            if left_time + lower <= time && time <= left_time + upper {
                                out.emit(function(l, &r));
                            }
                        }
                        buffers.right.push((time, r));
                        time.saturating_sub(lower)
                    }
                },
            );
            self.schedule_cleanup(&key, cleanup_at);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Output<'_, O>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let later = self.cleanup_index.split_off(&watermark.saturating_add(1));
        let due = std::mem::replace(&mut self.cleanup_index, later);
        let (lower, upper) = (self.lower_ms, self.upper_ms);
        for key in due.into_values().flatten() {
            let emptied = self.buffers.with_existing(&key, |buffers| {
                buffers.left.retain(|(time, _)| time.saturating_add(upper) > watermark);
                buffers.right.retain(|(time, _)| time.saturating_sub(lower) > watermark);
                buffers.left.is_empty() && buffers.right.is_empty()
            });
            if emptied == Some(true) {
                self.buffers.remove(&key);
            }
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![("late_records_dropped", self.late_dropped)]
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K: Key, L: Record + Clone, R: Record + Clone, KeyFn, LeftTime, RightTime, F> KeyGroupedState
    for IntervalJoinOperator<K, L, R, KeyFn, LeftTime, RightTime, F>
{
    fn snapshot_key_group(&self, key_group: usize) -> OperatorKeyGroupSnapshot {
        OperatorKeyGroupSnapshot::new(key_group, self.buffers.max_parallelism, self.buffers.snapshot_group(key_group))
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (key_group, entries) = snapshot.into_data::<Vec<(K, JoinBuffers<L, R>)>>(self.buffers.range(), self.buffers.max_parallelism)?;
        // The cleanup index is derived from the buffered times.
        for (key, buffers) in &entries {
            let left = buffers.left.iter().map(|(time, _)| time.saturating_add(self.upper_ms));
            let right = buffers.right.iter().map(|(time, _)| time.saturating_sub(self.lower_ms));
            if let Some(latest) = left.chain(right).max() {
                self.cleanup_index.entry(latest).or_default().push(key.clone());
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
    use crate::key_group::{assign_key_group, KeyGroupRange};
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};

    type Side = JoinSide<(i64, i64), (i64, i64)>;

    fn key(side: &Side) -> i64 {
        match side {
            JoinSide::Left(l) => l.0,
            JoinSide::Right(r) => r.0,
        }
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
                let operator = IntervalJoinOperator {
                    key_fn: key,
                    left_time: |l: &(i64, i64)| l.1,
                    right_time: |r: &(i64, i64)| r.1,
                    lower_ms: -60,
                    upper_ms: 100,
                    function: |l: &(i64, i64), r: &(i64, i64)| (l.1, r.1),
                    buffers: KeyedStateMap::new(range, MAX_PARALLELISM),
                    cleanup_index: Default::default(),
                    watermark: i64::MIN,
                    late_dropped: 0,
                };
                OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
            },
            &frames,
            |s| assign_key_group(&key(s), MAX_PARALLELISM),
        );
    }
}
