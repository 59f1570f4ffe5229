//! OVER aggregates: each row with the aggregates of its frame, keyed by the partition and
//! computed in event-time order.
//!
//! Rows wait until the watermark passes their time (a timer at it), then are taken in time
//! order: with `RANGE` frames the rows of one time are peers and see each other; with `ROWS`
//! each sees the rows before it. An unbounded frame keeps running accumulators; a bounded one
//! keeps the rows it may still need and aggregates them per row. A row later than the
//! watermark is dropped, as Flink drops it.

use tethys_engine::state::{StateBackend, StateDescriptor, TimeDomain, ValueState};
use tethys_engine::{KeyedProcessFunction, ProcessContext, UserError};

use super::KeyedRow;
use crate::aggregate::{Accumulators, Aggregates};
use crate::plan::OverFrame;
use crate::value::{Row, RowKey, Value};

/// A partition's rows waiting for the watermark, and what its frame keeps of earlier rows.
#[derive(Debug, Clone, Default, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OverState {
    /// Rows not yet emitted: time and values.
    pub pending: Vec<(i64, Vec<Value>)>,
    /// Rows a bounded frame may still include, oldest first.
    pub history: Vec<(i64, Vec<Value>)>,
    /// An unbounded frame's accumulators.
    pub running: Option<Accumulators>,
}

pub(super) struct OverFunction {
    /// Columns of the input row (the aggregate inputs follow them).
    pub width: usize,
    pub frame: OverFrame,
    pub aggregates: Aggregates,
    pub state: Option<ValueState<OverState>>,
}

impl OverFunction {
    fn aggregate_of<'a>(&self, rows: impl Iterator<Item = &'a Vec<Value>>) -> Result<Vec<Value>, String> {
        let mut accumulators = self.aggregates.create();
        for values in rows {
            self.aggregates.accumulate(&mut accumulators, &Row::insert(values.clone()))?;
        }
        Ok(self.aggregates.results(&accumulators))
    }

    fn output(&self, values: &[Value], results: Vec<Value>) -> Row {
        let mut out = values[..self.width].to_vec();
        out.extend(results);
        Row::insert(out)
    }

    /// Emits `rows` (all of time `time`, in arrival order) with their frames' aggregates.
    fn emit_time(&self, state: &mut OverState, time: i64, rows: Vec<Vec<Value>>, out: &mut impl FnMut(Row)) -> Result<(), String> {
        match self.frame {
            OverFrame::Range(None) | OverFrame::Rows(None) => {
                let mut running = state.running.take().unwrap_or_else(|| self.aggregates.create());
                let peers = matches!(self.frame, OverFrame::Range(_));
                if peers {
                    for values in &rows {
                        self.aggregates.accumulate(&mut running, &Row::insert(values.clone()))?;
                    }
                    let results = self.aggregates.results(&running);
                    rows.iter().for_each(|values| out(self.output(values, results.clone())));
                } else {
                    for values in &rows {
                        self.aggregates.accumulate(&mut running, &Row::insert(values.clone()))?;
                        out(self.output(values, self.aggregates.results(&running)));
                    }
                }
                state.running = Some(running);
            }
            OverFrame::Range(Some(range_ms)) => {
                state.history.retain(|(t, _)| *t >= time - range_ms);
                state.history.extend(rows.iter().map(|values| (time, values.clone())));
                let results = self.aggregate_of(state.history.iter().map(|(_, values)| values))?;
                rows.iter().for_each(|values| out(self.output(values, results.clone())));
            }
            OverFrame::Rows(Some(preceding)) => {
                for values in rows {
                    state.history.push((time, values.clone()));
                    let keep = preceding as usize + 1;
                    if state.history.len() > keep {
                        state.history.drain(..state.history.len() - keep);
                    }
                    let results = self.aggregate_of(state.history.iter().map(|(_, values)| values))?;
                    out(self.output(&values, results));
                }
            }
        }
        Ok(())
    }
}

impl KeyedProcessFunction<RowKey, KeyedRow, Row> for OverFunction {
    fn open(&mut self, state: &mut tethys_engine::state::KeyedStateBackend<RowKey>) -> Result<(), UserError> {
        self.state = Some(state.register_value(&StateDescriptor::new("over"))?);
        Ok(())
    }

    fn process_element(&mut self, record: KeyedRow, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        if record.time <= ctx.current_watermark() {
            return Ok(());
        }
        let handle = self.state.expect("opened");
        handle.modify(&mut ctx.keyed, |slot| slot.get_or_insert_with(OverState::default).pending.push((record.time, record.row.values)));
        ctx.register_event_time_timer(record.time);
        Ok(())
    }

    fn on_timer(&mut self, timestamp: i64, domain: TimeDomain, ctx: &mut ProcessContext<'_, '_, RowKey, Row>) -> Result<(), UserError> {
        debug_assert_eq!(domain, TimeDomain::EventTime);
        let handle = self.state.expect("opened");
        let Some(mut state) = handle.take(&mut ctx.keyed) else { return Ok(()) };
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.pending).into_iter().partition(|(time, _)| *time <= timestamp);
        state.pending = waiting;
        let mut due = due;
        due.sort_by_key(|(time, _)| *time);
        let mut emitted = Vec::new();
        // The rows of one time at a time, moved.
        let mut due = due.into_iter().peekable();
        while let Some((time, values)) = due.next() {
            let mut rows = vec![values];
            while let Some((_, values)) = due.next_if(|(next, _)| *next == time) {
                rows.push(values);
            }
            self.emit_time(&mut state, time, rows, &mut |row| emitted.push(row))?;
        }
        emitted.into_iter().for_each(|row| ctx.emit(row));
        handle.update(&mut ctx.keyed, state);
        Ok(())
    }
}
