//! Unit tests of `Log`: durability point, rolling, reopen, retention, recovery and transactions.

use std::fs::{self, OpenOptions};
use std::io::Write;

use super::*;
use crate::test_dir::TestDir;

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes_max: 128, record_bytes_max: 64, ..LogConfig::default() }
}

fn committed(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.read_committed(from).unwrap().map(|r| r.map(|r| (r.offset, r.payload.to_vec()))).collect::<Result<_, _>>().unwrap()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|path| !path.ends_with(LOCK_FILE)).collect();
    files.sort();
    files
}

#[test]
fn records_become_readable_only_when_synced() {
    let dir = TestDir::new("sync");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.append(b"a").unwrap(), 0);
    assert_eq!(log.append(b"b").unwrap(), 1);
    assert!(matches!(log.read(0), Err(LogError::OffsetNotDurable { offset: 0, durable_end: 0 })));
    assert_eq!(log.sync().unwrap(), 2);
    assert_eq!(log.read(1).unwrap().payload, b"b");
    assert_eq!(log.append(b"c").unwrap(), 2);
    assert_eq!(committed(&log, 0), vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
}

#[test]
fn segments_roll_before_exceeding_their_size_and_reads_cross_them() {
    let dir = TestDir::new("roll");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i % 7) * 5]).collect();
    for payload in &payloads {
        log.append(payload).unwrap();
    }
    log.sync().unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() > 3, "{files:?}");
    for file in &files {
        assert!(fs::metadata(file).unwrap().len() <= 128);
    }
    for (offset, payload) in payloads.iter().enumerate() {
        assert_eq!(log.read(offset as u64).unwrap().payload, &payload[..]);
    }
    let from_7: Vec<_> = committed(&log, 7).into_iter().map(|(_, p)| p).collect();
    assert_eq!(from_7, payloads[7..]);
}

#[test]
fn reopen_keeps_durable_records_and_continues_their_offsets() {
    let dir = TestDir::new("reopen");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..10u8 {
        log.append(&[i; 10]).unwrap();
    }
    assert_eq!(log.close().unwrap(), 10);
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!((log.start_offset(), log.end_offset(), log.durable_end()), (0, 10, 10));
    assert_eq!(log.recovery().truncated_bytes, 0);
    assert_eq!(log.append(b"next").unwrap(), 10);
    log.sync().unwrap();
    assert_eq!(log.read(3).unwrap().payload, [3; 10]);
    assert_eq!(log.read(10).unwrap().payload, b"next");
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let dir = TestDir::new("torn");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(b"kept").unwrap();
    log.append(b"torn").unwrap();
    log.close().unwrap();
    let path = segment_files(dir.path()).pop().unwrap();
    let bytes = fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(bytes - 2).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 1);
    let report = log.recovery();
    assert_eq!((report.truncated_from_offset, report.truncated_bytes), (Some(1), RECORD_HEADER_BYTES as u64 + 2));
    assert!(report.fault.unwrap().is_truncation());
    assert_eq!(fs::metadata(&path).unwrap().len(), RECORD_HEADER_BYTES as u64 + 4);
}

#[test]
fn garbage_appended_after_the_last_record_is_cut() {
    let dir = TestDir::new("garbage");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(b"kept").unwrap();
    log.close().unwrap();
    let path = segment_files(dir.path()).pop().unwrap();
    OpenOptions::new().append(true).open(&path).unwrap().write_all(&[0u8; 100]).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.end_offset(), 1);
    assert_eq!(log.recovery().truncated_bytes, 100);
}

