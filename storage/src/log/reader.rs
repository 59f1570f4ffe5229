//! Read-committed iteration: the data records a consumer may see, in offset order, read in place.
//!
//! A reader is bounded when it starts by the log's last stable offset (see `txn.rs`): below it
//! every record is durable and every transaction decided, so a `TxnData` record is shown exactly
//! when its transaction committed. Markers and aborted records are skipped; their offsets stay
//! taken (offsets are positions in the log, as in Kafka). A corrupt record ends the iteration with
//! an error naming it; nothing after it is returned.

use super::error::LogError;
use super::record::{RecordKind, RECORD_HEADER_BYTES};
use super::Log;

/// A committed data record, its payload read in place from the log's map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedRecord<'a> {
    /// The record's offset.
    pub offset: u64,
    /// The payload.
    pub payload: &'a [u8],
}

/// Committed data records from an offset up to the last stable offset when the reader started.
#[derive(Debug)]
pub struct CommittedRecords<'a> {
    log: &'a Log,
    next_offset: u64,
    end_offset: u64,
    segment: usize,
    position: u64,
    failed: bool,
}

impl<'a> CommittedRecords<'a> {
    /// One past the last offset this reader will look at (the last stable offset at its start);
    /// a consumer resumes from here.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }
}

impl Log {
    /// Reads committed data records from `from` up to the last stable offset. `from` at or after
    /// the last stable offset (and at most the durable end) gives an empty reader.
    pub fn read_committed(&self, from: u64) -> Result<CommittedRecords<'_>, LogError> {
        if from < self.start_offset() {
            return Err(LogError::OffsetDeleted { offset: from, start_offset: self.start_offset() });
        }
        if from > self.durable_end {
            return Err(LogError::OffsetNotDurable { offset: from, durable_end: self.durable_end });
        }
        let end_offset = self.last_stable_offset().max(from);
        let (segment, position) = if from < end_offset {
            let segment = self.segment_index(from);
            (segment, self.segments[segment].position_of(from)?)
        } else {
            (0, 0)
        };
        Ok(CommittedRecords { log: self, next_offset: from, end_offset, segment, position, failed: false })
    }
}

impl<'a> Iterator for CommittedRecords<'a> {
    type Item = Result<CommittedRecord<'a>, LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed || self.next_offset >= self.end_offset {
                return None;
            }
            let segment = &self.log.segments[self.segment];
            if self.next_offset >= segment.end_offset() {
                self.segment += 1;
                self.position = 0;
                continue;
            }
            let offset = self.next_offset;
            let record = match segment.record_at(offset, self.position) {
                Ok(record) => record,
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            };
            self.next_offset += 1;
            self.position += (RECORD_HEADER_BYTES + record.payload.len()) as u64;
            let visible = match record.kind {
                RecordKind::Data => true,
                RecordKind::TxnData => !self.log.txns.is_aborted(record.txn.expect("transactional data has an id").0, offset),
                RecordKind::TxnCommit | RecordKind::TxnAbort => false,
            };
            if visible {
                return Some(Ok(CommittedRecord { offset, payload: record.payload }));
            }
        }
    }
}
