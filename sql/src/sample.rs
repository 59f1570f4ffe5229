//! Samples of a live source for test runs: a bounded number of an embedded topic's committed
//! rows (the newest or the oldest), those a filter keeps, with their changes (`+I`, `-U`, `+U`,
//! `-D`) as the topic holds them.
//!
//! A topic's directory is locked by the one process that has it open (a worker running a job
//! that reads or writes it), so a sample is read there: [`sample_table`] with `held_only` reads
//! only a topic this process holds (a worker's answer to the masters), and without it opens the
//! topic itself when no process holds it.

use serde::{Deserialize, Serialize};
use tethys_engine::Topic;

use crate::catalog::SqlTable;
use crate::expr::{Binder, Scalar, Scope};
use crate::function::{EvalContext, FunctionRegistry};
use crate::script::{parse_script, Statement};
use crate::session::SqlSession;
use crate::value::Row;

/// Rows a sample may hold.
pub const SAMPLE_ROWS_MAX: u64 = 10_000;
/// Rows of each partition a filtered sample looks through at most (the newest or oldest).
pub const SAMPLE_SCAN_MAX: u64 = 200_000;
/// Rows read under one lock of a partition (a running job writing it waits no longer).
const READ_CHUNK: usize = 4_096;

/// Which rows a sample takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SampleFrom {
    /// The newest committed rows.
    #[default]
    Newest,
    /// The oldest rows kept.
    Oldest,
}

/// A bounded sample of a topic table's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSpec {
    /// How many rows at most.
    pub rows: u64,
    /// The newest or the oldest.
    pub from: SampleFrom,
    /// A condition on the table's columns (SQL, as after WHERE): only rows it holds for.
    pub filter: Option<String>,
}

impl Default for SampleSpec {
    fn default() -> SampleSpec {
        SampleSpec { rows: 100, from: SampleFrom::Newest, filter: None }
    }
}

/// Why a sample could not be taken; each names the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SampleError(pub String);

/// A sample of table `table` of `script` (its `CREATE TABLE`s are read; nothing runs), as `spec`
/// says. `held_only`: only if this process holds the table's topic (`None` if it does not).
pub fn sample_table(script: &str, table: &str, spec: &SampleSpec, held_only: bool) -> Result<Option<Vec<Row>>, SampleError> {
    let error = |reason: String| SampleError(format!("sample of {table}: {reason}"));
    if spec.rows == 0 || spec.rows > SAMPLE_ROWS_MAX {
        return Err(error(format!("{} rows asked; a sample holds 1 to {SAMPLE_ROWS_MAX}", spec.rows)));
    }
    let statements = parse_script(script).map_err(|errors| error(errors[0].render(script)))?;
    let mut scratch = SqlSession::default();
    for statement in &statements {
        if matches!(statement.statement, Statement::CreateTable(_)) {
            scratch.execute(statement).map_err(|e| error(e.render(script)))?;
        }
    }
    let defined = scratch.catalog().table(table).ok_or_else(|| error("the script defines no such table".into()))?;
    let path = topic_path(defined).map_err(error)?;
    let filter = spec.filter.as_deref().map(|text| compile_filter(defined, text)).transpose().map_err(error)?;
    let topic = match (Topic::open_held(&path), held_only) {
        (Some(topic), _) => topic,
        (None, true) => return Ok(None),
        (None, false) => Topic::open(&path).map_err(|e| error(e.to_string()))?,
    };
    read(&topic, spec, filter.as_ref()).map(Some).map_err(error)
}

/// The topic directory of a `topic` table.
fn topic_path(table: &SqlTable) -> Result<String, String> {
    match (table.def.option("connector"), table.def.option("path")) {
        (Some("topic"), Some(path)) => Ok(path.to_string()),
        (Some("topic"), None) => Err("the table has no 'path' option".into()),
        (connector, _) => Err(format!(
            "a sample reads an embedded topic, and table {} is a {} table: give it rows or generated ones instead",
            table.name(),
            connector.unwrap_or("connector-less")
        )),
    }
}

/// `text` (a condition, as after WHERE) over `table`'s physical columns.
pub fn compile_filter(table: &SqlTable, text: &str) -> Result<Scalar, String> {
    let dialect = crate::dialect::TethysDialect;
    let expr = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| format!("filter {text:?}: {e}"))?;
    let scope = Scope::of(&table.physical, Some(table.name()));
    let functions = FunctionRegistry::default();
    let bound = Binder::new(&scope, &functions).bind_condition(&expr, "a filter").map_err(|e| format!("filter {text:?}: {}", e.message))?;
    Ok(bound.scalar)
}

