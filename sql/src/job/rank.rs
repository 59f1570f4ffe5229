//! Top-N and deduplication (`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)` kept to the
//! first N rows), keyed by the partition.
//!
//! Over the stream, a partition keeps its top N rows; each row that enters them emits the
//! changes of the ranks it moved (`-U`/`+U` for a rank whose row changed, `+I` for a new rank,
//! `-D` for a row pushed out), as Flink's Top-N with its row number; when the row number is not
//! read (`ORDER BY ... LIMIT n`), only `+I` of the entering row and `-D` of the one it pushed
//! out, as Flink's Top-N without it. Per window, a window's top
//! N rows are kept until the watermark passes its end, then emitted once as inserts.
//!
//! Over an input with updates (a GROUP BY's changelog), as Flink's retractable Top-N: a
//! partition keeps all its rows, not only the top N, since a row retracted from the top lets the
//! next one in. `+I`/`+U` add a row, `-D`/`-U` remove one equal to it, and the top's changes are
//! emitted as above.

use tethys_engine::state::{StateBackend, StateDescriptor, TimeDomain, ValueState};
use tethys_engine::{KeyedProcessFunction, ProcessContext, UserError};

use super::KeyedRow;
use crate::value::{Row, RowKey, RowKind, Value};

/// A partition's top rows, best first: each the input row's values, then its sort key.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TopRows {
    /// The rows.
    pub rows: Vec<Vec<Value>>,
}

pub(super) struct RankFunction {
    /// Columns of the input row; the sort key follows them.
    pub width: usize,
    /// Per sort key column: descending.
    pub descending: Vec<bool>,
    pub limit: usize,
    /// Ranked once per window, when the watermark passes its end.
    pub window: bool,
    /// Whether the row number is read: without it a row entering the top emits `+I` of itself
    /// and `-D` of the row it pushed out, as Flink's Top-N without row number does.
    pub numbered: bool,
    /// The input has updates: every row of a partition is kept (see the module's doc).
    pub retracting: bool,
    pub state: Option<ValueState<TopRows>>,
}

impl RankFunction {
    fn compare(&self, a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        for (i, descending) in self.descending.iter().enumerate() {
            let ordering = a[self.width + i].total_cmp(&b[self.width + i]);
            let ordering = if *descending { ordering.reverse() } else { ordering };
            if ordering.is_ne() {
                return ordering;
            }
        }
        std::cmp::Ordering::Equal
    }

    /// `rows` with `row` in its place (after rows ranking equal), cut to the limit: the place,
    /// or `None` if it did not enter.
    fn insert(&self, rows: &mut Vec<Vec<Value>>, row: Vec<Value>) -> Option<usize> {
        let position = self.place(rows, row)?;
        rows.truncate(self.limit);
        Some(position)
    }

    /// `rows` with `row` in its place, one beyond the limit if it was full: the place, or `None`
    /// if it did not enter.
    fn place(&self, rows: &mut Vec<Vec<Value>>, row: Vec<Value>) -> Option<usize> {
        let position = rows.partition_point(|existing| self.compare(existing, &row).is_le());
        if position >= self.limit {
            return None;
        }
        rows.insert(position, row);
        Some(position)
    }

    /// Applies a change of an input with updates to all of a partition's `rows`: the rank at
    /// which a row came in or left, or `None` if nothing within the top changed. A retraction of
    /// a row the partition does not hold (its state expired) changes nothing.
    fn apply_change(&self, rows: &mut Vec<Vec<Value>>, row: Row) -> Option<Change> {
        let values = row.values;
        if !row.kind.is_accumulate() {
            let first = rows.partition_point(|existing| self.compare(existing, &values).is_lt());
            let offset = rows[first..]
                .iter()
                .take_while(|existing| self.compare(existing, &values).is_eq())
                .position(|existing| existing[..self.width] == values[..self.width])?;
            let removed = rows.remove(first + offset);
            (first + offset < self.limit).then_some(Change::Left { rank: first + offset, row: removed })
        } else {
            let position = rows.partition_point(|existing| self.compare(existing, &values).is_le());
            rows.insert(position, values);
            (position < self.limit).then_some(Change::Entered { rank: position })
        }
    }

