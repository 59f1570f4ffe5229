//! The on-disk record format: a fixed header, then the payload. Pure encoding and decoding; no I/O.
//!
//! ```text
//! bytes  0..4   CRC32 (IEEE) of bytes 4..28 and of the payload
//! bytes  4..8   payload length, u32 little-endian
//! bytes  8..16  the record's offset, u64 little-endian
//! bytes 16..24  transaction id, u64 little-endian (0 for data outside any transaction)
//! byte  24      kind: 1 data, 2 transactional data, 3 commit marker, 4 abort marker
//! bytes 25..28  reserved, zero
//! ```
//!
//! The invariant: a record is returned only if its header is well formed, it carries the offset
//! the reader expects at that place, all its bytes are present, and the CRC over every header
//! field and the payload matches. The offset inside the record makes a misplaced or stale record
//! (a renamed segment, an old file's bytes) fail like a corrupt one, and kind 0 is invalid so a
//! zero-filled tail (what a file system may leave after a crash) never parses as a record.

use thiserror::Error;

use super::TxnId;

/// Bytes of the header in front of every record's payload.
pub const RECORD_HEADER_BYTES: usize = 28;

/// Largest payload the format allows (64 MiB); `LogConfig::record_bytes_max` may set a lower
/// bound for appends. A header claiming more is invalid, whatever the configuration.
pub const RECORD_PAYLOAD_BYTES_LIMIT: u32 = 64 << 20;

/// What a record is: data, or a marker that ends a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Data outside any transaction: visible once durable.
    Data,
    /// Data of a transaction: visible once its commit marker is durable, never if it aborts.
    TxnData,
    /// The commit marker of a transaction (empty payload).
    TxnCommit,
    /// The abort marker of a transaction (empty payload).
    TxnAbort,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Data => 1,
            RecordKind::TxnData => 2,
            RecordKind::TxnCommit => 3,
            RecordKind::TxnAbort => 4,
        }
    }

    fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::TxnData),
            3 => Some(RecordKind::TxnCommit),
            4 => Some(RecordKind::TxnAbort),
            _ => None,
        }
    }

    /// Whether this is a transaction marker rather than data.
    pub fn is_control(self) -> bool {
        matches!(self, RecordKind::TxnCommit | RecordKind::TxnAbort)
    }
}

/// A record read in place: its payload borrows the log's mapped segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's offset (its number in the log, from 0).
    pub offset: u64,
    /// Data or a transaction marker.
    pub kind: RecordKind,
    /// The transaction the record belongs to; `None` for `RecordKind::Data`.
    pub txn: Option<TxnId>,
    /// The payload (empty for markers).
    pub payload: &'a [u8],
}

/// Why bytes at a position are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordFault {
    /// Fewer bytes than a header remain: the bytes end inside this record's header.
    #[error("header cut short: {available} of {RECORD_HEADER_BYTES} bytes present")]
    HeaderTruncated {
        /// Bytes present.
        available: usize,
    },
    /// The header's fields are not a valid header (unknown kind, reserved bytes set, a length
    /// over the format's limit, a marker with a payload, data with a transaction id).
    #[error("invalid header: {reason}")]
    HeaderInvalid {
        /// Which rule the header breaks.
        reason: &'static str,
    },
    /// The payload runs past the end of the bytes: they end inside this record's payload.
    #[error("payload cut short: {payload_bytes} bytes claimed, {available} present")]
    PayloadTruncated {
        /// Payload length in the header.
        payload_bytes: u32,
        /// Payload bytes present.
        available: usize,
    },
    /// The header carries another offset than the one expected at this place.
    #[error("record carries offset {found}, expected {expected}")]
    OffsetMismatch {
        /// Offset in the header.
        found: u64,
        /// Offset expected at this place.
        expected: u64,
    },
    /// The checksum does not match the header fields and payload.
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes present.
        computed: u32,
    },
}

impl RecordFault {
    /// Whether the bytes simply end inside the record (a write cut short), as opposed to bytes
    /// that are present but wrong.
    pub fn is_truncation(&self) -> bool {
        matches!(self, RecordFault::HeaderTruncated { .. } | RecordFault::PayloadTruncated { .. })
    }
}

/// A parsed, well-formed header (its CRC not yet checked against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) crc: u32,
    pub(crate) payload_bytes: u32,
    pub(crate) offset: u64,
    pub(crate) txn: u64,
    pub(crate) kind: RecordKind,
}

impl RecordHeader {
    /// Header plus payload: the bytes this record takes on disk.
    pub(crate) fn record_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + u64::from(self.payload_bytes)
    }
}

