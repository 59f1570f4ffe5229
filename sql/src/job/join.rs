//! Joins as keyed operators: both inputs keyed by their join keys and unioned (each row tagged
//! with its side), so a key's rows of both sides meet in one subtask.
//!
//! A regular join keeps each side's rows per key (with how many partners each has) and emits a
//! row's pairs when it comes: `+I` for an added row, `-D` for a retracted one; an outer side's
//! row without partners is emitted padded with NULLs, and retracted when its first partner comes
//! (as Flink's streaming join). A window join keeps a window's rows until the watermark passes
//! its end, then emits its pairs (and unpaired outer rows) and forgets them. Inner interval joins
//! use the engine's interval join operator; outer ones [`IntervalJoinFunction`], which keeps each
//! row until no partner can come and then emits it padded with NULLs if it never had one.

use std::time::Duration;

use tethys_engine::state::{StateBackend, StateDescriptor, StateTtlConfig, TimeDomain, ValueState};
use tethys_engine::{KeyedProcessFunction, ProcessContext, UserError};

use super::KeyedRow;
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::plan::JoinKind;
use crate::value::{Row, RowKey, RowKind, Value};

/// A row of one side of a join, keyed.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SidedRow {
    /// From the left input (else the right).
    pub left: bool,
    /// The row with its key (and, for window joins, its window's end as its time).
    pub keyed: KeyedRow,
}

/// A kept row: its values, how many times it is in, how many partners it has.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StoredRow {
    /// The row's values.
    pub values: Vec<Value>,
    /// Copies of it kept (an added row is a new entry, so this is above 1 only in state restored
    /// from a checkpoint of a version that merged equal rows).
    pub count: i64,
    /// Rows of the other side it pairs with.
    pub partners: i64,
}

/// A key's kept rows of both sides.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct JoinState {
    /// Left rows.
    pub left: Vec<StoredRow>,
    /// Right rows.
    pub right: Vec<StoredRow>,
}

/// What every join operator pairs and how it lays out a joined row.
#[derive(Clone)]
pub(super) struct JoinRows {
    pub kind: JoinKind,
    /// The condition beyond the keys' equality (an interval join's time bounds included).
    pub residual: Option<Scalar>,
    pub left_width: usize,
    pub right_width: usize,
    pub context: EvalContext,
}

/// The regular and window join.
pub(super) struct JoinFunction {
    pub rows: JoinRows,
    /// Window join: rows wait for their window's end.
    pub window: bool,
    pub ttl_ms: Option<i64>,
    pub state: Option<ValueState<JoinState>>,
}

impl JoinRows {
    fn joined(&self, left: Option<&[Value]>, right: Option<&[Value]>, kind: RowKind) -> Row {
        let nulls = |width| std::iter::repeat_n(Value::Null, width);
        let mut values = Vec::with_capacity(self.left_width + self.right_width);
        match left {
            Some(left) => values.extend_from_slice(left),
            None => values.extend(nulls(self.left_width)),
        }
        match right {
            Some(right) => values.extend_from_slice(right),
            None => values.extend(nulls(self.right_width)),
        }
        Row { kind, values }
    }

    /// Whether two rows pair (the residual condition holds of them joined); `scratch` holds the
    /// joined row while it is tested, so testing many pairs allocates once.
    fn pairs(&self, left: &[Value], right: &[Value], scratch: &mut Vec<Value>) -> Result<bool, String> {
        match &self.residual {
            None => Ok(true),
            Some(residual) => {
                scratch.clear();
                scratch.extend_from_slice(left);
                scratch.extend_from_slice(right);
                Ok(residual.test(scratch, &self.context)? == Some(true))
            }
        }
    }

    /// A row of one side alone, the other side's columns NULL.
    fn padded(&self, from_left: bool, values: &[Value], kind: RowKind) -> Row {
        if from_left {
            self.joined(Some(values), None, kind)
        } else {
            self.joined(None, Some(values), kind)
        }
    }

