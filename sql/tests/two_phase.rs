//! Two-phase aggregation (`table.optimizer.agg-phase-strategy`): each frame's rows aggregated
//! per key (and, for windows, per slice of the windows) before the shuffle. A group aggregate's
//! changelog is then coarser (an update per key and frame), and adds up to the same rows as the
//! one-phase aggregate's; a window aggregate's rows are the same.

use tethys_sql::{run_job, Outcome, SqlSession};

/// Rows of `k`, `v`, `s` with random values.
const GROUPED: &str =
    "CREATE TABLE t (k INT, v BIGINT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '20000', 'rows-per-second' = '0',
  'fields.k.min' = '0', 'fields.k.max' = '3', 'fields.v.min' = '1', 'fields.v.max' = '100', 'fields.s.length' = '1',
  'fields.v.null-rate' = '0.1')";

/// The same with an event time 10 ms per row apart, up to 996 ms out of order, and a watermark a
/// second behind: no row is late (whether one is depends on when watermarks are sent).
const TIMED: &str = "CREATE TABLE t (id BIGINT, k INT, v BIGINT, s STRING,
  ts AS TO_TIMESTAMP_LTZ(id * 10 + id * 7919 % 997, 3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
  WITH ('connector' = 'datagen', 'rows-per-second' = '0', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
  'fields.id.end' = '20000', 'fields.k.min' = '0', 'fields.k.max' = '20', 'fields.v.min' = '1', 'fields.v.max' = '100',
  'fields.s.length' = '1', 'fields.v.null-rate' = '0.1')";

/// What the changelog of `query` over `table` adds up to, with the aggregate phase `strategy`,
/// and the query's plan.
fn final_rows(table: &str, query: &str, strategy: &str, parallelism: usize) -> (Vec<String>, String) {
    let script = format!(
        "SET 'parallelism.default' = '{parallelism}';
         SET 'table.optimizer.agg-phase-strategy' = '{strategy}';
         {table};
         EXPLAIN {query};
         {query};"
    );
    let mut session = SqlSession::default();
    let mut rows: Vec<String> = Vec::new();
    let mut plan = String::new();
    for outcome in session.execute_script(&script).unwrap_or_else(|error| panic!("{}", error.render(&script))) {
        match outcome {
            Outcome::Explain(text) => plan = text,
            Outcome::Job(job) => {
                run_job(*job, |row| {
                    let values = row.to_string()[2..].to_string();
                    if row.kind.is_accumulate() {
                        rows.push(values);
                    } else {
                        let index = rows.iter().position(|kept| *kept == values).expect("a retraction of a row emitted");
                        rows.remove(index);
                    }
                })
                .unwrap();
            }
            _ => {}
        }
    }
    rows.sort();
    (rows, plan)
}

/// Fails naming the rows only one side has (the first few), if the two differ.
fn assert_same_rows(one: &[String], two: &[String], what: &str) {
    let only = |a: &[String], b: &[String]| a.iter().filter(|row| !b.contains(row)).take(5).cloned().collect::<Vec<_>>();
    assert!(
        one == two,
        "{what}: {} rows and {}; only in one phase: {:?}; only in two: {:?}",
        one.len(),
        two.len(),
        only(one, two),
        only(two, one)
    );
}

#[test]
fn two_phases_add_up_to_what_one_phase_gives() {
    for query in [
        "SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(DISTINCT s) FROM t GROUP BY k",
        "SELECT COUNT(*) AS n, SUM(v) FILTER (WHERE v > 50) AS big FROM t",
        "SELECT s, LISTAGG(DISTINCT CAST(k AS STRING)) FROM t GROUP BY s",
    ] {
        let (one, one_plan) = final_rows(GROUPED, query, "ONE_PHASE", 2);
        let (two, two_plan) = final_rows(GROUPED, query, "TWO_PHASE", 2);
        assert!(!one_plan.contains("LocalGlobalGroupAggregate") && two_plan.contains("LocalGlobalGroupAggregate"), "{two_plan}");
        assert!(two_plan.contains("LocalAggregate") && two_plan.contains("GlobalAggregate"), "{two_plan}");
        assert!(!one.is_empty());
        assert_same_rows(&one, &two, query);
    }
}

#[test]
fn an_aggregate_over_updates_stays_in_one_phase() {
    let (_, plan) = final_rows(GROUPED, "SELECT n, COUNT(*) FROM (SELECT k, COUNT(*) AS n FROM t GROUP BY k) GROUP BY n", "TWO_PHASE", 1);
    assert_eq!(plan.matches("LocalGlobalGroupAggregate").count(), 1, "{plan}");
}

#[test]
fn window_aggregates_in_two_phases_give_the_rows_of_one() {
    let aggregates = "COUNT(*), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(DISTINCT s), SUM(v) FILTER (WHERE v > 50)";
    for window in [
        "TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND)",
        // Slices of gcd(10 s, 4 s) = 2 s, each in five windows or fewer.
        "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '4' SECOND, INTERVAL '10' SECOND)",
        "HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '3' SECOND, INTERVAL '6' SECOND, INTERVAL '1' SECOND)",
        "CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
    ] {
        let query = format!("SELECT k, window_start, window_end, {aggregates} FROM TABLE({window}) GROUP BY k, window_start, window_end");
        let (one, one_plan) = final_rows(TIMED, &query, "ONE_PHASE", 2);
        for strategy in ["AUTO", "TWO_PHASE"] {
            let (two, two_plan) = final_rows(TIMED, &query, strategy, 2);
            assert!(!one_plan.contains("LocalGlobal") && two_plan.contains("LocalGlobalWindowAggregate"), "{two_plan}");
            assert!(two_plan.contains("LocalWindowAggregate") && !two_plan.contains("PrepareAggregate"), "{two_plan}");
            assert!(one.len() > 100, "{window}: {} rows", one.len());
            assert_same_rows(&one, &two, window);
        }
    }
}

#[test]
fn windows_over_windows_in_two_phases_give_the_rows_of_one() {
    // Nexmark q5's shape: the largest count per window, the counts windowed again by their window.
    let query = "SELECT ws, we, MAX(n), SUM(n) FROM (
        SELECT k, window_start AS ws, window_end AS we, COUNT(*) AS n
        FROM TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) GROUP BY k, window_start, window_end)
      GROUP BY ws, we";
    let (one, _) = final_rows(TIMED, query, "ONE_PHASE", 2);
    let (two, plan) = final_rows(TIMED, query, "AUTO", 2);
    assert_eq!(plan.matches("LocalGlobalWindowAggregate").count(), 2, "{plan}");
    assert!(one.len() > 50, "{} rows", one.len());
    assert_same_rows(&one, &two, query);
}

#[test]
fn order_dependent_aggregates_and_sessions_stay_in_one_phase() {
    for query in [
        "SELECT k, window_start, LAST_VALUE(v) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY k, window_start, window_end",
        "SELECT k, window_start, LISTAGG(s) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '5' SECOND)) GROUP BY k, window_start, window_end",
        "SELECT k, window_start, COUNT(*) FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end",
    ] {
        let (rows, plan) = final_rows(TIMED, query, "AUTO", 1);
        assert!(!plan.contains("LocalGlobal") && plan.contains("PrepareAggregate"), "{query}: {plan}");
        assert!(!rows.is_empty());
    }
}
