//! `EXECUTE STATEMENT SET`: several inserts as one job, each into its own files, written exactly
//! once; and its refusals.

use std::path::{Path, PathBuf};

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

/// Every line of the part files in `dir`, sorted.
fn lines_in(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            lines.extend(std::fs::read_to_string(path).unwrap().lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

#[test]
fn a_statement_set_writes_each_insert_into_its_table_in_one_job() {
    let scratch = Scratch::new("statement-set");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data/orders.csv");
    let (big, small) = (scratch.0.join("big"), scratch.0.join("small"));
    let script = format!(
        "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3))
           WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE big (id BIGINT, customer STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         CREATE TABLE small (id BIGINT, amount DECIMAL(10, 2)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
         EXECUTE STATEMENT SET BEGIN
           INSERT INTO big SELECT id, customer FROM orders WHERE amount >= 10;
           INSERT INTO small SELECT id, amount FROM orders WHERE amount < 5;
         END;",
        data.display(),
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
