//! The durable log: records (byte strings) with dense offsets from 0, appended to segment files in
//! one directory, made durable by an explicit `sync`, read in place from read-only maps.
//!
//! Invariants, and why:
//! - *Readers see only durable records.* `read` and `read_committed` stop at `durable_end`, the end
//!   of the last `sync` (or segment roll, which syncs the sealed segment): what a reader saw survives
//!   a crash. Maps cover only durable bytes, and a mapped file is never truncated (recovery runs in
//!   `open`, before any map of the active segment exists), so reading in place cannot fault.
//! - *Only the active (last) segment can have a torn tail.* A segment is synced before its successor
//!   is created, so recovery scans the last segment only: a record cut short at the end is cut away
//!   with everything after it; bad bytes followed by a valid record are corruption, reported with the
//!   path and offset, as is any fault in a sealed segment. A corrupt record is never returned.
//! - *Retention deletes whole sealed segments, oldest first*, so the log is always a contiguous
//!   range `start_offset..end_offset`; an offset below it is a typed error naming it.
//! - *One writer per directory*: the caller's duty (no lock file yet). After a failed write or fsync
//!   the log refuses writes (`LogError::Poisoned`): what reached the disk is unknown until reopened.
//!
//! Transactions are in `txn.rs` (design and rationale there): `TxnData` records plus a commit or
//! abort marker, read with read-committed isolation.

pub mod config;
pub mod error;
pub mod reader;
pub mod record;
pub(crate) mod segment;
pub(crate) mod txn;

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use config::{LogConfig, RetentionPolicy};
use error::LogError;
use record::{decode_record, encode_header, Record, RecordFault, RecordKind, RECORD_HEADER_BYTES};
use segment::{map_prefix, parse_segment_file_name, segment_file_name, valid_record_after, walk_records, CrcCheck, Segment};
use txn::TxnTable;

/// The id of a transaction, chosen by the caller (a two-phase-commit sink may use its checkpoint id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnId(pub u64);

/// What recovery found at the end of the last segment when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The segment recovery scanned (the last one).
    pub segment: PathBuf,
    /// Bytes cut from its end; 0 if it ended after a complete, valid record.
    pub truncated_bytes: u64,
    /// The offset the first record cut away would have had.
    pub truncated_from_offset: Option<u64>,
    /// Why the tail was cut.
    pub fault: Option<RecordFault>,
}

/// A segmented, append-only durable log in a directory. See the module documentation.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Oldest first; never empty; the last one is the active segment, written through `writer`.
    segments: Vec<Segment>,
    writer: BufWriter<File>,
    /// The offset the next appended record gets.
    next_offset: u64,
    /// Offsets below this are durable.
    durable_end: u64,
    txns: TxnTable,
    recovery: RecoveryReport,
    poisoned: bool,
    /// Holds the exclusive lock on the directory's [`LOCK_FILE`] while the log is open.
    _lock: File,
}

/// The file in a log's directory that an open log holds an exclusive lock on: a second `Log` on
/// the directory (in this process or another) is refused instead of writing over the first.
pub const LOCK_FILE: &str = "LOCK";

