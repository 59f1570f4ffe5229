//! Bad statements are refused with what is wrong and where: syntax errors, unknown names (with
//! the nearest one), type errors, a window on a column without a watermark, an updating query
//! into an append-only sink, bad connector options.

use tethys_sql::{Outcome, SqlSession};

const TABLES: &str = "
CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE plain (id BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
CREATE TABLE out_files (customer STRING, n BIGINT) WITH ('connector' = 'filesystem', 'path' = '/tmp/never-written', 'format' = 'csv');
";

/// The error `statement` gets after the tables are defined, rendered with its caret.
fn error_of(statement: &str) -> String {
    let mut session = SqlSession::default();
    session.execute_script(TABLES).unwrap_or_else(|error| panic!("{}", error.render(TABLES)));
    match session.execute_script(statement) {
        Ok(outcomes) => {
            // A job is planned; the sink's checks run when it is built, which the statement did.
            let kinds: Vec<&str> = outcomes.iter().map(|outcome| if matches!(outcome, Outcome::Job(_)) { "job" } else { "done" }).collect();
            panic!("{statement} was accepted: {kinds:?}")
        }
        Err(error) => error.render(statement),
    }
}

#[test]
fn a_syntax_error_points_at_its_token() {
    let error = error_of("SELECT id FROM orders WHERE");
    assert!(error.contains("line 1, column 28"), "{error}");
    assert!(error.contains("Expected: an expression"), "{error}");
}

#[test]
fn unknown_tables_columns_and_functions_get_the_nearest_name() {
    assert!(error_of("SELECT id FROM order").contains("no table or view named order; did you mean orders?"));
    let error = error_of("SELECT id,\n  custmer FROM orders");
    assert!(error.contains("no column named custmer; did you mean customer?"), "{error}");
    assert!(error.contains("--> line 2, column 3"), "{error}");
    assert!(error_of("SELECT UPPR(customer) FROM orders").contains("no function named UPPR; did you mean UPPER?"));
}

#[test]
fn type_errors_name_the_types() {
    assert!(error_of("SELECT amount + customer FROM orders").contains("operator + does not take DECIMAL(10, 2) and STRING"));
    assert!(error_of("SELECT id FROM orders WHERE customer").contains("WHERE needs a BOOLEAN condition, got STRING"));
    assert!(error_of("SELECT CAST(ts AS BOOLEAN) FROM orders").contains("cannot cast TIMESTAMP(3) to BOOLEAN"));
}

#[test]
fn a_window_needs_an_event_time_column() {
    let error = error_of("SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE plain, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end");
    assert!(error.contains("TUMBLE needs an event-time column, and ts is not one: declare WATERMARK FOR ts in its table"), "{error}");
}

#[test]
fn a_window_over_an_outer_interval_joins_time_is_refused() {
    // Rows without a partner leave an outer interval join after the watermark passed them: its
    // time columns are no longer event time.
    let error = error_of(
        "CREATE VIEW joined AS SELECT a.id, a.ts FROM orders a LEFT JOIN orders b
           ON a.id = b.id AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' SECOND;
         SELECT window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE joined, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end",
    );
    assert!(error.contains("TUMBLE needs an event-time column, and ts is not one"), "{error}");
}

#[test]
fn a_lookup_join_needs_processing_time_a_file_or_topic_table_and_its_keys() {
    let stream = "CREATE VIEW timed AS SELECT *, PROCTIME() AS proc FROM orders;\n";
    let as_of_event_time = error_of("SELECT o.id FROM orders o JOIN plain FOR SYSTEM_TIME AS OF o.ts AS p ON o.id = p.id");
    assert!(as_of_event_time.contains("FOR SYSTEM_TIME AS OF takes the stream's processing-time column"), "{as_of_event_time}");
    let generated = error_of(&format!("{stream}SELECT t.id FROM timed t JOIN plain FOR SYSTEM_TIME AS OF t.proc AS p ON t.id = p.id"));
    assert!(
        generated.contains("table plain (datagen) cannot be looked up: a lookup join reads a 'filesystem' or 'topic' table"),
        "{generated}"
    );
    let no_key = error_of(&format!("{stream}SELECT t.id FROM timed t JOIN plain FOR SYSTEM_TIME AS OF t.proc AS p ON t.id > p.id"));
    assert!(no_key.contains("a lookup join needs an equality of a table column"), "{no_key}");
    let full = error_of(&format!("{stream}SELECT t.id FROM timed t FULL JOIN plain FOR SYSTEM_TIME AS OF t.proc AS p ON t.id = p.id"));
    assert!(full.contains("a lookup join is an inner or a left join"), "{full}");
}

#[test]
fn an_over_window_named_nowhere_gets_the_nearest_name() {
    let error = error_of("SELECT SUM(amount) OVER win FROM orders WINDOW w1n AS (PARTITION BY customer ORDER BY ts)");
    assert!(error.contains("no window named win in this select's WINDOW clause; did you mean w1n?"), "{error}");
    let circular = error_of("SELECT SUM(amount) OVER a FROM orders WINDOW a AS b, b AS a");
    assert!(circular.contains("is defined by itself"), "{circular}");
}

#[test]
fn an_updating_query_is_refused_by_an_append_only_sink() {
    let error = error_of("INSERT INTO out_files SELECT customer, COUNT(*) FROM orders GROUP BY customer");
    assert!(error.contains("takes only inserts, and the query produces updates"), "{error}");
}

#[test]
fn ungrouped_columns_and_misplaced_aggregates_are_refused() {
    assert!(error_of("SELECT customer, amount FROM orders GROUP BY customer").contains("amount is neither grouped nor aggregated"));
    assert!(error_of("SELECT id FROM orders WHERE SUM(amount) > 1").contains("aggregate function SUM is not allowed here"));
    let error = error_of("SELECT COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start");
    assert!(error.contains("groups by both window_start and window_end"), "{error}");
}

#[test]
fn connector_options_are_checked() {
    let mut session = SqlSession::default();
    session.execute_script("CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-secnd' = '5'); ").unwrap();
    let error = session.execute_script("SELECT id FROM t").err().expect("refused");
    assert!(error.message.contains("the datagen connector has no option 'rows-per-secnd'; did you mean 'rows-per-second'?"), "{error}");
    let mut session = SqlSession::default();
    session.execute_script("CREATE TABLE t (id BIGINT) WITH ('connector' = 'datagn')").unwrap();
    let error = session.execute_script("SELECT id FROM t").err().expect("refused");
    assert!(error.message.contains("no connector named 'datagn'; did you mean 'datagen'?"), "{error}");
}

#[test]
fn insert_columns_must_fit_the_table() {
    let error = error_of("INSERT INTO out_files SELECT customer FROM orders");
    assert!(error.contains("the query has 1 columns and table out_files has 2 (customer, n)"), "{error}");
    let error = error_of("INSERT INTO out_files SELECT id, customer FROM orders");
    assert!(error.contains("column 1 of the query (id) is BIGINT, and column customer of table out_files is STRING: CAST it"), "{error}");
}

#[test]
fn settings_are_checked() {
    assert!(error_of("SET 'parallelism.defualt' = '2'").contains("no setting 'parallelism.defualt'; did you mean 'parallelism.default'?"));
    assert!(error_of("SET 'parallelism.default' = 'many'").contains("'many' is not a value of 'parallelism.default'"));
}

#[test]
fn a_join_needs_keys_and_windows_on_both_sides() {
    let error = error_of("SELECT o.id FROM orders o JOIN plain p ON o.id > p.id");
    assert!(error.contains("a join of streams needs an equality of a left and a right expression in ON"), "{error}");
    let error = error_of(
        "SELECT o.id FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) o \
         JOIN TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) p ON o.id = p.id",
    );
    assert!(error.contains("joins on both window_start and window_end"), "{error}");
}

#[test]
fn window_functions_are_checked() {
    let error = error_of("SELECT id, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY ts) AS rn FROM orders");
    assert!(error.contains("filter on it in the enclosing query (WHERE row_num <= N)"), "{error}");
    let error = error_of("SELECT SUM(amount) OVER (PARTITION BY customer ORDER BY amount) FROM orders");
    assert!(error.contains("an OVER aggregate is ordered by the input's event-time column"), "{error}");
    let error = error_of("SELECT ROW_NUMBER() OVER (PARTITION BY customer) FROM orders");
    assert!(error.contains("ROW_NUMBER() OVER needs ORDER BY"), "{error}");
}

#[test]
fn order_by_and_limit_are_checked() {
    let error = error_of("SELECT id FROM orders ORDER BY amount");
    assert!(error.contains("ORDER BY on an unbounded stream needs a LIMIT"), "{error}");
    assert!(error.contains("line 1, column 32"), "at the ORDER BY's first expression: {error}");
    let error = error_of("SELECT id FROM orders ORDER BY 3 LIMIT 2");
    assert!(error.contains("ORDER BY 3: the query has columns 1 to 1"), "{error}");
    let error = error_of("SELECT id FROM orders LIMIT 0");
    assert!(error.contains("LIMIT 0: a positive number of rows"), "{error}");
    let error = error_of("SELECT id FROM orders LIMIT 2 OFFSET 1");
    assert!(error.contains("OFFSET"), "{error}");
    let error = error_of("SELECT id FROM orders ORDER BY nope LIMIT 2");
    assert!(error.contains("nope"), "an unknown column is named: {error}");
}
