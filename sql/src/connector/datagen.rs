//! The `datagen` connector, as Flink's: each column random (within `min`/`max`, of a `length`,
//! up to `max-past` behind now for times, NULL at a `null-rate`) or a `sequence` from `start` to
//! `end` (the source ends when a sequence does); `rows-per-second` (default 10000) over all
//! subtasks, `number-of-rows` to bound it.
//!
//! ```sql
//! CREATE TABLE orders (id BIGINT, amount DECIMAL(10, 2), product STRING, ts TIMESTAMP(3))
//! WITH ('connector' = 'datagen', 'rows-per-second' = '100',
//!       'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000',
//!       'fields.amount.min' = '1', 'fields.amount.max' = '500', 'fields.product.length' = '4')
//! ```
//!
//! Random values are drawn from the row's number and the column, with the `seed` option
//! (Tethys's, default 0): a table generates the same rows every run, and a subtask replays its
//! rows from a checkpoint's position.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::{SubtaskContext, UserError};

use std::sync::Arc;

use super::{FillRow, Options};
use crate::catalog::SqlTable;
use crate::error::SqlError;
use crate::plan::ScanPushDown;
use crate::time::MS_PER_DAY;
use crate::types::SqlType;
use crate::value::{ten_to, Decimal, Value};

/// How one column is generated.
#[derive(Debug, Clone)]
enum ColumnGenerator {
    /// Uniform in `[min, max]` (as the column's kind of number).
    Random { min: f64, max: f64, length: usize, max_past_ms: i64 },
    /// `start`, `start + 1`, ... `end`.
    Sequence { start: i64 },
}

#[derive(Debug, Clone)]
struct Column {
    data_type: SqlType,
    generator: ColumnGenerator,
    null_rate: f64,
}

/// The `datagen` source.
#[derive(Debug, Clone)]
pub struct DatagenSource {
    columns: Vec<Column>,
    rows: Option<u64>,
    rows_per_second: Option<f64>,
    seed: u64,
}

fn default_range(data_type: &SqlType) -> (f64, f64) {
    match data_type {
        SqlType::TinyInt => (f64::from(i8::MIN), f64::from(i8::MAX)),
        SqlType::SmallInt => (f64::from(i16::MIN), f64::from(i16::MAX)),
        SqlType::Int => (f64::from(i32::MIN), f64::from(i32::MAX)),
        SqlType::BigInt => (i64::MIN as f64, i64::MAX as f64),
        SqlType::Decimal { precision, scale } => (0.0, ten_to(precision - scale) as f64 - 1.0),
        _ => (0.0, 1.0),
    }
}

/// One row of a datagen table before its values are drawn: its number and the time it is made
/// (random times are up to `max-past` before it). Its values follow from these alone, each
/// column's on its own, so a scan draws only the columns its query reads.
#[derive(Debug, Clone, Copy, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct DatagenRow {
    /// The row's number in the table (a subtask makes every parallelism-th).
    pub number: u64,
    /// When it was made, in milliseconds since the epoch.
    pub now_ms: i64,
}

/// A datagen table's rows, and how each fills a row of its scan (see [`super::Scan`]): the
/// columns `pushed` says the query reads (all without it), the others left NULL.
pub(super) fn scan(
    table: &SqlTable,
    options: &mut Options<'_>,
    pushed: Option<&ScanPushDown>,
) -> Result<(DatagenSource, FillRow<DatagenRow>), SqlError> {
    let source = datagen_source(table, options)?;
    let read: Vec<bool> = (0..source.columns.len()).map(|column| pushed.is_none_or(|pushed| pushed.columns[column])).collect();
    let generator = source.clone();
    let fill = move |row: &DatagenRow, values: &mut [Value]| {
        for (column, slot) in values.iter_mut().enumerate().take(read.len()) {
            if read[column] {
                slot.put(generator.value(column, row.number, row.now_ms));
            }
        }
        true
    };
    Ok((source, Arc::new(fill)))
}