#[test]
fn corruption_before_a_valid_record_in_the_active_segment_is_an_error() {
    let dir = TestDir::new("active-corrupt");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    for payload in [b"first", b"other", b"third"] {
        log.append(payload).unwrap();
    }
    log.close().unwrap();
    let path = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[RECORD_HEADER_BYTES + 5 + RECORD_HEADER_BYTES] ^= 0x20; // payload of offset 1
    fs::write(&path, &bytes).unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(LogError::CorruptRecord { path: at, offset: 1, position, .. }) => {
            assert_eq!((at, position), (path.clone(), (RECORD_HEADER_BYTES + 5) as u64));
        }
        other => panic!("expected corruption at offset 1, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "a failed open leaves the file as it was");
}

#[test]
fn corrupt_payload_in_a_sealed_segment_is_an_error_naming_its_offset() {
    let dir = TestDir::new("sealed-corrupt");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..10u8 {
        log.append(&[i; 20]).unwrap();
    }
    log.close().unwrap();
    let first = segment_files(dir.path()).remove(0);
    let mut bytes = fs::read(&first).unwrap();
    let second_payload = 2 * RECORD_HEADER_BYTES + 20;
    bytes[second_payload] ^= 1;
    fs::write(&first, bytes).unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.read(0).unwrap().payload, [0; 20]);
    assert!(matches!(log.read(1), Err(LogError::CorruptRecord { offset: 1, .. })));
    let results: Vec<_> = log.read_committed(0).unwrap().collect();
    assert_eq!(results.len(), 2, "one record, then the error, then nothing");
    assert!(matches!(results[1], Err(LogError::CorruptRecord { offset: 1, .. })));
}

#[test]
fn a_missing_middle_segment_is_an_error() {
    let dir = TestDir::new("gap");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..12u8 {
        log.append(&[i; 20]).unwrap();
    }
    log.close().unwrap();
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    fs::remove_file(&files[1]).unwrap();
    assert!(matches!(Log::open(dir.path(), small_segments()), Err(LogError::SegmentRecordCount { .. })));
}

#[test]
fn retention_deletes_whole_old_segments_and_names_deleted_offsets() {
    let dir = TestDir::new("retention");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..12u8 {
        log.append(&[i; 20]).unwrap(); // 48 bytes: two records per segment
    }
    log.sync().unwrap();
    assert_eq!(log.retain_from(5).unwrap(), 4, "the segment holding offsets 4 and 5 stays");
    assert!(matches!(log.read(3), Err(LogError::OffsetDeleted { offset: 3, start_offset: 4 })));
    assert!(matches!(log.read_committed(0), Err(LogError::OffsetDeleted { offset: 0, start_offset: 4 })));
    assert_eq!(log.read(4).unwrap().payload, [4; 20]);
    let start = log.apply_retention(&RetentionPolicy { bytes_max: Some(200), retain_from_offset: None }).unwrap();
    assert_eq!(start, 8, "four segments of 96 bytes exceed 200; two remain");
    assert_eq!(log.retain_from(u64::MAX).unwrap(), 10, "the active segment is never deleted");
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!((log.start_offset(), log.end_offset()), (10, 12));
}

#[test]
fn oversized_records_and_bad_configs_are_refused() {
    let dir = TestDir::new("limits");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert!(matches!(log.append(&[0; 65]), Err(LogError::RecordTooLarge { payload_bytes: 65, record_bytes_max: 64 })));
    let bad = LogConfig { segment_bytes_max: 1, ..LogConfig::default() };
    assert!(matches!(Log::open(dir.path(), bad), Err(LogError::Config(e)) if e.field == "segment_bytes_max"));
}

#[test]
fn a_file_with_a_bad_segment_name_is_refused() {
    let dir = TestDir::new("names");
    fs::write(dir.path().join("7.log"), b"").unwrap();
    assert!(matches!(Log::open(dir.path(), LogConfig::default()), Err(LogError::SegmentName { .. })));
}

