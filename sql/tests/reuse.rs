//! Sub-plan reuse: what a query (or a statement set's inserts) computes more than once is built
//! once and its rows fanned out to every reader, with the same results as computing it twice.

mod support;

use support::{nexmark_table, run_script_in};
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
    let script = format!("{}\nEXPLAIN {query};\n{query};", nexmark_table(60_000));
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
    assert_eq!(counts(&apart_plan), (2, 2), "{apart_plan}");
    assert!(shared.len() >= 10, "{}", shared.len());
    assert_eq!(shared, apart);
}

/// Every line of the files in `dir`, sorted.
fn lines_in(dir: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .flat_map(|path| std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
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
