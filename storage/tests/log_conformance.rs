//! The log's contract for append, sync, read and reopen, run under several configurations (tiny
//! segments that roll every few records, a sparse index coarser than a record, the defaults) and
//! compared with a plain in-memory model: the payloads written.

mod support;

use support::{payload_for, TestDir};
use tethys_storage::{Log, LogConfig, LogError};

fn configs() -> Vec<(&'static str, LogConfig)> {
    vec![
        ("defaults", LogConfig::default()),
        ("tiny segments", LogConfig { segment_bytes_max: 160, record_bytes_max: 128, ..LogConfig::default() }),
        ("coarse index, small buffer", LogConfig { index_interval_bytes: 1000, write_buffer_bytes: 16, ..LogConfig::default() }),
    ]
}

fn assert_reads_model(log: &Log, model: &[Vec<u8>], context: &str) {
    assert_eq!(log.durable_end(), model.len() as u64, "{context}");
    for (offset, payload) in model.iter().enumerate() {
        assert_eq!(log.read(offset as u64).unwrap().payload, &payload[..], "{context}: offset {offset}");
    }
    for from in [0, model.len() as u64 / 3, model.len() as u64] {
        let read: Vec<Vec<u8>> = log.read_committed(from).unwrap().map(|r| r.unwrap().payload.to_vec()).collect();
        assert_eq!(read, model[from as usize..], "{context}: committed records from {from}");
    }
    assert!(matches!(log.read(model.len() as u64), Err(LogError::OffsetNotDurable { .. })), "{context}");
}

#[test]
fn append_read_reopen_conformance() {
    for (name, config) in configs() {
        let dir = TestDir::new("conformance");
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!((log.start_offset(), log.end_offset()), (0, 0), "{name}: a new log is empty");
        assert_eq!(log.read_committed(0).unwrap().count(), 0, "{name}");

        let mut model = Vec::new();
        for offset in 0..200u64 {
            assert_eq!(log.append(&payload_for(offset)).unwrap(), offset, "{name}: offsets are dense");
            model.push(payload_for(offset));
            if offset % 17 == 0 {
                assert_eq!(log.sync().unwrap(), offset + 1, "{name}");
            }
        }
        log.sync().unwrap();
        assert_reads_model(&log, &model, name);

        log.close().unwrap();
        let mut log = Log::open(dir.path(), config.clone()).unwrap();
        assert_eq!(log.recovery().truncated_bytes, 0, "{name}: a closed log needs no repair");
        assert_reads_model(&log, &model, &format!("{name}, reopened"));

        for offset in 200..260u64 {
            assert_eq!(log.append(&payload_for(offset)).unwrap(), offset, "{name}: offsets continue after reopen");
            model.push(payload_for(offset));
        }
        log.sync().unwrap();
        assert_reads_model(&log, &model, &format!("{name}, appended after reopen"));

        // Appended but never synced: a crash may keep any prefix of them, each intact.
        for offset in 260..270u64 {
            log.append(&payload_for(offset)).unwrap();
        }
        drop(log);
        let log = Log::open(dir.path(), config).unwrap();
        let end = log.end_offset();
        assert!((260..=270).contains(&end), "{name}: {end}");
        for offset in 0..end {
            assert_eq!(log.read(offset).unwrap().payload, payload_for(offset), "{name}: offset {offset}");
        }
    }
}
