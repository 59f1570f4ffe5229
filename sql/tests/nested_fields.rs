//! Nested projection push-down: a nexmark scan whose `ROW` columns are read by their fields alone
//! gives those fields as columns of their own (no `ROW` built per row), and a query reading them
//! so sees the same values as one that reads the `ROW` whole and takes its fields.

mod support;

use tethys_sql::SqlSession;

/// The rows `query` gives over the table, as text, in order (parallelism 1), and its plan.
fn rows_of(query: &str) -> (Vec<String>, String) {
    let script = format!("SET 'parallelism.default' = '1'; {} EXPLAIN {query}; {query};", support::nexmark_table(3000));
    support::run_script_in(&mut SqlSession::default(), &script).unwrap()
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

#[test]
fn a_nested_field_grouped_by_is_selected_by_its_name() {
    let (grouped, plan) = rows_of("SELECT bid.auction, COUNT(*) AS n FROM nexmark WHERE event_type = 2 GROUP BY bid.auction");
    let (aliased, _) =
        rows_of("SELECT auction, COUNT(*) AS n FROM (SELECT bid.auction AS auction FROM nexmark WHERE event_type = 2) GROUP BY auction");
    assert!(plan.lines().nth(1).is_some_and(|top| top.contains("[auction, n]")), "the key keeps the field's name: {plan}");
    assert!(grouped.len() > 100, "{}", grouped.len());
    assert_eq!(grouped, aliased);
}
