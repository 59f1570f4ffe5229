//! A SQL script as a job that every process of a cluster builds from its text
//! (`SqlSession::define_job`): definitions run in order, the one job statement is built into the
//! given environment at its parallelism, and scripts with no job or two are refused by position.

use tethys_engine::{EngineConfig, StreamEnvironment};
use tethys_sql::session::SqlSession;

const TABLES: &str = "
CREATE TABLE orders (id BIGINT, amount DOUBLE)
  WITH ('connector' = 'datagen', 'number-of-rows' = '100', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
        'fields.id.end' = '100');
CREATE TABLE big (id BIGINT, amount DOUBLE) WITH ('connector' = 'blackhole');
CREATE TABLE small (id BIGINT) WITH ('connector' = 'blackhole');
SET 'parallelism.default' = '3';
";

fn environment(parallelism: usize) -> StreamEnvironment {
    StreamEnvironment::new(EngineConfig { slots: 2, parallelism, ..EngineConfig::default() })
}

#[test]
fn a_script_defines_its_one_job_at_the_environment_s_parallelism() {
    let env = environment(2);
    let script = format!("{TABLES}INSERT INTO big SELECT id, amount FROM orders WHERE id > 10;");
    let name = SqlSession::default().define_job(&env, &script).unwrap();
    assert_eq!(name, "INSERT INTO big");
    let graph = env.job_graph();
    assert!(
        graph.nodes.iter().filter(|node| !node.name.starts_with("Source")).all(|node| node.parallelism.is_none_or(|p| p <= 2)),
        "{graph:?}"
    );
    let result = env.execute("sql").unwrap();
    assert_eq!(result.source_records(&env.job_graph()), 100);

    // A statement set is one job; a SELECT's rows are counted and dropped.
    let env = environment(1);
    let set =
        format!("{TABLES}EXECUTE STATEMENT SET BEGIN INSERT INTO big SELECT * FROM orders; INSERT INTO small SELECT id FROM orders; END;");
    assert_eq!(SqlSession::default().define_job(&env, &set).unwrap(), "STATEMENT SET");
    env.execute("set").unwrap();
    let env = environment(1);
    assert_eq!(SqlSession::default().define_job(&env, &format!("{TABLES}SELECT id FROM orders;")).unwrap(), "SELECT");
}

#[test]
fn a_script_without_a_job_or_with_two_is_refused_where_it_goes_wrong() {
    let none = SqlSession::default().define_job(&environment(1), TABLES).unwrap_err();
    assert!(none.message.contains("defines no job"), "{}", none.message);
    let two = format!("{TABLES}INSERT INTO small SELECT id FROM orders;\nINSERT INTO big SELECT * FROM orders;");
    let error = SqlSession::default().define_job(&environment(1), &two).unwrap_err();
    assert!(error.message.contains("a second"), "{}", error.message);
    assert_eq!(error.at.map(|at| at.line), Some(9), "the second INSERT's line: {error:?}");
    let bad =
        SqlSession::default().define_job(&environment(1), &format!("{TABLES}INSERT INTO nowhere SELECT id FROM orders;")).unwrap_err();
    assert!(bad.render(&format!("{TABLES}INSERT INTO nowhere SELECT id FROM orders;")).contains("nowhere"), "{bad:?}");
}
