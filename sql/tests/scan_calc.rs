//! A Calc over a nexmark or datagen scan runs as one operator with the scan (each record fills a
//! reused row, the computed columns and the watermark are made in it): its rows are the
//! generator's as the query says, windows over them count every row, and an error names the Calc
//! and the row.

mod support;

use tethys_engine::source::nexmark::{NexmarkConfig, NexmarkEvent, NexmarkGenerator};
use tethys_sql::value::Value;
use tethys_sql::SqlSession;

const EVENTS: u64 = 5000;

/// The rows `query` gives over the nexmark table (parallelism 1), in order, or the job's error.
fn run(query: &str) -> Result<Vec<String>, String> {
    let script = format!("SET 'parallelism.default' = '1'; {} {query};", support::nexmark_table(EVENTS));
    Ok(support::run_script_in(&mut SqlSession::default(), &script)?.0)
}

/// The generator's events, as the table's source makes them.
fn events() -> Vec<NexmarkEvent> {
    let generator = NexmarkGenerator::new(0, NexmarkConfig::default()).unwrap();
    (0..EVENTS).map(|number| generator.event(number)).collect()
}

#[test]
fn a_calc_over_a_nexmark_scan_gives_the_generator_s_events_as_the_query_says() {
    // Fields moved, one computed, a filter on a field; people and auctions dropped by the source.
    let rows =
        run("SELECT bid.auction, bid.price * 2, bid.channel, dateTime FROM nexmark WHERE event_type = 2 AND bid.price > 5000").unwrap();
    let expected: Vec<String> = events()
        .iter()
        .filter_map(|event| match event {
            NexmarkEvent::Bid(bid) if bid.price > 5000 => {
                Some(format!("+I[{}, {}, {}, {}]", bid.auction, bid.price * 2, bid.channel.as_str(), Value::Timestamp(bid.date_time)))
            }
            _ => None,
        })
        .collect();
    assert!(expected.len() > 1000, "most events are bids, most bids over 5000: {}", expected.len());
    assert_eq!(rows, expected);
    // Every kind, with each kind's ROW NULL in the others' rows.
    let rows = run("SELECT event_type, person.id, auction.id, bid.auction FROM nexmark").unwrap();
    let null = Value::Null;
    let expected: Vec<String> = events()
        .iter()
        .map(|event| match event {
            NexmarkEvent::Person(person) => format!("+I[0, {}, {null}, {null}]", person.id),
            NexmarkEvent::Auction(auction) => format!("+I[1, {null}, {}, {null}]", auction.id),
            NexmarkEvent::Bid(bid) => format!("+I[2, {null}, {null}, {}]", bid.auction),
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn windows_over_the_fused_operator_s_rows_count_every_bid() {
    // Its event time and watermark are the scan's: every bid lands in its window, and the windows fire.
    let rows = run("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '0.1' SECOND))
         WHERE event_type = 2 GROUP BY window_start, window_end")
    .unwrap();
    let bids = events().iter().filter(|event| matches!(event, NexmarkEvent::Bid(_))).count();
    let counted: usize = rows.iter().map(|row| row.trim_end_matches(']').rsplit(", ").next().unwrap().parse::<usize>().unwrap()).sum();
    assert!(rows.len() > 1, "several windows: {rows:?}");
    assert_eq!(counted, bids, "every bid in one window: {rows:?}");
}

#[test]
fn an_error_in_the_fused_calc_names_the_calc_and_the_row() {
    let error = run("SELECT CAST(bid.channel AS INT) FROM nexmark WHERE event_type = 2").unwrap_err();
    assert!(error.contains("in Calc("), "{error}");
    assert!(error.contains("of row +I["), "{error}");
}

/// The rows a query over a datagen table gives (parallelism 1), in order.
fn datagen_rows(query: &str) -> Vec<String> {
    let script = format!(
        "SET 'parallelism.default' = '1';
         CREATE TABLE orders (id BIGINT, amount DECIMAL(10, 2), product STRING, ts TIMESTAMP(3),
           total AS amount * 2, WATERMARK FOR ts AS ts - INTERVAL '11' SECOND)
         WITH ('connector' = 'datagen', 'number-of-rows' = '500', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
               'fields.id.end' = '500', 'fields.amount.min' = '1', 'fields.amount.max' = '100', 'fields.product.length' = '3',
               'fields.ts.max-past' = '10 s');
         {query};"
    );
    support::run_script_in(&mut SqlSession::default(), &script).unwrap().0
}

#[test]
fn a_datagen_scan_draws_each_column_the_same_whichever_columns_a_query_reads() {
    // Each column's values follow from the row's number alone: a query reading fewer columns
    // (the others not drawn) sees the same values in them.
    let whole = datagen_rows("SELECT id, amount, product, total FROM orders");
    assert_eq!(whole.len(), 500);
    let column = |rows: &[String], index: usize| -> Vec<String> {
        rows.iter().map(|row| row.trim_start_matches("+I[").trim_end_matches(']').split(", ").nth(index).unwrap().to_string()).collect()
    };
    assert_eq!(datagen_rows("SELECT product FROM orders"), column(&whole, 2).iter().map(|p| format!("+I[{p}]")).collect::<Vec<_>>());
    let pairs = datagen_rows("SELECT id, total FROM orders WHERE amount > 50");
    let expected: Vec<String> = whole
        .iter()
        .filter(|row| column(std::slice::from_ref(row), 1)[0].parse::<f64>().unwrap() > 50.0)
        .map(|row| format!("+I[{}, {}]", column(std::slice::from_ref(row), 0)[0], column(std::slice::from_ref(row), 3)[0]))
        .collect();
    assert!(!expected.is_empty() && expected.len() < 500, "{}", expected.len());
    assert_eq!(pairs, expected);
    // The event time feeds the watermark (bounded by more than `max-past`, so no row is late):
    // every row lands in a window that fires.
    let windows = datagen_rows("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY window_start, window_end");
    let counted: usize = windows.iter().map(|row| row.trim_end_matches(']').rsplit(", ").next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(counted, 500, "{windows:?}");
}
