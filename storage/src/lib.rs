//! Tethys storage: what the engine keeps on disk.
//!
//! This first piece is [`Log`], a segmented, append-only durable log of byte records in a
//! directory: explicit durability (`sync`), recovery that cuts a torn tail and never returns a
//! corrupt record, retention by whole segments, and transactions whose records readers see only
//! once they commit. It is the ground under the embedded topics (the replayable source and the
//! transactional sink of exactly-once jobs). Beside it, [`CheckpointStore`]: completed checkpoints and
//! savepoints in a directory, each published atomically and checked on read. The on-disk state
//! backend will join them.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod checkpoint_store;
pub mod log;

pub use checkpoint_store::{CheckpointKind, CheckpointStore, CheckpointStoreError, CheckpointWriter, CompletedCheckpoint};
pub use log::config::{LogConfig, LogConfigError, RetentionPolicy};
pub use log::error::LogError;
pub use log::reader::{CommittedRecord, CommittedRecords};
pub use log::record::{Record, RecordFault, RecordKind, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_LIMIT};
pub use log::{Log, RecoveryReport, TxnId};

#[doc(hidden)]
pub mod test_dir;