    /// Whether a row of the left (or right) side alone is emitted when it has no partner.
    fn keeps(&self, left: bool) -> bool {
        if left {
            self.kind.keeps_left()
        } else {
            self.kind.keeps_right()
        }
    }
}

impl JoinFunction {
    /// A row of one side added or retracted: its pairs with the other side's rows.
    fn regular(&self, state: &mut JoinState, from_left: bool, row: Row, out: &mut impl FnMut(Row)) -> Result<(), String> {
        let accumulate = row.kind.is_accumulate();
        let (keeps_own, keeps_other) = if from_left {
            (self.rows.kind.keeps_left(), self.rows.kind.keeps_right())
        } else {
            (self.rows.kind.keeps_right(), self.rows.kind.keeps_left())
        };
        let (own, other) = if from_left { (&mut state.left, &mut state.right) } else { (&mut state.right, &mut state.left) };
        // Only a retraction looks for its row: an added row is kept as one more entry (equal rows
        // may be kept apart; each counts the same), so an append-only side of many rows per key
        // costs no scan of them per row.
        let position = if accumulate { None } else { own.iter().position(|stored| stored.values == row.values) };
        if !accumulate && position.is_none() {
            // A retraction of a row never seen (its state expired): nothing to take back.
            return Ok(());
        }
        let pair = |own_values: &[Value], other_values: &[Value], kind| {
            if from_left {
                self.rows.joined(Some(own_values), Some(other_values), kind)
            } else {
                self.rows.joined(Some(other_values), Some(own_values), kind)
            }
        };
        let padded = |values: &[Value], own_side: bool, kind| {
            let is_left = own_side == from_left;
            if is_left {
                self.rows.joined(Some(values), None, kind)
            } else {
                self.rows.joined(None, Some(values), kind)
            }
        };
        let mut partners = 0;
        let mut scratch = Vec::new();
        for stored in other.iter_mut() {
            let matched = if from_left {
                self.rows.pairs(&row.values, &stored.values, &mut scratch)?
            } else {
                self.rows.pairs(&stored.values, &row.values, &mut scratch)?
            };
            if !matched {
                continue;
            }
            partners += stored.count;
            if accumulate {
                if keeps_other && stored.partners == 0 {
                    for _ in 0..stored.count {
                        out(padded(&stored.values, false, RowKind::Delete));
                    }
                }
                stored.partners += 1;
                for _ in 0..stored.count {
                    out(pair(&row.values, &stored.values, RowKind::Insert));
                }
            } else {
                for _ in 0..stored.count {
                    out(pair(&row.values, &stored.values, RowKind::Delete));
                }
                stored.partners -= 1;
                if keeps_other && stored.partners == 0 {
                    for _ in 0..stored.count {
                        out(padded(&stored.values, false, RowKind::Insert));
                    }
                }
            }
        }
        if keeps_own && partners == 0 {
            out(padded(&row.values, true, if accumulate { RowKind::Insert } else { RowKind::Delete }));
        }
        match (accumulate, position) {
            (true, _) => own.push(StoredRow { values: row.values, count: 1, partners }),
            (false, Some(index)) => {
                own[index].count -= 1;
                if own[index].count == 0 {
                    own.remove(index);
                }
            }
            (false, None) => unreachable!("checked above"),
        }
        Ok(())
    }

    /// A window ended: its pairs, and its unpaired outer rows.
    fn fire_window(&self, state: &mut JoinState, out: &mut impl FnMut(Row)) -> Result<(), String> {
        let mut scratch = Vec::new();
        for left in state.left.iter_mut() {
            for right in state.right.iter_mut() {
                if self.rows.pairs(&left.values, &right.values, &mut scratch)? {
                    left.partners += 1;
                    right.partners += 1;
                    out(self.rows.joined(Some(&left.values), Some(&right.values), RowKind::Insert));
                }
            }
        }
        if self.rows.kind.keeps_left() {
            state
                .left
                .iter()
                .filter(|row| row.partners == 0)
                .for_each(|row| out(self.rows.joined(Some(&row.values), None, RowKind::Insert)));
        }
        if self.rows.kind.keeps_right() {
            state
                .right
                .iter()
                .filter(|row| row.partners == 0)
                .for_each(|row| out(self.rows.joined(None, Some(&row.values), RowKind::Insert)));
        }
        Ok(())
    }
}

