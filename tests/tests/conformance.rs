//! Window conformance with Apache Flink 2.3: each file of `tests/conformance/expected/` is one test
//! that runs its input (`tests/conformance/inputs/`) through the matching Tethys job and compares
//! the output with the rows Flink emitted, as multisets (`tests/conformance/README.md` gives the
//! settings and the columns).
//!
//! Every job runs at parallelism 1 with a per-record (punctuated) watermark of `max ts - 2000`,
//! emitted right after the record that raised it, as Flink's cases did; and each runs with frames
//! of 1, 2 and 1,024 records, as results must not depend on how records are batched. A window's
//! row carries the watermark at its firing (`WindowContext::watermark`) and the largest arrival
//! sequence in it (computed from the window's records). `firing` (1, 2, ... per key and window) is
//! not something the engine reports: every firing of a window carries its whole content, so the
//! n-th firing is the one with the n-th smallest count. The SQL cases are computed with the
//! DataStream windows of the same shape, lateness 0 and late records dropped; with lateness 0 each
//! window fires once, so all its firings are compared (a second firing would show as an extra row).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tethys_engine::rkyv;
use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::collection::CollectionSource;
use tethys_engine::state::disk::DISK_CACHE_BYTES_MIN;
use tethys_engine::state::StateBackendConfig;
use tethys_engine::window::function::WindowContext;
use tethys_engine::{
    CumulateEventTimeWindows, DataStream, EngineConfig, EventTimeSessionWindows, LatePolicy, LateRecord, Output, OutputTag,
    SlidingEventTimeWindows, StreamEnvironment, TumblingEventTimeWindows, UserError, WatermarkStrategy,
};
use tethys_tests::TempDir;

/// One input row: `key,ts_ms,value,seq`. Window contents are checkpointed state, so it derives
/// the engine's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
struct Input {
    key: char,
    ts_ms: i64,
    value: i64,
    seq: u64,
}

/// One firing of a window for a key, as the window function saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = tethys_engine::rkyv)]
struct Firing {
    key: char,
    start: i64,
    end: i64,
    count: u64,
    sum: i64,
    min: i64,
    max: i64,
    watermark: i64,
    max_seq: u64,
}

/// The windows of a case.
#[derive(Debug, Clone, Copy)]
enum Windows {
    Tumble,
    Hop,
    Cumulate,
    Session,
}

/// What a case's expected file holds.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// DataStream firings: `key,window_start,window_end,firing,cnt,sum_v,min_v,max_v,fire_wm,max_seq`.
    Firings,
    /// The late-data side output: `key,ts_ms,value,seq`.
    Late,
    /// SQL window rows: `key,window_start,window_end,cnt,sum_v,min_v,max_v`.
    SqlWindows,
}

/// Watermark = largest timestamp seen - 2000 (the engine's formula subtracts the bound and 1 ms).
const OUT_OF_ORDERNESS: Duration = Duration::from_millis(1_999);

const FRAME_SIZES: [usize; 3] = [1, 2, 1_024];
/// Frame sizes the cases also run at with window state in the disk backend.
const DISK_FRAME_SIZES: [usize; 2] = [1, 1_024];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// The data rows of a CSV file, each split at commas; the header is checked and dropped.
fn read_csv(path: &Path, header: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "header of {}", path.display());
    lines.filter(|line| !line.trim().is_empty()).map(|line| line.split(',').map(str::to_string).collect()).collect()
}

fn read_input(name: &str) -> Vec<Input> {
    let rows = read_csv(&conformance_dir().join("inputs").join(format!("{name}.csv")), "key,ts_ms,value,seq");
    let inputs: Vec<Input> = rows
        .iter()
        .map(|row| {
            let mut key = row[0].chars();
            let input = Input {
                key: key.next().expect("a key"),
                ts_ms: row[1].parse().expect("ts_ms"),
                value: row[2].parse().expect("value"),
                seq: row[3].parse().expect("seq"),
            };
            assert!(key.next().is_none(), "keys are one letter: {row:?}");
            input
        })
        .collect();
    assert!(inputs.iter().enumerate().all(|(index, input)| input.seq == index as u64), "seq is the arrival index");
    inputs
}

