//! The `filesystem` connector: a file or directory of rows, as CSV or JSON lines.
//!
//! ```sql
//! CREATE TABLE clicks (user_id BIGINT, url STRING, ts TIMESTAMP(3))
//! WITH ('connector' = 'filesystem', 'path' = 'data/clicks.csv', 'format' = 'csv')
//! ```
//!
//! Options: `path` (a file, or a directory of files, read in name order), `format` (`csv` or
//! `json`), `csv.field-delimiter` (default `,`), `csv.header` (Tethys's: the first line of
//! each file names the columns and is skipped; default false, as Flink's CSV has none),
//! `csv.null-literal` (text read as NULL; an empty field is NULL for every type but STRING).
//! JSON lines are objects whose fields are matched to columns by name; a missing field is NULL.
//! A row that does not parse fails the job with its file's name and the row, unless
//! `csv.ignore-parse-errors` / `json.ignore-parse-errors` is true (then it is skipped).
//!
//! As a sink, `path` is a directory: each subtask writes part files, committed when a
//! checkpoint completes or the job ends (exactly once); it takes inserts only.

use std::fmt::Write as _;
use std::sync::Arc;

use tethys_engine::operator::{FrameOperator, Output};
use tethys_engine::sink::file::FileSink;
use tethys_engine::sink::{Committable, Sink, SinkCommitter, SinkWriter};
use tethys_engine::source::file::FileSource;
use tethys_engine::{DataStream, StreamEnvironment, SubtaskContext, UserError};

use super::Options;
use crate::catalog::SqlTable;
use crate::error::SqlError;
use crate::expr::cast_value;
use crate::function::EvalContext;
use crate::types::{Schema, SqlType};
use crate::value::{format_double, Row, Value};

/// A row's format in files.
#[derive(Debug, Clone, PartialEq)]
enum Format {
    Csv { delimiter: u8, header: bool, null_literal: Option<String> },
    Json,
}

fn format_of(table: &SqlTable, options: &mut Options<'_>) -> Result<(Format, bool), SqlError> {
    let format = options.require("format", "csv")?;
    match format {
        "csv" => {
            let delimiter = match options.get("csv.field-delimiter") {
                None => b',',
                Some(text) if text.len() == 1 => text.as_bytes()[0],
                Some("\\t") => b'\t',
                Some(text) => return Err(options.invalid("csv.field-delimiter", text, "one character")),
            };
            let header = options.parse("csv.header", false, "true or false")?;
            let null_literal = options.get("csv.null-literal").map(str::to_string);
            let ignore = options.parse("csv.ignore-parse-errors", false, "true or false")?;
            Ok((Format::Csv { delimiter, header, null_literal }, ignore))
        }
        "json" => {
            let ignore = options.parse("json.ignore-parse-errors", false, "true or false")?;
            Ok((Format::Json, ignore))
        }
        other => Err(SqlError::at(options.at(), format!("table {}: format '{other}' is not known: use 'csv' or 'json'", table.name()))),
    }
}

/// One text field as a value of `data_type`.
fn parse_field(text: &str, data_type: &SqlType, null_literal: Option<&str>) -> Result<Value, String> {
    if null_literal == Some(text) || (text.is_empty() && *data_type != SqlType::String) {
        return Ok(Value::Null);
    }
    cast_value(Value::text(text), &SqlType::String, data_type, &EvalContext::default())
}

fn json_value(json: &serde_json::Value, data_type: &SqlType) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (json, data_type) {
        (J::Null, _) => Value::Null,
        (J::String(text), t) => parse_field(text, t, None)?,
        (J::Bool(b), SqlType::Boolean) => Value::Bool(*b),
        (J::Number(n), t) if t.is_integer() => Value::Int(n.as_i64().ok_or_else(|| format!("{n} is not an integer"))?),
        (J::Number(n), SqlType::Float | SqlType::Double) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        (J::Number(n), t) => parse_field(&n.to_string(), t, None)?,
        (J::Array(items), SqlType::Array(element)) => {
            Value::Array(items.iter().map(|item| json_value(item, element)).collect::<Result<_, _>>()?)
        }
        (J::Object(map), SqlType::Map(key, value)) => {
            Value::Map(map.iter().map(|(k, v)| Ok((parse_field(k, key, None)?, json_value(v, value)?))).collect::<Result<_, String>>()?)
        }
        (J::Object(map), SqlType::Row(fields)) => Value::Row(
            fields.iter().map(|(name, t)| map.get(name).map_or(Ok(Value::Null), |v| json_value(v, t))).collect::<Result<_, _>>()?,
        ),
        (other, t) => return Err(format!("{other} is not a {t}")),
    })
}

/// Parses file records into rows of the table's physical columns.
struct ParseRows<In> {
    schema: Schema,
    format: Format,
    ignore_errors: bool,
    table: String,
    _in: std::marker::PhantomData<fn(In)>,
}

impl<In> ParseRows<In> {
    fn fail(&self, what: &str, error: String) -> Option<Result<(), UserError>> {
        if self.ignore_errors {
            None
        } else {
            Some(Err(format!("table {}: cannot read {what}: {error}", self.table).into()))
        }
    }

