//! Lookup joins at run time: the table is read when the first row needs it, and a table that
//! cannot be read fails the job naming the table and the row, without crashing.

use tethys_storage::test_dir::TestDir;

fn script(lookup_csv: &str) -> (TestDir, String) {
    let dir = TestDir::new("sql-lookup");
    let path = dir.path().join("tiers.csv");
    std::fs::write(&path, lookup_csv).unwrap();
    let script = format!(
        "CREATE TABLE orders (id BIGINT, customer STRING, proc AS PROCTIME())
           WITH ('connector' = 'datagen', 'number-of-rows' = '5', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
                 'fields.id.end' = '5', 'fields.customer.length' = '1');
         CREATE TABLE tiers (id BIGINT, tier STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         SELECT o.id, t.tier FROM orders o JOIN tiers FOR SYSTEM_TIME AS OF o.proc AS t ON o.id = t.id;",
        path.display()
    );
    (dir, script)
}

#[test]
fn every_row_finds_its_match_in_the_file() {
    let (_dir, script) = script("1,gold\n2,silver\n3,bronze\n4,gold\n5,iron\n");
    let mut rows = tethys_sql::run_script(&script).unwrap().remove(0);
    rows.sort();
    assert_eq!(rows, ["+I[1, gold]", "+I[2, silver]", "+I[3, bronze]", "+I[4, gold]", "+I[5, iron]"]);
}

#[test]
fn a_table_that_does_not_parse_fails_the_job_naming_it_and_the_row() {
    let (_dir, script) = script("1,gold\nnot a number,silver\n");
    let error = tethys_sql::run_script(&script).expect_err("the job fails");
    assert!(error.contains("table tiers: cannot read CSV row"), "{error}");
    assert!(error.contains("not a number"), "{error}");
}

#[test]
fn a_topic_is_looked_up_as_its_changes_add_up() {
    use tethys_sql::value::{Row, RowKind, Value};
    let dir = TestDir::new("sql-lookup");
    let path = dir.path().join("tiers");
    let topic = tethys_engine::Topic::create(&path, 2).unwrap();
    let row = |id: i64, tier: &str, kind: RowKind| Row { kind, values: vec![Value::Int(id), Value::Str(tier.into())] };
    for (partition, change) in [
        (0, row(1, "gold", RowKind::Insert)),
        (1, row(2, "silver", RowKind::Insert)),
        (1, row(2, "silver", RowKind::UpdateBefore)),
        (1, row(2, "platinum", RowKind::UpdateAfter)),
        (0, row(3, "bronze", RowKind::Insert)),
        (0, row(1, "gold", RowKind::Delete)),
    ] {
        topic.append(partition, &change).unwrap();
    }
    topic.sync().unwrap();
    let script = format!(
        "CREATE TABLE orders (id BIGINT, proc AS PROCTIME())
           WITH ('connector' = 'datagen', 'number-of-rows' = '4', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
                 'fields.id.end' = '4');
         CREATE TABLE tiers (id BIGINT, tier STRING) WITH ('connector' = 'topic', 'path' = '{}', 'partitions' = '2');
         SELECT o.id, t.tier FROM orders o LEFT JOIN tiers FOR SYSTEM_TIME AS OF o.proc AS t ON o.id = t.id;",
        path.display()
    );
    let mut rows = tethys_sql::run_script(&script).unwrap().remove(0);
    rows.sort();
    assert_eq!(rows, ["+I[1, <NULL>]", "+I[2, platinum]", "+I[3, bronze]", "+I[4, <NULL>]"]);
    drop(topic);

    // Only a filesystem or topic table is looked up.
    let other = script.replace("'connector' = 'topic', 'path'", "'connector' = 'blackhole', 'x'").replace(", 'partitions' = '2'", "");
    let error = tethys_sql::run_script(&other).expect_err("refused");
    assert!(error.contains("a 'filesystem' or 'topic' table"), "{error}");
}