/// A kept row of an interval join: its values, its time, the partners it has had.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TimedRow {
    /// The row's values.
    pub values: Vec<Value>,
    /// Its time (event time, milliseconds).
    pub time: i64,
    /// Rows of the other side it paired with.
    pub partners: i64,
}

/// A key's kept rows of both sides of an interval join.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct IntervalJoinState {
    /// Left rows.
    pub left: Vec<TimedRow>,
    /// Right rows.
    pub right: Vec<TimedRow>,
}

/// An outer interval join: right time minus left time within `[lower_ms, upper_ms]` (the
/// residual checks that, with the rest of the condition). A row is kept until the watermark
/// passes the last time a partner of it could have (left: its time + upper; right: its time -
/// lower), then forgotten, and emitted padded with NULLs if it is of an outer side and never
/// paired. A row that comes after that point still pairs with the rows kept, is not kept, and is
/// padded at once if it paired with none (as Flink's time-interval join). Append-only inputs, so
/// the output is append-only.
pub(super) struct IntervalJoinFunction {
    pub rows: JoinRows,
    pub lower_ms: i64,
    pub upper_ms: i64,
    pub state: Option<ValueState<IntervalJoinState>>,
}

impl IntervalJoinFunction {
    /// The time after which no partner of a row of the left (or right) side at `time` can come.
    fn expiry(&self, left: bool, time: i64) -> i64 {
        if left {
            time.saturating_add(self.upper_ms)
        } else {
            time.saturating_sub(self.lower_ms)
        }
    }

    /// Pairs a row with the other side's kept rows; keeps it unless `expired`.
    fn add(&self, state: &mut IntervalJoinState, left: bool, values: Vec<Value>, time: i64, expired: bool) -> Result<Vec<Row>, String> {
        let mut emitted = Vec::new();
        let other = if left { &mut state.right } else { &mut state.left };
        let mut partners = 0;
        let mut scratch = Vec::new();
        for stored in other.iter_mut() {
            let (left_values, right_values) = if left { (&values, &stored.values) } else { (&stored.values, &values) };
            if self.rows.pairs(left_values, right_values, &mut scratch)? {
                stored.partners += 1;
                partners += 1;
                emitted.push(self.rows.joined(Some(left_values), Some(right_values), RowKind::Insert));
            }
        }
        if !expired {
            let own = if left { &mut state.left } else { &mut state.right };
            own.push(TimedRow { values, time, partners });
        } else if partners == 0 && self.rows.keeps(left) {
            emitted.push(self.rows.padded(left, &values, RowKind::Insert));
        }
        Ok(emitted)
    }

    /// Forgets the rows no partner can come for any more by `watermark`, padding unpaired outer ones.
    fn expire(&self, state: &mut IntervalJoinState, watermark: i64) -> Vec<Row> {
        let mut emitted = Vec::new();
        for left in [true, false] {
            let rows = if left { &mut state.left } else { &mut state.right };
            rows.retain(|row| {
                if self.expiry(left, row.time) > watermark {
                    return true;
                }
                if row.partners == 0 && self.rows.keeps(left) {
                    emitted.push(self.rows.padded(left, &row.values, RowKind::Insert));
                }
                false
            });
        }
        emitted
    }
}

