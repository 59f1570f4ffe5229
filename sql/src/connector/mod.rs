//! Connectors: where a table's rows come from and go, chosen by its `'connector'` option and
//! configured by the rest of its `WITH` options, each checked when the table is used (an unknown
//! option is named with the nearest known one; a missing or malformed one says what it needs).
//!
//! | connector | reads | writes |
//! |---|---|---|
//! | `datagen` | random or sequence values per column, at a rate, bounded or not | |
//! | `bids` | the engine's bids generator (auction, bidder, price, channel, url, id, ts) | |
//! | `nexmark` | the Nexmark generator as nexmark-flink's table (event_type, person, auction, bid rows) | |
//! | `filesystem` | a file or directory of CSV or JSON lines | part files committed on checkpoints (exactly once) |
//! | `topic` | an embedded topic's committed rows (with their changes), a subtask per partition | rows with their changes, exactly once (transactions) |
//! | `print` | | each row on standard output, `+I[...]` |
//! | `blackhole` | | nothing (for benchmarks) |

pub mod bids;
pub mod datagen;
pub mod file;
pub mod nexmark;
pub mod print;
pub mod sampled;
pub mod topic;

use std::collections::BTreeSet;
use std::sync::Arc;

use tethys_engine::frame::Record;
use tethys_engine::sink::Sink;
use tethys_engine::source::nexmark::NexmarkEvent;
use tethys_engine::{DataStream, DataStreamSink, StreamEnvironment};

use crate::catalog::SqlTable;
use crate::check::did_you_mean;
use crate::error::{Position, SqlError};
use crate::plan::ScanPushDown;
use crate::value::{Row, Value};
use datagen::DatagenRow;

/// A table's `WITH` options being read: each read is remembered, and what is left unread at the
/// end is an unknown option.
pub struct Options<'a> {
    table: &'a SqlTable,
    read: BTreeSet<String>,
    known: Vec<String>,
}

impl<'a> Options<'a> {
    /// The options of `table`.
    pub fn new(table: &'a SqlTable) -> Options<'a> {
        Options { table, read: BTreeSet::from(["connector".to_string()]), known: vec!["connector".into()] }
    }

    /// Where the table is defined.
    pub fn at(&self) -> Option<Position> {
        self.table.at
    }

    /// The connector's name.
    pub fn connector(&self) -> &str {
        self.table.def.option("connector").unwrap_or_default()
    }

    /// Option `key`, if given.
    pub fn get(&mut self, key: &str) -> Option<&'a str> {
        self.read.insert(key.to_string());
        self.known.push(key.to_string());
        self.table.def.option(key)
    }

    /// Option `key`, which must be given.
    pub fn require(&mut self, key: &str, example: &str) -> Result<&'a str, SqlError> {
        self.get(key).ok_or_else(|| {
            SqlError::at(
                self.at(),
                format!(
                    "table {}: the {} connector needs option '{key}' (e.g. '{key}' = '{example}')",
                    self.table.name(),
                    self.connector()
                ),
            )
        })
    }

    /// Option `key` parsed as `T`, or `default`.
    pub fn parse<T: std::str::FromStr>(&mut self, key: &str, default: T, what: &str) -> Result<T, SqlError> {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|_| self.invalid(key, text, what)),
        }
    }

    /// Option `key` parsed as `T`, if given.
    pub fn parse_optional<T: std::str::FromStr>(&mut self, key: &str, what: &str) -> Result<Option<T>, SqlError> {
        match self.get(key) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| self.invalid(key, text, what)),
        }
    }

    /// The error for option `key` whose value `text` is not `what`.
    pub fn invalid(&self, key: &str, text: &str, what: &str) -> SqlError {
        SqlError::at(self.at(), format!("table {}: option '{key}' = '{text}' is not {what}", self.table.name()))
    }

    /// Fails on any option not read (a misspelling gets the nearest known option).
    pub fn finish(self) -> Result<(), SqlError> {
        for (key, _) in &self.table.def.options {
            if !self.read.contains(key) {
                let hint = did_you_mean(key, self.known.iter().map(String::as_str))
                    .map(|nearest| format!("; did you mean '{nearest}'?"))
                    .unwrap_or_default();
                return Err(SqlError::at(
                    self.at(),
                    format!("table {}: the {} connector has no option '{key}'{hint}", self.table.name(), self.connector()),
                ));
            }
        }
        Ok(())
    }
}

