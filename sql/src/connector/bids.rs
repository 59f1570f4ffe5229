//! The `bids` connector: the engine's bids generator (the workload of `tethys bench`) as a table.
//!
//! ```sql
//! CREATE TABLE bids (
//!   auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, id BIGINT,
//!   ts TIMESTAMP(3),
//!   WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
//! ) WITH ('connector' = 'bids', 'number-of-events' = '1000000')
//! ```
//!
//! The table declares any of the generator's columns, in any order; `ts` is the bid's event time
//! (its id in milliseconds since the epoch). Options: `number-of-events` (default: unbounded),
//! `events-per-second` (default: as fast as it goes), `seed` (default 0).

use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::{DataStream, StreamEnvironment};

use super::Options;
use crate::catalog::SqlTable;
use crate::error::SqlError;
use crate::types::SqlType;
use crate::value::{Row, Value};

/// The generator's columns and their types.
pub const BID_COLUMNS: &[(&str, SqlType)] = &[
    ("auction", SqlType::BigInt),
    ("bidder", SqlType::BigInt),
    ("price", SqlType::BigInt),
    ("channel", SqlType::String),
    ("url", SqlType::String),
    ("id", SqlType::BigInt),
    ("ts", SqlType::Timestamp),
];

fn value(bid: &Bid, column: usize) -> Value {
    match column {
        0 => Value::Int(bid.auction),
        1 => Value::Int(bid.bidder),
        2 => Value::Int(bid.price),
        3 => Value::text(bid.channel.as_str()),
        4 => Value::text(bid.url.as_str()),
        5 => Value::Int(bid.id),
        _ => Value::Timestamp(bid.ts),
    }
}

pub(super) fn source(env: &StreamEnvironment, table: &SqlTable, options: &mut Options<'_>) -> Result<DataStream<Row>, SqlError> {
    let events: Option<u64> = options.parse_optional("number-of-events", "a number of events")?;
    let rate: Option<u64> = options.parse_optional("events-per-second", "a number of events per second")?;
    let seed: u64 = options.parse("seed", 0, "a number")?;
    let mut columns = Vec::new();
    for field in &table.physical.fields {
        let Some(index) = BID_COLUMNS.iter().position(|(name, _)| name.eq_ignore_ascii_case(&field.name)) else {
            let names = BID_COLUMNS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
            return Err(SqlError::at(
                options.at(),
                format!("table {}: the bids connector has no column {} (its columns: {names})", table.name(), field.name),
            ));
        };
        let wanted = &BID_COLUMNS[index].1;
        let fits = field.data_type == *wanted
            || (wanted.is_integer() && field.data_type == SqlType::BigInt)
            || (wanted.is_timestamp() && field.data_type.is_timestamp());
        if !fits {
            return Err(SqlError::at(
                options.at(),
                format!("table {}: the bids connector's column {} is {wanted}, not {}", table.name(), field.name, field.data_type),
            ));
        }
        columns.push(index);
    }
    let mut generator = BidsSource { events, seed, events_per_second: None };
    if let Some(rate) = rate {
        generator = generator.with_rate(rate);
    }
    Ok(env.source(table.name(), generator).map(move |bid: Bid| Row::insert(columns.iter().map(|&column| value(&bid, column)).collect())))
}