/// The header for a record; write it, then the payload.
pub(crate) fn encode_header(kind: RecordKind, offset: u64, txn: u64, payload: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
    debug_assert!(payload.len() <= RECORD_PAYLOAD_BYTES_LIMIT as usize);
    debug_assert!(kind != RecordKind::Data || txn == 0, "data outside a transaction carries transaction id 0");
    let mut header = [0u8; RECORD_HEADER_BYTES];
    header[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[8..16].copy_from_slice(&offset.to_le_bytes());
    header[16..24].copy_from_slice(&txn.to_le_bytes());
    header[24] = kind.code();
    let crc = checksum(&header[4..], payload);
    header[0..4].copy_from_slice(&crc.to_le_bytes());
    header
}

fn checksum(header_fields: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header_fields);
    hasher.update(payload);
    hasher.finalize()
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Parses the header at `position` and checks that the whole record lies within `bytes`; does not
/// check the offset nor the CRC.
pub(crate) fn parse_header(bytes: &[u8], position: usize) -> Result<RecordHeader, RecordFault> {
    let rest = bytes.get(position..).unwrap_or(&[]);
    if rest.len() < RECORD_HEADER_BYTES {
        return Err(RecordFault::HeaderTruncated { available: rest.len() });
    }
    let kind = RecordKind::from_code(rest[24]).ok_or(RecordFault::HeaderInvalid { reason: "unknown kind" })?;
    if rest[25..28] != [0, 0, 0] {
        return Err(RecordFault::HeaderInvalid { reason: "reserved bytes set" });
    }
    let header =
        RecordHeader { crc: read_u32(rest, 0), payload_bytes: read_u32(rest, 4), offset: read_u64(rest, 8), txn: read_u64(rest, 16), kind };
    if header.payload_bytes > RECORD_PAYLOAD_BYTES_LIMIT {
        return Err(RecordFault::HeaderInvalid { reason: "payload length over the format's limit" });
    }
    if kind == RecordKind::Data && header.txn != 0 {
        return Err(RecordFault::HeaderInvalid { reason: "data outside a transaction with a transaction id" });
    }
    if kind.is_control() && header.payload_bytes != 0 {
        return Err(RecordFault::HeaderInvalid { reason: "transaction marker with a payload" });
    }
    let available = rest.len() - RECORD_HEADER_BYTES;
    if available < header.payload_bytes as usize {
        return Err(RecordFault::PayloadTruncated { payload_bytes: header.payload_bytes, available });
    }
    Ok(header)
}

/// Checks the header at `position` (parsed by `parse_header`) against its CRC.
pub(crate) fn verify_crc(bytes: &[u8], position: usize, header: &RecordHeader) -> Result<(), RecordFault> {
    let end = position + header.record_bytes() as usize;
    let computed = checksum(&bytes[position + 4..position + RECORD_HEADER_BYTES], &bytes[position + RECORD_HEADER_BYTES..end]);
    if computed != header.crc {
        return Err(RecordFault::CrcMismatch { stored: header.crc, computed });
    }
    Ok(())
}

/// Decodes and fully checks the record at `position`, which must carry `expected_offset`.
pub(crate) fn decode_record(bytes: &[u8], position: usize, expected_offset: u64) -> Result<Record<'_>, RecordFault> {
    let header = parse_header(bytes, position)?;
    if header.offset != expected_offset {
        return Err(RecordFault::OffsetMismatch { found: header.offset, expected: expected_offset });
    }
    verify_crc(bytes, position, &header)?;
    let start = position + RECORD_HEADER_BYTES;
    Ok(Record {
        offset: header.offset,
        kind: header.kind,
        txn: (header.kind != RecordKind::Data).then_some(TxnId(header.txn)),
        payload: &bytes[start..start + header.payload_bytes as usize],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(kind: RecordKind, offset: u64, txn: u64, payload: &[u8]) -> Vec<u8> {
        let mut bytes = encode_header(kind, offset, txn, payload).to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn encoded_record_decodes_to_itself() {
        let bytes = encode(RecordKind::TxnData, 42, 7, b"hello");
        let record = decode_record(&bytes, 0, 42).unwrap();
        assert_eq!(record, Record { offset: 42, kind: RecordKind::TxnData, txn: Some(TxnId(7)), payload: b"hello" });
        let marker = encode(RecordKind::TxnCommit, 43, 7, b"");
        assert_eq!(decode_record(&marker, 0, 43).unwrap().kind, RecordKind::TxnCommit);
    }

    #[test]
    fn every_cut_of_a_record_is_a_truncation() {
        let bytes = encode(RecordKind::Data, 0, 0, b"payload");
        for cut in 0..bytes.len() {
            let fault = decode_record(&bytes[..cut], 0, 0).unwrap_err();
            assert!(fault.is_truncation(), "cut at {cut}: {fault}");
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = encode(RecordKind::TxnData, 5, 9, b"some payload");
        for at in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = bytes.clone();
                flipped[at] ^= mask;
                assert!(decode_record(&flipped, 0, 5).is_err(), "flip {mask:#x} at byte {at} went unnoticed");
            }
        }
    }

    #[test]
    fn zeros_are_not_a_record() {
        let zeros = [0u8; 64];
        assert_eq!(decode_record(&zeros, 0, 0), Err(RecordFault::HeaderInvalid { reason: "unknown kind" }));
    }

    #[test]
    fn a_record_at_the_wrong_offset_is_refused() {
        let bytes = encode(RecordKind::Data, 3, 0, b"x");
        assert_eq!(decode_record(&bytes, 0, 4), Err(RecordFault::OffsetMismatch { found: 3, expected: 4 }));
    }

    #[test]
    fn a_length_beyond_the_bytes_is_a_truncation() {
        let mut bytes = encode(RecordKind::Data, 0, 0, b"abc");
        bytes[4..8].copy_from_slice(&1000u32.to_le_bytes());
        let fault = decode_record(&bytes, 0, 0).unwrap_err();
        assert_eq!(fault, RecordFault::PayloadTruncated { payload_bytes: 1000, available: 3 });
    }
}
