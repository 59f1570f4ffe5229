//! Writing and reading back: `EXECUTE STATEMENT SET` (several inserts as one job, each into its
//! own files, written exactly once) and its refusals; a changelog written to an embedded topic
//! and read back with its changes; JSON lines with nested values read by column name.

mod support;

use std::path::{Path, PathBuf};

use support::lines_in;

use tethys_sql::{run_job, Outcome, SqlSession};

/// A fresh directory under the system's temporary one, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("tethys-sql-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The golden tests' orders file, and a statement defining it as table `orders`.
fn orders_table() -> (PathBuf, String) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data/orders.csv");
    let table = format!(
        "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');",
        data.display()
    );
    (data, table)
}

#[test]
fn a_statement_set_writes_each_insert_into_its_table_in_one_job() {
    let scratch = Scratch::new("statement-set");
    let (_, orders) = orders_table();
    let (big, small) = (scratch.0.join("big"), scratch.0.join("small"));
    let script = format!(
        "{orders}
         CREATE TABLE big (id BIGINT, customer STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE small (id BIGINT, amount DECIMAL(10, 2)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO big SELECT id, customer FROM orders WHERE amount >= 10;
           INSERT INTO small SELECT id, amount FROM orders WHERE amount < 5;
         END;",
        big.display(),
        small.display()
    );
    let mut session = SqlSession::default();
    let outcomes = session.execute_script(&script).unwrap_or_else(|error| panic!("{}", error.render(&script)));
    let jobs: Vec<_> = outcomes.into_iter().filter_map(|outcome| if let Outcome::Job(job) = outcome { Some(job) } else { None }).collect();
    assert_eq!(jobs.len(), 1, "one job for the set");
    run_job(*jobs.into_iter().next().unwrap(), |_| {}).unwrap();
    assert_eq!(lines_in(&big), ["1,alice", "4,carol"]);
    // Part files are named for their format.
    let named = |dir: &Path, extension: &str| {
        std::fs::read_dir(dir).unwrap().all(|entry| entry.unwrap().path().extension().is_some_and(|found| found == extension))
    };
    assert!(named(&big, "csv") && named(&small, "json"));
    assert_eq!(lines_in(&small), [r#"{"id":2,"amount":3.25}"#, r#"{"id":5,"amount":1.75}"#, r#"{"id":6,"amount":4.5}"#]);
}

#[test]
fn a_statement_set_holds_inserts_only_and_ends() {
    let mut session = SqlSession::default();
    let error = session.execute_script("EXECUTE STATEMENT SET BEGIN SELECT 1; END;").err().expect("refused");
    assert!(error.message.contains("a statement set holds INSERT INTO statements only"), "{error}");
    let error = session.execute_script("BEGIN STATEMENT SET; INSERT INTO t SELECT 1;").err().expect("refused");
    assert!(error.message.contains("the statement set has no END"), "{error}");
}

/// Runs every job of `script` in order, returning the rows of its queries.
fn run_all(session: &mut SqlSession, script: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for outcome in session.execute_script(script).unwrap_or_else(|error| panic!("{}", error.render(script))) {
        if let Outcome::Job(job) = outcome {
            run_job(*job, |row| rows.push(row.to_string())).unwrap();
        }
    }
    rows
}

#[test]
fn a_changelog_written_to_a_topic_is_read_back_with_its_changes() {
    let scratch = Scratch::new("topic");
    let (_, orders) = orders_table();
    let topic = scratch.0.join("counts");
    let tables = format!(
        "{orders}
         CREATE TABLE counts (customer STRING, n BIGINT) WITH ('connector' = 'topic', 'path' = '{}', 'partitions' = '2');",
        topic.display()
    );
    let mut session = SqlSession::default();
    run_all(&mut session, &format!("{tables}\nINSERT INTO counts SELECT customer, COUNT(*) FROM orders GROUP BY customer;"));
    // Read back (a subtask per partition): the changes, which add up to the counts.
    let mut rows = run_all(&mut session, "SELECT customer, n FROM counts;");
    rows.sort();
    assert_eq!(
        rows,
        [
            "+I[alice, 1]",
            "+I[bob, 1]",
            "+I[carol, 1]",
            "+U[alice, 2]",
            "+U[alice, 3]",
            "+U[bob, 2]",
            "-U[alice, 1]",
            "-U[alice, 2]",
            "-U[bob, 1]",
        ]
    );
    // An aggregate over the topic's changelog retracts what the updates take back.
    let totals = run_all(&mut session, "SELECT SUM(n) AS orders FROM counts;");
    assert_eq!(totals.last().map(String::as_str), Some("+U[6]"), "{totals:?}");
    // A table of another width over the same topic is refused when read.
    let mut other = SqlSession::default();
    other
        .execute_script(&format!("CREATE TABLE wrong (customer STRING) WITH ('connector' = 'topic', 'path' = '{}');", topic.display()))
        .unwrap();
    let outcomes = other.execute_script("SELECT customer FROM wrong;").unwrap();
    let Some(Outcome::Job(job)) = outcomes.into_iter().next() else { panic!("a job") };
    let error = run_job(*job, |_| {}).unwrap_err();
    assert!(error.contains("a row of the topic has 2 columns and the table 1"), "{error}");
}

#[test]
fn json_lines_with_nested_values_are_read_by_column_name() {
    let scratch = Scratch::new("json-source");
    let path = scratch.0.join("events.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"id": 1, "user": {"name": "ana", "age": 31}, "tags": ["a", "b"], "scores": {"x": 1.5}, "price": "12.30", "at": "2024-01-01 10:00:00"}"#,
            "\n",
            r#"{"ID": 2, "user": {"name": "bo"}, "tags": [], "price": 0.5, "extra": true}"#,
            "\n\n",
        ),
    )
    .unwrap();
    let script = format!(
        "CREATE TABLE events (id BIGINT, `user` ROW<name STRING, age INT>, tags ARRAY<STRING>, scores MAP<STRING, DOUBLE>,
           price DECIMAL(10, 2), at TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         SELECT id, `user`.name, `user`.age, CARDINALITY(tags), scores['x'], price * 2, at FROM events;",
        path.display()
    );
    let mut session = SqlSession::default();
    let rows = run_all(&mut session, &script);
    assert_eq!(
        rows,
        ["+I[1, ana, 31, 2, 1.5, 24.60, 2024-01-01 10:00:00.000]", "+I[2, bo, <NULL>, 0, <NULL>, 1.00, <NULL>]"],
        "fields by name without case, missing ones NULL, unknown ones ignored, blank lines skipped"
    );
    // A line that is not an object fails the job with the line, unless told to skip it.
    std::fs::write(&path, "[1, 2]\n").unwrap();
    let mut session = SqlSession::default();
    let outcomes = session.execute_script(&script).unwrap();
    let Some(Outcome::Job(job)) = outcomes.into_iter().last() else { panic!("a job") };
    let error = run_job(*job, |_| {}).unwrap_err();
    assert!(error.contains("cannot read JSON line [1, 2]") && error.contains("is not a JSON object"), "{error}");
}

#[test]
fn a_decimal_goes_into_a_decimal_column_of_any_size_as_flink_casts_it() {
    let scratch = Scratch::new("decimal-cast");
    let (data, orders) = orders_table();
    let totals = scratch.0.join("totals");
    // `amount * 10` is a DECIMAL wider than the table's DECIMAL(3, 1), and two of the amounts
    // times ten do not fit it: NULL, as Flink's implicit cast makes them.
    let script = format!(
        "{orders}
         CREATE TABLE totals (id BIGINT, amount DECIMAL(3, 1)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         INSERT INTO totals SELECT id, amount * 10 FROM orders;",
        totals.display()
    );
    let mut session = SqlSession::default();
    run_all(&mut session, &script);
    let amounts: Vec<String> =
        std::fs::read_to_string(&data).unwrap().lines().map(|line| line.split(',').nth(2).unwrap().to_string()).collect();
    let expected: Vec<String> = lines_in(&totals);
    assert_eq!(expected.len(), amounts.len());
    for (line, amount) in expected.iter().zip(&amounts) {
        let times_ten: f64 = amount.parse::<f64>().unwrap() * 10.0;
        let written = line.split(',').nth(1).unwrap();
        if times_ten >= 100.0 {
            assert_eq!(written, "", "{amount} x 10 does not fit DECIMAL(3, 1): NULL");
        } else {
            assert_eq!(written.parse::<f64>().unwrap(), times_ten, "{line}");
        }
    }
}