/// The window function of every case: the aggregate, the watermark at firing and the largest seq.
fn summarize(context: &WindowContext<'_, char>, records: &[Input], out: &mut Output<'_, Firing>) -> Result<(), UserError> {
    let values = records.iter().map(|input| input.value);
    out.emit(Firing {
        key: *context.key,
        start: context.window.start,
        end: context.window.end,
        count: records.len() as u64,
        sum: values.clone().sum(),
        min: values.clone().min().expect("a window that fires has a record"),
        max: values.max().expect("a window that fires has a record"),
        watermark: context.watermark,
        max_seq: records.iter().map(|input| input.seq).max().expect("a window that fires has a record"),
    });
    Ok(())
}

/// Runs `inputs` through `windows` with `lateness_ms` at parallelism 1 in frames of
/// `frame_records`, keeping window state in `state_backend`, with channels encoded as between
/// processes if `encode_channels`; returns the firings and the late side output.
fn run(
    inputs: &[Input],
    windows: Windows,
    lateness_ms: u64,
    frame_records: usize,
    state_backend: StateBackendConfig,
    encode_channels: bool,
) -> (Vec<Firing>, Vec<LateRecord<Input>>) {
    let config = EngineConfig {
        slots: 2,
        parallelism: 1,
        frame_records_max: frame_records,
        state_backend,
        encode_channels,
        ..EngineConfig::default()
    };
    let env = StreamEnvironment::new(config);
    let late_tag = OutputTag::new("late");
    let (fired, late) = (CollectSink::new(), CollectSink::new());
    let keyed = env
        .source("input", CollectionSource::new(inputs.to_vec()))
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness_per_record(OUT_OF_ORDERNESS, |input: &Input| {
            input.ts_ms
        }))
        .key_by(|input: &Input| input.key);
    let timestamp = |input: &Input| input.ts_ms;
    let lateness = Duration::from_millis(lateness_ms);
    let policy = LatePolicy::SideOutput(late_tag.clone());
    let firings: DataStream<Firing> = match windows {
        Windows::Tumble => keyed
            .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), timestamp)
            .allowed_lateness(lateness)
            .late_records(policy)
            .process(summarize),
        Windows::Hop => keyed
            .window(SlidingEventTimeWindows::of(Duration::from_secs(10), Duration::from_secs(5)), timestamp)
            .allowed_lateness(lateness)
            .late_records(policy)
            .process(summarize),
        Windows::Cumulate => keyed
            .window(CumulateEventTimeWindows::of(Duration::from_secs(5), Duration::from_secs(20)), timestamp)
            .allowed_lateness(lateness)
            .late_records(policy)
            .process(summarize),
        Windows::Session => keyed
            .window(EventTimeSessionWindows::with_gap(Duration::from_secs(5)), timestamp)
            .allowed_lateness(lateness)
            .late_records(policy)
            .process(summarize),
    };
    firings.side_output(&late_tag).sink("late", late.clone());
    firings.sink("fired", fired.clone());
    env.execute("conformance").unwrap_or_else(|error| panic!("job failed: {error}"));
    (fired.records(), late.records())
}

/// Firings as rows of the expected file's columns; `firing` numbers a window's firings by count.
fn firing_rows(firings: &[Firing], expected: Expected) -> Vec<String> {
    let mut by_window: BTreeMap<(char, i64, i64), Vec<&Firing>> = BTreeMap::new();
    for firing in firings {
        by_window.entry((firing.key, firing.start, firing.end)).or_default().push(firing);
    }
    let mut rows = Vec::new();
    for ((key, start, end), mut firings) in by_window {
        firings.sort_by_key(|firing| firing.count);
        for (index, f) in firings.iter().enumerate() {
            rows.push(match expected {
                Expected::Firings => {
                    format!("{key},{start},{end},{},{},{},{},{},{},{}", index + 1, f.count, f.sum, f.min, f.max, f.watermark, f.max_seq)
                }
                Expected::SqlWindows => format!("{key},{start},{end},{},{},{},{}", f.count, f.sum, f.min, f.max),
                Expected::Late => unreachable!("late rows come from the side output"),
            });
        }
    }
    rows
}

