//! Nested projection push-down: a nexmark scan whose `ROW` columns are read by their fields alone
//! gives those fields as columns of their own (no `ROW` built per row), and a query reading them
//! so sees the same values as one that reads the `ROW` whole and takes its fields.

use tethys_sql::{run_job, Outcome, SqlSession};

const TABLE: &str = "CREATE TABLE nexmark (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
    dateTime AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events.num' = '3000');";

/// The rows `query` gives over the table, as text, in order (parallelism 1), and its plan.
fn rows_of(query: &str) -> (Vec<String>, String) {
    let script = format!("SET 'parallelism.default' = '1'; {TABLE} EXPLAIN {query}; {query};");
    let mut session = SqlSession::default();
    let (mut rows, mut plan) = (Vec::new(), String::new());
    for outcome in session.execute_script(&script).unwrap_or_else(|error| panic!("{}", error.render(&script))) {
        match outcome {
            Outcome::Explain(text) => plan = text,
            Outcome::Job(job) => {
                run_job(*job, |row| rows.push(row.to_string())).unwrap();
            }
            _ => {}
        }
    }
    (rows, plan)
}

#[test]
fn fields_read_as_columns_of_their_own_give_what_the_whole_row_gives() {
    // Fields alone: flattened. The filter reads a field too, and the computed dateTime reads
    // each kind's dateTime field.
    let (flat, plan) = rows_of(
        "SELECT bid.auction, bid.price, dateTime, bid.extra, person.name FROM nexmark WHERE event_type <> 1 AND (bid.price > 1000 OR person.id IS NOT NULL)",
    );
    assert!(
        plan.contains("fields as columns=[person.id, person.name, person.dateTime, auction.dateTime, bid.auction, bid.price, bid.dateTime, bid.extra]"),
        "the fields read are given as columns: {plan}"
    );
    // The same through the whole ROW values (read whole, so not flattened).
    let (whole, whole_plan) = rows_of(
        "SELECT b.auction, b.price, dateTime, b.extra, p.name FROM (SELECT bid AS b, person AS p, dateTime, event_type FROM nexmark WHERE CAST(bid AS STRING) IS NULL OR bid IS NOT NULL) WHERE event_type <> 1 AND (b.price > 1000 OR p.id IS NOT NULL)",
    );
    assert!(!whole_plan.contains("bid.") && whole_plan.contains("fields as columns=[person.id"), "bid is read whole: {whole_plan}");
    assert!(flat.len() > 1000, "most events are bids or people: {}", flat.len());
    assert_eq!(flat, whole);
    assert!(flat.iter().any(|row| row.contains("null") || row.contains("NULL")), "people have no bid fields: {:?}", &flat[..3]);
}