impl Log {
    /// Opens the log in `dir` (created if missing), recovering the last segment: a torn tail is cut
    /// away, and what remains is synced. Fails on corruption anywhere else, naming path and offset.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log, LogError> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(LogError::io("create directory", &dir))?;
        let lock = lock_dir(&dir)?;
        let mut bases = list_segment_bases(&dir)?;
        if bases.is_empty() {
            create_segment_file(&dir, 0)?;
            bases.push(0);
        }
        let mut txns = TxnTable::default();
        let mut segments = Vec::with_capacity(bases.len());
        for pair in bases.windows(2) {
            segments.push(open_sealed(&dir, pair[0], pair[1], &config, &mut txns)?);
        }
        let last_base = *bases.last().expect("at least one segment");
        let (active, file, recovery) = recover_active(&dir, last_base, &config, &mut txns)?;
        let next_offset = active.end_offset();
        segments.push(active);
        Ok(Log {
            writer: BufWriter::with_capacity(config.write_buffer_bytes, file),
            dir,
            config,
            segments,
            next_offset,
            durable_end: next_offset,
            txns,
            recovery,
            poisoned: false,
            _lock: lock,
        })
    }

    /// Whether a `Log` (in this process or another) has `dir` open now.
    pub fn in_use(dir: impl AsRef<Path>) -> bool {
        let path = dir.as_ref().join(LOCK_FILE);
        match OpenOptions::new().write(true).open(&path) {
            // Locked and unlocked again at once (the file closes).
            Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Appends a record outside any transaction and returns its offset. It is durable, and visible
    /// to readers, after the next `sync`.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, LogError> {
        self.append_record(RecordKind::Data, 0, payload)
    }

    /// Writes what was appended to the file and fsyncs it (`File::sync_data`). Returns the durable
    /// end: every offset below it is durable and readable.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        self.check_writable()?;
        if self.durable_end == self.next_offset {
            return Ok(self.durable_end);
        }
        let active = self.segments.last_mut().expect("an active segment");
        let synced = self.writer.flush().and_then(|()| self.writer.get_ref().sync_data());
        if let Err(source) = synced {
            self.poisoned = true;
            return Err(LogError::Io { operation: "sync", path: active.path.clone(), source });
        }
        self.durable_end = self.next_offset;
        let bytes = active.bytes;
        active.remap(self.writer.get_ref(), bytes)?;
        Ok(self.durable_end)
    }

    /// Syncs and closes the log.
    pub fn close(mut self) -> Result<u64, LogError> {
        self.sync()
    }

    /// The durable record at `offset`, of any kind (transaction markers and uncommitted data too):
    /// the raw view. Readers of data use `read_committed`.
    pub fn read(&self, offset: u64) -> Result<Record<'_>, LogError> {
        self.check_readable(offset)?;
        let segment = &self.segments[self.segment_index(offset)];
        let position = segment.position_of(offset)?;
        segment.record_at(offset, position)
    }

    /// Starts a transaction with the caller's id; its records become visible when it commits.
    pub fn begin_transaction(&mut self, txn: TxnId) -> Result<(), LogError> {
        self.check_writable()?;
        if !self.txns.begin(txn.0) {
            return Err(LogError::TxnAlreadyOpen { txn: txn.0 });
        }
        Ok(())
    }

    /// Appends a record to the open transaction `txn` and returns its offset.
    pub fn append_in(&mut self, txn: TxnId, payload: &[u8]) -> Result<u64, LogError> {
        if !self.txns.is_open(txn.0) {
            return Err(LogError::TxnNotOpen { txn: txn.0 });
        }
        self.append_record(RecordKind::TxnData, txn.0, payload)
    }

    /// Commits `txn`: appends its commit marker and syncs. When this returns, the transaction's
    /// records are durable and visible (from the last stable offset on). Returns the durable end.
    pub fn commit_transaction(&mut self, txn: TxnId) -> Result<u64, LogError> {
        self.end_transaction(txn, RecordKind::TxnCommit)
    }

    /// Aborts `txn`: appends its abort marker and syncs; its records are never visible.
    pub fn abort_transaction(&mut self, txn: TxnId) -> Result<u64, LogError> {
        self.end_transaction(txn, RecordKind::TxnAbort)
    }

    /// Transactions begun and not yet committed or aborted; after `open`, those whose records are
    /// in the log without a marker (prepared before a crash): commit or abort each.
    pub fn open_transactions(&self) -> Vec<TxnId> {
        self.txns.open_ids().into_iter().map(TxnId).collect()
    }

    /// Deletes every sealed segment whose records all lie below `offset`; returns the new start
    /// offset. The active segment is never deleted.
    pub fn retain_from(&mut self, offset: u64) -> Result<u64, LogError> {
        let sealed = &self.segments[..self.segments.len() - 1];
        let deletable = sealed.iter().take_while(|segment| segment.end_offset() <= offset).count();
        self.delete_oldest(deletable)
    }

    /// Applies a retention policy (both limits when both are set); returns the new start offset.
    pub fn apply_retention(&mut self, policy: &RetentionPolicy) -> Result<u64, LogError> {
        if let Some(offset) = policy.retain_from_offset {
            self.retain_from(offset)?;
        }
        if let Some(bytes_max) = policy.bytes_max {
            let mut bytes: u64 = self.segments.iter().map(|segment| segment.bytes).sum();
            let mut deletable = 0;
            while deletable + 1 < self.segments.len() && bytes > bytes_max {
                bytes -= self.segments[deletable].bytes;
                deletable += 1;
            }
            self.delete_oldest(deletable)?;
        }
        Ok(self.start_offset())
    }

    /// The first offset the log holds (0 until retention deletes a segment).
    pub fn start_offset(&self) -> u64 {
        self.segments[0].base_offset
    }

    /// The offset the next appended record gets.
    pub fn end_offset(&self) -> u64 {
        self.next_offset
    }

    /// Offsets below this are durable.
    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    /// Offsets below this are durable and every transaction with records below it is decided:
    /// where read-committed readers stop.
    pub fn last_stable_offset(&self) -> u64 {
        self.txns.first_open_offset().map_or(self.durable_end, |first| first.min(self.durable_end))
    }

    /// What recovery found when the log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn append_record(&mut self, kind: RecordKind, txn: u64, payload: &[u8]) -> Result<u64, LogError> {
        self.check_writable()?;
        if payload.len() > self.config.record_bytes_max as usize {
            return Err(LogError::RecordTooLarge { payload_bytes: payload.len(), record_bytes_max: self.config.record_bytes_max });
        }
        let record_bytes = (RECORD_HEADER_BYTES + payload.len()) as u64;
        let active = self.segments.last().expect("an active segment");
        if active.bytes > 0 && active.bytes + record_bytes > self.config.segment_bytes_max {
            self.roll()?;
        }
        let offset = self.next_offset;
        let header = encode_header(kind, offset, txn, payload);
        let written = self.writer.write_all(&header).and_then(|()| self.writer.write_all(payload));
        let active = self.segments.last_mut().expect("an active segment");
        if let Err(source) = written {
            self.poisoned = true;
            return Err(LogError::Io { operation: "append", path: active.path.clone(), source });
        }
        let position = active.bytes;
        active.note_record(offset, position, record_bytes);
        assert!(active.bytes <= self.config.segment_bytes_max, "segment {} beyond segment_bytes_max", active.path.display());
        self.next_offset += 1;
        // A marker changes what readers may see only once it is durable: `end_transaction` applies it.
        if !kind.is_control() {
            self.txns.apply(kind, txn, offset);
        }
        Ok(offset)
    }

    fn end_transaction(&mut self, txn: TxnId, marker: RecordKind) -> Result<u64, LogError> {
        if !self.txns.is_open(txn.0) {
            return Err(LogError::TxnNotOpen { txn: txn.0 });
        }
        let offset = self.append_record(marker, txn.0, &[])?;
        let durable_end = self.sync()?;
        self.txns.apply(marker, txn.0, offset);
        Ok(durable_end)
    }

    /// Seals the active segment (synced, mapped whole) and starts a new one at `next_offset`.
    fn roll(&mut self) -> Result<(), LogError> {
        self.sync()?;
        let file = create_segment_file(&self.dir, self.next_offset)?;
        self.writer = BufWriter::with_capacity(self.config.write_buffer_bytes, file);
        self.segments.push(Segment::new(&self.dir, self.next_offset, self.config.index_interval_bytes));
        Ok(())
    }

    /// Deletes the `count` oldest segments (never the active one), oldest first, so a crash in
    /// between leaves a contiguous log.
    fn delete_oldest(&mut self, count: usize) -> Result<u64, LogError> {
        assert!(count < self.segments.len(), "the active segment is never deleted");
        for _ in 0..count {
            let mut segment = self.segments.remove(0);
            segment.unmap();
            fs::remove_file(&segment.path).map_err(LogError::io("delete segment", &segment.path))?;
        }
        if count > 0 {
            sync_dir(&self.dir)?;
            self.txns.forget_below(self.start_offset());
        }
        Ok(self.start_offset())
    }

    fn check_writable(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned { path: self.segments.last().expect("an active segment").path.clone() });
        }
        Ok(())
    }

    fn check_readable(&self, offset: u64) -> Result<(), LogError> {
        if offset < self.start_offset() {
            return Err(LogError::OffsetDeleted { offset, start_offset: self.start_offset() });
        }
        if offset >= self.durable_end {
            return Err(LogError::OffsetNotDurable { offset, durable_end: self.durable_end });
        }
        Ok(())
    }

    /// Index of the segment holding `offset` (which must be at or after the start offset).
    fn segment_index(&self, offset: u64) -> usize {
        self.segments.partition_point(|segment| segment.base_offset <= offset) - 1
    }
}

