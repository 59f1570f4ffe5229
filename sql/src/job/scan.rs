//! A table's scan: its connector's source, then the table's computed columns and its watermark.
//! Under a Calc, when the source's records fill rows ([`connector::Scan`]'s records other than
//! rows: nexmark's events, datagen's row numbers), the scan and the Calc are one operator, [`ScanCalc`]: each
//! record fills one row reused from record to record (only the columns the query reads), the
//! computed columns are written in it, its time feeds the watermark, and only the Calc's output
//! row is allocated. Otherwise the scan's rows pass a computed-columns operator, the engine's
//! watermark assigner and the Calc in turn.

use std::time::{Duration, Instant};

use tethys_engine::frame::Record;
use tethys_engine::operator::{FrameOperator, Output};
use tethys_engine::time::watermark::BoundedOutOfOrderness;
use tethys_engine::{DataStream, PeriodicWatermarks, UserError, WatermarkStrategy};

use super::{over_scan, Calc, ComputedColumns, JobBuilder};
use crate::catalog::SqlTable;
use crate::connector::{self, FillRow, Scan};
use crate::error::SqlError;
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::plan::ScanPushDown;
use crate::value::{Row, Value};

/// What a scan does to its source's rows.
struct ScanParts {
    /// The table's computed columns (those the query does not read: NULL).
    computed: Vec<Scalar>,
    /// Where the first computed column goes: after the physical columns.
    at: usize,
    /// How many fields the source gives as columns of their own, after the computed columns.
    flat: usize,
    /// The event-time column and how far behind its largest value the watermark stays.
    watermark: Option<(usize, Duration)>,
    /// How the computed columns are named in errors.
    text: String,
}

/// A row's event time for the watermark: its time column, or the least time if it has none.
fn event_time(row: &[Value], column: usize) -> i64 {
    match row[column] {
        Value::Timestamp(ms) => ms,
        _ => i64::MIN,
    }
}

fn scan_parts(table: &SqlTable, pushed: Option<&ScanPushDown>, context: &EvalContext) -> ScanParts {
    let physical = table.physical.fields.len();
    // Computed columns nobody reads are not computed.
    let computed: Vec<Scalar> = table
        .computed
        .iter()
        .enumerate()
        .map(|(i, scalar)| match pushed {
            Some(pushed) if !pushed.computed[i] => Scalar::Literal(Value::Null),
            Some(pushed) => over_scan(scalar, table, pushed, context),
            None => scalar.clone(),
        })
        .collect();
    let flat = pushed.map_or(0, |pushed| connector::flattened_fields(table, pushed).len());
    // The catalog binds them over the physical columns; fields the source gives as columns
    // come after the computed ones.
    let mut read = Vec::new();
    computed.iter().for_each(|scalar| scalar.columns(&mut read));
    let first_flat = table.schema.fields.len();
    assert!(
        read.iter().all(|&column| column < physical || (first_flat..first_flat + flat).contains(&column)),
        "computed columns of {} read only its physical ones",
        table.name()
    );
    let watermark = table.watermark.map(|watermark| (watermark.column, Duration::from_millis(watermark.delay_ms as u64)));
    ScanParts { computed, at: physical, flat, watermark, text: format!("computed columns of {}", table.name()) }
}