fn datagen_source(table: &SqlTable, options: &mut Options<'_>) -> Result<DatagenSource, SqlError> {
    let rows_per_second: f64 = options.parse("rows-per-second", 10_000.0, "a number of rows per second")?;
    let mut rows: Option<u64> = options.parse_optional("number-of-rows", "a number of rows")?;
    let seed: u64 = options.parse("seed", 0, "a number")?;
    let mut columns = Vec::new();
    for field in &table.physical.fields {
        let prefix = format!("fields.{}.", field.name);
        let kind = options.get(&format!("{prefix}kind")).unwrap_or("random");
        let null_rate: f64 = options.parse(&format!("{prefix}null-rate"), 0.0, "a rate between 0 and 1")?;
        let supported = field.data_type.is_numeric()
            || matches!(field.data_type, SqlType::Boolean | SqlType::String | SqlType::Bytes | SqlType::Date | SqlType::Time)
            || field.data_type.is_timestamp();
        if !supported {
            return Err(SqlError::at(
                options.at(),
                format!("table {}: datagen cannot generate column {} of type {}", table.name(), field.name, field.data_type),
            ));
        }
        let generator = match kind {
            "sequence" => {
                if !(field.data_type.is_integer() || matches!(field.data_type, SqlType::String | SqlType::Decimal { .. })) {
                    return Err(SqlError::at(
                        options.at(),
                        format!(
                            "table {}: a sequence is of numbers or text, and column {} is {}",
                            table.name(),
                            field.name,
                            field.data_type
                        ),
                    ));
                }
                let start_key = format!("{prefix}start");
                let end_key = format!("{prefix}end");
                let start: i64 =
                    options.require(&start_key, "1")?.trim().parse().map_err(|_| options.invalid(&start_key, "", "an integer"))?;
                let end: i64 =
                    options.require(&end_key, "1000")?.trim().parse().map_err(|_| options.invalid(&end_key, "", "an integer"))?;
                if end < start {
                    return Err(SqlError::at(
                        options.at(),
                        format!("table {}: column {}'s sequence ends ({end}) before it starts ({start})", table.name(), field.name),
                    ));
                }
                let length = (end - start) as u64 + 1;
                rows = Some(rows.map_or(length, |rows| rows.min(length)));
                ColumnGenerator::Sequence { start }
            }
            "random" => {
                let (default_min, default_max) = default_range(&field.data_type);
                let min = options.parse(&format!("{prefix}min"), default_min, "a number")?;
                let max = options.parse(&format!("{prefix}max"), default_max, "a number")?;
                if max < min {
                    return Err(SqlError::at(
                        options.at(),
                        format!("table {}: column {}'s max ({max}) is below its min ({min})", table.name(), field.name),
                    ));
                }
                let length = options.parse(&format!("{prefix}length"), 100usize, "a length")?;
                let max_past_ms = match options.get(&format!("{prefix}max-past")) {
                    None => 0,
                    Some(text) => parse_duration_ms(text)
                        .ok_or_else(|| options.invalid(&format!("{prefix}max-past"), text, "a duration such as '5 s' or '1 min'"))?,
                };
                ColumnGenerator::Random { min, max, length, max_past_ms }
            }
            other => return Err(options.invalid(&format!("{prefix}kind"), other, "'random' or 'sequence'")),
        };
        columns.push(Column { data_type: field.data_type.clone(), generator, null_rate });
    }
    Ok(DatagenSource { columns, rows, rows_per_second: (rows_per_second > 0.0).then_some(rows_per_second), seed })
}

/// `'5 s'`, `'10s'`, `'1 min'`, `'2 h'`, `'100 ms'`, `'1 d'` or a number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit_ms = match unit.trim().to_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000.0,
        "min" | "mins" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return None,
    };
    Some((number * unit_ms) as i64)
}

fn mix(seed: u64, row: u64, column: usize) -> u64 {
    let mut h = seed ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (column as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 29)
}