impl KeyedProcessFunction<RowKey, SidedRow, Row> for IntervalJoinFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.state = Some(state.register_value(&StateDescriptor::new("interval-join"))?);
        Ok(())
    }

    fn process_element(&mut self, record: SidedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        let handle = self.state.expect("opened");
        let SidedRow { left, keyed } = record;
        let expiry = self.expiry(left, keyed.time);
        let expired = expiry <= ctx.current_watermark();
        let emitted = handle.modify(&mut ctx.keyed, |slot| -> Result<Vec<Row>, String> {
            let state = slot.get_or_insert_with(IntervalJoinState::default);
            let emitted = self.add(state, left, keyed.row.values, keyed.time, expired)?;
            if state.left.is_empty() && state.right.is_empty() {
                *slot = None;
            }
            Ok(emitted)
        })?;
        if !expired {
            ctx.register_event_time_timer(expiry);
        }
        emitted.into_iter().for_each(|row| ctx.emit(row));
        Ok(())
    }

    fn on_timer(&mut self, timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::EventTime);
        let handle = self.state.expect("opened");
        let emitted = handle.modify(&mut ctx.keyed, |slot| {
            let Some(state) = slot.as_mut() else { return Vec::new() };
            let emitted = self.expire(state, timestamp);
            if state.left.is_empty() && state.right.is_empty() {
                *slot = None;
            }
            emitted
        });
        emitted.into_iter().for_each(|row| ctx.emit(row));
        Ok(())
    }
}

