//! Processing-time windows: a `PROCTIME()` column is a time attribute, and TUMBLE or SESSION over it
//! windows rows by the wall clock of the aggregating operator. What comes out depends on the clock, so
//! these tests check what must hold whatever the timing.

use tethys_sql::{Outcome, SqlSession};

/// 600 rows at 300 per second: the job runs about two seconds, so at least one whole second's
/// window fires (the last, open when the input ends, is dropped, as in Flink).
const CLICKS: &str = "
CREATE TABLE clicks (user_id BIGINT, proc AS PROCTIME()) WITH (
  'connector' = 'datagen', 'rows-per-second' = '300', 'number-of-rows' = '600',
  'fields.user_id.kind' = 'sequence', 'fields.user_id.start' = '1', 'fields.user_id.end' = '600');
";

fn timestamp_ms(text: &str) -> i64 {
    // `YYYY-MM-DD HH:MM:SS.mmm`, UTC.
    let (date, time) = text.split_once(' ').expect("date and time");
    let date: Vec<i64> = date.split('-').map(|part| part.parse().unwrap()).collect();
    let (hms, millis) = time.split_once('.').expect("milliseconds");
    let hms: Vec<i64> = hms.split(':').map(|part| part.parse().unwrap()).collect();
    let (y, m, d) = (date[0], date[1], date[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + hms[0]) * 60 + hms[1]) * 60_000 + hms[2] * 1000 + millis.parse::<i64>().unwrap()
}

#[test]
fn a_tumbling_processing_time_window_fires_whole_seconds_by_the_wall_clock() {
    let started_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let query = "SELECT window_start, window_end, COUNT(*) AS n, MIN(user_id) AS first_id, MAX(user_id) AS last_id
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(proc), INTERVAL '1' SECOND)) GROUP BY window_start, window_end";
    let mut results = tethys_sql::run_script(&format!("{CLICKS}{query};")).unwrap();
    let rows = results.remove(0);
    assert!(!rows.is_empty(), "at least one second's window fired while the rows came");
    let mut previous_end = i64::MIN;
    let mut counted = 0;
    for row in &rows {
        let fields: Vec<&str> = row.trim_start_matches("+I[").trim_end_matches(']').split(", ").collect();
        assert_eq!(fields.len(), 5, "{row}");
        assert!(row.starts_with("+I["), "a processing-time window emits once, appends only: {row}");
        let (start, end) = (timestamp_ms(fields[0]), timestamp_ms(fields[1]));
        assert_eq!(end - start, 1000, "{row}");
        assert_eq!(start % 1000, 0, "windows are aligned to the second: {row}");
        assert!(start >= started_ms - 1000, "the window is of this run's wall clock: {row}");
        assert!(end > previous_end, "windows fire in order of their end: {row}");
        previous_end = end;
        let (n, first, last): (i64, i64, i64) = (fields[2].parse().unwrap(), fields[3].parse().unwrap(), fields[4].parse().unwrap());
        // The sequence arrives in order, so a window holds a run of it.
        assert_eq!(last - first + 1, n, "{row}");
        counted += n;
    }
    assert!(counted <= 600, "no row counted twice: {counted}");
}

#[test]
fn a_proctime_column_is_a_time_attribute() {
    let mut session = SqlSession::default();
    session.execute_script(CLICKS).unwrap();
    let described = session.execute_script("DESCRIBE clicks").unwrap();
    let Outcome::Table { rows, .. } = &described[0] else { panic!("DESCRIBE answers with a table") };
    let text = format!("{rows:?}");
    assert!(text.contains("PROCTIME"), "{text}");
}

#[test]
fn a_processing_time_session_closes_a_gap_after_its_last_rows_arrival() {
    // 10 rows at 5 a second and a gap of 100 ms: rows come further apart than the gap, so
    // sessions close while the job runs (the last, open when the input ends, is dropped).
    let slow = "CREATE TABLE taps (user_id BIGINT, proc AS PROCTIME()) WITH (
      'connector' = 'datagen', 'rows-per-second' = '5', 'number-of-rows' = '10',
      'fields.user_id.kind' = 'sequence', 'fields.user_id.start' = '1', 'fields.user_id.end' = '10');";
    let query = "SELECT window_start, window_end, COUNT(*) AS n, MIN(user_id), MAX(user_id)
        FROM TABLE(SESSION(TABLE taps, DESCRIPTOR(proc), INTERVAL '0.1' SECOND)) GROUP BY window_start, window_end";
    let mut results = tethys_sql::run_script(&format!("{slow}{query};")).unwrap();
    let rows = results.remove(0);
    assert!(!rows.is_empty(), "a session closed while the rows came");
    let (mut previous_end, mut counted) = (i64::MIN, 0);
    for row in &rows {
        let fields: Vec<&str> = row.trim_start_matches("+I[").trim_end_matches(']').split(", ").collect();
        assert!(row.starts_with("+I[") && fields.len() == 5, "{row}");
        let (start, end) = (timestamp_ms(fields[0]), timestamp_ms(fields[1]));
        assert!(end - start >= 100, "a session lasts at least its gap after its first row: {row}");
        assert!(start >= previous_end, "sessions do not overlap: {row}");
        previous_end = end;
        let (n, first, last): (i64, i64, i64) = (fields[2].parse().unwrap(), fields[3].parse().unwrap(), fields[4].parse().unwrap());
        assert_eq!(last - first + 1, n, "a session holds a run of the sequence: {row}");
        counted += n;
    }
    assert!(counted < 10, "the last session, open at the end, is dropped: {rows:?}");
}

#[test]
fn proctime_in_a_select_list_is_a_time_attribute_for_a_group_window() {
    let mut session = SqlSession::default();
    session.execute_script(CLICKS).unwrap();
    let sql = "EXPLAIN SELECT B.user_id, COUNT(*), TUMBLE_START(B.p, INTERVAL '10' SECOND)
        FROM (SELECT user_id, PROCTIME() AS p FROM clicks) B GROUP BY B.user_id, TUMBLE(B.p, INTERVAL '10' SECOND)";
    let explained = session.execute_script(sql).unwrap_or_else(|error| panic!("{}", error.render(sql)));
    let Outcome::Explain(text) = &explained[0] else { panic!("EXPLAIN answers with its plans") };
    assert!(text.contains("ProcTimeWindowAggregate"), "{text}");
}
