//! The `topic` connector: the engine's embedded topics (durable, partitioned logs on local disk)
//! as tables, read and written with their changes (`+I`, `-U`, `+U`, `-D`), so a topic holds a
//! changelog as well as inserts.
//!
//! ```sql
//! CREATE TABLE totals (product INT, total DECIMAL(38, 2))
//! WITH ('connector' = 'topic', 'path' = 'topics/totals', 'partitions' = '2');
//! ```
//!
//! Options: `path` (the topic's directory; a sink creates the topic when it is missing),
//! `partitions` (of a topic a sink creates, default 1; a source reads with one subtask per
//! partition), `scan.bounded` (a source reads what was committed when it started, then ends;
//! default true; false follows the topic), `sink.delivery-guarantee` (`exactly-once`, the default:
//! rows become visible when a checkpoint completes or the job ends, once even if the job restarts;
//! or `at-least-once`). Rows are stored with the rows' codec; a row of another width than the
//! table's is an error naming the topic.

use tethys_engine::sink::topic::TopicSink;
use tethys_engine::sink::Sink;
use tethys_engine::source::topic::TopicSource;
use tethys_engine::{DataStream, StreamEnvironment, Topic};

use super::Options;
use crate::catalog::SqlTable;
use crate::error::SqlError;
use crate::value::Row;

/// Opens the topic of `table`, creating it with its `partitions` when `create` and it is missing.
fn topic_of(table: &SqlTable, options: &mut Options<'_>, create: bool) -> Result<Topic, SqlError> {
    let path = options.require("path", "topics/orders")?.to_string();
    let partitions: usize = options.parse("partitions", 1, "a number of partitions")?;
    let exists = std::path::Path::new(&path).join(tethys_engine::topic::METADATA_FILE).exists();
    let opened = if exists || !create { Topic::open(&path) } else { Topic::create(&path, partitions) };
    opened.map_err(|error| SqlError::at(options.at(), format!("table {}: {error}", table.name())))
}

/// Reads the topic's committed rows, one subtask per partition (the returned parallelism).
pub(super) fn source(env: &StreamEnvironment, table: &SqlTable, options: &mut Options<'_>) -> Result<(DataStream<Row>, usize), SqlError> {
    let topic = topic_of(table, options, false)?;
    let bounded = options.parse("scan.bounded", true, "true or false")?;
    let partitions = topic.partitions();
    let source = if bounded { TopicSource::new(topic) } else { TopicSource::unbounded(topic) };
    let width = table.physical.fields.len();
    let name = table.name().to_string();
    let stream = env
        .source(table.name(), source)
        .parallelism(partitions)
        .process("CheckWidth", move |_| CheckWidth { width, table: name.clone() })
        .parallelism(partitions);
    Ok((stream, partitions))
}

/// A topic table as a lookup join reads it: every committed row of every partition, each change
/// applied (`-U` and `-D` take back one equal row `+I` or `+U` added, in whichever order the
/// partitions hold them), so the rows the table holds when it is read.
pub struct TopicRows {
    path: String,
    table: String,
    width: usize,
}

impl TopicRows {
    /// Checks a table's options; reads nothing yet.
    pub(super) fn of(table: &SqlTable, options: &mut Options<'_>) -> Result<TopicRows, SqlError> {
        let path = options.require("path", "topics/orders")?.to_string();
        // A source's and a sink's options say nothing to a lookup.
        for key in ["partitions", "scan.bounded", "sink.delivery-guarantee"] {
            options.get(key);
        }
        Ok(TopicRows { path, table: table.name().to_string(), width: table.physical.fields.len() })
    }

    /// The rows the topic's committed changes add up to, read now.
    pub fn read(&self) -> Result<Vec<Row>, String> {
        let failed = |what: String| format!("table {}: {what}", self.table);
        let topic = Topic::open(&self.path).map_err(|error| failed(error.to_string()))?;
        let mut held: Vec<(crate::value::RowKey, i64)> = Vec::new();
        let mut at: std::collections::HashMap<crate::value::RowKey, usize> = std::collections::HashMap::new();
        for partition in 0..topic.partitions() {
            for (offset, row) in topic.read_committed::<Row>(partition, 0).map_err(|error| failed(error.to_string()))? {
                if row.values.len() != self.width {
                    return Err(failed(format!(
                        "row at offset {offset} of partition {partition} has {} values, the table {} columns",
                        row.values.len(),
                        self.width
                    )));
                }
                // Counted with signs: a change read before the row it takes back still takes it.
                let change = if row.kind.is_accumulate() { 1 } else { -1 };
                let key = crate::value::RowKey::from(row.values);
                match at.get(&key) {
                    Some(&index) => held[index].1 += change,
                    None => {
                        at.insert(key.clone(), held.len());
                        held.push((key, change));
                    }
                }
            }
        }
        Ok(held.into_iter().flat_map(|(key, count)| std::iter::repeat_n(Row::insert(key.0.into_vec()), count.max(0) as usize)).collect())
    }
}

/// Refuses rows that are not of the table's width (a topic written under another schema).
struct CheckWidth {
    width: usize,
    table: String,
}

impl tethys_engine::operator::FrameOperator<Row, Row> for CheckWidth {
    fn process(&mut self, frame: Vec<Row>, out: &mut tethys_engine::operator::Output<'_, Row>) -> Result<(), tethys_engine::UserError> {
        if let Some(row) = frame.iter().find(|row| row.values.len() != self.width) {
            return Err(format!(
                "table {}: a row of the topic has {} columns and the table {} (was the topic written under another schema?): {row}",
                self.table,
                row.values.len(),
                self.width
            )
            .into());
        }
        out.emit_frame(frame);
        Ok(())
    }
}

/// Writes rows (with their changes) to the topic, exactly once unless told otherwise.
pub(super) fn sink(table: &SqlTable, options: &mut Options<'_>) -> Result<Box<dyn Sink<Row>>, SqlError> {
    let topic = topic_of(table, options, true)?;
    Ok(match options.get("sink.delivery-guarantee").unwrap_or("exactly-once") {
        "exactly-once" => Box::new(TopicSink::exactly_once(topic).with_name(table.name())),
        "at-least-once" => Box::new(TopicSink::at_least_once(topic)),
        other => return Err(options.invalid("sink.delivery-guarantee", other, "'exactly-once' or 'at-least-once'")),
    })
}
