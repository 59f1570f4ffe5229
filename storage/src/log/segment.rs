//! One segment file: its name, its read-only map, its sparse index, and the walk over its records.
//!
//! A segment is named by the offset of its first record, zero-padded (`00000000000000000042.log`),
//! so the segment holding an offset is found from the names alone; its records carry dense
//! offsets from that base. The map covers only bytes that are durable and are never changed again:
//! the log appends past the map's end and truncates a file only during recovery, before any map of
//! it exists. That is what makes reading the mapped bytes in place sound.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use super::error::LogError;
use super::record::{decode_record, parse_header, verify_crc, Record, RecordFault, RecordHeader};

/// Digits of a segment's base offset in its file name: every u64 fits.
const SEGMENT_NAME_DIGITS: usize = 20;
/// Extension of segment files.
pub(crate) const SEGMENT_EXTENSION: &str = "log";

/// The file name of the segment whose first record has `base_offset`.
pub(crate) fn segment_file_name(base_offset: u64) -> String {
    format!("{base_offset:0width$}.{SEGMENT_EXTENSION}", width = SEGMENT_NAME_DIGITS)
}

/// The base offset a segment file name encodes, or `None` if it is not one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Maps the first `bytes` bytes of `file` read-only; `None` for an empty range (nothing to map).
#[allow(unsafe_code)]
pub(crate) fn map_prefix(file: &File, bytes: u64, path: &Path) -> Result<Option<Mmap>, LogError> {
    if bytes == 0 {
        return Ok(None);
    }
    let len = usize::try_from(bytes).expect("segment sizes are bounded by SEGMENT_BYTES_MAX_LIMIT");
    // SAFETY: the mapped range holds durable bytes of a segment file this log owns. The log only
    // appends beyond it and truncates a segment only in recovery, before the segment is mapped; a
    // segment is deleted (retention) only after its map is dropped. Another process writing into
    // the log directory is outside the log's contract (one writer per directory).
    let map = unsafe { MmapOptions::new().len(len).map(file) }.map_err(LogError::io("map", path))?;
    Ok(Some(map))
}

/// Which records a walk checks against their CRC (it always checks headers and offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CrcCheck {
    /// Every record: the recovery of the active segment.
    All,
    /// Transaction markers only: opening a sealed segment (data records are checked when read).
    MarkersOnly,
}

/// Where a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkEnd {
    /// Valid records walked.
    pub(crate) records: u64,
    /// Byte position after the last valid record.
    pub(crate) valid_bytes: u64,
    /// Byte position of the last valid record, if any.
    pub(crate) last_position: Option<u64>,
    /// The fault at `valid_bytes`, if the bytes did not end exactly after a record.
    pub(crate) fault: Option<RecordFault>,
}

/// Walks the records of `bytes` from position 0, expecting offsets from `base_offset`, calling
/// `visit(position, header)` for each valid one, and stops at the end or at the first fault.
pub(crate) fn walk_records(bytes: &[u8], base_offset: u64, check: CrcCheck, mut visit: impl FnMut(u64, &RecordHeader)) -> WalkEnd {
    let mut position = 0usize;
    let mut records = 0u64;
    let mut last_position = None;
    while position < bytes.len() {
        let expected = base_offset + records;
        let checked = parse_header(bytes, position).and_then(|header| {
            if header.offset != expected {
                return Err(RecordFault::OffsetMismatch { found: header.offset, expected });
            }
            if check == CrcCheck::All || header.kind.is_control() {
                verify_crc(bytes, position, &header)?;
            }
            Ok(header)
        });
        match checked {
            Ok(header) => {
                visit(position as u64, &header);
                last_position = Some(position as u64);
                position += header.record_bytes() as usize;
                records += 1;
            }
            Err(fault) => return WalkEnd { records, valid_bytes: position as u64, last_position, fault: Some(fault) },
        }
    }
    WalkEnd { records, valid_bytes: position as u64, last_position, fault: None }
}

/// Whether a complete, valid record with an offset after `fault_offset` lies anywhere after
/// `fault_position`: then the bytes at the fault are corruption inside the log, not a torn tail.
/// A write cut short by a crash leaves no valid record behind it (the log writes sequentially); a
/// crash can leave later pages of unsynced writes without earlier ones, but the records in them
/// were never reported durable, and such a tail is reported rather than silently dropped, since
/// the two cannot be told apart and durable records may be at stake.
pub(crate) fn valid_record_after(bytes: &[u8], fault_position: u64, fault_offset: u64) -> Option<u64> {
    let first = usize::try_from(fault_position).ok()? + 1;
    // Each record takes at least a header, so a later record's offset is bounded by the space.
    let offsets_max = (bytes.len().saturating_sub(first) / super::record::RECORD_HEADER_BYTES) as u64;
    (first..bytes.len()).find_map(|position| {
        let header = parse_header(bytes, position).ok()?;
        let plausible = header.offset > fault_offset && header.offset <= fault_offset + offsets_max;
        (plausible && verify_crc(bytes, position, &header).is_ok()).then_some(header.offset)
    })
}

/// One entry of the sparse index: a record's offset and byte position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    offset: u64,
    position: u64,
}

/// A segment of the log: sealed (mapped whole) or the active one (mapped up to its durable bytes).
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    /// Records appended, durable or not.
    pub(crate) records: u64,
    /// Bytes appended, durable or not.
    pub(crate) bytes: u64,
    index: Vec<IndexEntry>,
    index_interval_bytes: u64,
    /// The durable prefix, read in place.
    map: Option<Mmap>,
}