#[test]
fn committed_transaction_becomes_visible_and_aborted_never() {
    let dir = TestDir::new("txn");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(b"plain").unwrap();
    log.begin_transaction(TxnId(1)).unwrap();
    log.begin_transaction(TxnId(2)).unwrap();
    log.append_in(TxnId(1), b"t1-a").unwrap();
    log.append_in(TxnId(2), b"t2-a").unwrap();
    log.append_in(TxnId(1), b"t1-b").unwrap();
    log.append(b"after").unwrap();
    log.sync().unwrap();
    assert_eq!(committed(&log, 0), vec![(0, b"plain".to_vec())], "open transactions hold readers back");
    assert_eq!(log.last_stable_offset(), 1);
    log.abort_transaction(TxnId(2)).unwrap();
    assert_eq!(log.last_stable_offset(), 1, "transaction 1 is still open");
    log.commit_transaction(TxnId(1)).unwrap();
    assert_eq!(log.last_stable_offset(), log.durable_end());
    let offsets: Vec<_> = committed(&log, 0).into_iter().map(|(o, p)| (o, String::from_utf8(p).unwrap())).collect();
    assert_eq!(offsets, [(0, "plain"), (1, "t1-a"), (3, "t1-b"), (4, "after")].map(|(o, p)| (o, p.to_string())));
    assert!(matches!(log.commit_transaction(TxnId(1)), Err(LogError::TxnNotOpen { txn: 1 })));
    assert!(matches!(log.append_in(TxnId(2), b"late"), Err(LogError::TxnNotOpen { txn: 2 })));
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(committed(&log, 0).len(), 4, "reopen rebuilds which transactions aborted");
    assert!(log.open_transactions().is_empty());
}

#[test]
fn a_transaction_never_committed_before_a_crash_stays_invisible_after_reopen() {
    let dir = TestDir::new("txn-crash");
    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    log.append(b"before").unwrap();
    log.begin_transaction(TxnId(7)).unwrap();
    for i in 0..5u8 {
        log.append_in(TxnId(7), &[i; 30]).unwrap();
    }
    log.append(b"plain after").unwrap();
    log.sync().unwrap(); // prepared: durable, not committed
    drop(log); // the crash: no commit, no abort

    let mut log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.open_transactions(), vec![TxnId(7)]);
    assert_eq!(committed(&log, 0), vec![(0, b"before".to_vec())]);
    log.abort_transaction(TxnId(7)).unwrap();
    assert_eq!(committed(&log, 0), vec![(0, b"before".to_vec()), (6, b"plain after".to_vec())]);
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(committed(&log, 0), vec![(0, b"before".to_vec()), (6, b"plain after".to_vec())]);
}

#[test]
fn a_prepared_transaction_can_be_committed_after_reopen() {
    let dir = TestDir::new("txn-prepared");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.begin_transaction(TxnId(3)).unwrap();
    log.append_in(TxnId(3), b"prepared").unwrap();
    log.sync().unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert!(committed(&log, 0).is_empty());
    log.commit_transaction(TxnId(3)).unwrap();
    assert_eq!(committed(&log, 0), vec![(0, b"prepared".to_vec())]);
}

#[test]
fn an_unsynced_commit_marker_lost_in_a_crash_leaves_the_transaction_open() {
    let dir = TestDir::new("txn-torn-marker");
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.begin_transaction(TxnId(4)).unwrap();
    log.append_in(TxnId(4), b"data").unwrap();
    log.commit_transaction(TxnId(4)).unwrap();
    log.close().unwrap();
    // Cut the marker short, as a crash during the commit's write would.
    let path = segment_files(dir.path()).pop().unwrap();
    let bytes = fs::metadata(&path).unwrap().len();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(bytes - 1).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.open_transactions(), vec![TxnId(4)]);
    assert!(committed(&log, 0).is_empty());
}

#[test]
fn a_second_log_on_an_open_directory_is_refused_until_the_first_closes() {
    let dir = TestDir::new("log-in-use");
    let mut first = Log::open(dir.path(), LogConfig::default()).unwrap();
    first.append(b"one").unwrap();
    first.sync().unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(LogError::InUse { dir: refused }) => assert_eq!(refused, dir.path()),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("two logs on one directory would write over each other"),
    }
    assert!(Log::in_use(dir.path()));
    drop(first);
    assert!(!Log::in_use(dir.path()));
    let reopened = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(committed(&reopened, 0), vec![(0, b"one".to_vec())], "the lock file is no segment");
}
