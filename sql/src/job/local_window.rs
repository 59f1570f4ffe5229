//! Two-phase window aggregation, as Flink's local and global slicing window aggregates.
//!
//! The local phase, in each subtask before the shuffle, sums each frame's rows per key and
//! slice of the windows (`WindowKind::slices`) into one partial aggregate. A slice lies whole in
//! every window it touches, so the partial, timed at its slice's last millisecond, lands in
//! exactly the windows its rows are in. The global phase is the engine's window operator merging
//! partials instead of adding rows: a hopping window's row is then one map update in the local
//! phase instead of one per window it is in, and a hot key sends one record per frame and slice
//! over the shuffle instead of one per row. The local phase keeps nothing between frames, so it
//! has no state to checkpoint, and the global phase keeps the same state (accumulators per key
//! and window) under the same id as the one-phase aggregate.

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;
use tethys_engine::operator::{FrameOperator, Output};
use tethys_engine::UserError;

use crate::aggregate::{Accumulators, Aggregates};
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::value::{KeyValues, Row, RowKey, Value};

/// The rows of one key and slice in one frame of one subtask, aggregated.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WindowPartial {
    /// The grouping key.
    pub key: RowKey,
    /// The last millisecond of the slice (`i64::MIN` for rows without an event time, which are
    /// too late for every window).
    pub time: i64,
    /// The accumulators of the rows.
    pub accumulators: Accumulators,
}

/// The local phase: evaluates each row's key, event time and aggregate arguments and adds the
/// row to its key and slice's partial; a frame's partials go out at the frame's end.
#[derive(Clone)]
pub(super) struct LocalWindowAggregate {
    keys: Vec<Scalar>,
    inputs: Vec<Scalar>,
    time_column: usize,
    /// Added to the time column's value.
    time_offset_ms: i64,
    /// Slices are `slice_ms` long and start at `slice_offset_ms` plus a multiple of it.
    slice_ms: i64,
    slice_offset_ms: i64,
    aggregates: Aggregates,
    context: EvalContext,
    /// This frame's partials, in the order their keys and slices first came.
    partials: Vec<WindowPartial>,
    /// Where each of this frame's partials is in `partials`, by the hash of its slice and key.
    index: HashTable<usize>,
    /// The row being added: its key, and its aggregate arguments (kept to reuse their memory).
    key: KeyValues,
    arguments: Row,
}

impl LocalWindowAggregate {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        keys: Vec<Scalar>,
        inputs: Vec<Scalar>,
        time_column: usize,
        time_offset_ms: i64,
        (slice_ms, slice_offset_ms): (i64, i64),
        aggregates: Aggregates,
        context: EvalContext,
    ) -> Self {
        assert!(slice_ms > 0, "slices are at least a millisecond long");
        LocalWindowAggregate {
            keys,
            inputs,
            time_column,
            time_offset_ms,
            slice_ms,
            slice_offset_ms,
            aggregates,
            context,
            partials: Vec::new(),
            index: HashTable::new(),
            key: KeyValues::new(),
            arguments: Row::insert(Vec::new()),
        }
    }

    /// The last millisecond of the slice holding `time`.
    fn slice_max_timestamp(&self, time: i64) -> i64 {
        let into_slice = time.wrapping_sub(self.slice_offset_ms).rem_euclid(self.slice_ms);
        time.saturating_sub(into_slice).saturating_add(self.slice_ms - 1)
    }
}

/// The hash a partial is found by in a frame.
fn partial_hash(time: i64, key: &[Value]) -> u64 {
    FxBuildHasher.hash_one((time, key))
}

