//! Nexmark in SQL: the queries of `bench/nexmark-sql/` (nexmark-flink's, as SQL files), planned
//! by the SQL crate into jobs over the Nexmark generator, for `tethys bench` and for checking
//! them against the DataStream versions.

use tethys_engine::sink::Sink;
use tethys_engine::EngineConfig;
use tethys_sql::function::{arity, expect, ScalarFunction};
use tethys_sql::types::SqlType;
use tethys_sql::value::{Row, Value};
use tethys_sql::{SqlJob, SqlSession};

/// The table and views every query reads (`${EVENTS}`, `${SEED}` to replace).
pub const DDL: &str = include_str!("../nexmark-sql/ddl.sql");

/// The queries by number.
pub const QUERIES: &[(u8, &str)] = &[
    (0, include_str!("../nexmark-sql/q0.sql")),
    (1, include_str!("../nexmark-sql/q1.sql")),
    (2, include_str!("../nexmark-sql/q2.sql")),
    (3, include_str!("../nexmark-sql/q3.sql")),
    (4, include_str!("../nexmark-sql/q4.sql")),
    (5, include_str!("../nexmark-sql/q5.sql")),
    (7, include_str!("../nexmark-sql/q7.sql")),
    (8, include_str!("../nexmark-sql/q8.sql")),
    (9, include_str!("../nexmark-sql/q9.sql")),
    (10, include_str!("../nexmark-sql/q10.sql")),
    (11, include_str!("../nexmark-sql/q11.sql")),
    (12, include_str!("../nexmark-sql/q12.sql")),
    (13, include_str!("../nexmark-sql/q13.sql")),
    (14, include_str!("../nexmark-sql/q14.sql")),
    (15, include_str!("../nexmark-sql/q15.sql")),
    (16, include_str!("../nexmark-sql/q16.sql")),
    (17, include_str!("../nexmark-sql/q17.sql")),
    (18, include_str!("../nexmark-sql/q18.sql")),
    (19, include_str!("../nexmark-sql/q19.sql")),
    (20, include_str!("../nexmark-sql/q20.sql")),
    (21, include_str!("../nexmark-sql/q21.sql")),
    (22, include_str!("../nexmark-sql/q22.sql")),
];

/// Query `number`'s text, if there is one.
pub fn query(number: u8) -> Option<&'static str> {
    QUERIES.iter().find(|(n, _)| *n == number).map(|(_, text)| *text)
}

/// q14's user-defined function, registered from Rust as a program would: how many times a
/// character occurs in a text.
pub fn count_char() -> ScalarFunction {
    ScalarFunction::new(
        "COUNT_CHAR",
        "COUNT_CHAR(s STRING, c STRING) -> BIGINT",
        |args| {
            arity(args, 2..=2)?;
            expect(args, 0, "STRING", SqlType::is_string)?;
            expect(args, 1, "STRING", SqlType::is_string)?;
            Ok(SqlType::BigInt)
        },
        |args, _| {
            let (text, wanted) = (args[0].as_str().unwrap_or_default(), args[1].as_str().unwrap_or_default());
            let wanted = wanted.chars().next().ok_or("COUNT_CHAR needs a character")?;
            Ok(Value::Int(text.chars().filter(|c| *c == wanted).count() as i64))
        },
    )
    .describe("How many times character c occurs in s (nexmark q14's user-defined function).")
    .example("COUNT_CHAR('cocoa', 'c')", "2")
}

/// A session with the Nexmark table of `events` events from `seed` and its views defined, and
/// q14's function registered; jobs start from `config`.
pub fn session(events: u64, seed: u64, config: EngineConfig) -> Result<SqlSession, String> {
    let mut functions = tethys_sql::function::FunctionRegistry::default();
    functions.register(count_char());
    let mut session = SqlSession::new(functions).with_engine_config(config);
    let side_input = side_input_file()?;
    let ddl = DDL
        .replace("${EVENTS}", &events.to_string())
        .replace("${SEED}", &seed.to_string())
        .replace("${SIDE_INPUT}", &side_input.to_string_lossy());
    session.execute_script(&ddl).map_err(|error| error.render(&ddl))?;
    Ok(session)
}

/// Rows of q13's side input: keys 0 to 9999.
pub const SIDE_INPUT_ROWS: u64 = 10_000;

/// q13's side input (`key,value` lines, the value the key's text), written once into the system's
/// temporary directory (whole, then renamed into place, so a reader never sees part of it).
pub fn side_input_file() -> Result<std::path::PathBuf, String> {
    let path = std::env::temp_dir().join(format!("tethys-nexmark-side-input-{SIDE_INPUT_ROWS}.csv"));
    let text: String = (0..SIDE_INPUT_ROWS).map(|key| format!("{key},{key}\n")).collect();
    if std::fs::read_to_string(&path).is_ok_and(|existing| existing == text) {
        return Ok(path);
    }
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    let written = std::fs::write(&partial, &text).and_then(|()| std::fs::rename(&partial, &path));
    written.map_err(|error| format!("cannot write q13's side input {}: {error}", path.display()))?;
    Ok(path)
}

/// Query `number` as a job over `session`'s table, into `sink`.
pub fn job(session: &SqlSession, number: u8, sink: impl Sink<Row>) -> Result<SqlJob, String> {
    let text = query(number).ok_or_else(|| format!("no Nexmark query q{number} in SQL"))?;
    session.query_into(text, sink).map_err(|error| format!("q{number}:\n{}", error.render(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_plans() {
        let session = session(1000, 1, EngineConfig { parallelism: 1, ..EngineConfig::default() }).unwrap();
        for (number, _) in QUERIES {
            let job = job(&session, *number, tethys_engine::sink::discard::DiscardSink::new()).unwrap_or_else(|error| panic!("{error}"));
            assert!(!job.plan.is_empty());
        }
    }

    fn sql_count(number: u8, events: u64, seed: u64, parallelism: usize) -> u64 {
        let config = EngineConfig { slots: 2, parallelism, ..EngineConfig::default() };
        let session = session(events, seed, config).unwrap();
        let sink = tethys_engine::sink::discard::DiscardSink::new();
        let job = job(&session, number, sink.clone()).unwrap();
        let result = job.env.execute(&format!("q{number}")).unwrap();
        for operator in &result.operators {
            let dropped = operator.extra.get("late_records_dropped").copied().unwrap_or(0);
            assert_eq!(dropped, 0, "q{number} p={parallelism}: {} dropped late records", operator.name);
        }
        sink.records()
    }

    #[test]
    fn sql_queries_give_what_the_datastream_queries_give() {
        let (events, seed) = (40_000, 3);
        let (q5, q7, q8) = crate::nexmark::windowed_expectations(events, seed);
        assert!(q5 > 0 && q7 > 0 && q8 > 0, "the case exercises every query: {q5} {q7} {q8}");
        let generator = tethys_engine::source::nexmark::NexmarkSource::new(events, seed).generator().unwrap();
        let bids: Vec<_> = (0..events).filter_map(|n| crate::nexmark::bid(generator.event(n))).collect();
        let q2 = bids.iter().filter(|b| b.auction % 123 == 0).count() as u64;
        for parallelism in [1, 2] {
            // q13: every bid's auction (mod 10000) has one row in the side input.
            let cases = [(0, bids.len() as u64), (1, bids.len() as u64), (2, q2), (5, q5), (7, q7), (8, q8), (13, bids.len() as u64)];
            for (number, expected) in cases {
                assert_eq!(sql_count(number, events, seed, parallelism), expected, "q{number} p={parallelism}");
            }
        }
    }
}
