//! Golden tests: each `golden/*.sql` runs (after the shared `orders.ddl` and `tables.ddl`) on the engine, and its
//! query's rows must equal `golden/*.out`, worked out by hand. A file starting with `-- sorted`
//! is compared sorted (rows of one window firing come in any order); one starting with `-- final`
//! by what its changelog adds up to (a join's changelog depends on which input came first); any
//! other in order, as a changelog is.

use std::path::Path;

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn run_case(name: &str) {
    let dir = golden_dir();
    let data = dir.join("data");
    let ddl = ["orders.ddl", "tables.ddl"]
        .iter()
        .map(|file| std::fs::read_to_string(dir.join(file)).unwrap().replace("${DATA}", data.to_str().unwrap()))
        .collect::<Vec<_>>()
        .join("\n");
    let query = std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap();
    let expected = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
    let script = format!("{ddl}\n{query}");
    let mut results = tethys_sql::run_script(&script).unwrap_or_else(|error| panic!("{name}:\n{error}"));
    assert_eq!(results.len(), 1, "{name}: one query");
    let mut rows = results.remove(0);
    let mut expected: Vec<String> = expected.lines().map(str::to_string).collect();
    if query.starts_with("-- sorted") {
        rows.sort();
        expected.sort();
    }
    if query.starts_with("-- final") {
        rows = materialized(&rows);
        expected.sort();
    }
    assert_eq!(rows, expected, "{name}: rows differ from golden/{name}.out");
}

/// What a changelog adds up to: the rows left after every insert and delete, as inserts, sorted.
fn materialized(changelog: &[String]) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for change in changelog {
        let (kind, values) = change.split_at(2);
        match kind {
            "+I" | "+U" => rows.push(values.to_string()),
            _ => {
                let index = rows.iter().position(|row| row == values).unwrap_or_else(|| panic!("{change} retracts a row never added"));
                rows.remove(index);
            }
        }
    }
    let mut rows: Vec<String> = rows.into_iter().map(|values| format!("+I{values}")).collect();
    rows.sort();
    rows
}

#[test]
fn every_golden_case_has_its_output() {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".sql").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "golden cases: {names:?}");
    for name in &names {
        assert!(golden_dir().join(format!("{name}.out")).exists(), "golden/{name}.sql has no .out");
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(stringify!($name));
            }
        )*
    };
}

golden!(
    filter_project,
    case_cast,
    tumble,
    hop,
    cumulate,
    session,
    group_changelog,
    changelog_of_changelog,
    having,
    union_with,
    join_inner,
    join_left,
    join_full,
    join_interval,
    join_interval_left,
    join_interval_full,
    join_window,
    topn,
    topn_changelog,
    topn_retractions,
    dedup,
    window_topn,
    over_rows,
    over_range,
    over_named_window,
    group_window,
    group_window_session,
    order_by_limit,
    order_by_limit_changelog,
    limit,
    lookup_join,
);
