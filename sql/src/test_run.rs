//! Test runs of a SQL job, never touching its real sources and sinks, and their results beside
//! the expected ones.
//!
//! A [`TestCase`] is a script, an input for some of its tables and the rows expected of some of
//! its sinks. An input is rows (CSV or JSON lines, typed in or from a file) or rows generated
//! from the table's columns ([`GenerateSpec`]: how many, how fast in event time, key skew, NULLs,
//! out-of-order and late rows), or, for a topic table, a sample of the live topic's rows
//! ([`SampleSpec`](crate::sample::SampleSpec): the newest or oldest, filtered, changes kept); a
//! table read from a generator or a topic that the case gives no input gets generated rows. [`run_test`] runs the script on the embedded engine with each
//! such table reading its input instead (columns and watermark kept) and every `INSERT` writing
//! to a capture instead of its table; [`compare`] lines the captured changelog up with the
//! expected rows, as a changelog in order, sorted, or by what it adds up to.
//!
//! A case file (`tethys test`) is TOML:
//!
//! ```toml
//! name = "orders per customer"
//! script = "orders.sql"            # or sql = """..."""
//!
//! [inputs.orders]
//! format = "csv"                   # csv or json
//! rows = """
//! 1,alice,10,2026-01-01 00:00:00
//! """                              # or file = "orders.csv", or generate = { rows = 1000, ... },
//!                                  # or sample = { rows = 100, from = "newest", filter = "amount > 5" }
//!
//! [expected.totals]
//! compare = "final"                # changelog (default), sorted or final
//! rows = """
//! +I[alice, 10]
//! """                              # or file = "totals.out"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::SqlTable;
use crate::connector::file::csv_line;
use crate::script::{parse_script, Statement};
use crate::session::{Outcome, SqlSession};
use crate::types::SqlType;
use crate::value::Value;

/// Rows a test run may produce, over all its sinks, before it is stopped.
pub const OUTPUT_ROWS_MAX: usize = 100_000;
/// Rows an input may generate.
pub const GENERATED_ROWS_MAX: u64 = 1_000_000;
/// How long a test run's job may run before it is stopped (a source with no end).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A test case: a script, inputs for some of its tables, rows expected of some of its sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What it checks.
    #[serde(default)]
    pub name: String,
    /// The script's text (resolved from `script` when the case is loaded from a file).
    #[serde(default)]
    pub sql: Option<String>,
    /// The script's file, relative to the case's file.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// Inputs by table name.
    #[serde(default)]
    pub inputs: BTreeMap<String, TestInput>,
    /// Expected rows by sink table name.
    #[serde(default)]
    pub expected: BTreeMap<String, Expected>,
}

/// Where a table's rows come from in a test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// `csv` (default) or `json` (JSON lines).
    #[serde(default)]
    pub format: Option<String>,
    /// The rows, as the text of a file of that format.
    #[serde(default)]
    pub rows: Option<String>,
    /// A file of rows, relative to the case's file (read when the case is loaded).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// CSV only: the first line names the columns.
    #[serde(default)]
    pub header: bool,
    /// Rows generated from the table's columns.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    /// A sample of the table's own topic (a `topic` table): its newest or oldest rows, filtered.
    #[serde(default)]
    pub sample: Option<crate::sample::SampleSpec>,
    /// The sample's rows when they were taken before the run (by the masters, from the worker
    /// holding the topic); taken by the run itself otherwise.
    #[serde(skip)]
    pub sampled: Option<Vec<crate::value::Row>>,
}

/// How rows are generated for a table: deterministic for a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateSpec {
    /// How many.
    pub rows: u64,
    /// The seed of the random values.
    pub seed: u64,
    /// Rows per second of event time (the event-time column advances by 1/rate per row).
    pub rows_per_second: f64,
    /// When the first row's event time is (milliseconds since the epoch; default 2026-01-01).
    pub start_ms: i64,
    /// The share (0 to 1) of a nullable column's values that are NULL (keys and event time never are).
    pub null_ratio: f64,
    /// The column whose values are keys (default: none).
    pub key: Option<String>,
    /// Distinct keys.
    pub keys: u64,
    /// Skew of the keys: 0 spreads them evenly; s > 0 draws key k with weight 1/(k+1)^s (Zipf).
    pub skew: f64,
    /// The share of rows whose event time is moved back by up to `out_of_order_ms`.
    pub out_of_order_ratio: f64,
    /// How far an out-of-order row may be moved back.
    pub out_of_order_ms: i64,
    /// The share of rows that come late: behind the table's watermark by `late_by_ms` more than
    /// its delay.
    pub late_ratio: f64,
    /// How far behind the watermark a late row is.
    pub late_by_ms: i64,
}

