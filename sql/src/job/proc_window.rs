//! Window aggregation over processing time (`TUMBLE`, `HOP`, `CUMULATE`, `SESSION` over a
//! `PROCTIME()` column), as Flink runs it: a row belongs to the windows of the wall clock of this
//! operator when the row reaches it (not to a time it carries), and a window fires once that
//! clock passes its end, by a processing-time timer. A session of a key runs from its first
//! row's arrival to the gap after its last's: a row arriving before the end extends it, one
//! arriving after begins the next (the clock only moves forward, so a key has one open session,
//! and one that ended and waits for its timer). What a window holds when its input ends without
//! its end having come is dropped, as Flink drops it.

use tethys_engine::state::{StateBackend, StateDescriptor, TimeDomain, ValueState};
use tethys_engine::{KeyedProcessFunction, ProcessContext, UserError};

use super::{windows_of, KeyedRow};
use crate::aggregate::{Accumulators, Aggregates};
use crate::plan::WindowKind;
use crate::value::{Row, RowKey, RowKind, Value};

/// One open window of a key.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OpenWindow {
    /// Its start (inclusive), epoch milliseconds.
    pub start: i64,
    /// Its end (exclusive).
    pub end: i64,
    /// What its rows add up to so far.
    pub accumulators: Accumulators,
}

/// A key's open windows.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OpenWindows {
    /// The windows, in no order.
    pub windows: Vec<OpenWindow>,
}

/// The operator: per key its open windows, each fired (its row: the key's values, window_start,
/// window_end, window_time, the aggregates) when the processing-time timer at its end goes off.
pub(super) struct ProcTimeWindowAggregate {
    pub aggregates: Aggregates,
    pub kind: WindowKind,
    pub state: Option<ValueState<OpenWindows>>,
}

impl ProcTimeWindowAggregate {
    /// Adds a row, arriving at processing time `now`, to its windows; returns their ends.
    fn add(&self, open: &mut OpenWindows, row: &Row, now: i64) -> Result<Vec<i64>, String> {
        if let WindowKind::Session { gap_ms } = self.kind {
            // An extended session keeps its timer: when it goes off at the old end, it is set
            // again at the new one (`on_timer`), so a key has one timer, however many rows.
            let (index, new) = match open.windows.iter().position(|window| window.end > now) {
                Some(index) => {
                    open.windows[index].end = now + gap_ms;
                    (index, false)
                }
                None => {
                    open.windows.push(OpenWindow { start: now, end: now + gap_ms, accumulators: self.aggregates.create() });
                    (open.windows.len() - 1, true)
                }
            };
            self.aggregates.accumulate(&mut open.windows[index].accumulators, row)?;
            return Ok(if new { vec![open.windows[index].end] } else { Vec::new() });
        }
        let windows = windows_of(self.kind, now);
        for &(start, end) in &windows {
            let index = match open.windows.iter().position(|window| window.start == start && window.end == end) {
                Some(index) => index,
                None => {
                    open.windows.push(OpenWindow { start, end, accumulators: self.aggregates.create() });
                    open.windows.len() - 1
                }
            };
            self.aggregates.accumulate(&mut open.windows[index].accumulators, row)?;
        }
        Ok(windows.into_iter().map(|(_, end)| end).collect())
    }

    /// Takes the windows that ended at or before `time`, as result rows.
    fn fire(&self, open: &mut OpenWindows, key: &RowKey, time: i64) -> Vec<Row> {
        let mut fired = Vec::new();
        open.windows.retain(|window| {
            if window.end > time {
                return true;
            }
            fired.push(window.clone());
            false
        });
        fired.sort_by_key(|window| (window.end, window.start));
        fired
            .into_iter()
            .map(|window| {
                let mut values = key.0.to_vec();
                values.extend([Value::Timestamp(window.start), Value::Timestamp(window.end), Value::Timestamp(window.end - 1)]);
                values.extend(self.aggregates.results(&window.accumulators));
                Row { kind: RowKind::Insert, values }
            })
            .collect()
    }
}