/// Base offsets of the segment files in `dir`, ascending.
/// Takes the exclusive lock on `dir`'s lock file, or says the log is open elsewhere.
fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(LogError::io("open", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::InUse { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(source)) => Err(LogError::Io { operation: "lock", path, source }),
    }
}

fn list_segment_bases(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io("list directory", dir))? {
        let path = entry.map_err(LogError::io("list directory", dir))?.path();
        if path.extension().is_none_or(|extension| extension != segment::SEGMENT_EXTENSION) {
            continue;
        }
        let base = path.file_name().and_then(|name| name.to_str()).and_then(parse_segment_file_name);
        bases.push(base.ok_or_else(|| LogError::SegmentName { path: path.clone() })?);
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Creates the empty segment file starting at `base_offset` and makes its name durable.
fn create_segment_file(dir: &Path, base_offset: u64) -> Result<File, LogError> {
    let path = dir.join(segment_file_name(base_offset));
    let file = OpenOptions::new().read(true).append(true).create_new(true).open(&path).map_err(LogError::io("create segment", &path))?;
    sync_dir(dir)?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(LogError::io("sync directory", dir))
}

/// Opens a sealed segment: walks its headers (checking offsets, and the CRC of markers), builds
/// its index, replays its transaction markers, and checks that it ends exactly where the next begins.
fn open_sealed(dir: &Path, base_offset: u64, next_base_offset: u64, config: &LogConfig, txns: &mut TxnTable) -> Result<Segment, LogError> {
    let mut segment = Segment::new(dir, base_offset, config.index_interval_bytes);
    let path = segment.path.clone();
    let file = File::open(&path).map_err(LogError::io("open segment", &path))?;
    let file_bytes = file.metadata().map_err(LogError::io("stat segment", &path))?.len();
    let map = map_prefix(&file, file_bytes, &path)?;
    let end = walk_records(map.as_deref().unwrap_or(&[]), base_offset, CrcCheck::MarkersOnly, |position, header| {
        segment.note_record(header.offset, position, header.record_bytes());
        txns.apply(header.kind, header.txn, header.offset);
    });
    if let Some(fault) = end.fault {
        // The walk checks data records by header only, so a corrupt length in the record before
        // the fault shows up as a fault at the next one: name the record whose bytes are wrong.
        if let Some(last_position) = end.last_position {
            let bytes = map.as_deref().unwrap_or(&[]);
            let last_offset = base_offset + end.records - 1;
            if let Err(fault) = decode_record(bytes, last_position as usize, last_offset) {
                return Err(segment.corrupt(last_offset, last_position, fault));
            }
        }
        return Err(segment.corrupt(base_offset + end.records, end.valid_bytes, fault));
    }
    let expected = next_base_offset - base_offset;
    if end.records != expected {
        return Err(LogError::SegmentRecordCount { path, expected, found: end.records });
    }
    segment.attach_map(map);
    Ok(segment)
}

/// Recovers the last segment: walks it checking every CRC, cuts a torn tail, syncs what remains
/// (a crashed writer's last records may be in the page cache only) and maps it.
fn recover_active(
    dir: &Path,
    base_offset: u64,
    config: &LogConfig,
    txns: &mut TxnTable,
) -> Result<(Segment, File, RecoveryReport), LogError> {
    let mut segment = Segment::new(dir, base_offset, config.index_interval_bytes);
    let path = segment.path.clone();
    let file = OpenOptions::new().read(true).append(true).open(&path).map_err(LogError::io("open segment", &path))?;
    let file_bytes = file.metadata().map_err(LogError::io("stat segment", &path))?.len();
    let map = map_prefix(&file, file_bytes, &path)?;
    let bytes = map.as_deref().unwrap_or(&[]);
    let end = walk_records(bytes, base_offset, CrcCheck::All, |position, header| {
        segment.note_record(header.offset, position, header.record_bytes());
        txns.apply(header.kind, header.txn, header.offset);
    });
    let mut report = RecoveryReport { segment: path.clone(), truncated_bytes: 0, truncated_from_offset: None, fault: None };
    if let Some(fault) = end.fault {
        let offset = base_offset + end.records;
        if valid_record_after(bytes, end.valid_bytes, offset).is_some() {
            return Err(segment.corrupt(offset, end.valid_bytes, fault));
        }
        report = RecoveryReport {
            segment: path.clone(),
            truncated_bytes: file_bytes - end.valid_bytes,
            truncated_from_offset: Some(offset),
            fault: Some(fault),
        };
        // The map must go before the file shrinks under it.
        drop(map);
        file.set_len(end.valid_bytes).map_err(LogError::io("truncate torn tail", &path))?;
    } else {
        drop(map);
    }
    file.sync_data().map_err(LogError::io("sync segment", &path))?;
    segment.remap(&file, end.valid_bytes)?;
    Ok((segment, file, report))
}

#[cfg(test)]
mod tests;