    /// A CSV record's fields as the table's values.
    fn csv_values(&self, fields: &[String]) -> Result<Vec<Value>, String> {
        let Format::Csv { null_literal, .. } = &self.format else { unreachable!("CSV rows") };
        if fields.len() != self.schema.fields.len() {
            return Err(format!("it has {} fields and the table {} columns", fields.len(), self.schema.fields.len()));
        }
        fields
            .iter()
            .zip(&self.schema.fields)
            .map(|(text, field)| {
                parse_field(text, &field.data_type, null_literal.as_deref()).map_err(|error| format!("column {}: {error}", field.name))
            })
            .collect()
    }

    /// A JSON line's object as the table's values (a blank line: none).
    fn json_values(&self, line: &str) -> Result<Option<Vec<Value>>, String> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        match serde_json::from_str::<serde_json::Value>(line).map_err(|error| error.to_string())? {
            serde_json::Value::Object(map) => self
                .schema
                .fields
                .iter()
                .map(|field| {
                    let found = map.iter().find(|(key, _)| key.eq_ignore_ascii_case(&field.name)).map(|(_, value)| value);
                    found
                        .map_or(Ok(Value::Null), |value| json_value(value, &field.data_type))
                        .map_err(|error| format!("field {}: {error}", field.name))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            other => Err(format!("{other} is not a JSON object")),
        }
    }
}

impl FrameOperator<Vec<String>, Row> for ParseRows<Vec<String>> {
    fn process(&mut self, frame: Vec<Vec<String>>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        for fields in frame {
            match self.csv_values(&fields) {
                Ok(values) => out.emit(Row::insert(values)),
                Err(error) => {
                    if let Some(result) = self.fail(&format!("CSV row {fields:?}"), error) {
                        return result;
                    }
                }
            }
        }
        Ok(())
    }
}

impl FrameOperator<String, Row> for ParseRows<String> {
    fn process(&mut self, frame: Vec<String>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        for line in frame {
            match self.json_values(&line) {
                Ok(Some(values)) => out.emit(Row::insert(values)),
                Ok(None) => {}
                Err(error) => {
                    if let Some(result) = self.fail(&format!("JSON line {line}"), error) {
                        return result;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A table read whole when asked (a lookup join's): its file, or the files of its directory in
/// name order.
pub struct FileRows {
    path: std::path::PathBuf,
    parse: ParseRows<()>,
}

impl FileRows {
    /// Checks a table's options and that its path exists; reads nothing yet.
    pub(super) fn of(table: &SqlTable, options: &mut Options<'_>) -> Result<FileRows, SqlError> {
        let path = std::path::PathBuf::from(options.require("path", "data/input.csv")?);
        let (format, ignore_errors) = format_of(table, options)?;
        if !path.exists() {
            return Err(SqlError::at(options.at(), format!("table {}: path '{}' does not exist", table.name(), path.display())));
        }
        let (name, schema) = (table.name().to_string(), table.physical.clone());
        Ok(FileRows { path, parse: ParseRows { schema, format, ignore_errors, table: name, _in: std::marker::PhantomData } })
    }

    /// Every row, read now.
    pub fn read(&self) -> Result<Vec<Row>, String> {
        let parse = &self.parse;
        let failed = |what: String| format!("table {}: {what}", parse.table);
        let mut files = Vec::new();
        if self.path.is_dir() {
            let entries =
                std::fs::read_dir(&self.path).map_err(|error| failed(format!("cannot list '{}': {error}", self.path.display())))?;
            files.extend(entries.flatten().map(|entry| entry.path()).filter(|file| file.is_file()));
            files.sort();
        } else {
            files.push(self.path.clone());
        }
        let mut rows = Vec::new();
        let mut keep = |parsed: Result<Option<Vec<Value>>, String>, what: &dyn Fn() -> String| -> Result<(), String> {
            match parsed {
                Ok(Some(values)) => rows.push(Row::insert(values)),
                Ok(None) => {}
                Err(error) if !parse.ignore_errors => return Err(failed(format!("cannot read {}: {error}", what()))),
                Err(_) => {}
            }
            Ok(())
        };
        for file in &files {
            let cannot_read = |error: &dyn std::fmt::Display| failed(format!("cannot read '{}': {error}", file.display()));
            match &parse.format {
                Format::Csv { delimiter, header, .. } => {
                    let mut reader = csv::ReaderBuilder::new()
                        .has_headers(*header)
                        .delimiter(*delimiter)
                        .flexible(true)
                        .from_path(file)
                        .map_err(|error| cannot_read(&error))?;
                    for record in reader.records() {
                        let fields: Vec<String> = record.map_err(|error| cannot_read(&error))?.iter().map(str::to_string).collect();
                        keep(parse.csv_values(&fields).map(Some), &|| format!("CSV row {fields:?}"))?;
                    }
                }
                Format::Json => {
                    let text = std::fs::read_to_string(file).map_err(|error| cannot_read(&error))?;
                    for line in text.lines() {
                        keep(parse.json_values(line), &|| format!("JSON line {line}"))?;
                    }
                }
            }
        }
        Ok(rows)
    }
}

pub(super) fn source(env: &StreamEnvironment, table: &SqlTable, options: &mut Options<'_>) -> Result<DataStream<Row>, SqlError> {
    let path = options.require("path", "data/input.csv")?;
    let (format, ignore_errors) = format_of(table, options)?;
    if !std::path::Path::new(path).exists() {
        return Err(SqlError::at(options.at(), format!("table {}: path '{path}' does not exist", table.name())));
    }
    let name = table.name().to_string();
    let schema = table.physical.clone();
    let table_name = table.name().to_string();
    Ok(match &format {
        Format::Csv { delimiter, header, .. } => {
            let records = env.source(&name, FileSource::csv::<Vec<String>>(path).with_header(*header).with_delimiter(*delimiter));
            let parse = ParseRows::<Vec<String>> {
                schema,
                format: format.clone(),
                ignore_errors,
                table: table_name,
                _in: std::marker::PhantomData,
            };
            records.process("ParseCsv", move |_| clone_parse(&parse))
        }
        Format::Json => {
            let parse =
                ParseRows::<String> { schema, format: format.clone(), ignore_errors, table: table_name, _in: std::marker::PhantomData };
            env.source(&name, FileSource::lines(path)).process("ParseJson", move |_| clone_parse(&parse))
        }
    })
}

fn clone_parse<In>(parse: &ParseRows<In>) -> ParseRows<In> {
    ParseRows {
        schema: parse.schema.clone(),
        format: parse.format.clone(),
        ignore_errors: parse.ignore_errors,
        table: parse.table.clone(),
        _in: std::marker::PhantomData,
    }
}

/// Values as a CSV line (comma-separated, quoted where needed), `null` for NULL: what the
/// filesystem connector reads back with `csv.null-literal` = `null`.
pub(crate) fn csv_line(values: &[Value], null: &str) -> String {
    let format = Format::Csv { delimiter: b',', header: false, null_literal: Some(null.to_string()) };
    encode(&Row::insert(values.to_vec()), &format)
}

/// A row as a line of the format.
fn encode(row: &Row, format: &Format) -> String {
    match format {
        Format::Csv { delimiter, null_literal, .. } => {
            let mut line = String::new();
            for (i, value) in row.values.iter().enumerate() {
                if i > 0 {
                    line.push(*delimiter as char);
                }
                let text = match value {
                    Value::Null => null_literal.clone().unwrap_or_default(),
                    Value::Float(v) => format_double(*v),
                    other => other.to_string(),
                };
                if text.contains([*delimiter as char, '"', '\n', '\r']) {
                    let _ = write!(line, "\"{}\"", text.replace('"', "\"\""));
                } else {
                    line.push_str(&text);
                }
            }
            line
        }
        Format::Json => String::new(),
    }
}

/// The sink writing rows of `table` as part files of lines (CSV or JSON), committed on
/// checkpoints.
pub(super) fn sink(table: &SqlTable, options: &mut Options<'_>) -> Result<Box<dyn Sink<Row>>, SqlError> {
    let path = options.require("path", "out/")?.to_string();
    let (format, _) = format_of(table, options)?;
    let names: Vec<String> = table.physical.fields.iter().map(|field| field.name.clone()).collect();
    let extension = match format {
        Format::Csv { .. } => "csv",
        Format::Json => "json",
    };
    let lines = FileSink::lines::<String>(path).with_extension(extension);
    Ok(Box::new(RowLines { lines, format: Arc::new(format), names: Arc::new(names) }))
}

/// Rows written as lines by a file sink of lines, each encoded in the writer.
struct RowLines {
    lines: FileSink<String>,
    format: Arc<Format>,
    names: Arc<Vec<String>>,
}

impl Sink<Row> for RowLines {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Row>>, UserError> {
        let lines = self.lines.create_writer(context)?;
        Ok(Box::new(RowLinesWriter { lines, format: Arc::clone(&self.format), names: Arc::clone(&self.names) }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        self.lines.create_committer()
    }
}

struct RowLinesWriter {
    lines: Box<dyn SinkWriter<String>>,
    format: Arc<Format>,
    names: Arc<Vec<String>>,
}

impl RowLinesWriter {
    fn line(&self, row: &Row) -> String {
        match &*self.format {
            // Fields in the table's column order, as Flink writes them.
            Format::Json => {
                let fields: Vec<String> = self
                    .names
                    .iter()
                    .zip(&row.values)
                    .map(|(name, value)| format!("{}:{}", serde_json::Value::String(name.clone()), value.to_json()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            csv => encode(row, csv),
        }
    }
}

impl SinkWriter<Row> for RowLinesWriter {
    fn write_frame(&mut self, frame: Vec<Row>) -> Result<(), UserError> {
        let lines = frame.iter().map(|row| self.line(row)).collect();
        self.lines.write_frame(lines)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.lines.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Committable>, UserError> {
        self.lines.pre_commit(checkpoint)
    }
}