/// The sample of `topic`: from each partition the newest (or oldest) rows `filter` keeps, at most
/// `spec.rows` of each, then the partitions' rows interleaved and the newest (oldest) kept.
fn read(topic: &Topic, spec: &SampleSpec, filter: Option<&Scalar>) -> Result<Vec<Row>, String> {
    let context = EvalContext::default();
    let ends = topic.end_offsets();
    // Unfiltered, the rows asked for are the rows looked through (a topic's transaction markers
    // take offsets too, so the newest are looked for a little further back).
    let scan = if filter.is_some() { SAMPLE_SCAN_MAX } else { spec.rows * 2 + 16 };
    let mut partitions = Vec::new();
    for (partition, end) in ends.into_iter().enumerate() {
        let mut next = match spec.from {
            SampleFrom::Newest => end.saturating_sub(scan),
            SampleFrom::Oldest => 0,
        };
        let (mut kept, mut scanned) = (Vec::new(), 0u64);
        // In chunks, up to the end seen at the start (what is written meanwhile is not waited for).
        'scan: while next < end && scanned < scan {
            let chunk = topic.read_committed_range::<Row>(partition, next, READ_CHUNK).map_err(|e| e.to_string())?;
            let Some(&(last, _)) = chunk.last() else { break };
            next = last + 1;
            for (offset, row) in chunk {
                if offset >= end || scanned == scan || (spec.from == SampleFrom::Oldest && kept.len() as u64 == spec.rows) {
                    break 'scan;
                }
                scanned += 1;
                let keep = match filter {
                    None => true,
                    Some(filter) => filter.test(&row.values, &context)? == Some(true),
                };
                if keep {
                    kept.push(row);
                }
            }
        }
        if spec.from == SampleFrom::Newest {
            let excess = kept.len().saturating_sub(spec.rows as usize);
            kept.drain(..excess);
        }
        partitions.push(kept.into_iter());
    }
    let mut rows = Vec::new();
    loop {
        let before = rows.len();
        rows.extend(partitions.iter_mut().filter_map(Iterator::next));
        if rows.len() == before {
            break;
        }
    }
    let excess = rows.len().saturating_sub(spec.rows as usize);
    match spec.from {
        SampleFrom::Newest => drop(rows.drain(..excess)),
        SampleFrom::Oldest => rows.truncate(spec.rows as usize),
    }
    Ok(rows)
}

/// Rows encoded to cross processes (the engine's codec, as topics store them).
pub fn encode_rows(rows: &[Row]) -> Vec<Vec<u8>> {
    rows.iter().map(|row| tethys_engine::base::codec::encode(row).expect("rows encode")).collect()
}

/// Rows encoded by [`encode_rows`].
pub fn decode_rows(encoded: &[Vec<u8>]) -> Result<Vec<Row>, String> {
    encoded
        .iter()
        .map(|bytes| tethys_engine::base::codec::decode::<Row>(bytes).map_err(|e| format!("a sampled row does not decode: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{RowKind, Value};
    use tethys_storage::test_dir::TestDir;

    fn script(path: &std::path::Path) -> String {
        format!(
            "CREATE TABLE orders (id BIGINT, customer STRING, amount DOUBLE) WITH ('connector' = 'topic', 'path' = '{}');
             CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen');",
            path.display()
        )
    }

    fn row(id: i64, customer: &str, amount: f64) -> Row {
        Row::insert(vec![Value::Int(id), Value::Str(customer.into()), Value::Float(amount)])
    }

    #[test]
    fn a_sample_takes_the_newest_or_oldest_rows_a_filter_keeps_with_their_changes() {
        let scratch = TestDir::new("sql-sample-topic");
        let path = scratch.path().join("orders");
        let topic = Topic::create(&path, 2).unwrap();
        for id in 0..100 {
            topic.append((id % 2) as usize, &row(id, if id % 3 == 0 { "alice" } else { "bob" }, id as f64)).unwrap();
        }
        topic.append(0, &row(100, "alice", 1.0).with_kind(RowKind::Delete)).unwrap();
        topic.sync().unwrap();
        let script = script(&path);
        let ids = |rows: Vec<Row>| rows.iter().map(|row| row.values[0].clone()).collect::<Vec<_>>();

        // Held by this process (the topic is open here): read.
        let newest = sample_table(&script, "orders", &SampleSpec { rows: 4, ..SampleSpec::default() }, true).unwrap().unwrap();
        // The newest 4 of each partition (94 to 100, the delete; 93 to 99), interleaved.
        assert_eq!(ids(newest.clone()), [98, 97, 100, 99].map(Value::Int));
        assert_eq!(newest[2].kind, RowKind::Delete, "changes kept");
        let oldest = SampleSpec { rows: 3, from: SampleFrom::Oldest, filter: None };
        assert_eq!(ids(sample_table(&script, "orders", &oldest, true).unwrap().unwrap()), [0, 1, 2].map(Value::Int));
        let filtered = SampleSpec { rows: 3, filter: Some("customer = 'alice' AND amount > 50".into()), ..SampleSpec::default() };
        let rows = sample_table(&script, "orders", &filtered, true).unwrap().unwrap();
        assert!(rows.iter().all(|row| row.values[1] == Value::Str("alice".into())), "{rows:?}");
        assert_eq!(ids(rows), [93, 96, 99].map(Value::Int));
        // Rows cross processes as bytes.
        let sample = sample_table(&script, "orders", &SampleSpec::default(), true).unwrap().unwrap();
        assert_eq!(decode_rows(&encode_rows(&sample)).unwrap(), sample);

        // Not held: only without `held_only` is it opened.
        drop(topic);
        assert_eq!(sample_table(&script, "orders", &SampleSpec::default(), true).unwrap(), None);
        assert_eq!(sample_table(&script, "orders", &SampleSpec::default(), false).unwrap().unwrap().len(), 100);
    }

    #[test]
    fn bad_samples_are_refused_naming_what_is_wrong() {
        let scratch = TestDir::new("sql-sample-bad");
        let path = scratch.path().join("orders");
        let script = script(&path);
        let refused = |table: &str, spec: SampleSpec| sample_table(&script, table, &spec, false).unwrap_err().0;
        assert!(refused("gen", SampleSpec::default()).contains("is a datagen table"));
        assert!(refused("nope", SampleSpec::default()).contains("defines no such table"));
        assert!(refused("orders", SampleSpec { rows: 0, ..SampleSpec::default() }).contains("1 to 10000"));
        let spec = SampleSpec { filter: Some("custmer = 'a'".into()), ..SampleSpec::default() };
        assert!(refused("orders", spec).contains("customer"), "did you mean");
        let spec = SampleSpec { filter: Some("amount + 1".into()), ..SampleSpec::default() };
        assert!(refused("orders", spec).contains("BOOLEAN"));
        assert!(refused("orders", SampleSpec::default()).contains("is not a topic"), "no topic there yet");
    }
}
