//! Sub-plan and source reuse: what a query (or a statement set's inserts) computes more than once
//! is built once and its rows fanned out to every reader, and a generator table scanned several
//! times is generated once, with the same results as computing it all apart.

mod support;

use support::{lines_in, nexmark_table, run_script_in};
use tethys_sql::SqlSession;

/// Nexmark's hot items (q5) over the nexmark table: both sides of the join count the bids of
/// each auction and window; `extra` is added to the right side's subquery (a filter true for
/// every bid, or nothing).
fn hot_items(extra: &str) -> String {
    format!(
        "SELECT a.auction, a.num, a.starttime FROM (
           SELECT bid.auction AS auction, COUNT(*) AS num, window_start AS starttime, window_end AS endtime
           FROM TABLE(HOP(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
           WHERE event_type = 2
           GROUP BY bid.auction, window_start, window_end
         ) AS a JOIN (
           SELECT MAX(c.num) AS maxn, c.starttime, c.endtime FROM (
             SELECT COUNT(*) AS num, window_start AS starttime, window_end AS endtime
             FROM TABLE(HOP(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
             WHERE event_type = 2{extra}
             GROUP BY bid.auction, window_start, window_end
           ) AS c GROUP BY c.starttime, c.endtime
         ) AS m ON a.starttime = m.starttime AND a.endtime = m.endtime AND a.num >= m.maxn"
    )
}

fn rows_and_plan(query: &str) -> (Vec<String>, String) {
    rows_and_plan_with("", query)
}

/// `query`'s rows (sorted) and plan, after `settings` (`SET` statements).
fn rows_and_plan_with(settings: &str, query: &str) -> (Vec<String>, String) {
    let script = format!("{settings}\n{}\nEXPLAIN {query};\n{query};", nexmark_table(60_000));
    let (mut rows, plan) = run_script_in(&mut SqlSession::default(), &script).unwrap();
    rows.sort();
    (rows, plan)
}

#[test]
fn a_self_join_computes_its_shared_side_once_with_the_same_rows() {
    let (shared, shared_plan) = rows_and_plan(&hot_items(""));
    let (apart, apart_plan) = rows_and_plan(&hot_items(" AND bid.price >= 0"));
    let counts = |plan: &str| (plan.matches("Source: nexmark (Source").count(), plan.matches("SlidingEventTimeWindows").count());
    assert_eq!(counts(&shared_plan), (1, 1), "one scan and one sliding window aggregate: {shared_plan}");
    assert!(shared_plan.contains("FanOut"), "{shared_plan}");
    // Sides that differ share their table's source, each aggregating its own windows.
    assert_eq!(counts(&apart_plan), (1, 2), "{apart_plan}");
    assert!(shared.len() >= 10, "{}", shared.len());
    assert_eq!(shared, apart);
    // Reuse switched off, as Flink's settings do: each side computed on its own.
    let (off, off_plan) = rows_and_plan_with(
        "SET 'table.optimizer.reuse-sub-plan-enabled' = 'false'; SET 'table.optimizer.reuse-source-enabled' = 'FALSE';",
        &hot_items(""),
    );
    assert_eq!(counts(&off_plan), (2, 2), "{off_plan}");
    assert_eq!(off, shared);
    let (_, sources_only) = rows_and_plan_with("SET 'table.optimizer.reuse-sub-plan-enabled' = 'false';", &hot_items(""));
    assert_eq!(counts(&sources_only), (1, 2), "{sources_only}");
}

/// Nexmark's highest bid (q7) over the nexmark table: the bids (`bids`, a subquery or the
/// table itself) joined with each window's highest price, in windows of one second.
fn highest_bids(bids: &str) -> String {
    format!(
        "SELECT b.auction, b.price, b.dateTime FROM {bids} AS b JOIN (
           SELECT MAX(bid.price) AS maxprice, window_end AS dateTime
           FROM TABLE(TUMBLE(TABLE nexmark, DESCRIPTOR(dateTime), INTERVAL '1' SECOND))
           WHERE event_type = 2 GROUP BY window_start, window_end
         ) AS m ON b.price = m.maxprice
         WHERE b.dateTime BETWEEN m.dateTime - INTERVAL '1' SECOND AND m.dateTime"
    )
}

#[test]
fn scans_of_one_generated_table_share_its_source() {
    let (rows, plan) =
        rows_and_plan(&highest_bids("(SELECT bid.auction AS auction, bid.price AS price, dateTime FROM nexmark WHERE event_type = 2)"));
    assert_eq!(plan.matches("Source: nexmark (Source").count(), 1, "{plan}");
    assert_eq!(plan.matches("ScanCalc (").count(), 2, "each side fills its own rows: {plan}");
    // The table read whole on one side (no Calc over its scan) gives the same rows.
    let whole = highest_bids("nexmark").replace("b.auction, b.price", "b.bid.auction, b.bid.price").replace("b.price =", "b.bid.price =");
    let (whole_rows, whole_plan) = rows_and_plan(&whole.replace("WHERE b.dateTime", "WHERE b.event_type = 2 AND b.dateTime"));
    assert_eq!(whole_plan.matches("Source: nexmark (Source").count(), 1, "{whole_plan}");
    assert_eq!(whole_rows, rows);
    // The same rows as worked out from the generator's bids: per window, its highest price, and
    // the bids at that price whose time is within the window's end and a second before.
    let generator = tethys_engine::source::nexmark::NexmarkSource::new(60_000, 0).generator().unwrap();
    let bids: Vec<_> = (0..60_000)
        .filter_map(|n| match generator.event(n) {
            tethys_engine::source::nexmark::NexmarkEvent::Bid(bid) => Some(bid),
            _ => None,
        })
        .collect();
    let mut highest: std::collections::HashMap<i64, i64> = Default::default();
    for bid in &bids {
        let end = bid.date_time.div_euclid(1_000) * 1_000 + 1_000;
        let price = highest.entry(end).or_insert(i64::MIN);
        *price = (*price).max(bid.price);
    }
    let mut expected: Vec<String> = highest
        .iter()
        .flat_map(|(&end, &price)| bids.iter().filter(move |bid| bid.price == price && (end - 1_000..=end).contains(&bid.date_time)))
        .map(|bid| format!("{}, {}", bid.auction, bid.price))
        .collect();
    expected.sort();
    let mut found: Vec<String> =
        rows.iter().map(|row| row.trim_start_matches("+I[").splitn(3, ", ").take(2).collect::<Vec<_>>().join(", ")).collect();
    found.sort();
    assert!(found.len() >= 5, "{found:?}");
    assert_eq!(found, expected);
}

#[test]
fn a_statement_set_s_inserts_of_one_aggregate_share_it() {
    let dir = tethys_storage::test_dir::TestDir::new("sql-reuse");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data/orders.csv");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let script = format!(
        "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3), WATERMARK FOR ts AS ts)
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE first (customer STRING, total DECIMAL(38, 2)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE second (customer STRING, total DECIMAL(38, 2)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE VIEW totals AS SELECT customer, SUM(amount) AS total
           FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' HOUR)) GROUP BY customer, window_start, window_end;
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO first SELECT customer, total FROM totals;
           INSERT INTO second SELECT customer, total FROM totals;
         END;",
        data.display(),
        first.display(),
        second.display()
    );
    let mut session = SqlSession::default();
    let outcomes = session.execute_script(&script).unwrap_or_else(|error| panic!("{}", error.render(&script)));
    let Some(tethys_sql::Outcome::Job(job)) = outcomes.into_iter().last() else { panic!("the statement set is a job") };
    let graph = job.env.explain().unwrap();
    assert_eq!(graph.matches("(Source,").count(), 1, "one scan for both inserts: {graph}");
    assert_eq!(graph.matches("(Window,").count(), 1, "one window aggregate for both inserts: {graph}");
    assert_eq!(graph.matches("(Sink,").count(), 2, "{graph}");
    tethys_sql::run_job(*job, |_| {}).unwrap();
    assert_eq!(lines_in(&first), ["alice,22.00", "bob,5.00", "carol,12.00"]);
    assert_eq!(lines_in(&second), lines_in(&first));
}
