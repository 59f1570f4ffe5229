//! The keyed window aggregate operator: one accumulator per (window, key), fired by the watermark.
//!
//! Windows are kept in a `BTreeMap` by start, each with its keys' accumulators by key group, so
//! firing takes whole windows from the front in order, with no per-key timer. Records of a window
//! that has already fired are dropped and counted as late.

use std::collections::BTreeMap;
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
    pub windows: BTreeMap<i64, KeyedStateMap<K, Acc>>,
    pub watermark: i64,
    pub late_records: u64,
}

impl<K, Acc, KeyFn, TimestampFn, A> TumblingWindowAggregate<K, Acc, KeyFn, TimestampFn, A> {
    pub(crate) fn new(key_fn: KeyFn, timestamp_fn: TimestampFn, assigner: TumblingEventTimeWindows, aggregate: Arc<A>, range: KeyGroupRange, max_parallelism: usize) -> Self {
        TumblingWindowAggregate { key_fn, timestamp_fn, assigner, aggregate, range, max_parallelism, windows: BTreeMap::new(), watermark: i64::MIN, late_records: 0 }
    }
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
            let (range, max_parallelism) = (self.range, self.max_parallelism);
            let state = self.windows.entry(window.start).or_insert_with(|| KeyedStateMap::new(range, max_parallelism));
            let aggregate = &self.aggregate;
            state.update((self.key_fn)(&record), || aggregate.create_accumulator(), |_, accumulator| aggregate.add(accumulator, record));
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, WindowResult<K, Out>>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let size = self.assigner.size_ms();
        while let Some(entry) = self.windows.first_entry() {
            let window = TimeWindow { start: *entry.key(), end: *entry.key() + size };
            if window.max_timestamp() > watermark {
                break;
            }
            for (key, accumulator) in entry.remove().into_entries() {
                out.emit(WindowResult { key, window, value: self.aggregate.get_result(&accumulator) });
            }
        }
        Ok(())
    }
}