impl KeyedProcessFunction<RowKey, SidedRow, Row> for JoinFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        let mut descriptor = StateDescriptor::new("join");
        if let Some(ttl_ms) = self.ttl_ms {
            descriptor = descriptor.with_ttl(StateTtlConfig::new(Duration::from_millis(ttl_ms.max(1) as u64)));
        }
        self.state = Some(state.register_value(&descriptor)?);
        Ok(())
    }

    fn process_element(&mut self, record: SidedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        let handle = self.state.expect("opened");
        if self.window {
            if record.keyed.time - 1 < ctx.current_watermark() {
                // Its window has fired already: a late row, dropped as Flink drops it.
                return Ok(());
            }
            // Kept as it comes, changed in place: a window's rows are paired when it fires.
            handle.modify(&mut ctx.keyed, |slot| {
                let state = slot.get_or_insert_with(JoinState::default);
                let side = if record.left { &mut state.left } else { &mut state.right };
                side.push(StoredRow { values: record.keyed.row.values, count: 1, partners: 0 });
            });
            ctx.register_event_time_timer(record.keyed.time - 1);
            return Ok(());
        }
        let mut emitted = Vec::new();
        handle.modify(&mut ctx.keyed, |slot| -> Result<(), String> {
            let state = slot.get_or_insert_with(JoinState::default);
            self.regular(state, record.left, record.keyed.row, &mut |row| emitted.push(row))?;
            if state.left.is_empty() && state.right.is_empty() {
                *slot = None;
            }
            Ok(())
        })?;
        emitted.into_iter().for_each(|row| ctx.emit(row));
        Ok(())
    }

    fn on_timer(&mut self, _timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::EventTime);
        let handle = self.state.expect("opened");
        // The window's rows go with its firing: taken, not copied.
        let Some(mut state) = handle.take(&mut ctx.keyed) else { return Ok(()) };
        let mut emitted = Vec::new();
        self.fire_window(&mut state, &mut |row| emitted.push(row))?;
        emitted.into_iter().for_each(|row| ctx.emit(row));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(kind: JoinKind) -> JoinFunction {
        JoinFunction {
            rows: JoinRows { kind, residual: None, left_width: 1, right_width: 1, context: EvalContext::default() },
            window: false,
            ttl_ms: None,
            state: None,
        }
    }

    fn feed(function: &JoinFunction, changes: &[(bool, RowKind, i64)]) -> Vec<String> {
        let mut state = JoinState::default();
        let mut out = Vec::new();
        for (left, kind, value) in changes {
            function
                .regular(&mut state, *left, Row { kind: *kind, values: vec![Value::Int(*value)] }, &mut |row| out.push(row.to_string()))
                .unwrap();
        }
        out
    }

    fn interval(kind: JoinKind) -> IntervalJoinFunction {
        // Right time minus left time in [0, 5]: the residual says so, over the rows [value, time].
        let time_ok = {
            use crate::expr::{Arith, Compare, Numeric};
            let (left_time, right_time) = (Box::new(Scalar::Column(1)), Box::new(Scalar::Column(3)));
            let left_time_plus_5 = Scalar::Arith(Arith::Add, Numeric::Int, left_time.clone(), Box::new(Scalar::Literal(Value::Int(5))));
            Scalar::all_of(vec![
                Scalar::Compare(Compare::GtEq, right_time.clone(), left_time),
                Scalar::Compare(Compare::LtEq, right_time, Box::new(left_time_plus_5)),
            ])
        };
        let rows = JoinRows { kind, residual: time_ok, left_width: 2, right_width: 2, context: EvalContext::default() };
        IntervalJoinFunction { rows, lower_ms: 0, upper_ms: 5, state: None }
    }

    #[test]
    fn an_outer_interval_join_pads_a_row_once_no_partner_can_come() {
        let join = interval(JoinKind::Full);
        let mut state = IntervalJoinState::default();
        let row = |value: i64, time: i64| vec![Value::Int(value), Value::Int(time)];
        let mut out: Vec<String> = Vec::new();
        let mut add = |state: &mut IntervalJoinState, left, values, time, expired| {
            out.extend(join.add(state, left, values, time, expired).unwrap().iter().map(Row::to_string));
        };
        add(&mut state, true, row(1, 10), 10, false);
        add(&mut state, false, row(1, 12), 12, false);
        add(&mut state, true, row(2, 20), 20, false);
        // A right row past its time (the watermark is beyond 30 - 0): paired with what is kept,
        // else padded at once and not kept.
        add(&mut state, false, row(3, 30), 30, true);
        assert_eq!(out, ["+I[1, 10, 1, 12]", "+I[<NULL>, <NULL>, 3, 30]"]);
        assert_eq!((state.left.len(), state.right.len()), (2, 1));
        // At 15 the left row of 10 (its partners until 10 + 5) and the right row of 12 (until 12)
        // go, both paired; at 25 the left row of 20 goes, padded.
        assert!(join.expire(&mut state, 15).is_empty());
        assert_eq!((state.left.len(), state.right.len()), (1, 0));
        let padded: Vec<String> = join.expire(&mut state, 25).iter().map(Row::to_string).collect();
        assert_eq!(padded, ["+I[2, 20, <NULL>, <NULL>]"]);
        assert_eq!(state, IntervalJoinState::default());
        // An inner side is never padded.
        let mut state = IntervalJoinState::default();
        let left_join = interval(JoinKind::Left);
        assert!(left_join.add(&mut state, false, row(9, 9), 9, true).unwrap().is_empty());
    }

    #[test]
    fn an_inner_join_pairs_and_retracts() {
        let out = feed(
            &join(JoinKind::Inner),
            &[(true, RowKind::Insert, 1), (false, RowKind::Insert, 2), (false, RowKind::Insert, 3), (true, RowKind::Delete, 1)],
        );
        assert_eq!(out, ["+I[1, 2]", "+I[1, 3]", "-D[1, 2]", "-D[1, 3]"]);
    }

    #[test]
    fn a_left_join_pads_then_retracts_the_padding_when_a_partner_comes() {
        let out = feed(&join(JoinKind::Left), &[(true, RowKind::Insert, 1), (false, RowKind::Insert, 2), (false, RowKind::Delete, 2)]);
        assert_eq!(out, ["+I[1, <NULL>]", "-D[1, <NULL>]", "+I[1, 2]", "-D[1, 2]", "+I[1, <NULL>]"]);
        let out = feed(&join(JoinKind::Full), &[(false, RowKind::Insert, 2), (true, RowKind::Insert, 1)]);
        assert_eq!(out, ["+I[<NULL>, 2]", "-D[<NULL>, 2]", "+I[1, 2]"]);
    }
}