impl Default for GenerateSpec {
    fn default() -> GenerateSpec {
        GenerateSpec {
            rows: 100,
            seed: 1,
            rows_per_second: 10.0,
            start_ms: 1_767_225_600_000,
            null_ratio: 0.0,
            key: None,
            keys: 10,
            skew: 0.0,
            out_of_order_ratio: 0.0,
            out_of_order_ms: 2_000,
            late_ratio: 0.0,
            late_by_ms: 60_000,
        }
    }
}

/// How produced rows are compared with the expected ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Row by row in order: the changelog as it came.
    #[default]
    Changelog,
    /// Row by row, both sorted (rows of one event time or one window come in any order).
    Sorted,
    /// What each changelog adds up to: the rows left after every insert, update and delete.
    Final,
}

/// The rows expected of a sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// How to compare.
    #[serde(default)]
    pub compare: Compare,
    /// The rows, one per line, as Flink prints them: `+I[1, alice]`, `-U[...]`, `+U[...]`, `-D[...]`.
    #[serde(default)]
    pub rows: Option<String>,
    /// A file of such rows, relative to the case's file (read when the case is loaded).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// Why a test case could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestError {
    /// The case's file or one it names.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The case says something wrong.
    #[error("{0}")]
    Case(String),
    /// The script, rendered with the error's place.
    #[error("{0}")]
    Script(String),
    /// The job failed, or did not end.
    #[error("{0}")]
    Run(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TestError {
    TestError::File { path: path.display().to_string(), reason: reason.to_string() }
}

impl TestCase {
    /// Reads a case file (TOML), with the files it names read into it (their paths relative to it).
    pub fn load(path: &Path) -> Result<TestCase, TestError> {
        let text = std::fs::read_to_string(path).map_err(|error| file_error(path, error))?;
        let mut case: TestCase = toml::from_str(&text).map_err(|error| file_error(path, error.to_string().trim_end()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |file: &Path| std::fs::read_to_string(dir.join(file)).map_err(|error| file_error(&dir.join(file), error));
        if case.name.is_empty() {
            case.name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        }
        match (&case.sql, case.script.take()) {
            (Some(_), Some(_)) => return Err(file_error(path, "give the script as `sql` or as a `script` file, not both")),
            (None, Some(script)) => case.sql = Some(read(&script)?),
            (None, None) => return Err(file_error(path, "no script: give `sql` or a `script` file")),
            (Some(_), None) => {}
        }
        for (table, input) in &mut case.inputs {
            if let Some(file) = input.file.take() {
                if input.rows.is_some() {
                    return Err(file_error(path, format!("input {table}: give `rows` or a `file`, not both")));
                }
                input.rows = Some(read(&file)?);
            }
        }
        for (sink, expected) in &mut case.expected {
            if let Some(file) = expected.file.take() {
                if expected.rows.is_some() {
                    return Err(file_error(path, format!("expected {sink}: give `rows` or a `file`, not both")));
                }
                expected.rows = Some(read(&file)?);
            }
        }
        Ok(case)
    }
}

/// What a test run produced: each sink's rows (its changelog, as Flink prints rows), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TestOutput {
    /// By sink table name.
    pub sinks: BTreeMap<String, Vec<String>>,
}

/// Runs `case`'s script with its inputs (files written under `work_dir`), every insert captured.
pub fn run_test(case: &TestCase, work_dir: &Path) -> Result<TestOutput, TestError> {
    let sql = case.sql.as_deref().ok_or_else(|| TestError::Case("the case has no script".into()))?;
    let statements = parse_script(sql).map_err(|errors| TestError::Script(errors[0].render(sql)))?;
    // The tables' definitions first (a scratch session), to generate rows from their columns.
    let mut scratch = SqlSession::default();
    for statement in &statements {
        if matches!(statement.statement, Statement::CreateTable(_)) {
            scratch.execute(statement).map_err(|error| TestError::Script(error.render(sql)))?;
        }
    }
    std::fs::create_dir_all(work_dir).map_err(|error| file_error(work_dir, error))?;
    let mut sources = HashMap::new();
    // A table read from a generator or a topic that the case gives no input gets generated rows
    // (the defaults of `GenerateSpec`): a test run reads no live source and always ends.
    let generated = TestInput { generate: Some(GenerateSpec::default()), ..TestInput::default() };
    for table in scratch.catalog().tables() {
        let live = matches!(table.def.option("connector"), Some("datagen" | "bids" | "nexmark" | "topic"));
        if live && !case.inputs.keys().any(|name| name.eq_ignore_ascii_case(table.name())) {
            sources.insert(table.name().to_string(), input_options(table, &generated, work_dir)?);
        }
    }
    for (name, input) in &case.inputs {
        let table = scratch.catalog().table(name).ok_or_else(|| {
            let known: Vec<&str> = scratch.catalog().tables().map(SqlTable::name).collect();
            let hint = crate::did_you_mean(name, known.iter().copied()).map(|near| format!("; did you mean {near}?")).unwrap_or_default();
            TestError::Case(format!("input {name}: the script defines no such table{hint}"))
        })?;
        let options = match &input.sample {
            Some(spec) => sample_options(sql, table, input, spec, work_dir)?,
            None => input_options(table, input, work_dir)?,
        };
        sources.insert(name.clone(), options);
    }
    let mut session = SqlSession::default();
    session.redirect_for_test(sources);
    let mut output = TestOutput::default();
    let mut produced = 0;
    let mut selects = 0;
    for statement in &statements {
        let outcome = session.execute(statement).map_err(|error| TestError::Script(error.render(sql)))?;
        let Outcome::Job(job) = outcome else { continue };
        let mut captures = session.take_captures();
        let select = job.results.is_some();
        let name = job.name.clone();
        let client = job.env.execute_async(&job.name).map_err(|error| TestError::Run(format!("{name}: {error}")))?;
        let mut results: Vec<String> = Vec::new();
        let deadline = Instant::now() + RUN_TIMEOUT;
        let drain =
            |captures: &mut Vec<crate::session::Capture>, output: &mut TestOutput, results: &mut Vec<String>, produced: &mut usize| {
                for capture in captures.iter() {
                    let rows = output.sinks.entry(capture.table.clone()).or_default();
                    while let Ok(row) = capture.rows.try_recv() {
                        rows.push(row.to_string());
                        *produced += 1;
                    }
                }
                if let Some((_, receiver)) = &job.results {
                    while let Ok(row) = receiver.try_recv() {
                        results.push(row.to_string());
                        *produced += 1;
                    }
                }
            };
        loop {
            drain(&mut captures, &mut output, &mut results, &mut produced);
            if client.is_finished() {
                break;
            }
            if produced > OUTPUT_ROWS_MAX || Instant::now() > deadline {
                let _ = client.cancel();
                let why = match produced > OUTPUT_ROWS_MAX {
                    true => format!("it produced more than {OUTPUT_ROWS_MAX} rows"),
                    false => format!("it did not end within {} s", RUN_TIMEOUT.as_secs()),
                };
                return Err(TestError::Run(format!("{name} was stopped: {why}; give its tables fewer input rows")));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let result = client.wait();
        drain(&mut captures, &mut output, &mut results, &mut produced);
        result.map_err(|error| TestError::Run(format!("{name} failed: {error}")))?;
        if select {
            selects += 1;
            output.sinks.insert(format!("select{selects}"), results);
        }
    }
    Ok(output)
}

/// The options a table reads instead of its own: its input's rows in a file under `work_dir`.
fn input_options(table: &SqlTable, input: &TestInput, work_dir: &Path) -> Result<Vec<(String, String)>, TestError> {
    let name = table.name();
    let (text, format, header) = match (&input.rows, &input.generate) {
        (Some(_), Some(_)) => return Err(TestError::Case(format!("input {name}: give rows or `generate`, not both"))),
        (None, None) => {
            return Err(TestError::Case(format!("input {name}: give `rows`, a `file`, `generate` or (of a topic table) a `sample`")))
        }
        (Some(rows), None) => (rows.clone(), input.format.clone().unwrap_or_else(|| "csv".into()), input.header),
        (None, Some(spec)) => (generate_rows(table, spec)?, "csv".to_string(), false),
    };
    if format != "csv" && format != "json" {
        return Err(TestError::Case(format!("input {name}: format '{format}' is not known: use 'csv' or 'json'")));
    }
    let file = work_dir.join(format!("{}.{format}", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
    std::fs::write(&file, text).map_err(|error| file_error(&file, error))?;
    let mut options = vec![
        ("connector".to_string(), "filesystem".to_string()),
        ("path".to_string(), file.display().to_string()),
        ("format".to_string(), format.clone()),
    ];
    if format == "csv" {
        options.push(("csv.null-literal".to_string(), NULL_TEXT.to_string()));
        options.push(("csv.header".to_string(), header.to_string()));
    }
    Ok(options)
}

/// The options a topic table reads instead of its own for a sampled input: a topic under
/// `work_dir` holding the sample's rows (with their changes).
fn sample_options(
    sql: &str,
    table: &SqlTable,
    input: &TestInput,
    spec: &crate::sample::SampleSpec,
    work_dir: &Path,
) -> Result<Vec<(String, String)>, TestError> {
    let name = table.name();
    if input.rows.is_some() || input.generate.is_some() {
        return Err(TestError::Case(format!("input {name}: give a `sample`, rows or `generate`, one of them")));
    }
    let rows = match &input.sampled {
        Some(rows) => rows.clone(),
        None => crate::sample::sample_table(sql, name, spec, false)
            .map_err(|error| TestError::Case(format!("input {name}: {error}")))?
            .unwrap_or_default(),
    };
    let dir = work_dir.join(format!("{}-sample", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
    let _ = std::fs::remove_dir_all(&dir);
    let topic = tethys_engine::Topic::create(&dir, 1).map_err(|error| file_error(&dir, error))?;
    for row in &rows {
        topic.append(0, row).map_err(|error| file_error(&dir, error))?;
    }
    topic.sync().map_err(|error| file_error(&dir, error))?;
    Ok(vec![
        ("connector".to_string(), "topic".to_string()),
        ("path".to_string(), dir.display().to_string()),
        ("scan.bounded".to_string(), "true".to_string()),
    ])
}

/// How a generated NULL is written.
const NULL_TEXT: &str = "\\N";

/// Rows for `table`'s physical columns as CSV text (`\N` for NULL), generated as `spec` says.
pub fn generate_rows(table: &SqlTable, spec: &GenerateSpec) -> Result<String, TestError> {
    let name = table.name();
    if spec.rows > GENERATED_ROWS_MAX {
        return Err(TestError::Case(format!("input {name}: {} rows asked, at most {GENERATED_ROWS_MAX} are generated", spec.rows)));
    }
    if !(spec.rows_per_second > 0.0 && spec.rows_per_second.is_finite()) {
        return Err(TestError::Case(format!("input {name}: rows_per_second must be above 0")));
    }
    for (what, ratio) in [("null_ratio", spec.null_ratio), ("out_of_order_ratio", spec.out_of_order_ratio), ("late_ratio", spec.late_ratio)]
    {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(TestError::Case(format!("input {name}: {what} is a share, from 0 to 1 (got {ratio})")));
        }
    }
    let fields = &table.physical.fields;
    let key = match &spec.key {
        Some(key) => Some(fields.iter().position(|field| field.name.eq_ignore_ascii_case(key)).ok_or_else(|| {
            TestError::Case(format!("input {name}: no column {key} to draw keys for (its columns: {})", column_names(table)))
        })?),
        None => None,
    };
    let event_time = table.watermark.as_ref().map(|watermark| &table.schema.fields[watermark.column].name);
    let event_time = event_time.and_then(|column| fields.iter().position(|field| &field.name == column));
    let delay = table.watermark.as_ref().map_or(0, |watermark| watermark.delay_ms);
    let keys = Keys::new(spec.keys.max(1), spec.skew);
    let mut random = fastrand::Rng::with_seed(spec.seed);
    let step_ms = 1000.0 / spec.rows_per_second;
    let mut text = String::new();
    for n in 0..spec.rows {
        let on_time = spec.start_ms + (n as f64 * step_ms) as i64;
        let values: Vec<Value> = fields
            .iter()
            .enumerate()
            .map(|(column, field)| {
                if Some(column) == event_time {
                    let time = if random.f64() < spec.late_ratio {
                        on_time - delay - spec.late_by_ms
                    } else if random.f64() < spec.out_of_order_ratio {
                        on_time - random.i64(0..=spec.out_of_order_ms.max(0))
                    } else {
                        on_time
                    };
                    return time_value(&field.data_type, time, &field.name, name);
                }
                if Some(column) == key {
                    return key_value(&field.data_type, keys.draw(&mut random), &field.name, name);
                }
                if field.nullable && random.f64() < spec.null_ratio {
                    return Ok(Value::Null);
                }
                random_value(&field.data_type, &mut random, on_time, &field.name, name)
            })
            .collect::<Result<_, _>>()?;
        text.push_str(&csv_line(&values, NULL_TEXT));
        text.push('\n');
    }
    Ok(text)
}

fn column_names(table: &SqlTable) -> String {
    table.physical.fields.iter().map(|field| field.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn cannot(column: &str, table: &str, data_type: &SqlType) -> TestError {
    TestError::Case(format!("input {table}: cannot generate column {column} of type {data_type}: give rows for it instead"))
}

fn time_value(data_type: &SqlType, ms: i64, column: &str, table: &str) -> Result<Value, TestError> {
    match data_type {
        SqlType::Timestamp | SqlType::TimestampLtz => Ok(Value::Timestamp(ms)),
        SqlType::BigInt => Ok(Value::Int(ms)),
        other => Err(cannot(column, table, other)),
    }
}

fn key_value(data_type: &SqlType, key: u64, column: &str, table: &str) -> Result<Value, TestError> {
    match data_type {
        t if t.is_integer() => Ok(Value::Int(key as i64)),
        SqlType::String => Ok(Value::text(format!("key-{key}"))),
        other => Err(cannot(column, table, other)),
    }
}

const WORDS: &[&str] = &["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"];

fn random_value(data_type: &SqlType, random: &mut fastrand::Rng, now_ms: i64, column: &str, table: &str) -> Result<Value, TestError> {
    Ok(match data_type {
        SqlType::Boolean => Value::Bool(random.bool()),
        SqlType::TinyInt => Value::Int(random.i64(0..100)),
        t if t.is_integer() => Value::Int(random.i64(0..1000)),
        SqlType::Float | SqlType::Double => Value::Float(random.u32(0..100_000) as f64 / 100.0),
        SqlType::Decimal { precision, scale } => {
            let digits = (*precision as u32).saturating_sub(*scale as u32).min(6);
            let whole = random.u64(0..10u64.pow(digits));
            let fraction = random.u64(0..10u64.pow((*scale as u32).min(9)));
            let text = match scale {
                0 => whole.to_string(),
                scale => format!("{whole}.{fraction:0width$}", width = *scale as usize),
            };
            crate::expr::cast::cast_value(Value::text(text), &SqlType::String, data_type, &Default::default())
                .map_err(|_| cannot(column, table, data_type))?
        }
        SqlType::String => Value::text(format!("{}-{}", WORDS[random.usize(0..WORDS.len())], random.u32(0..1000))),
        SqlType::Date => Value::Date((now_ms / 86_400_000) as i32),
        SqlType::Time => Value::Time((now_ms % 86_400_000) as i32),
        SqlType::Timestamp | SqlType::TimestampLtz => Value::Timestamp(now_ms),
        other => return Err(cannot(column, table, other)),
    })
}

/// Keys drawn evenly or with Zipf's skew.
struct Keys {
    /// Cumulative weights, the last 1.
    cumulative: Vec<f64>,
}

impl Keys {
    fn new(count: u64, skew: f64) -> Keys {
        let count = count.min(1_000_000) as usize;
        let weights: Vec<f64> = (0..count).map(|k| 1.0 / ((k + 1) as f64).powf(skew.max(0.0))).collect();
        let total: f64 = weights.iter().sum();
        let mut sum = 0.0;
        let cumulative = weights
            .iter()
            .map(|weight| {
                sum += weight / total;
                sum
            })
            .collect();
        Keys { cumulative }
    }

    fn draw(&self, random: &mut fastrand::Rng) -> u64 {
        let at = random.f64();
        self.cumulative.partition_point(|&sum| sum < at).min(self.cumulative.len() - 1) as u64
    }
}

/// How one row of a comparison stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Expected and produced.
    Same,
    /// Expected, not produced.
    Missing,
    /// Produced, not expected.
    Unexpected,
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffRow {
    /// How it stands.
    pub status: RowStatus,
    /// The row.
    pub row: String,
    /// Its line among the expected rows (from 1), if it is one.
    pub expected_line: Option<usize>,
    /// Its place among the produced rows (from 1), if it is one.
    pub produced_line: Option<usize>,
}

/// Produced rows beside the expected ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowDiff {
    /// How they were compared.
    pub compare: Compare,
    /// Every row, in the order compared.
    pub rows: Vec<DiffRow>,
}

impl RowDiff {
    /// Whether the produced rows are the expected ones.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|row| row.status == RowStatus::Same)
    }

    /// The rows that differ, as lines: `- row` expected and missing, `+ row` produced and not expected.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for row in self.rows.iter().filter(|row| row.status != RowStatus::Same) {
            let (sign, place) = match row.status {
                RowStatus::Missing => ("-", format!("expected line {}", row.expected_line.unwrap_or(0))),
                _ => ("+", format!("produced row {}", row.produced_line.unwrap_or(0))),
            };
            text.push_str(&format!("{sign} {}    ({place})\n", row.row));
        }
        text
    }
}

/// The lines of expected rows (blank lines and `#` comments left out), trimmed.
pub fn expected_rows(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).map(str::to_string).collect()
}

/// Lines up `produced` with `expected` as `compare` says.
pub fn compare(compare: Compare, expected: &[String], produced: &[String]) -> Result<RowDiff, TestError> {
    let (expected, produced): (Vec<Numbered>, Vec<Numbered>) = match compare {
        Compare::Changelog => (numbered(expected), numbered(produced)),
        Compare::Sorted => (sorted(numbered(expected)), sorted(numbered(produced))),
        Compare::Final => (
            sorted(materialized(expected).map_err(|error| TestError::Case(format!("the expected rows: {error}")))?),
            sorted(materialized(produced).map_err(TestError::Run)?),
        ),
    };
    let left: Vec<&str> = expected.iter().map(|(_, row)| row.as_str()).collect();
    let right: Vec<&str> = produced.iter().map(|(_, row)| row.as_str()).collect();
    let mut rows = Vec::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &left, &right) {
        for change in similar::DiffOp::iter_changes(&op, &left, &right) {
            let (status, expected_line, produced_line) = match change.tag() {
                similar::ChangeTag::Equal => (RowStatus::Same, change.old_index(), change.new_index()),
                similar::ChangeTag::Delete => (RowStatus::Missing, change.old_index(), None),
                similar::ChangeTag::Insert => (RowStatus::Unexpected, None, change.new_index()),
            };
            rows.push(DiffRow {
                status,
                row: change.value().to_string(),
                expected_line: expected_line.map(|index| expected[index].0),
                produced_line: produced_line.map(|index| produced[index].0),
            });
        }
    }
    Ok(RowDiff { compare, rows })
}

/// A row and its line (from 1).
type Numbered = (usize, String);

fn numbered(rows: &[String]) -> Vec<Numbered> {
    rows.iter().enumerate().map(|(index, row)| (index + 1, row.clone())).collect()
}

fn sorted(mut rows: Vec<Numbered>) -> Vec<Numbered> {
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

/// What a changelog adds up to: the rows left after every insert and delete, as inserts, each
/// with the line that left it.
fn materialized(changelog: &[String]) -> Result<Vec<Numbered>, String> {
    let mut rows: Vec<Numbered> = Vec::new();
    for (index, change) in changelog.iter().enumerate() {
        let (kind, values) = change.split_at_checked(2).ok_or_else(|| format!("line {}: `{change}` is not a row", index + 1))?;
        match kind {
            "+I" | "+U" => rows.push((index + 1, format!("+I{values}"))),
            "-U" | "-D" => {
                let at = rows
                    .iter()
                    .position(|(_, row)| &row[2..] == values)
                    .ok_or_else(|| format!("line {}: {change} retracts a row never added", index + 1))?;
                rows.remove(at);
            }
            _ => return Err(format!("line {}: `{change}` does not start with +I, -U, +U or -D", index + 1)),
        }
    }
    Ok(rows)
}

/// A case's result: each expected sink's comparison, and what every sink produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The case.
    pub name: String,
    /// By expected sink.
    pub diffs: BTreeMap<String, RowDiff>,
    /// What the run produced.
    pub output: TestOutput,
}

impl TestReport {
    /// Whether every expected sink produced its rows.
    pub fn passed(&self) -> bool {
        self.diffs.values().all(RowDiff::passed)
    }
}

/// Runs `case` and compares each expected sink's rows.
pub fn check_case(case: &TestCase, work_dir: &Path) -> Result<TestReport, TestError> {
    let output = run_test(case, work_dir)?;
    let mut diffs = BTreeMap::new();
    for (sink, expected) in &case.expected {
        let produced = output.sinks.iter().find(|(name, _)| name.eq_ignore_ascii_case(sink)).map(|(_, rows)| rows.as_slice());
        let Some(produced) = produced else {
            let sinks: Vec<&str> = output.sinks.keys().map(String::as_str).collect();
            return Err(TestError::Case(format!(
                "expected {sink}: the script wrote no such table (it wrote: {})",
                if sinks.is_empty() { "none".to_string() } else { sinks.join(", ") }
            )));
        };
        let rows = expected_rows(expected.rows.as_deref().unwrap_or(""));
        diffs.insert(sink.clone(), compare(expected.compare, &rows, produced)?);
    }
    Ok(TestReport { name: case.name.clone(), diffs, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<String> {
        expected_rows(text)
    }

    #[test]
    fn a_changelog_compared_in_order_flags_exactly_the_rows_that_differ() {
        let expected = rows("+I[a, 1]\n+I[b, 1]\n-U[a, 1]\n+U[a, 2]\n");
        let produced = rows("+I[a, 1]\n+I[b, 9]\n-U[a, 1]\n+U[a, 2]\n");
        let diff = compare(Compare::Changelog, &expected, &produced).unwrap();
        assert!(!diff.passed());
        let differing: Vec<(RowStatus, &str, Option<usize>, Option<usize>)> = diff
            .rows
            .iter()
            .filter(|row| row.status != RowStatus::Same)
            .map(|row| (row.status, row.row.as_str(), row.expected_line, row.produced_line))
            .collect();
        assert_eq!(differing, [(RowStatus::Missing, "+I[b, 1]", Some(2), None), (RowStatus::Unexpected, "+I[b, 9]", None, Some(2))]);
        assert_eq!(diff.render(), "- +I[b, 1]    (expected line 2)\n+ +I[b, 9]    (produced row 2)\n");
        assert!(compare(Compare::Changelog, &expected, &expected).unwrap().passed());
        let reordered = rows("+I[b, 1]\n+I[a, 1]\n-U[a, 1]\n+U[a, 2]\n");
        assert!(!compare(Compare::Changelog, &expected, &reordered).unwrap().passed(), "order counts in a changelog");
        assert!(compare(Compare::Sorted, &expected, &reordered).unwrap().passed(), "not when sorted");
    }

    #[test]
    fn final_comparison_adds_each_changelog_up() {
        let produced = rows("+I[a, 1]\n+I[b, 1]\n-U[a, 1]\n+U[a, 2]\n-D[b, 1]\n+I[c, 5]\n");
        let diff = compare(Compare::Final, &rows("+I[c, 5]\n+I[a, 2]\n"), &produced).unwrap();
        assert!(diff.passed(), "{}", diff.render());
        let wrong = compare(Compare::Final, &rows("+I[a, 2]\n+I[b, 1]\n+I[c, 5]\n"), &produced).unwrap();
        assert_eq!(wrong.render(), "- +I[b, 1]    (expected line 2)\n", "b was deleted");
        let retracting = compare(Compare::Final, &rows("-D[x, 1]\n"), &produced).unwrap_err();
        assert_eq!(retracting, TestError::Case("the expected rows: line 1: -D[x, 1] retracts a row never added".into()));
        assert!(matches!(compare(Compare::Final, &rows("garbage"), &[]), Err(TestError::Case(_))));
    }

    fn orders_table() -> SqlTable {
        let mut session = SqlSession::default();
        session
            .execute_script(
                "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ok BOOLEAN, ts TIMESTAMP(3), \
                 WATERMARK FOR ts AS ts - INTERVAL '2' SECOND) WITH ('connector' = 'datagen')",
            )
            .unwrap();
        session.catalog().table("orders").unwrap().clone()
    }

    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        text.lines().map(|line| line.split(',').map(str::to_string).collect()).collect()
    }

    #[test]
    fn generated_rows_follow_the_rate_keys_skew_nulls_and_lateness_asked() {
        let table = orders_table();
        let spec =
            GenerateSpec { rows: 2_000, key: Some("customer".into()), keys: 5, skew: 2.0, null_ratio: 0.25, ..GenerateSpec::default() };
        let text = generate_rows(&table, &spec).unwrap();
        assert_eq!(text, generate_rows(&table, &spec).unwrap(), "the same for a seed");
        let lines = parse_csv(&text);
        assert_eq!(lines.len(), 2_000);
        assert_eq!(lines[0][4], "2026-01-01 00:00:00.000");
        assert_eq!(lines[10][4], "2026-01-01 00:00:01.000", "ten rows per second");
        let keys: std::collections::BTreeSet<&str> = lines.iter().map(|line| line[1].as_str()).collect();
        assert!(keys.iter().all(|key| key.starts_with("key-")) && keys.len() <= 5, "{keys:?}");
        let hottest = lines.iter().filter(|line| line[1] == "key-0").count();
        assert!(hottest > 1_000, "with skew 2, key 0 is drawn about 68% of the time: {hottest}");
        let nulls = lines.iter().filter(|line| line[2] == NULL_TEXT).count();
        assert!((300..700).contains(&nulls), "a quarter of the amounts: {nulls}");
        assert!(lines.iter().all(|line| line[1] != NULL_TEXT && line[4] != NULL_TEXT), "keys and event times are never NULL");

        let late = GenerateSpec { rows: 1_000, late_ratio: 0.1, ..GenerateSpec::default() };
        let lines = parse_csv(&generate_rows(&table, &late).unwrap());
        let times: Vec<&str> = lines.iter().map(|line| line[4].as_str()).collect();
        // A late row is its on-time stamp less the delay (2 s) and late_by (60 s).
        let behind = times.windows(2).filter(|pair| pair[1] < pair[0]).count();
        assert!((50..150).contains(&behind), "about a tenth of the rows come late: {behind}");
    }

    #[test]
    fn generation_refuses_what_it_cannot_make() {
        let table = orders_table();
        let unknown_key = GenerateSpec { key: Some("client".into()), ..GenerateSpec::default() };
        assert_eq!(
            generate_rows(&table, &unknown_key).unwrap_err(),
            TestError::Case("input orders: no column client to draw keys for (its columns: id, customer, amount, ok, ts)".into())
        );
        let bad_ratio = GenerateSpec { null_ratio: 2.0, ..GenerateSpec::default() };
        assert!(generate_rows(&table, &bad_ratio).unwrap_err().to_string().contains("null_ratio is a share"));
        let too_many = GenerateSpec { rows: GENERATED_ROWS_MAX + 1, ..GenerateSpec::default() };
        assert!(generate_rows(&table, &too_many).unwrap_err().to_string().contains("at most"));
    }

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql/tests")
    }

    #[test]
    fn the_example_cases_pass() {
        let scratch = scratch_dir("examples");
        let work = scratch.path().to_path_buf();
        for name in ["orders", "generated"] {
            let case = TestCase::load(&examples().join(format!("{name}.toml"))).unwrap();
            let report = check_case(&case, &work.join(name)).unwrap();
            for (sink, diff) in &report.diffs {
                assert!(diff.passed(), "{name}: {sink}:\n{}\nproduced: {:?}", diff.render(), report.output.sinks);
            }
        }
    }

    #[test]
    fn a_topic_tables_input_is_a_filtered_sample_of_its_live_topic_with_its_changes() {
        use crate::value::{Row, RowKind};
        let scratch = scratch_dir("sample");
        let work = scratch.path().to_path_buf();
        let path = work.join("live-orders");
        let topic = tethys_engine::Topic::create(&path, 1).unwrap();
        for (id, amount) in [(1, 5), (2, 50), (3, 7), (4, 70), (5, 80)] {
            topic.append(0, &Row::insert(vec![Value::Int(id), Value::Int(amount)])).unwrap();
        }
        topic.append(0, &Row::insert(vec![Value::Int(4), Value::Int(70)]).with_kind(RowKind::Delete)).unwrap();
        topic.sync().unwrap();
        let script = format!(
            "CREATE TABLE orders (id BIGINT, amount INT) WITH ('connector' = 'topic', 'path' = '{}');\n\
             CREATE TABLE big (id BIGINT, amount INT) WITH ('connector' = 'print');\n\
             INSERT INTO big SELECT id, amount FROM orders;",
            path.display()
        );
        let sample = crate::sample::SampleSpec { rows: 3, filter: Some("amount > 10".into()), ..Default::default() };
        let case = TestCase {
            sql: Some(script),
            inputs: [("orders".to_string(), TestInput { sample: Some(sample), ..TestInput::default() })].into(),
            expected: [("big".to_string(), Expected { rows: Some("+I[4, 70]\n+I[5, 80]\n-D[4, 70]".into()), ..Expected::default() })]
                .into(),
            ..TestCase::default()
        };
        let report = check_case(&case, &work.join("run")).unwrap();
        assert!(report.passed(), "{report:?}");
        // Taken before (the masters'): those rows are the input.
        let mut taken = case.clone();
        taken.inputs.get_mut("orders").unwrap().sampled = Some(vec![Row::insert(vec![Value::Int(9), Value::Int(99)])]);
        taken.expected.get_mut("big").unwrap().rows = Some("+I[9, 99]".into());
        assert!(check_case(&taken, &work.join("run2")).unwrap().passed());
        drop(topic);
    }

    #[test]
    fn a_test_run_writes_nothing_to_the_real_sink() {
        let scratch = scratch_dir("real-sink");
        let work = scratch.path().to_path_buf();
        let real = work.join("real-sink-output");
        let script = format!(
            "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\n\
             CREATE TABLE s (a INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');\n\
             INSERT INTO s SELECT a * 2 FROM t;",
            real.display()
        );
        let case = TestCase {
            sql: Some(script),
            inputs: [("t".to_string(), TestInput { rows: Some("1\n2\n".into()), ..TestInput::default() })].into(),
            expected: [("s".to_string(), Expected { rows: Some("+I[2]\n+I[4]".into()), ..Expected::default() })].into(),
            ..TestCase::default()
        };
        let report = check_case(&case, &work.join("run")).unwrap();
        assert!(report.passed(), "{report:?}");
        assert!(!real.exists(), "the sink's directory was never made");
    }

    #[test]
    fn a_case_with_one_wrong_row_fails_on_exactly_that_row() {
        let mut case = TestCase::load(&examples().join("orders.toml")).unwrap();
        let running = case.expected.get_mut("running").unwrap();
        running.rows = Some(running.rows.take().unwrap().replace("+U[alice, 3, 18.25]", "+U[alice, 3, 99.00]"));
        let scratch = scratch_dir("one-wrong-row");
        let work = scratch.path().to_path_buf();
        let report = check_case(&case, &work).unwrap();
        assert!(!report.passed());
        assert!(report.diffs["per_window"].passed());
        assert_eq!(
            report.diffs["running"].render(),
            "- +U[alice, 3, 99.00]    (expected line 7)\n+ +U[alice, 3, 18.25]    (produced row 7)\n"
        );
    }

    #[test]
    fn bad_cases_are_refused_with_what_is_wrong() {
        let scratch = scratch_dir("bad-cases");
        let work = scratch.path().to_path_buf();
        let script = "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nCREATE TABLE s (a INT) WITH ('connector' = 'print');\nINSERT INTO s SELECT a FROM t;";
        let case = |inputs: BTreeMap<String, TestInput>, expected: BTreeMap<String, Expected>| TestCase {
            name: "bad".into(),
            sql: Some(script.into()),
            inputs,
            expected,
            ..TestCase::default()
        };
        let rows = |text: &str| TestInput { rows: Some(text.into()), ..TestInput::default() };
        let unknown = case([("tt".to_string(), rows("1"))].into(), BTreeMap::new());
        assert_eq!(
            check_case(&unknown, &work).unwrap_err(),
            TestError::Case("input tt: the script defines no such table; did you mean t?".into())
        );
        let no_sink = case([("t".to_string(), rows("1\n2"))].into(), [("sink".to_string(), Expected::default())].into());
        assert_eq!(
            check_case(&no_sink, &work).unwrap_err(),
            TestError::Case("expected sink: the script wrote no such table (it wrote: s)".into())
        );
        let typo = TestCase { sql: Some("SELEC 1".into()), ..TestCase::default() };
        assert!(matches!(check_case(&typo, &work), Err(TestError::Script(text)) if text.contains("line 1")));
        let ok = case(
            [("t".to_string(), rows("1\n2\n"))].into(),
            [("s".to_string(), Expected { rows: Some("+I[1]\n+I[2]".into()), ..Expected::default() })].into(),
        );
        assert!(check_case(&ok, &work).unwrap().passed());
    }

    /// A directory of its own for a test's run, removed when the test ends.
    fn scratch_dir(name: &str) -> tethys_storage::test_dir::TestDir {
        tethys_storage::test_dir::TestDir::new(&format!("sql-test-run-{name}"))
    }
}