/// Asserts `actual` and `expected` are equal as multisets, naming the rows missing and extra.
fn assert_same_rows(mut actual: Vec<String>, mut expected: Vec<String>, what: &str) {
    actual.sort();
    expected.sort();
    if actual == expected {
        return;
    }
    let mut missing = expected.clone();
    let mut extra = Vec::new();
    for row in &actual {
        match missing.iter().position(|m| m == row) {
            Some(at) => {
                missing.remove(at);
            }
            None => extra.push(row.clone()),
        }
    }
    panic!(
        "{what}: rows differ from Flink's\n  missing (Flink has, we do not): {missing:#?}\n  extra (we have, Flink does not): {extra:#?}"
    );
}

/// Runs the case of `file` (`<input>__<case>.csv`) and compares with it.
fn check(file: &str) {
    let (input, case) = file.strip_suffix(".csv").and_then(|stem| stem.split_once("__")).expect("file is <input>__<case>.csv");
    let (case, expected) = match case.strip_suffix("_late") {
        Some(case) => (case, Expected::Late),
        None if case.starts_with("sql_") => (case, Expected::SqlWindows),
        None => (case, Expected::Firings),
    };
    let (windows, lateness_ms) = match case {
        "ds_tumble_L0" => (Windows::Tumble, 0),
        "ds_tumble_L3" => (Windows::Tumble, 3_000),
        "ds_session_L0" => (Windows::Session, 0),
        "ds_session_L3" => (Windows::Session, 3_000),
        "sql_tumble" => (Windows::Tumble, 0),
        "sql_hop" => (Windows::Hop, 0),
        "sql_cumulate" => (Windows::Cumulate, 0),
        "sql_session" => (Windows::Session, 0),
        other => panic!("unknown case {other}"),
    };
    let header = match expected {
        Expected::Firings => "key,window_start,window_end,firing,cnt,sum_v,min_v,max_v,fire_wm,max_seq",
        Expected::Late => "key,ts_ms,value,seq",
        Expected::SqlWindows => "key,window_start,window_end,cnt,sum_v,min_v,max_v",
    };
    let expected_rows: Vec<String> =
        read_csv(&conformance_dir().join("expected").join(file), header).iter().map(|row| row.join(",")).collect();
    let inputs = read_input(input);
    // Every case in memory; the windows kept in the disk backend too (sessions stay in memory).
    // And once with every channel encoded as between processes, in frames of one record.
    let mut runs: Vec<(usize, Option<TempDir>, bool)> = FRAME_SIZES.iter().map(|&frame_records| (frame_records, None, false)).collect();
    runs.push((1, None, true));
    if !matches!(windows, Windows::Session) {
        runs.extend(
            DISK_FRAME_SIZES
                .iter()
                .map(|&frame_records| (frame_records, Some(TempDir::new(&format!("conformance-{case}-{frame_records}"))), false)),
        );
    }
    for (frame_records, disk, encoded) in runs {
        let state_backend = match &disk {
            None => StateBackendConfig::Heap,
            Some(dir) => StateBackendConfig::Disk { dir: dir.0.clone(), cache_bytes: DISK_CACHE_BYTES_MIN },
        };
        let (firings, late) = run(&inputs, windows, lateness_ms, frame_records, state_backend, encoded);
        let actual = match expected {
            Expected::Late => {
                late.iter().map(|LateRecord { record: r, .. }| format!("{},{},{},{}", r.key, r.ts_ms, r.value, r.seq)).collect()
            }
            _ => firing_rows(&firings, expected),
        };
        let store = if disk.is_some() { "on disk" } else { "in memory" };
        let channels = if encoded { ", channels encoded" } else { "" };
        assert_same_rows(actual, expected_rows.clone(), &format!("{file} (frames of {frame_records} records, state {store}{channels})"));
    }
}

