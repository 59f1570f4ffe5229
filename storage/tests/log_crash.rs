//! A real crash: a writer process appends and syncs records, printing each durable end on stdout,
//! and is killed with SIGKILL at a point the test picks by the number of lines it has read (never
//! by time). After each kill the test reopens the log and checks that every offset the writer
//! reported durable is there, intact; the writer of the next round continues the same log, so
//! recovery from a kill is exercised on top of earlier recoveries.
//!
//! The writer is this test binary itself, re-executed with `WRITER_DIR_ENV` set: the test
//! `crash_writer` then acts as the writer (and does nothing in a normal run).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use support::{payload_for, TestDir};
use tethys_storage::{Log, LogConfig};

/// Set to a log directory, it makes `crash_writer` write to that log.
const WRITER_DIR_ENV: &str = "TETHYS_STORAGE_CRASH_WRITER_DIR";
/// The writer stops by itself after this many records, should no one kill it.
const WRITER_RECORDS_MAX: u64 = 2_000_000;
/// Kills per test, each after a different number of durable reports.
const KILL_ROUNDS: u64 = 4;

fn writer_config() -> LogConfig {
    // Small segments roll often; a small write buffer puts partial records in the file, so a kill
    // can land anywhere inside a record.
    LogConfig { segment_bytes_max: 4096, record_bytes_max: 128, write_buffer_bytes: 50, ..LogConfig::default() }
}

#[test]
fn crash_writer() {
    let Some(dir) = std::env::var_os(WRITER_DIR_ENV) else { return };
    let mut log = Log::open(Path::new(&dir), writer_config()).expect("writer opens the log");
    let mut stdout = std::io::stdout().lock();
    let mut batch = 0u64;
    while log.end_offset() < WRITER_RECORDS_MAX {
        for _ in 0..=batch % 5 {
            let offset = log.end_offset();
            log.append(&payload_for(offset)).expect("append");
        }
        let durable_end = log.sync().expect("sync");
        writeln!(stdout, "durable {durable_end}").and_then(|()| stdout.flush()).expect("report");
        batch += 1;
    }
}

#[test]
fn writer_killed_with_sigkill_loses_no_synced_record() {
    let dir = TestDir::new("crash");
    let mut reported_end = 0u64;
    for round in 1..=KILL_ROUNDS {
        let mut writer = Command::new(std::env::current_exe().expect("test binary"))
            .args(["crash_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(WRITER_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start writer");
        let mut lines = BufReader::new(writer.stdout.take().expect("piped stdout")).lines();
        let kill_after_reports = 40 * round + 7;
        let mut reports = 0;
        while reports < kill_after_reports {
            let line = match lines.next() {
                Some(line) => line.expect("read writer output"),
                None => panic!("writer ended before being killed: {:?}", writer.wait()),
            };
            if let Some(end) = line.strip_prefix("durable ") {
                let end: u64 = end.parse().expect("a durable end");
                assert!(end >= reported_end, "durable ends never go back: {end} after {reported_end}");
                reported_end = end;
                reports += 1;
            }
        }
        writer.kill().expect("SIGKILL the writer");
        let status = writer.wait().expect("reap the writer");
        assert!(!status.success(), "round {round}: the writer was killed, not finished");
        // Lines the writer printed after the last one read report offsets durable as well.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(end) = line.strip_prefix("durable ") {
                reported_end = reported_end.max(end.parse().expect("a durable end"));
            }
        }

        let log = Log::open(dir.path(), writer_config()).expect("reopen after the kill");
        eprintln!("round {round}: reported {reported_end}, log ends at {}, recovery {:?}", log.end_offset(), log.recovery());
        assert!(
            log.end_offset() >= reported_end,
            "round {round}: log ends at {} but {reported_end} was reported durable",
            log.end_offset()
        );
        for offset in 0..log.end_offset() {
            let record = log.read(offset).unwrap_or_else(|e| panic!("round {round}: offset {offset}: {e}"));
            assert_eq!(record.payload, payload_for(offset), "round {round}: offset {offset}");
        }
    }
}