impl FrameOperator<Row, WindowPartial> for LocalWindowAggregate {
    fn process(&mut self, frame: Vec<Row>, out: &mut Output<'_, WindowPartial>) -> Result<(), UserError> {
        for row in frame {
            let time = match row.values[self.time_column] {
                Value::Timestamp(ms) => self.slice_max_timestamp(ms.saturating_add(self.time_offset_ms)),
                _ => i64::MIN,
            };
            self.key.clear();
            for scalar in &self.keys {
                let value =
                    scalar.eval(&row.values, &self.context).map_err(|error| format!("{error}, in the grouping key of row {row}"))?;
                self.key.push(value);
            }
            let hash = partial_hash(time, &self.key);
            let partials = &mut self.partials;
            let found = self.index.find(hash, |&at| partials[at].time == time && partials[at].key.0 == self.key).copied();
            let at = match found {
                Some(at) => at,
                None => {
                    let key = RowKey(std::mem::replace(&mut self.key, KeyValues::with_capacity(self.keys.len())));
                    partials.push(WindowPartial { key, time, accumulators: self.aggregates.create() });
                    let at = partials.len() - 1;
                    self.index.insert_unique(hash, at, |&at| partial_hash(partials[at].time, &partials[at].key.0));
                    at
                }
            };
            self.arguments.kind = row.kind;
            self.arguments.values.clear();
            for scalar in &self.inputs {
                let value =
                    scalar.eval(&row.values, &self.context).map_err(|error| format!("{error}, in an aggregate's argument of row {row}"))?;
                self.arguments.values.push(value);
            }
            self.aggregates.accumulate(&mut partials[at].accumulators, &self.arguments)?;
        }
        self.index.clear();
        if !self.partials.is_empty() {
            out.emit_frame(std::mem::take(&mut self.partials));
        }
        Ok(())
    }
}

/// The global phase's aggregate function: partials merged into each window their slice is in.
#[derive(Clone)]
pub(super) struct MergedPartials(pub Aggregates);

impl tethys_engine::AggregateFunction<WindowPartial, Accumulators, Vec<Value>> for MergedPartials {
    fn create_accumulator(&self) -> Accumulators {
        self.0.create()
    }

    fn add(&self, accumulator: &mut Accumulators, partial: WindowPartial) {
        self.add_ref(accumulator, &partial);
    }

    fn add_ref(&self, accumulator: &mut Accumulators, partial: &WindowPartial) {
        self.0.merge_into(accumulator, &partial.accumulators);
    }

    fn get_result(&self, accumulator: &Accumulators) -> Vec<Value> {
        self.0.results(accumulator)
    }
}

impl tethys_engine::MergingAggregateFunction<WindowPartial, Accumulators, Vec<Value>> for MergedPartials {
    fn merge(&self, earlier: Accumulators, later: Accumulators) -> Accumulators {
        self.0.merge(earlier, later)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::WindowKind;

    fn local(kind: WindowKind) -> LocalWindowAggregate {
        let aggregates = Aggregates { calls: Vec::new(), context: EvalContext::default() };
        LocalWindowAggregate::new(Vec::new(), Vec::new(), 0, 0, kind.slices().unwrap(), aggregates, EvalContext::default())
    }

    #[test]
    fn a_time_falls_in_the_slice_every_window_holding_it_holds_whole() {
        let hop = local(WindowKind::Hop { slide_ms: 4, size_ms: 10, offset_ms: 1 });
        // Slices of gcd(10, 4) = 2 ms starting at odd times.
        assert_eq!((hop.slice_ms, hop.slice_offset_ms), (2, 1));
        assert_eq!(hop.slice_max_timestamp(1), 2);
        assert_eq!(hop.slice_max_timestamp(2), 2);
        assert_eq!(hop.slice_max_timestamp(3), 4);
        assert_eq!(hop.slice_max_timestamp(-1), 0);
        assert_eq!(hop.slice_max_timestamp(-2), -2);
        let cumulate = local(WindowKind::Cumulate { step_ms: 5, max_size_ms: 20, offset_ms: 0 });
        assert_eq!(cumulate.slice_max_timestamp(12), 14);
        let tumble = local(WindowKind::Tumble { size_ms: 1000, offset_ms: 0 });
        assert_eq!(tumble.slice_max_timestamp(1999), 1999);
        assert_eq!(tumble.slice_max_timestamp(i64::MAX - 3), i64::MAX, "no overflow at the end of time");
        assert_eq!(tumble.slice_max_timestamp(i64::MIN + 3), i64::MIN + 999);
    }
}
