//! The `nexmark` connector: the engine's Nexmark generator as the table nexmark-flink declares,
//! one row per event with the event's kind and one `ROW` column per kind (the others NULL).
//!
//! ```sql
//! CREATE TABLE datagen (
//!   event_type INT,
//!   person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR,
//!              state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
//!   auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
//!               dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
//!   bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
//!           dateTime TIMESTAMP(3), extra VARCHAR>,
//!   dateTime AS CASE WHEN event_type = 0 THEN person.dateTime
//!                    WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
//!   WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
//! ) WITH ('connector' = 'nexmark', 'events.num' = '1000000');
//! ```
//!
//! The table may declare any of these columns and row fields, in any order (names compared
//! without case). Options, as nexmark-flink's: `events.num` (default: unbounded),
//! `first-event.rate` (events per second of event time, default 10000), `person.proportion`,
//! `auction.proportion`, `bid.proportion` (1, 3, 46), and Tethys's `seed` (default 0).

use tethys_engine::source::nexmark::{Auction, NexmarkBid, NexmarkConfig, NexmarkEvent, NexmarkSource, Person};

use super::FillRow;
use super::Options;
use crate::catalog::SqlTable;
use crate::error::SqlError;
use crate::expr::{Compare, Scalar};
use crate::plan::ScanPushDown;
use crate::text::Text;
use crate::types::SqlType;
use crate::value::Value;

const PERSON_FIELDS: &[(&str, SqlType)] = &[
    ("id", SqlType::BigInt),
    ("name", SqlType::String),
    ("emailAddress", SqlType::String),
    ("creditCard", SqlType::String),
    ("city", SqlType::String),
    ("state", SqlType::String),
    ("dateTime", SqlType::Timestamp),
    ("extra", SqlType::String),
];

const AUCTION_FIELDS: &[(&str, SqlType)] = &[
    ("id", SqlType::BigInt),
    ("itemName", SqlType::String),
    ("description", SqlType::String),
    ("initialBid", SqlType::BigInt),
    ("reserve", SqlType::BigInt),
    ("dateTime", SqlType::Timestamp),
    ("expires", SqlType::Timestamp),
    ("seller", SqlType::BigInt),
    ("category", SqlType::BigInt),
    ("extra", SqlType::String),
];

const BID_FIELDS: &[(&str, SqlType)] = &[
    ("auction", SqlType::BigInt),
    ("bidder", SqlType::BigInt),
    ("price", SqlType::BigInt),
    ("channel", SqlType::String),
    ("url", SqlType::String),
    ("dateTime", SqlType::Timestamp),
    ("extra", SqlType::String),
];

/// An event's `extra` padding: a slice of the generator's pool, which lives as long as the
/// program, so it is borrowed, never copied.
// These are inlined where a scan's row is filled, so a value is stored in its slot as it is made.
#[inline(always)]
fn extra(value: &tethys_engine::source::nexmark::ExtraStr) -> Value {
    Value::Str(Text::from_static(value.as_str()))
}

#[inline(always)]
fn person_field(person: &Person, field: usize) -> Value {
    match field {
        0 => Value::Int(person.id),
        1 => Value::text(person.name.as_str()),
        2 => Value::text(person.email_address.as_str()),
        3 => Value::text(person.credit_card.as_str()),
        4 => Value::text(person.city.as_str()),
        5 => Value::text(person.state.as_str()),
        6 => Value::Timestamp(person.date_time),
        _ => extra(&person.extra),
    }
}

#[inline(always)]
fn auction_field(auction: &Auction, field: usize) -> Value {
    match field {
        0 => Value::Int(auction.id),
        1 => Value::text(auction.item_name.as_str()),
        2 => Value::text(auction.description.as_str()),
        3 => Value::Int(auction.initial_bid),
        4 => Value::Int(auction.reserve),
        5 => Value::Timestamp(auction.date_time),
        6 => Value::Timestamp(auction.expires),
        7 => Value::Int(auction.seller),
        8 => Value::Int(auction.category),
        _ => extra(&auction.extra),
    }
}

#[inline(always)]
fn bid_field(bid: &NexmarkBid, field: usize) -> Value {
    match field {
        0 => Value::Int(bid.auction),
        1 => Value::Int(bid.bidder),
        2 => Value::Int(bid.price),
        3 => Value::text(bid.channel.as_str()),
        4 => Value::text(bid.url.as_str()),
        5 => Value::Timestamp(bid.date_time),
        _ => extra(&bid.extra),
    }
}

/// What a declared column holds: the event type, or a kind's row with, per declared field,
/// the generator's field (`None`: not read by the query, left NULL).
#[derive(Debug, Clone)]
enum Column {
    EventType,
    Person(Vec<Option<usize>>),
    Auction(Vec<Option<usize>>),
    Bid(Vec<Option<usize>>),
    /// Not read by the query.
    Unread,
}

