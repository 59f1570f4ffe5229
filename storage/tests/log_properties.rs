//! Property tests of recovery against an independent model of the file layout (header size plus
//! payload per record, segments named by their base offset):
//! (a) cutting the last segment at every byte position loses exactly the records not fully before
//!     the cut and never fails;
//! (b) flipping any byte of any segment is reported (a cut tail if it lies in the last record, an
//!     error naming the record's offset otherwise) and a corrupt record is never returned.

mod support;

use std::fs::{self, OpenOptions};
use std::path::Path;

use proptest::prelude::*;
use proptest::sample::Index;
use support::{base_offset_of, copy_dir, segment_files, TestDir};
use tethys_storage::{Log, LogConfig, LogError, RECORD_HEADER_BYTES};

fn config(segment_bytes_max: u64) -> LogConfig {
    LogConfig { segment_bytes_max, record_bytes_max: 40, ..LogConfig::default() }
}

fn write_log(dir: &Path, records: &[Vec<u8>], segment_bytes_max: u64) {
    let mut log = Log::open(dir, config(segment_bytes_max)).unwrap();
    for record in records {
        log.append(record).unwrap();
    }
    log.close().unwrap();
}

fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=40), 1..12)
}

/// Byte ranges of the records in the segment starting at `base`, per the format.
fn record_spans(records: &[Vec<u8>], base: u64, file_bytes: u64) -> Vec<(u64, std::ops::Range<u64>)> {
    let mut spans = Vec::new();
    let mut position = 0;
    let mut offset = base;
    while position < file_bytes {
        let end = position + (RECORD_HEADER_BYTES + records[offset as usize].len()) as u64;
        spans.push((offset, position..end));
        position = end;
        offset += 1;
    }
    assert_eq!(position, file_bytes, "the model's layout matches the file");
    spans
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn cutting_the_tail_anywhere_keeps_exactly_the_complete_records(records in records_strategy(), segment_bytes_max in 68u64..240) {
        let template = TestDir::new("cut-template");
        write_log(template.path(), &records, segment_bytes_max);
        let files = segment_files(template.path());
        let last = files.last().unwrap();
        let last_base = base_offset_of(last);
        let last_bytes = fs::metadata(last).unwrap().len();
        let spans = record_spans(&records, last_base, last_bytes);
        let work = TestDir::new("cut");
        for cut in 0..=last_bytes {
            copy_dir(template.path(), work.path());
            let cut_file = work.path().join(last.file_name().unwrap());
            OpenOptions::new().write(true).open(&cut_file).unwrap().set_len(cut).unwrap();
            let complete = spans.iter().filter(|(_, span)| span.end <= cut).count() as u64;
            let expected_end = last_base + complete;

            let log = Log::open(work.path(), config(segment_bytes_max)).unwrap();
            prop_assert_eq!(log.end_offset(), expected_end, "cut at byte {}", cut);
            let boundary = spans.iter().filter(|(_, span)| span.end <= cut).map(|(_, span)| span.end).max().unwrap_or(0);
            prop_assert_eq!(log.recovery().truncated_bytes, cut - boundary);
            for offset in 0..expected_end {
                prop_assert_eq!(log.read(offset).unwrap().payload, &records[offset as usize][..]);
            }
            prop_assert_eq!(log.read_committed(0).unwrap().count() as u64, expected_end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_flipped_byte_is_reported_and_never_returned(
        records in records_strategy(),
        segment_bytes_max in 68u64..240,
        file_pick in any::<Index>(),
        byte_pick in any::<Index>(),
        mask in 1u8..=255,
    ) {
        let dir = TestDir::new("flip");
        write_log(dir.path(), &records, segment_bytes_max);
        let files: Vec<_> = segment_files(dir.path()).into_iter().filter(|f| fs::metadata(f).unwrap().len() > 0).collect();
        let file = file_pick.get(&files).clone();
        let is_last_file = file == *segment_files(dir.path()).last().unwrap();
        let mut bytes = fs::read(&file).unwrap();
        let position = byte_pick.index(bytes.len()) as u64;
        bytes[position as usize] ^= mask;
        fs::write(&file, &bytes).unwrap();

        let spans = record_spans(&records, base_offset_of(&file), bytes.len() as u64);
        let (flipped, _) = spans.iter().find(|(_, span)| span.contains(&position)).unwrap().clone();
        let in_last_record = is_last_file && flipped as usize == records.len() - 1;

        match Log::open(dir.path(), config(segment_bytes_max)) {
            Err(LogError::CorruptRecord { path, offset, .. }) => {
                prop_assert!(!in_last_record, "a bad last record is a torn tail, cut without error");
                prop_assert_eq!(path, file);
                prop_assert_eq!(offset, flipped);
            }
            Err(other) => prop_assert!(false, "unexpected error {}", other),
            Ok(log) => {
                if in_last_record {
                    prop_assert_eq!(log.recovery().truncated_from_offset, Some(flipped));
                    prop_assert_eq!(log.end_offset(), flipped);
                } else {
                    prop_assert!(!is_last_file, "corruption inside the active segment fails the open");
                    prop_assert_eq!(log.end_offset(), records.len() as u64);
                    let reported = matches!(log.read(flipped), Err(LogError::CorruptRecord { offset, .. }) if offset == flipped);
                    prop_assert!(reported, "reading the flipped record names it");
                }
                for offset in 0..log.end_offset() {
                    match log.read(offset) {
                        Ok(record) => prop_assert_eq!(record.payload, &records[offset as usize][..], "offset {}", offset),
                        Err(LogError::CorruptRecord { offset: at, .. }) => prop_assert_eq!(at, flipped),
                        Err(other) => prop_assert!(false, "unexpected error {}", other),
                    }
                }
                for record in log.read_committed(0).unwrap() {
                    match record {
                        Ok(record) => prop_assert_eq!(record.payload, &records[record.offset as usize][..]),
                        Err(LogError::CorruptRecord { offset, .. }) => prop_assert_eq!(offset, flipped),
                        Err(other) => prop_assert!(false, "unexpected error {}", other),
                    }
                }
            }
        }
    }
}