impl JobBuilder<'_> {
    /// The rows of a scan of `table` from `source`: computed columns, then the watermark.
    pub(super) fn scan(&mut self, source: Scan, table: &SqlTable, pushed: Option<&ScanPushDown>, sig: &str) -> DataStream<Row> {
        let parts = scan_parts(table, pushed, &self.context);
        let mut stream = source.into_rows(table, pushed);
        if !parts.computed.is_empty() {
            // Appended to each row in place, or written where the source left them room (when
            // it gives fields as columns after them).
            let at = (parts.flat > 0).then_some(parts.at);
            let (context, uid, computed, text) = (self.context.clone(), self.uid("calc", sig), parts.computed, parts.text);
            stream = stream
                .process("Calc", move |_| ComputedColumns { computed: computed.clone(), at, context: context.clone(), text: text.clone() })
                .uid(&uid);
        }
        if let Some((column, delay)) = parts.watermark {
            let strategy = WatermarkStrategy::for_bounded_out_of_orderness(delay, move |row: &Row| event_time(&row.values, column));
            let uid = self.uid("watermark", sig);
            stream = stream.assign_timestamps_and_watermarks(strategy).uid(&uid);
        }
        stream
    }

    /// A Calc (`projection`, `filter`, over the scan's row) over a scan of `table`: one operator
    /// when its source's records fill rows, else the scan's operators and the Calc's.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scan_calc(
        &mut self,
        table: &SqlTable,
        pushed: &ScanPushDown,
        projection: Vec<Scalar>,
        filter: Option<Scalar>,
        text: String,
        scan_sig: &str,
        sig: &str,
    ) -> Result<DataStream<Row>, SqlError> {
        let calc = Calc::new(projection, filter, self.context.clone());
        match connector::scan(self.env, table, Some(pushed), self.parallelism, &mut self.sources)? {
            Scan::Nexmark(events, fill) => Ok(self.fused(events, fill, table, pushed, calc, text, sig)),
            Scan::Datagen(rows, fill) => Ok(self.fused(rows, fill, table, pushed, calc, text, sig)),
            rows @ Scan::Rows(_) => {
                let rows = self.scan(rows, table, Some(pushed), scan_sig);
                let Calc { projection, filter, .. } = calc;
                Ok(self.calc(rows, projection, filter, text, sig))
            }
        }
    }

    /// The scan of `records` (filling rows with `fill`) and `calc` over it, as one operator.
    #[allow(clippy::too_many_arguments)]
    fn fused<E: Record>(
        &mut self,
        events: DataStream<E>,
        fill: FillRow<E>,
        table: &SqlTable,
        pushed: &ScanPushDown,
        calc: Calc,
        text: String,
        sig: &str,
    ) -> DataStream<Row> {
        let parts = scan_parts(table, Some(pushed), &self.context);
        let parallelism = events.parallelism_set();
        let uid = self.uid("scan-calc", sig);
        let width = table.schema.fields.len() + parts.flat;
        let fused = events
            .process("ScanCalc", move |subtask| ScanCalc {
                fill: fill.clone(),
                row: vec![Value::Null; width],
                computed: parts.computed.clone(),
                at: parts.at,
                watermark: parts.watermark.map(|(column, delay)| {
                    let generator = Box::new(BoundedOutOfOrderness::new(delay));
                    (column, PeriodicWatermarks::new(generator, subtask.watermark_interval, None))
                }),
                calc: calc.clone(),
                spare: Vec::new(),
                computed_text: parts.text.clone(),
                text: text.clone(),
            })
            .uid(&uid);
        match parallelism {
            Some(parallelism) => fused.parallelism(parallelism),
            None => fused,
        }
    }
}

/// A scan and the Calc over it in one pass over the source's records (see the module's doc).
struct ScanCalc<E> {
    fill: FillRow<E>,
    /// The scan's row, reused from record to record: physical columns, computed columns, fields
    /// given as columns.
    row: Vec<Value>,
    computed: Vec<Scalar>,
    at: usize,
    /// The event-time column and the watermarks made from it.
    watermark: Option<(usize, PeriodicWatermarks)>,
    calc: Calc,
    /// The next output row's values, allocated once a row passes the filter.
    spare: Vec<Value>,
    computed_text: String,
    text: String,
}

impl<E: Record> FrameOperator<E, Row> for ScanCalc<E> {
    fn process(&mut self, frame: Vec<E>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        let started: Option<Instant> = self.watermark.as_mut().map(|(_, watermarks)| watermarks.on_records(out));
        let mut rows = Vec::with_capacity(frame.len());
        let row = &mut self.row;
        for record in &frame {
            if !(self.fill)(record, row) {
                continue;
            }
            for (n, scalar) in self.computed.iter().enumerate() {
                match scalar.eval(row, &self.calc.context) {
                    Ok(value) => row[self.at + n].put(value),
                    Err(error) => {
                        return Err(format!("{error}, in Calc({}) of row {}", self.computed_text, Row::insert(row.clone())).into())
                    }
                }
            }
            if let Some((column, watermarks)) = &mut self.watermark {
                watermarks.on_event(event_time(row, *column));
            }
            if self.spare.capacity() == 0 {
                self.spare.reserve_exact(self.calc.projection.len());
            }
            match self.calc.project(row, &mut self.spare) {
                Ok(true) => rows.push(Row::insert(std::mem::take(&mut self.spare))),
                Ok(false) => {}
                Err(error) => {
                    self.spare.clear();
                    return Err(format!("{error}, in Calc({}) of row {}", self.text, Row::insert(row.clone())).into());
                }
            }
        }
        if !rows.is_empty() {
            out.emit_frame(rows);
        }
        if let (Some((_, watermarks)), Some(started)) = (&mut self.watermark, started) {
            watermarks.after_frame(started, out);
        }
        Ok(())
    }

    fn generates_watermarks(&self) -> bool {
        self.watermark.is_some()
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        if let Some((_, watermarks)) = &mut self.watermark {
            watermarks.on_watermark(watermark, out);
        }
        Ok(())
    }

    fn on_processing_time(&mut self, now: Instant, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        if let Some((_, watermarks)) = &mut self.watermark {
            watermarks.on_processing_time(now, out);
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<Instant> {
        self.watermark.as_ref().and_then(|(_, watermarks)| watermarks.next_processing_time())
    }
}