/// One test per expected file; `every_expected_file_has_a_test` keeps this list complete.
macro_rules! conformance_cases {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($file);
            }
        )*
        const CASE_FILES: &[&str] = &[$($file),*];
    };
}

conformance_cases! {
    tiny1_inorder_ds_session_l0 => "tiny1_inorder__ds_session_L0.csv",
    tiny1_inorder_ds_session_l0_late => "tiny1_inorder__ds_session_L0_late.csv",
    tiny1_inorder_ds_session_l3 => "tiny1_inorder__ds_session_L3.csv",
    tiny1_inorder_ds_session_l3_late => "tiny1_inorder__ds_session_L3_late.csv",
    tiny1_inorder_ds_tumble_l0 => "tiny1_inorder__ds_tumble_L0.csv",
    tiny1_inorder_ds_tumble_l0_late => "tiny1_inorder__ds_tumble_L0_late.csv",
    tiny1_inorder_ds_tumble_l3 => "tiny1_inorder__ds_tumble_L3.csv",
    tiny1_inorder_ds_tumble_l3_late => "tiny1_inorder__ds_tumble_L3_late.csv",
    tiny1_inorder_sql_cumulate => "tiny1_inorder__sql_cumulate.csv",
    tiny1_inorder_sql_hop => "tiny1_inorder__sql_hop.csv",
    tiny1_inorder_sql_session => "tiny1_inorder__sql_session.csv",
    tiny1_inorder_sql_tumble => "tiny1_inorder__sql_tumble.csv",
    tiny2_late_ds_session_l0 => "tiny2_late__ds_session_L0.csv",
    tiny2_late_ds_session_l0_late => "tiny2_late__ds_session_L0_late.csv",
    tiny2_late_ds_session_l3 => "tiny2_late__ds_session_L3.csv",
    tiny2_late_ds_session_l3_late => "tiny2_late__ds_session_L3_late.csv",
    tiny2_late_ds_tumble_l0 => "tiny2_late__ds_tumble_L0.csv",
    tiny2_late_ds_tumble_l0_late => "tiny2_late__ds_tumble_L0_late.csv",
    tiny2_late_ds_tumble_l3 => "tiny2_late__ds_tumble_L3.csv",
    tiny2_late_ds_tumble_l3_late => "tiny2_late__ds_tumble_L3_late.csv",
    tiny2_late_sql_cumulate => "tiny2_late__sql_cumulate.csv",
    tiny2_late_sql_hop => "tiny2_late__sql_hop.csv",
    tiny2_late_sql_session => "tiny2_late__sql_session.csv",
    tiny2_late_sql_tumble => "tiny2_late__sql_tumble.csv",
    tiny3_session_ds_session_l0 => "tiny3_session__ds_session_L0.csv",
    tiny3_session_ds_session_l0_late => "tiny3_session__ds_session_L0_late.csv",
    tiny3_session_ds_session_l3 => "tiny3_session__ds_session_L3.csv",
    tiny3_session_ds_session_l3_late => "tiny3_session__ds_session_L3_late.csv",
    tiny3_session_ds_tumble_l0 => "tiny3_session__ds_tumble_L0.csv",
    tiny3_session_ds_tumble_l0_late => "tiny3_session__ds_tumble_L0_late.csv",
    tiny3_session_ds_tumble_l3 => "tiny3_session__ds_tumble_L3.csv",
    tiny3_session_ds_tumble_l3_late => "tiny3_session__ds_tumble_L3_late.csv",
    tiny3_session_sql_cumulate => "tiny3_session__sql_cumulate.csv",
    tiny3_session_sql_hop => "tiny3_session__sql_hop.csv",
    tiny3_session_sql_session => "tiny3_session__sql_session.csv",
    tiny3_session_sql_tumble => "tiny3_session__sql_tumble.csv",
}