    /// Emits what a change did to the top of a partition with all its `rows` (`before`: its top
    /// rows before): per rank whose row changed, `-U`/`+U`, `+I` for a new rank, `-D` for a rank
    /// left empty; without the row number, `-D` of the row that left the top, then `+I` of the one
    /// that entered it.
    fn emit_change(&self, change: Change, before: &[Vec<Value>], rows: &[Vec<Value>], ctx: &mut ProcessContext<'_, '_, RowKey, Row>) {
        if self.numbered {
            let from = match &change {
                Change::Entered { rank } | Change::Left { rank, .. } => *rank,
            };
            self.emit_rank_changes(from, before, rows, ctx);
            return;
        }
        let last = self.limit - 1;
        match change {
            Change::Entered { rank } => {
                if let Some(pushed_out) = rows.get(self.limit) {
                    ctx.emit(self.ranked(pushed_out, last, RowKind::Delete));
                }
                ctx.emit(self.ranked(&rows[rank], rank, RowKind::Insert));
            }
            Change::Left { rank, row } => {
                ctx.emit(self.ranked(&row, rank, RowKind::Delete));
                if let Some(next) = rows.get(last) {
                    ctx.emit(self.ranked(next, last, RowKind::Insert));
                }
            }
        }
    }

    /// Per rank from `from` within the limit whose row changed from `before` to `rows`: `-U` of
    /// the old row and `+U` of the new, `+I` for a rank that had none, `-D` for one left empty.
    fn emit_rank_changes(&self, from: usize, before: &[Vec<Value>], rows: &[Vec<Value>], ctx: &mut ProcessContext<'_, '_, RowKey, Row>) {
        for rank in from..self.limit {
            match (before.get(rank), rows.get(rank)) {
                (Some(old), Some(new)) if old != new => {
                    ctx.emit(self.ranked(old, rank, RowKind::UpdateBefore));
                    ctx.emit(self.ranked(new, rank, RowKind::UpdateAfter));
                }
                (None, Some(new)) => ctx.emit(self.ranked(new, rank, RowKind::Insert)),
                (Some(old), None) => ctx.emit(self.ranked(old, rank, RowKind::Delete)),
                _ => {}
            }
        }
    }

    /// Adds `record` to its partition's `top` rows, emitting what changed.
    fn add(&self, top: &mut TopRows, record: KeyedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) {
        if self.window {
            if record.time - 1 < ctx.current_watermark() {
                return;
            }
            self.insert(&mut top.rows, record.row.values);
            ctx.register_event_time_timer(record.time - 1);
            return;
        }
        if self.retracting {
            let before: Vec<Vec<Value>> = if self.numbered { top.rows.iter().take(self.limit).cloned().collect() } else { Vec::new() };
            if let Some(change) = self.apply_change(&mut top.rows, record.row) {
                self.emit_change(change, &before, &top.rows, ctx);
            }
            return;
        }
        let Some(rank) = self.place(&mut top.rows, record.row.values) else { return };
        if !self.numbered {
            if top.rows.len() > self.limit {
                let pushed_out = top.rows.pop().expect("beyond the limit");
                ctx.emit(self.ranked(&pushed_out, self.limit - 1, RowKind::Delete));
            }
            ctx.emit(self.ranked(&top.rows[rank], rank, RowKind::Insert));
            return;
        }
        // Every rank from the new row's down moved one place: the row a rank held before is
        // the one after it now, so the rows before need no copy.
        for rank in rank..self.limit.min(top.rows.len()) {
            let new = &top.rows[rank];
            match top.rows.get(rank + 1) {
                Some(old) if old != new => {
                    ctx.emit(self.ranked(old, rank, RowKind::UpdateBefore));
                    ctx.emit(self.ranked(new, rank, RowKind::UpdateAfter));
                }
                Some(_) => {}
                None => ctx.emit(self.ranked(new, rank, RowKind::Insert)),
            }
        }
        top.rows.truncate(self.limit);
    }

    fn ranked(&self, values: &[Value], rank: usize, kind: RowKind) -> Row {
        let mut out = values[..self.width].to_vec();
        out.push(Value::Int(rank as i64 + 1));
        Row { kind, values: out }
    }
}

/// What a change of an input with updates did to the top of its partition.
enum Change {
    /// A row came in at `rank`.
    Entered { rank: usize },
    /// `row` left from `rank`.
    Left { rank: usize, row: Vec<Value> },
}

impl KeyedProcessFunction<RowKey, KeyedRow, Row> for RankFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.state = Some(state.register_value(&StateDescriptor::new("top-n"))?);
        Ok(())
    }

    fn process_element(&mut self, record: KeyedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        let handle = self.state.expect("opened");
        // The partition's rows are taken, changed in place and put back (none left: none kept),
        // never copied per record.
        let mut top = handle.take(&mut ctx.keyed).unwrap_or_default();
        self.add(&mut top, record, ctx);
        if !top.rows.is_empty() {
            handle.update(&mut ctx.keyed, top);
        }
        Ok(())
    }

    fn on_timer(&mut self, _timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::EventTime);
        let handle = self.state.expect("opened");
        if let Some(top) = handle.take(&mut ctx.keyed) {
            for (rank, row) in top.rows.iter().enumerate() {
                ctx.emit(self.ranked(row, rank, RowKind::Insert));
            }
        }
        Ok(())
    }
}