impl Segment {
    pub(crate) fn new(dir: &Path, base_offset: u64, index_interval_bytes: u64) -> Segment {
        Segment {
            base_offset,
            path: dir.join(segment_file_name(base_offset)),
            records: 0,
            bytes: 0,
            index: Vec::new(),
            index_interval_bytes,
            map: None,
        }
    }

    /// One past the last offset appended to this segment.
    pub(crate) fn end_offset(&self) -> u64 {
        self.base_offset + self.records
    }

    /// Counts a record appended (or found on open) at `position` into the segment and the index.
    pub(crate) fn note_record(&mut self, offset: u64, position: u64, record_bytes: u64) {
        debug_assert_eq!(offset, self.end_offset(), "offsets in a segment are dense");
        debug_assert_eq!(position, self.bytes, "records in a segment are contiguous");
        let due = self.index.last().is_none_or(|last| position >= last.position + self.index_interval_bytes);
        if due {
            self.index.push(IndexEntry { offset, position });
        }
        self.records += 1;
        self.bytes += record_bytes;
    }

    /// Replaces the map with one of the first `bytes` bytes of `file` (the segment's durable part).
    /// On failure the old map stays: it still covers a durable prefix.
    pub(crate) fn remap(&mut self, file: &File, bytes: u64) -> Result<(), LogError> {
        debug_assert!(bytes <= self.bytes);
        self.map = map_prefix(file, bytes, &self.path)?;
        Ok(())
    }

    /// Takes the map made while the segment was opened.
    pub(crate) fn attach_map(&mut self, map: Option<Mmap>) {
        debug_assert!(map.as_ref().map_or(0, |m| m.len() as u64) <= self.bytes);
        self.map = map;
    }

    /// Drops the map (before the file is deleted).
    pub(crate) fn unmap(&mut self) {
        self.map = None;
    }

    /// The mapped (durable) bytes.
    pub(crate) fn mapped(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Byte position of the record `offset`, found from the sparse index and a walk over headers.
    /// The offset must be durable (inside the map).
    pub(crate) fn position_of(&self, offset: u64) -> Result<u64, LogError> {
        assert!(offset >= self.base_offset && offset < self.end_offset(), "offset {offset} outside segment {}", self.path.display());
        let at = self.index.partition_point(|entry| entry.offset <= offset);
        let entry = self.index[at.checked_sub(1).expect("the first record of a segment is indexed")];
        let bytes = self.mapped();
        let (mut current, mut position) = (entry.offset, entry.position);
        while current < offset {
            let header = parse_header(bytes, position as usize)
                .and_then(
                    |h| if h.offset == current { Ok(h) } else { Err(RecordFault::OffsetMismatch { found: h.offset, expected: current }) },
                )
                .map_err(|fault| self.corrupt(current, position, fault))?;
            position += header.record_bytes();
            current += 1;
        }
        Ok(position)
    }

    /// The record `offset` at byte `position`, fully checked.
    pub(crate) fn record_at(&self, offset: u64, position: u64) -> Result<Record<'_>, LogError> {
        decode_record(self.mapped(), position as usize, offset).map_err(|fault| self.corrupt(offset, position, fault))
    }

    pub(crate) fn corrupt(&self, offset: u64, position: u64, fault: RecordFault) -> LogError {
        LogError::CorruptRecord { path: self.path.clone(), offset, position, fault }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::{encode_header, RecordKind};

    fn encode_all(base: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            bytes.extend_from_slice(&encode_header(RecordKind::Data, base + i as u64, 0, payload));
            bytes.extend_from_slice(payload);
        }
        bytes
    }

    #[test]
    fn file_names_round_trip_and_sort_by_offset() {
        assert_eq!(segment_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_file_name("42.log"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.idx"), None);
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn walk_stops_at_the_first_fault() {
        let mut bytes = encode_all(10, &[b"a", b"bb", b"ccc"]);
        let second = (crate::RECORD_HEADER_BYTES + 1) as u64;
        let end = walk_records(&bytes, 10, CrcCheck::All, |_, _| {});
        assert_eq!(end.fault, None);
        assert_eq!((end.records, end.valid_bytes, end.last_position), (3, bytes.len() as u64, Some(2 * second + 1)));
        bytes[second as usize + crate::RECORD_HEADER_BYTES] ^= 1; // payload of the second record
        let end = walk_records(&bytes, 10, CrcCheck::All, |_, _| {});
        assert_eq!((end.records, end.valid_bytes), (1, second));
        assert!(matches!(end.fault, Some(RecordFault::CrcMismatch { .. })));
        // Without data CRCs the walk passes the bad payload; reading the record catches it.
        assert_eq!(walk_records(&bytes, 10, CrcCheck::MarkersOnly, |_, _| {}).fault, None);
        assert_eq!(valid_record_after(&bytes, second, 11), Some(12));
    }

    #[test]
    fn no_valid_record_after_a_torn_tail() {
        let bytes = encode_all(0, &[b"one", b"two"]);
        let cut = &bytes[..bytes.len() - 1];
        let end = walk_records(cut, 0, CrcCheck::All, |_, _| {});
        assert_eq!(end.records, 1);
        assert_eq!(valid_record_after(cut, end.valid_bytes, 1), None);
    }
}