#[test]
fn every_expected_file_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(conformance_dir().join("expected"))
        .expect("tests/conformance/expected exists")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut tested: Vec<String> = CASE_FILES.iter().map(|file| file.to_string()).collect();
    tested.sort();
    assert_eq!(tested, on_disk);
    assert_eq!(on_disk.len(), 36);
}

/// Sessions with allowed lateness and out-of-order input, end to end at window parallelism 1 and
/// 2, against a model written from Flink's rules. The source and its watermarks run at
/// parallelism 1, so every window subtask sees its keys' records in arrival order with the
/// watermark after each: the results cannot depend on the parallelism.
mod sessions_end_to_end {
    use super::*;

    /// key, window start, window end, records, sum of values, largest seq, is update, watermark.
    type Row = (char, i64, i64, u64, i64, u64, bool, i64);

    const GAP_MS: i64 = 500;
    const LATENESS_MS: i64 = 700;
    const BOUND_MS: i64 = 300;

    /// 4,000 records over 8 keys: time moves forward in small steps, a record in four is sent back
    /// up to 2 s (behind the watermark, often within lateness), and keys pause now and then.
    fn records() -> Vec<Input> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut now = 0i64;
        (0..4_000u64)
            .map(|seq| {
                now += next(40) as i64;
                let key = (b'a' + next(8) as u8) as char;
                let back = if next(4) == 0 { next(2_000) as i64 } else { 0 };
                Input { key, ts_ms: now - back, value: next(100) as i64, seq }
            })
            .collect()
    }

    /// Flink's session rules record by record (see the engine's session operator model test for
    /// the same rules against the operator alone): merge first, then check lateness on the merged
    /// window; fire at once behind the watermark, else when the watermark reaches the end; a
    /// changed window is a new window; state lives until max timestamp + lateness.
    fn model(inputs: &[Input]) -> (Vec<Row>, Vec<Input>) {
        struct Session {
            start: i64,
            end: i64,
            records: Vec<Input>,
            fired: bool,
            waiting: bool,
        }
        let row = |s: &Session, key: char, is_update: bool, watermark: i64| -> Row {
            let sum = s.records.iter().map(|r| r.value).sum();
            (key, s.start, s.end, s.records.len() as u64, sum, s.records.iter().map(|r| r.seq).max().unwrap(), is_update, watermark)
        };
        let mut sessions: BTreeMap<char, Vec<Session>> = BTreeMap::new();
        let (mut rows, mut late, mut watermark, mut max_ts) = (Vec::new(), Vec::new(), i64::MIN, i64::MIN);
        let advance = |sessions: &mut BTreeMap<char, Vec<Session>>, rows: &mut Vec<Row>, watermark: i64| {
            for (key, live) in sessions.iter_mut() {
                for s in live.iter_mut().filter(|s| s.waiting && s.end - 1 <= watermark) {
                    rows.push(row(s, *key, s.fired, watermark));
                    (s.fired, s.waiting) = (true, false);
                }
                live.retain(|s| (s.end - 1).saturating_add(LATENESS_MS) > watermark);
            }
        };
        for &input in inputs {
            let (start, end) = (input.ts_ms, input.ts_ms + GAP_MS);
            let live = sessions.entry(input.key).or_default();
            let (hits, rest): (Vec<Session>, Vec<Session>) =
                std::mem::take(live).into_iter().partition(|s| s.start <= end && start <= s.end);
            *live = rest;
            let merged =
                (hits.iter().map(|s| s.start).chain([start]).min().unwrap(), hits.iter().map(|s| s.end).chain([end]).max().unwrap());
            if merged.1 - 1 + LATENESS_MS <= watermark {
                late.push(input);
            } else {
                let fired = hits.len() == 1 && (hits[0].start, hits[0].end) == merged && hits[0].fired;
                let mut records: Vec<Input> = hits.into_iter().flat_map(|s| s.records).collect();
                records.push(input);
                let mut session = Session { start: merged.0, end: merged.1, records, fired, waiting: true };
                if merged.1 - 1 <= watermark {
                    rows.push(row(&session, input.key, fired, watermark));
                    (session.fired, session.waiting) = (true, false);
                }
                live.push(session);
            }
            max_ts = max_ts.max(input.ts_ms);
            if max_ts - BOUND_MS > watermark {
                watermark = max_ts - BOUND_MS;
                advance(&mut sessions, &mut rows, watermark);
            }
        }
        advance(&mut sessions, &mut rows, i64::MAX);
        (rows, late)
    }

    fn session_row(context: &WindowContext<'_, char>, records: &[Input], out: &mut Output<'_, Row>) -> Result<(), UserError> {
        let sum = records.iter().map(|r| r.value).sum();
        let max_seq = records.iter().map(|r| r.seq).max().expect("a firing window has records");
        let window = context.window;
        out.emit((*context.key, window.start, window.end, records.len() as u64, sum, max_seq, context.is_update, context.watermark));
        Ok(())
    }

    fn run(inputs: &[Input], window_parallelism: usize, frame_records: usize) -> (Vec<Row>, Vec<Input>) {
        let config =
            EngineConfig { slots: 2, parallelism: window_parallelism, frame_records_max: frame_records, ..EngineConfig::default() };
        let env = StreamEnvironment::new(config);
        let late_tag = OutputTag::new("late");
        let (fired, late) = (CollectSink::new(), CollectSink::new());
        let strategy =
            WatermarkStrategy::for_bounded_out_of_orderness_per_record(Duration::from_millis(BOUND_MS as u64 - 1), |r: &Input| r.ts_ms);
        let rows = env
            .source("input", CollectionSource::new(inputs.to_vec()))
            .parallelism(1)
            .assign_timestamps_and_watermarks(strategy)
            .parallelism(1)
            .key_by(|r: &Input| r.key)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(GAP_MS as u64)), |r: &Input| r.ts_ms)
            .allowed_lateness(Duration::from_millis(LATENESS_MS as u64))
            .late_records(LatePolicy::SideOutput(late_tag.clone()))
            .process(session_row);
        rows.side_output(&late_tag).map(|late: LateRecord<Input>| late.record).sink("late", late.clone());
        rows.sink("fired", fired.clone());
        env.execute("sessions").unwrap_or_else(|error| panic!("job failed: {error}"));
        (fired.records(), late.records())
    }

    #[test]
    fn sessions_with_lateness_match_the_model_at_parallelism_1_and_2() {
        let inputs = records();
        let (mut expected_rows, expected_late) = model(&inputs);
        expected_rows.sort();
        let mut expected_late: Vec<u64> = expected_late.iter().map(|r| r.seq).collect();
        expected_late.sort();
        // The input is hostile enough to exercise every rule.
        assert!(expected_rows.iter().any(|r| r.6), "some late records re-fire a session");
        assert!(!expected_late.is_empty(), "some records are late");
        assert!(expected_rows.len() > 100);
        for (parallelism, frame_records) in [(1, 1), (1, 1_024), (2, 3), (2, 1_024)] {
            let (mut rows, late) = run(&inputs, parallelism, frame_records);
            rows.sort();
            let mut late: Vec<u64> = late.iter().map(|r| r.seq).collect();
            late.sort();
            assert_eq!(late, expected_late, "late records at parallelism {parallelism}, frames of {frame_records}");
            if rows != expected_rows {
                let missing: Vec<&Row> = expected_rows.iter().filter(|r| !rows.contains(r)).take(10).collect();
                let extra: Vec<&Row> = rows.iter().filter(|r| !expected_rows.contains(r)).take(10).collect();
                panic!("parallelism {parallelism}, frames of {frame_records}: missing {missing:#?}\nextra {extra:#?}");
            }
        }
    }
}