/// The connectors that read.
pub const SOURCE_CONNECTORS: &[&str] = &["datagen", "bids", "nexmark", "filesystem", "topic"];
/// The connectors that write.
pub const SINK_CONNECTORS: &[&str] = &["print", "blackhole", "filesystem", "topic"];

fn connector_of(table: &SqlTable, known: &[&str], role: &str) -> Result<String, SqlError> {
    let Some(connector) = table.def.option("connector") else {
        return Err(SqlError::at(table.at, format!("table {} has no 'connector' option: say where its rows {role}", table.name())));
    };
    if !known.contains(&connector) {
        let all: Vec<&str> = SOURCE_CONNECTORS.iter().chain(SINK_CONNECTORS).copied().collect();
        let hint = match did_you_mean(connector, all.iter().copied()) {
            Some(nearest) => format!("; did you mean '{nearest}'?"),
            None => format!(" (the connectors that {role}: {})", known.join(", ")),
        };
        let what = if all.contains(&connector) {
            format!("the {connector} connector cannot {role}")
        } else {
            format!("no connector named '{connector}'")
        };
        return Err(SqlError::at(table.at, format!("table {}: {what}{hint}", table.name())));
    }
    Ok(connector.to_string())
}

/// Fills a scan's row from one of its source's records: writes the slots of the columns the
/// query reads (the row is reused from record to record, so a slot it does not write holds what
/// the last record left there, or NULL); false if the record makes no row.
pub type FillRow<E> = Arc<dyn Fn(&E, &mut [Value]) -> bool + Send + Sync>;

/// What a table's source gives: rows, or records that fill a scan's row (see [`FillRow`]), so
/// that the operator above builds only the row it outputs.
pub enum Scan {
    /// A row per record: the physical columns, or with `pushed` fields given as columns of their
    /// own ([`flattened_fields`]), every column and those fields (the computed ones NULL).
    Rows(DataStream<Row>),
    /// The nexmark generator's events.
    Nexmark(DataStream<NexmarkEvent>, FillRow<NexmarkEvent>),
    /// A datagen table's rows, before their values are drawn.
    Datagen(DataStream<DatagenRow>, FillRow<DatagenRow>),
}

/// The generator sources (nexmark, datagen) of a job's tables, each made once however many scans
/// of the job read its table, as Flink's source reuse: every scan gets all the records (fanned
/// out) and fills its rows with what its query reads. Scans of one table then see the same rows
/// (a datagen table's random times included).
#[derive(Default)]
pub struct SharedSources {
    /// Scans per table, by the table's definition (counted before any is built).
    readers: std::collections::HashMap<String, usize>,
    /// Per table read by several scans: the copies of its records not yet taken.
    copies: std::collections::HashMap<String, Box<dyn std::any::Any>>,
}

impl SharedSources {
    /// Counts one more scan of `table`.
    pub fn count(&mut self, table: &SqlTable) {
        *self.readers.entry(format!("{table:?}")).or_insert(0) += 1;
    }

    /// The records of `table`'s source, made by `make` for its first scan, a copy for the others.
    fn stream<E: Record + Clone>(&mut self, table: &SqlTable, make: impl FnOnce() -> DataStream<E>) -> DataStream<E> {
        let key = format!("{table:?}");
        let readers = self.readers.get(&key).copied().unwrap_or(1);
        if readers <= 1 {
            return make();
        }
        match self.copies.get_mut(&key) {
            Some(copies) => {
                let copies: &mut Vec<DataStream<E>> = copies.downcast_mut().expect("a table's source has one record type");
                copies.pop().unwrap_or_else(|| {
                    debug_assert!(false, "more scans of {} than were counted", table.name());
                    make()
                })
            }
            None => {
                let mut copies = make().fan_out(readers);
                let first = copies.remove(0);
                self.copies.insert(key, Box::new(copies));
                first
            }
        }
    }
}

