//! Errors of the log, each with what a caller or an operator needs to act: the path, the offset,
//! the byte position. Corruption is never returned as data; it is one of these errors.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::config::LogConfigError;
use super::record::RecordFault;

/// An error of `Log`.
#[derive(Debug, Error)]
pub enum LogError {
    /// The configuration is out of range.
    #[error(transparent)]
    Config(#[from] LogConfigError),
    /// Another `Log` (in this process or another) has the directory open: a log has one writer.
    #[error("log {} is open already, in this process or another (it has one writer at a time)", .dir.display())]
    InUse {
        /// The log's directory.
        dir: PathBuf,
    },
    /// An I/O call failed.
    #[error("log I/O: {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A record in the durable part of the log is corrupt (never a torn tail, which recovery cuts).
    #[error("corrupt record at offset {offset} in {path} (byte {position}): {fault}")]
    CorruptRecord {
        /// The segment file.
        path: PathBuf,
        /// The offset of the record expected at that place.
        offset: u64,
        /// Byte position of the record in the file.
        position: u64,
        /// What is wrong.
        fault: RecordFault,
    },
    /// A sealed segment holds another number of records than its successor's base offset says.
    #[error("segment {path} holds {found} records, expected {expected} (up to the next segment's base offset)")]
    SegmentRecordCount {
        /// The segment file.
        path: PathBuf,
        /// Records the names of this and the next segment imply.
        expected: u64,
        /// Records found.
        found: u64,
    },
    /// A file ending in `.log` whose name is not a zero-padded base offset.
    #[error("unexpected file name in the log directory: {path}")]
    SegmentName {
        /// The file.
        path: PathBuf,
    },
    /// The offset was deleted by retention.
    #[error("offset {offset} was deleted by retention; the log starts at {start_offset}")]
    OffsetDeleted {
        /// The offset asked for.
        offset: u64,
        /// The first offset the log still holds.
        start_offset: u64,
    },
    /// The offset is not durable yet (or not written at all).
    #[error("offset {offset} is not durable; durable offsets end before {durable_end}")]
    OffsetNotDurable {
        /// The offset asked for.
        offset: u64,
        /// One past the last durable offset.
        durable_end: u64,
    },
    /// A payload larger than `LogConfig::record_bytes_max`.
    #[error("record of {payload_bytes} bytes exceeds record_bytes_max = {record_bytes_max}")]
    RecordTooLarge {
        /// The payload's size.
        payload_bytes: usize,
        /// The configured maximum.
        record_bytes_max: u32,
    },
    /// `begin_transaction` with an id that is already open.
    #[error("transaction {txn} is already open")]
    TxnAlreadyOpen {
        /// The transaction id.
        txn: u64,
    },
    /// An append, commit or abort for a transaction that is not open.
    #[error("transaction {txn} is not open")]
    TxnNotOpen {
        /// The transaction id.
        txn: u64,
    },
    /// An earlier write or fsync failed, so what the file holds is unknown; reopen the log, whose
    /// recovery establishes what is durable.
    #[error("log {path} refuses writes after an earlier I/O failure; reopen it")]
    Poisoned {
        /// The segment being written when the failure happened.
        path: PathBuf,
    },
}

impl LogError {
    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { operation, path, source }
    }
}
