//! What the SQL crate's end-to-end tests share: the nexmark table as nexmark-flink declares it,
//! and running a script's jobs to their rows. Each test crate uses part of it.
#![allow(dead_code)]

use tethys_sql::{run_job, Outcome, SqlSession};

/// `CREATE TABLE nexmark (...)` with nexmark-flink's columns and watermark, over `events` events.
pub fn nexmark_table(events: u64) -> String {
    format!(
        "CREATE TABLE nexmark (
            event_type INT,
            person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR, state VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
            auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
            bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, dateTime TIMESTAMP(3), extra VARCHAR>,
            dateTime AS CASE WHEN event_type = 0 THEN person.dateTime WHEN event_type = 1 THEN auction.dateTime ELSE bid.dateTime END,
            WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
        ) WITH ('connector' = 'nexmark', 'events.num' = '{events}');"
    )
}

/// Runs `script` in `session`: the rows of its jobs, as text, in order, and the last `EXPLAIN`'s
/// plan; the first job's error, if one fails. A script that does not plan panics with its error.
pub fn run_script_in(session: &mut SqlSession, script: &str) -> Result<(Vec<String>, String), String> {
    let (mut rows, mut plan) = (Vec::new(), String::new());
    for outcome in session.execute_script(script).unwrap_or_else(|error| panic!("{}", error.render(script))) {
        match outcome {
            Outcome::Explain(text) => plan = text,
            Outcome::Job(job) => {
                run_job(*job, |row| rows.push(row.to_string()))?;
            }
            _ => {}
        }
    }
    Ok((rows, plan))
}

/// Every line of the files in `dir` (those whose names do not start with a dot), sorted.
pub fn lines_in(dir: &std::path::Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
        .flat_map(|path| std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}