/// A row per record, each `width` values filled by `fill` (NULL where it writes nothing), with
/// the source's parallelism.
fn filled_rows<E: Record>(records: DataStream<E>, fill: FillRow<E>, width: usize) -> DataStream<Row> {
    let parallelism = records.parallelism_set();
    let rows = records.flat_map(move |record: E| {
        let mut values = vec![Value::Null; width];
        fill(&record, &mut values).then(|| Row::insert(values))
    });
    match parallelism {
        Some(parallelism) => rows.parallelism(parallelism),
        None => rows,
    }
}

impl Scan {
    /// A row per record, as [`Scan::Rows`] says (made with the source's parallelism).
    pub fn into_rows(self, table: &SqlTable, pushed: Option<&ScanPushDown>) -> DataStream<Row> {
        match self {
            Scan::Rows(rows) => rows,
            Scan::Nexmark(events, fill) => {
                let flat = pushed.map_or(0, |pushed| flattened_fields(table, pushed).len());
                let width = if flat == 0 { table.physical.fields.len() } else { table.schema.fields.len() + flat };
                filled_rows(events, fill, width)
            }
            Scan::Datagen(rows, fill) => filled_rows(rows, fill, table.physical.fields.len()),
        }
    }
}

/// Reads table `table`'s physical columns as rows, with `parallelism` subtasks; `pushed`: what
/// the query needs of them (a connector may leave the rest NULL, and skip rows its filter drops).
pub fn source(
    env: &StreamEnvironment,
    table: &SqlTable,
    pushed: Option<&ScanPushDown>,
    parallelism: usize,
) -> Result<DataStream<Row>, SqlError> {
    Ok(scan(env, table, pushed, parallelism, &mut SharedSources::default())?.into_rows(table, pushed))
}

/// Reads table `table` with `parallelism` subtasks, as rows or as records that fill rows;
/// `pushed` as for [`source`].
pub fn scan(
    env: &StreamEnvironment,
    table: &SqlTable,
    pushed: Option<&ScanPushDown>,
    parallelism: usize,
    shared: &mut SharedSources,
) -> Result<Scan, SqlError> {
    let connector = connector_of(table, SOURCE_CONNECTORS, "come from")?;
    let mut options = Options::new(table);
    let stream = match connector.as_str() {
        "datagen" => {
            let (source, fill) = datagen::scan(table, &mut options, pushed)?;
            options.finish()?;
            let rows = shared.stream(table, || env.source(table.name(), source).parallelism(parallelism));
            return Ok(Scan::Datagen(rows, fill));
        }
        "bids" => bids::source(env, table, &mut options)?,
        "nexmark" => {
            let (generator, fill) = nexmark::scan(table, &mut options, pushed)?;
            options.finish()?;
            let events = shared.stream(table, || env.source(table.name(), generator).parallelism(parallelism));
            return Ok(Scan::Nexmark(events, fill));
        }
        "topic" => {
            // One subtask per partition, whatever the job's parallelism.
            let (stream, _) = topic::source(env, table, &mut options)?;
            options.finish()?;
            return Ok(Scan::Rows(stream));
        }
        _ => file::source(env, table, &mut options)?,
    };
    options.finish()?;
    Ok(Scan::Rows(stream.parallelism(parallelism)))
}

/// The physical columns of `table` whose value its source, told `pushed`, fixes for every row it
/// reads (a filter it applies itself, e.g. `event_type = 2` of the nexmark table): expressions
/// over the scan may take them as constants.
pub fn fixed_columns(table: &SqlTable, pushed: &ScanPushDown) -> Vec<(usize, Value)> {
    match table.def.option("connector") {
        Some("nexmark") => nexmark::fixed_columns(table, pushed),
        _ => Vec::new(),
    }
}