/// The event kind `conjunct` keeps if it is `event_type = k` (column `event_type` of the table).
fn kind_of_conjunct(conjunct: &Scalar, event_type: usize) -> Option<i64> {
    match conjunct {
        Scalar::Compare(Compare::Eq, a, b) => match (a.as_ref(), b.as_ref()) {
            (Scalar::Column(c), Scalar::Literal(Value::Int(k))) | (Scalar::Literal(Value::Int(k)), Scalar::Column(c))
                if *c == event_type =>
            {
                Some(*k)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The one event kind a pushed-down filter keeps (`event_type = k`), if it says so.
fn kind_of_filter(pushed: &ScanPushDown, event_type: usize) -> Option<i64> {
    pushed.filter.iter().find_map(|conjunct| kind_of_conjunct(conjunct, event_type))
}

/// The physical columns whose value the source fixes, told `pushed`: `event_type` when the
/// pushed filter keeps one kind of event (`event_type = k`), as `source` then drops the others.
pub(super) fn fixed_columns(table: &SqlTable, pushed: &ScanPushDown) -> Vec<(usize, Value)> {
    let event_type =
        table.physical.fields.iter().position(|field| field.name.eq_ignore_ascii_case("event_type") && field.data_type.is_integer());
    event_type.and_then(|column| Some((column, Value::Int(kind_of_filter(pushed, column)?)))).into_iter().collect()
}

/// The fields of the `person`, `auction` and `bid` columns the query reads by their fields alone,
/// given as columns of their own (see [`super::flattened_fields`]).
pub(super) fn flattened_fields(table: &SqlTable, pushed: &ScanPushDown) -> Vec<(usize, usize)> {
    let kinds = ["person", "auction", "bid"];
    let mut flat = Vec::new();
    for (column, field) in table.physical.fields.iter().enumerate() {
        let is_kind = kinds.iter().any(|kind| field.name.eq_ignore_ascii_case(kind)) && matches!(field.data_type, SqlType::Row(_));
        if let (true, true, Some(read)) = (is_kind, pushed.columns[column], &pushed.fields[column]) {
            flat.extend(read.iter().enumerate().filter(|(_, read)| **read).map(|(field, _)| (column, field)));
        }
    }
    flat
}

/// The generator's field indexes for a declared `ROW<...>` column of the kind with `fields`.
fn row_fields(table: &SqlTable, column: &str, declared: &SqlType, fields: &[(&str, SqlType)]) -> Result<Vec<Option<usize>>, String> {
    let SqlType::Row(declared) = declared else {
        return Err(format!("column {column} of table {} is {declared}, and the nexmark connector gives a ROW<...>", table.name()));
    };
    declared
        .iter()
        .map(|(name, data_type)| {
            let index = fields.iter().position(|(field, _)| field.eq_ignore_ascii_case(name)).ok_or_else(|| {
                let names = fields.iter().map(|(field, _)| *field).collect::<Vec<_>>().join(", ");
                format!("{column}.{name} is no field of a nexmark {column} (its fields: {names})")
            })?;
            let wanted = &fields[index].1;
            let fits = data_type == wanted
                || (wanted.is_integer() && data_type.is_integer())
                || (wanted.is_timestamp() && data_type.is_timestamp());
            if !fits {
                return Err(format!("{column}.{name} is {wanted} in nexmark, not {data_type}"));
            }
            Ok(Some(index))
        })
        .collect()
}

/// The events of a nexmark table, and how each fills a row of its scan (see [`super::Scan`]):
/// the columns and fields `pushed` says the query reads, each kind's `ROW` NULL for events of
/// other kinds; events of kinds a pushed-down filter drops fill nothing.
pub(super) fn scan(
    table: &SqlTable,
    options: &mut Options<'_>,
    pushed: Option<&ScanPushDown>,
) -> Result<(NexmarkSource, FillRow<NexmarkEvent>), SqlError> {
    let events: Option<u64> = options.parse_optional("events.num", "a number of events")?;
    let seed: u64 = options.parse("seed", 0, "a number")?;
    let defaults = NexmarkConfig::default();
    let config = NexmarkConfig {
        first_event_rate_per_second: options.parse("first-event.rate", defaults.first_event_rate_per_second, "events per second")?,
        person_proportion: options.parse("person.proportion", defaults.person_proportion, "a whole number")?,
        auction_proportion: options.parse("auction.proportion", defaults.auction_proportion, "a whole number")?,
        bid_proportion: options.parse("bid.proportion", defaults.bid_proportion, "a whole number")?,
        ..defaults
    };
    config.validate().map_err(|error| SqlError::at(options.at(), format!("table {}: {error}", table.name())))?;
    let mut columns = Vec::new();
    let mut kind = None;
    for (index, field) in table.physical.fields.iter().enumerate() {
        let column = match field.name.to_lowercase().as_str() {
            "event_type" if field.data_type.is_integer() => Column::EventType,
            "person" => Column::Person(row_fields(table, "person", &field.data_type, PERSON_FIELDS).map_err(|e| SqlError::at(options.at(), e))?),
            "auction" => Column::Auction(row_fields(table, "auction", &field.data_type, AUCTION_FIELDS).map_err(|e| SqlError::at(options.at(), e))?),
            "bid" => Column::Bid(row_fields(table, "bid", &field.data_type, BID_FIELDS).map_err(|e| SqlError::at(options.at(), e))?),
            _ => {
                return Err(SqlError::at(
                    options.at(),
                    format!("table {}: the nexmark connector has no column {} {} (its columns: event_type INT, person ROW<...>, auction ROW<...>, bid ROW<...>)", table.name(), field.name, field.data_type),
                ))
            }
        };
        // What the query reads of the column: the rest is left NULL.
        let column = match (column, pushed) {
            (Column::EventType, Some(pushed)) => {
                kind = kind_of_filter(pushed, index);
                if pushed.columns[index] {
                    Column::EventType
                } else {
                    Column::Unread
                }
            }
            (_, Some(pushed)) if !pushed.columns[index] => Column::Unread,
            (Column::Person(fields), Some(pushed)) => Column::Person(read_fields(fields, pushed, index)),
            (Column::Auction(fields), Some(pushed)) => Column::Auction(read_fields(fields, pushed, index)),
            (Column::Bid(fields), Some(pushed)) => Column::Bid(read_fields(fields, pushed, index)),
            (column, _) => column,
        };
        columns.push(column);
    }
    let generator = NexmarkSource { events, seed, config };
    // Fields given as columns of their own, after the computed columns, by their kind's
    // generator field; their ROW column is left NULL.
    let flattened: Vec<(usize, usize)> = pushed.map(|pushed| flattened_fields(table, pushed)).unwrap_or_default();
    // Each as its event kind and generator field.
    let flat: Vec<(i64, usize)> = flattened
        .iter()
        .map(|&(column, field)| {
            let (kind, generator_field) = match &columns[column] {
                Column::Person(read) => (0, read[field]),
                Column::Auction(read) => (1, read[field]),
                Column::Bid(read) => (2, read[field]),
                Column::EventType | Column::Unread => (-1, None),
            };
            (kind, generator_field.expect("a flattened field is one the query reads"))
        })
        .collect();
    for &(column, _) in &flattened {
        columns[column] = Column::Unread;
    }
    let first_flat = table.schema.fields.len();
    let kind_of = |event: &NexmarkEvent| match event {
        NexmarkEvent::Person(_) => 0,
        NexmarkEvent::Auction(_) => 1,
        NexmarkEvent::Bid(_) => 2,
    };
    let fill = move |event: &NexmarkEvent, row: &mut [Value]| {
        // Events of other kinds are dropped before they fill a row.
        if kind.is_some_and(|kind| kind != kind_of(event)) {
            return false;
        }
        let fields = |fields: &[Option<usize>], get: &dyn Fn(usize) -> Value| {
            Value::Row(fields.iter().map(|field| field.map_or(Value::Null, get)).collect())
        };
        for (slot, column) in row.iter_mut().zip(&columns) {
            slot.put(match (column, event) {
                (Column::Unread, _) => continue,
                (Column::EventType, event) => Value::Int(kind_of(event)),
                (Column::Person(read), NexmarkEvent::Person(person)) => fields(read, &|f| person_field(person, f)),
                (Column::Auction(read), NexmarkEvent::Auction(auction)) => fields(read, &|f| auction_field(auction, f)),
                (Column::Bid(read), NexmarkEvent::Bid(bid)) => fields(read, &|f| bid_field(bid, f)),
                _ => Value::Null,
            });
        }
        // A scan without fields as columns fills the physical columns alone (its row is no wider).
        let flat_slots = row.get_mut(first_flat..).unwrap_or_default();
        for (slot, &(kind, field)) in flat_slots.iter_mut().zip(&flat) {
            slot.put(match (kind, event) {
                (0, NexmarkEvent::Person(person)) => person_field(person, field),
                (1, NexmarkEvent::Auction(auction)) => auction_field(auction, field),
                (2, NexmarkEvent::Bid(bid)) => bid_field(bid, field),
                _ => Value::Null,
            });
        }
        true
    };
    Ok((generator, std::sync::Arc::new(fill)))
}

/// The generator's fields of a ROW column that the query reads (`None` for those it does not).
fn read_fields(fields: Vec<Option<usize>>, pushed: &ScanPushDown, column: usize) -> Vec<Option<usize>> {
    fields.into_iter().enumerate().map(|(i, field)| field.filter(|_| pushed.reads_field(column, i))).collect()
}
