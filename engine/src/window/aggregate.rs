//! The keyed window aggregate operator: one accumulator per (window, key), fired by the watermark.
//!
//! Open windows are kept in a deque ordered by start, each with its keys' accumulators by key
//! group, so firing takes whole windows from the front in order, with no per-key timer. Records
//! mostly belong to the newest window, so the search for a record's window starts at the back.
//! A new window's maps are sized like the last one fired, so they do not rehash while filling.
//! Records of a window that has already fired are dropped and counted as late.

use std::collections::VecDeque;
use std::sync::Arc;

use super::tumbling::TumblingEventTimeWindows;
use super::{TimeWindow, WindowResult};
use crate::frame::Record;
use crate::key_group::KeyGroupRange;
use crate::operator::keyed::{AggregateFunction, Key, KeyedStateMap};
use crate::operator::{FrameOperator, Output, UserError};

pub(crate) struct TumblingWindowAggregate<K, Acc, KeyFn, TimestampFn, A> {
    pub key_fn: KeyFn,
    pub timestamp_fn: TimestampFn,
    pub assigner: TumblingEventTimeWindows,
    pub aggregate: Arc<A>,
    pub range: KeyGroupRange,
    pub max_parallelism: usize,
    /// Open windows by start, ascending.
    pub windows: VecDeque<(i64, KeyedStateMap<K, Acc>)>,
    pub watermark: i64,
    pub late_records: u64,
    /// Keys of the last window fired: the size hint for new windows.
    pub keys_per_window: usize,
}

impl<K, Acc, KeyFn, TimestampFn, A> TumblingWindowAggregate<K, Acc, KeyFn, TimestampFn, A> {
    pub(crate) fn new(key_fn: KeyFn, timestamp_fn: TimestampFn, assigner: TumblingEventTimeWindows, aggregate: Arc<A>, range: KeyGroupRange, max_parallelism: usize) -> Self {
        TumblingWindowAggregate {
            key_fn,
            timestamp_fn,
            assigner,
            aggregate,
            range,
            max_parallelism,
            windows: VecDeque::new(),
            watermark: i64::MIN,
            late_records: 0,
            keys_per_window: 0,
        }
    }
}

/// The state of the window starting at `start` in `windows` (ascending by start), opened with
/// `open` if needed.
#[inline]
fn open_window<S>(windows: &mut VecDeque<(i64, S)>, start: i64, open: impl FnOnce() -> S) -> &mut S {
    let position = match windows.iter().rposition(|(s, _)| *s <= start) {
        Some(i) if windows[i].0 == start => i,
        found => {
            let at = found.map_or(0, |i| i + 1);
            windows.insert(at, (start, open()));
            at
        }
    };
    &mut windows[position].1
}

impl<In, Out, K, Acc, KeyFn, TimestampFn, A> FrameOperator<In, WindowResult<K, Out>> for TumblingWindowAggregate<K, Acc, KeyFn, TimestampFn, A>
where
    In: Record,
    Out: Record,
    K: Key,
    Acc: Send + 'static,
    KeyFn: Fn(&In) -> K + Send + 'static,
    TimestampFn: Fn(&In) -> i64 + Send + 'static,
    A: AggregateFunction<In, Acc, Out>,
{
    fn process(&mut self, frame: Vec<In>, _out: &mut Output<'_, WindowResult<K, Out>>) -> Result<(), UserError> {
        for record in frame {
            let window = self.assigner.assign((self.timestamp_fn)(&record));
            if window.max_timestamp() <= self.watermark {
                self.late_records += 1;
                continue;
            }
            let key = (self.key_fn)(&record);
            let state = open_window(&mut self.windows, window.start, || KeyedStateMap::with_capacity(self.range, self.max_parallelism, self.keys_per_window));
            let aggregate = &self.aggregate;
            state.update(key, || aggregate.create_accumulator(), |_, accumulator| aggregate.add(accumulator, record));
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, WindowResult<K, Out>>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let size = self.assigner.size_ms();
        while let Some(&(start, _)) = self.windows.front() {
            let window = TimeWindow { start, end: start + size };
            if window.max_timestamp() > watermark {
                break;
            }
            let (_, state) = self.windows.pop_front().expect("front exists");
            self.keys_per_window = state.len();
            for (key, accumulator) in state.into_entries() {
                out.emit(WindowResult { key, window, value: self.aggregate.get_result(&accumulator) });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_open_in_start_order_whatever_order_records_come_in() {
        let mut windows: VecDeque<(i64, u32)> = VecDeque::new();
        for start in [20, 10, 30, 20, 0, 30] {
            *open_window(&mut windows, start, || 0) += 1;
        }
        assert_eq!(windows.into_iter().collect::<Vec<_>>(), vec![(0, 1), (10, 1), (20, 2), (30, 2)]);
    }
}