/// The fields of `ROW` columns that `table`'s connector, told `pushed`, gives as columns of their
/// own (Flink's nested projection push-down): in this order, after the table's physical and
/// computed columns, each `(column, field)`, with the `ROW` column itself left NULL. A query
/// over the scan reads `column.field` as that column instead, so no `ROW` value is built per row.
/// Only for `ROW` columns read by their fields alone (`pushed.fields`).
pub fn flattened_fields(table: &SqlTable, pushed: &ScanPushDown) -> Vec<(usize, usize)> {
    match table.def.option("connector") {
        Some("nexmark") => nexmark::flattened_fields(table, pushed),
        _ => Vec::new(),
    }
}

/// A table a lookup join reads whole, when first asked: a file (or directory) of rows, or an
/// embedded topic's committed rows with their changes applied (what the table holds now).
pub enum LookupRows {
    /// A `filesystem` table.
    File(file::FileRows),
    /// A `topic` table.
    Topic(topic::TopicRows),
}

impl LookupRows {
    /// Every row, read now.
    pub fn read(&self) -> Result<Vec<Row>, String> {
        match self {
            LookupRows::File(rows) => rows.read(),
            LookupRows::Topic(rows) => rows.read(),
        }
    }
}

/// Table `table` as a lookup join reads it (its physical columns, whole, when asked), its options
/// checked now: a `filesystem` or a `topic` table.
pub fn lookup_table(table: &SqlTable) -> Result<LookupRows, SqlError> {
    let connector = table.def.option("connector").unwrap_or("?");
    let mut options = Options::new(table);
    let rows = match connector {
        "filesystem" => LookupRows::File(file::FileRows::of(table, &mut options)?),
        "topic" => LookupRows::Topic(topic::TopicRows::of(table, &mut options)?),
        _ => {
            return Err(SqlError::at(
                table.at,
                format!(
                "table {} ({connector}) cannot be looked up: a lookup join reads a 'filesystem' or 'topic' table, whole, when first needed",
                table.name()
            ),
            ))
        }
    };
    options.finish()?;
    Ok(rows)
}

/// Whether table `table` can be written rows of a query that produces updates (`updating`), as
/// its connector takes them; else an error at `at` (the INSERT's place: the query is what does
/// not fit the table). A table without a known connector is left to `sink` to report.
pub(crate) fn check_takes_changelog(table: &SqlTable, updating: bool, at: Option<Position>) -> Result<(), SqlError> {
    match table.def.option("connector") {
        Some(connector @ "filesystem") if updating => Err(SqlError::at(
            at,
            format!(
                "table {} ({connector}) takes only inserts, and the query produces updates (a GROUP BY over a stream): write it to a table whose connector takes updates (topic, print, blackhole), or aggregate over windows",
                table.name()
            ),
        )),
        _ => Ok(()),
    }
}

/// Writes `stream` (rows of `table`'s physical columns) to table `table`; `updating`: the rows
/// are a changelog, which only some connectors take.
pub fn sink(stream: DataStream<Row>, table: &SqlTable, updating: bool, parallelism: usize) -> Result<DataStreamSink, SqlError> {
    let connector = connector_of(table, SINK_CONNECTORS, "go to")?;
    let mut options = Options::new(table);
    check_takes_changelog(table, updating, table.at)?;
    let sink: Box<dyn Sink<Row>> = match connector.as_str() {
        "print" => {
            let identifier = options.get("print-identifier").map(str::to_string);
            let standard_error = options.parse("standard-error", false, "true or false")?;
            Box::new(print::RowPrintSink { identifier, standard_error })
        }
        "blackhole" => Box::new(tethys_engine::sink::discard::DiscardSink::new()),
        "topic" => topic::sink(table, &mut options)?,
        _ => file::sink(table, &mut options)?,
    };
    options.finish()?;
    Ok(stream.sink(table.name(), sampled::SampledSink::new(sink, table.name(), &table.physical)).parallelism(parallelism))
}
