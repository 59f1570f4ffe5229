//! `tethys sql check` on scripts: what a good one defines, every error of a bad one with its
//! place and a caret, and a failing exit status.

use std::io::Write;
use std::process::{Command, Stdio};

fn check(script: &str) -> (bool, String, String) {
    sql(&["check", "-"], script)
}

/// `tethys sql ARGS` with `script` on its standard input: success, standard output and error.
fn sql(args: &[&str], script: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .arg("sql")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_good_script_is_summed_up() {
    let (ok, stdout, stderr) = check(
        "CREATE TABLE bids (auction BIGINT, bid_time TIMESTAMP(3), WATERMARK FOR bid_time AS bid_time)\n\
         WITH ('connector' = 'datagen');\nCREATE TABLE out (auction BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO out SELECT auction FROM bids;",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("line 1: table bids (2 columns, datagen)"), "{stdout}");
    assert!(stdout.contains("ok: 3 statements"), "{stdout}");
}

#[test]
fn every_error_of_a_bad_script_is_shown_at_its_place() {
    let (ok, _, stderr) = check("SELECT a FROM t WHERE;\nCREATE TABLE t (a INT,\n  WATERMARK FOR ts AS ts);");
    assert!(!ok);
    assert!(stderr.contains("--> line 1, column 22"), "{stderr}");
    assert!(stderr.contains("the watermark's column ts is not a column of the table\n  --> line 3, column 3"), "{stderr}");
    assert!(stderr.contains(" 3 |   WATERMARK FOR ts AS ts);\n   |   ^"), "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}

#[test]
fn a_misspelled_column_gets_the_nearest_name() {
    let (ok, _, stderr) = check("CREATE TABLE bids (auction BIGINT, price INT);\nSELECT prise FROM bids;");
    assert!(!ok);
    assert!(stderr.contains("no column named prise of table bids; did you mean price?\n  --> line 2, column 8"), "{stderr}");
}

#[test]
fn completions_at_a_place_are_listed_best_first() {
    let script = "CREATE TABLE bids (auction BIGINT, price INT) WITH ('connector' = 'datagen');\nSELECT pr FROM bids;";
    let (ok, stdout, stderr) = sql(&["complete", "-", "--line", "2", "--column", "10"], script);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().next(), Some("price\tColumn\tINT (bids)"), "{stdout}");
}

#[test]
fn a_script_is_formatted_with_its_comments() {
    let (ok, stdout, stderr) = sql(&["fmt", "-"], "select a -- first\nfrom t where a>1");
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "SELECT a -- first\nFROM t\nWHERE a > 1\n");
    let (ok, _, stderr) = sql(&["fmt", "-"], "select from where");
    assert!(!ok && stderr.contains("is not formatted"), "{stderr}");
}

#[test]
fn a_script_runs_on_the_embedded_engine_and_shows_its_query_s_changelog() {
    let (ok, stdout, stderr) = sql(
        &["run", "-"],
        "CREATE TABLE orders (id BIGINT, product INT) WITH ('connector' = 'datagen', \
         'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '6', \
         'fields.product.min' = '1', 'fields.product.max' = '1', 'rows-per-second' = '0');\n\
         CREATE TABLE out (product INT, n BIGINT) WITH ('connector' = 'print', 'print-identifier' = 'out');\n\
         SHOW TABLES;\n\
         INSERT INTO out SELECT product, COUNT(*) FROM orders GROUP BY product;\n\
         SELECT id * 10 AS tens, TIMESTAMP '2026-01-02 03:04:05.678' AS at, REPEAT('ab', 20) AS long_text FROM orders WHERE id > 4;",
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("[INFO] table orders created"), "{stderr}");
    assert!(stdout.contains("| orders | TABLE | datagen   |"), "{stdout}");
    // The query's rows in a changelog table, each column as wide as its type's values (a
    // BIGINT's 20 characters, a TIMESTAMP's 23), text up to 30 and cut with "..." beyond.
    let header = "| op |                 tens |                      at |                      long_text |";
    assert!(stdout.contains(header), "{stdout}");
    let row = |tens: &str| format!("| +I | {tens:>20} | 2026-01-02 03:04:05.678 | abababababababababababababa... |");
    assert!(stdout.contains(&row("50")) && stdout.contains(&row("60")), "{stdout}");
    let changelog = stdout.lines().filter(|line| line.starts_with("| +I") || line.starts_with("| op"));
    assert!(changelog.clone().count() == 3 && changelog.into_iter().all(|line| line.len() == header.len()), "aligned: {stdout}");
    assert!(stdout.contains("2 rows"), "{stdout}");
    // The insert's sink printed its changelog: one product counted up to six.
    assert!(stdout.contains("out> +I[1, 1]") && stdout.contains("out> +U[1, 6]"), "{stdout}");
    assert!(stderr.contains("11 rows written"), "{stderr}");
}

#[test]
fn a_script_that_fails_to_plan_says_where() {
    let (ok, _, stderr) = sql(&["run", "-"], "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nSELECT b FROM t;");
    assert!(!ok);
    assert!(stderr.contains("no column named b; did you mean a?") && stderr.contains("--> line 2, column 8"), "{stderr}");
}

#[test]
fn check_plans_every_statement_and_shows_a_type_error_at_its_place() {
    let (ok, _, stderr) = check(
        "CREATE TABLE bids (auction BIGINT, bidder STRING) WITH ('connector' = 'datagen');\n\
         SELECT auction + bidder FROM bids;\nSELECT UPPR(bidder) FROM bids;",
    );
    assert!(!ok);
    assert!(stderr.contains("operator + does not take BIGINT and STRING\n  --> line 2, column 8"), "{stderr}");
    assert!(stderr.contains(" 2 | SELECT auction + bidder FROM bids;\n   |        ^"), "{stderr}");
    assert!(stderr.contains("no function named UPPR; did you mean UPPER?\n  --> line 3, column 8"), "{stderr}");
    assert!(stderr.contains("2 errors"), "{stderr}");
}

#[test]
fn a_function_is_completed_with_its_signature() {
    let script = "CREATE TABLE bids (auction BIGINT, bidder STRING) WITH ('connector' = 'datagen');\nSELECT UPP FROM bids;";
    let (ok, stdout, stderr) = sql(&["complete", "-", "--line", "2", "--column", "11"], script);
    assert!(ok, "{stderr}");
    let upper = stdout.lines().find(|line| line.starts_with("UPPER\t")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(upper.starts_with("UPPER\tFunction\tUPPER(s STRING) -> STRING\t"), "{upper}");
}

/// `tethys test ARGS`: success, standard output and error.
fn tethys_test(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tethys")).arg("test").args(args).output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql/tests")
}

#[test]
fn tethys_test_runs_the_example_cases() {
    let (ok, stdout, stderr) = tethys_test(&[examples().to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("PASS orders per window, and running totals"), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
}

#[test]
fn tethys_test_fails_with_exactly_the_rows_that_differ() {
    let dir = tethys_storage::test_dir::TestDir::new("tethys-test-cli");
    let case = std::fs::read_to_string(examples().join("orders.toml")).unwrap().replace("+U[alice, 3, 18.25]", "+U[alice, 3, 99.00]");
    std::fs::write(dir.path().join("wrong.toml"), case).unwrap();
    for file in ["orders.sql", "orders.csv"] {
        std::fs::copy(examples().join(file), dir.path().join(file)).unwrap();
    }
    let (ok, stdout, stderr) = tethys_test(&[dir.path().join("wrong.toml").to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("1 of 1 test cases failed"), "{stderr}");
    assert!(stdout.contains("FAIL orders per window, and running totals"), "{stdout}");
    assert!(stdout.contains("running (compared as Changelog):"), "{stdout}");
    assert!(stdout.contains("- +U[alice, 3, 99.00]    (expected line 7)"), "{stdout}");
    assert!(stdout.contains("+ +U[alice, 3, 18.25]    (produced row 7)"), "{stdout}");
    assert!(!stdout.contains("per_window (compared"), "the other sink passed: {stdout}");

    // A case that cannot run says why.
    std::fs::write(dir.path().join("broken.toml"), "name = \"broken\"\nsql = \"SELEC 1\"\n").unwrap();
    let (ok, stdout, _) = tethys_test(&[dir.path().join("broken.toml").to_str().unwrap()]);
    assert!(!ok);
    assert!(stdout.contains("ERROR") && stdout.contains("line 1"), "{stdout}");
    std::fs::write(dir.path().join("typo.toml"), "nmae = \"x\"\n").unwrap();
    let (ok, stdout, _) = tethys_test(&[dir.path().join("typo.toml").to_str().unwrap()]);
    assert!(!ok && stdout.contains("unknown field `nmae`"), "{stdout}");
}