const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl DatagenSource {
    /// Column `index`'s value in row `number`, made at `now_ms`.
    fn value(&self, index: usize, number: u64, now_ms: i64) -> Value {
        let column = &self.columns[index];
        {
            let mut rng = fastrand::Rng::with_seed(mix(self.seed, number, index));
            if column.null_rate > 0.0 && rng.f64() < column.null_rate {
                return Value::Null;
            }
            match &column.generator {
                ColumnGenerator::Sequence { start, .. } => {
                    let value = start + number as i64;
                    match &column.data_type {
                        SqlType::String => Value::text(value.to_string()),
                        SqlType::Decimal { scale, .. } => {
                            Value::Decimal(Decimal::from_i64(value).rescale(*scale).unwrap_or(Decimal::from_i64(value)))
                        }
                        _ => Value::Int(value),
                    }
                }
                ColumnGenerator::Random { min, max, length, max_past_ms } => {
                    let uniform = min + rng.f64() * (max - min);
                    match &column.data_type {
                        SqlType::Boolean => Value::Bool(rng.bool()),
                        t if t.is_integer() => {
                            let (min, max) = (*min as i128, *max as i128);
                            let span = (max - min + 1) as u128;
                            Value::Int((min + (u128::from(rng.u64(..)) % span) as i128) as i64)
                        }
                        SqlType::Decimal { scale, .. } => {
                            Value::Decimal(Decimal::from_f64(uniform, *scale).unwrap_or(Decimal::from_i64(0)))
                        }
                        SqlType::Float | SqlType::Double => Value::Float(uniform),
                        SqlType::String => {
                            Value::text((0..*length).map(|_| ALPHANUMERIC[rng.usize(..ALPHANUMERIC.len())] as char).collect::<String>())
                        }
                        SqlType::Bytes => Value::Bytes((0..*length).map(|_| rng.u8(..)).collect()),
                        other => {
                            let past = if *max_past_ms > 0 { rng.i64(0..=*max_past_ms) } else { 0 };
                            let ms = now_ms - past;
                            match other {
                                SqlType::Date => Value::Date(ms.div_euclid(MS_PER_DAY) as i32),
                                SqlType::Time => Value::Time(ms.rem_euclid(MS_PER_DAY) as i32),
                                _ => Value::Timestamp(ms),
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Source<DatagenRow> for DatagenSource {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<DatagenRow>>, UserError> {
        let parallelism = context.parallelism as u64;
        Ok(Box::new(DatagenReader {
            source: self.clone(),
            first: context.subtask_index as u64,
            next: context.subtask_index as u64,
            stride: parallelism,
            per_second: self.rows_per_second.map(|total| total / parallelism as f64),
            started: None,
            emitted: 0,
        }))
    }
}

struct DatagenReader {
    source: DatagenSource,
    first: u64,
    next: u64,
    stride: u64,
    per_second: Option<f64>,
    started: Option<Instant>,
    emitted: u64,
}

impl SourceReader<DatagenRow> for DatagenReader {
    fn poll_frame(&mut self, frame: &mut Vec<DatagenRow>, records_max: usize) -> Result<ReaderStatus, UserError> {
        let mut budget = records_max as u64;
        if let Some(per_second) = self.per_second {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = (started.elapsed().as_secs_f64() * per_second) as u64 + 1;
            budget = budget.min(due.saturating_sub(self.emitted));
            if budget == 0 {
                return Ok(ReaderStatus::Idle);
            }
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        for _ in 0..budget {
            if self.source.rows.is_some_and(|rows| self.next >= rows) {
                return Ok(ReaderStatus::Finished);
            }
            frame.push(DatagenRow { number: self.next, now_ms });
            self.next += self.stride;
            self.emitted += 1;
        }
        if self.source.rows.is_some_and(|rows| self.next >= rows) {
            return Ok(ReaderStatus::Finished);
        }
        Ok(ReaderStatus::Ready)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        if position < self.first || !(position - self.first).is_multiple_of(self.stride) {
            return Err(format!("datagen position {position} is not one of this subtask's rows (another parallelism?)").into());
        }
        self.next = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations_read_with_their_units() {
        assert_eq!(parse_duration_ms("5 s"), Some(5000));
        assert_eq!(parse_duration_ms("1min"), Some(60_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("5 parsecs"), None);
    }
}