impl KeyedProcessFunction<RowKey, KeyedRow, Row> for ProcTimeWindowAggregate {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.state = Some(state.register_value(&StateDescriptor::new("proc-time-windows"))?);
        Ok(())
    }

    fn process_element(&mut self, record: KeyedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        let handle = self.state.expect("opened");
        let now = ctx.current_processing_time();
        let ends = handle.modify(&mut ctx.keyed, |slot| self.add(slot.get_or_insert_with(OpenWindows::default), &record.row, now))?;
        // At the end itself, not its last millisecond: a row that comes during that millisecond
        // still belongs to the window, and once the clock reads the end no row can.
        for end in ends {
            ctx.register_processing_time_timer(end);
        }
        Ok(())
    }

    fn on_timer(&mut self, timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::ProcessingTime);
        let handle = self.state.expect("opened");
        let key = ctx.key().clone();
        let (fired, open_ends) = handle.modify(&mut ctx.keyed, |slot| {
            let Some(open) = slot.as_mut() else { return (Vec::new(), Vec::new()) };
            let fired = self.fire(open, &key, timestamp);
            let ends: Vec<i64> = open.windows.iter().map(|window| window.end).collect();
            if open.windows.is_empty() {
                *slot = None;
            }
            (fired, ends)
        });
        fired.into_iter().for_each(|row| ctx.emit(row));
        if matches!(self.kind, WindowKind::Session { .. }) {
            // A session extended since its timer was set: its timer, at its end now.
            open_ends.into_iter().filter(|end| *end > timestamp).for_each(|end| ctx.register_processing_time_timer(end));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{AggCall, AggKind};
    use crate::types::SqlType;

    /// `COUNT(*)` alone.
    fn count_star() -> Aggregates {
        let count = AggCall {
            kind: AggKind::CountStar,
            argument: None,
            separator: ",".into(),
            distinct: false,
            filter: None,
            result_type: SqlType::BigInt,
            text: "COUNT(*)".into(),
            retracts: false,
            user: None,
        };
        Aggregates { calls: vec![count], context: Default::default() }
    }

    #[test]
    fn rows_go_to_the_windows_of_their_arrival_and_fire_at_the_windows_end() {
        let aggregates = count_star();
        let function =
            ProcTimeWindowAggregate { aggregates, kind: WindowKind::Hop { slide_ms: 5, size_ms: 10, offset_ms: 0 }, state: None };
        let mut open = OpenWindows::default();
        let row = Row::insert(Vec::new());
        assert_eq!(function.add(&mut open, &row, 12).unwrap(), [15, 20]);
        assert_eq!(function.add(&mut open, &row, 14).unwrap(), [15, 20]);
        assert_eq!(function.add(&mut open, &row, 17).unwrap(), [20, 25]);
        let key = RowKey::from(vec![Value::Int(7)]);
        assert!(function.fire(&mut open, &key, 14).is_empty(), "no window ends by 14");
        let fired: Vec<String> = function.fire(&mut open, &key, 20).iter().map(Row::to_string).collect();
        assert_eq!(
            fired,
            [
                "+I[7, 1970-01-01 00:00:00.005, 1970-01-01 00:00:00.015, 1970-01-01 00:00:00.014, 2]",
                "+I[7, 1970-01-01 00:00:00.010, 1970-01-01 00:00:00.020, 1970-01-01 00:00:00.019, 3]"
            ]
        );
        assert_eq!(open.windows.len(), 1, "the window of 15 to 25 stays open");
    }

    #[test]
    fn a_session_runs_from_its_first_rows_arrival_to_the_gap_after_its_last() {
        let aggregates = count_star();
        let function = ProcTimeWindowAggregate { aggregates, kind: WindowKind::Session { gap_ms: 5 }, state: None };
        let mut open = OpenWindows::default();
        let row = Row::insert(Vec::new());
        assert_eq!(function.add(&mut open, &row, 10).unwrap(), [15], "a new session: a timer at its end");
        assert!(function.add(&mut open, &row, 14).unwrap().is_empty(), "extended to 19: its timer, at 15, is set again then");
        assert_eq!(open.windows[0].end, 19);
        // At 19 the session has ended (its timer may not have run yet): a new one begins.
        assert_eq!(function.add(&mut open, &row, 19).unwrap(), [24]);
        let key = RowKey::from(vec![Value::Int(7)]);
        assert!(function.fire(&mut open, &key, 15).is_empty(), "the timer of the end it had before does nothing");
        let fired: Vec<String> = function.fire(&mut open, &key, 19).iter().map(Row::to_string).collect();
        assert_eq!(fired, ["+I[7, 1970-01-01 00:00:00.010, 1970-01-01 00:00:00.019, 1970-01-01 00:00:00.018, 2]"]);
        assert_eq!(function.fire(&mut open, &key, 24).len(), 1);
        assert!(open.windows.is_empty());
    }
}
