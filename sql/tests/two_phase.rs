//! Two-phase aggregation (`SET 'table.optimizer.agg-phase-strategy' = 'TWO_PHASE'`): each
//! frame's rows aggregated per key before the shuffle. Its changelog is coarser (an update per
//! key and frame), and adds up to the same rows as the one-phase aggregate's.

use tethys_sql::{run_job, Outcome, SqlSession};

/// What the changelog of `query` adds up to, over generated rows, in one or two phases.
fn final_rows(query: &str, two_phase: bool, parallelism: usize) -> (Vec<String>, String) {
    let strategy = if two_phase { "TWO_PHASE" } else { "ONE_PHASE" };
    let script = format!(
        "SET 'parallelism.default' = '{parallelism}';
         SET 'table.optimizer.agg-phase-strategy' = '{strategy}';
         CREATE TABLE t (k INT, v BIGINT, s STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '20000', 'rows-per-second' = '0',
           'fields.k.min' = '0', 'fields.k.max' = '3', 'fields.v.min' = '1', 'fields.v.max' = '100', 'fields.s.length' = '1',
           'fields.v.null-rate' = '0.1');
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

#[test]
fn two_phases_add_up_to_what_one_phase_gives() {
    for query in [
        "SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(DISTINCT s) FROM t GROUP BY k",
        "SELECT COUNT(*) AS n, SUM(v) FILTER (WHERE v > 50) AS big FROM t",
        "SELECT s, LISTAGG(DISTINCT CAST(k AS STRING)) FROM t GROUP BY s",
    ] {
        let (one, one_plan) = final_rows(query, false, 2);
        let (two, two_plan) = final_rows(query, true, 2);
        assert!(!one_plan.contains("LocalGlobalGroupAggregate") && two_plan.contains("LocalGlobalGroupAggregate"), "{two_plan}");
        assert!(two_plan.contains("LocalAggregate") && two_plan.contains("GlobalAggregate"), "{two_plan}");
        assert!(!one.is_empty());
        assert_eq!(one, two, "{query}");
    }
}

#[test]
fn an_aggregate_over_updates_stays_in_one_phase() {
    let (_, plan) = final_rows("SELECT n, COUNT(*) FROM (SELECT k, COUNT(*) AS n FROM t GROUP BY k) GROUP BY n", true, 1);
    assert_eq!(plan.matches("LocalGlobalGroupAggregate").count(), 1, "{plan}");
}
