//! The masters' Raft log and vote, durable in the storage crate's log.
//!
//! Raft needs more than appends: a follower cuts a conflicting suffix (`truncate`) and a snapshot
//! lets the prefix go (`purge`). The storage log is append-only, so this store keeps a *journal* in
//! it: every change is one record (a vote, the committed id, an entry, a truncation, a purge), and
//! opening replays the journal into memory (control-plane logs are small: entries are commands, and
//! snapshots purge them). When the journal holds many records that no longer count, it is compacted:
//! a `Reset` record (vote, committed id, last purged id) and the live entries are appended, synced,
//! and the segments wholly before the `Reset` are deleted. Replay starts over at every `Reset`.
//!
//! Durability: a vote is synced before `save_vote` returns; appended entries are synced before
//! openraft is told they are flushed; truncations and purges are synced before they return. A torn
//! tail (a crash in a write) is cut by the storage log's recovery, and what was cut was never
//! acknowledged.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use tethys_storage::{Log, LogConfig};

use super::{Entry, NodeId, TypeConfig};

/// One change to the log, as the journal stores it.
#[derive(Debug, Serialize, Deserialize)]
enum JournalRecord {
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
    Entry(Entry),
    /// Entries from this index on are gone.
    Truncate {
        from: u64,
    },
    /// Entries up to this id are gone.
    Purge {
        upto: LogId<NodeId>,
    },
    /// Replay starts over: what counts is this and the records after it.
    Reset {
        vote: Option<Vote<NodeId>>,
        committed: Option<LogId<NodeId>>,
        last_purged: Option<LogId<NodeId>>,
    },
}

/// The log as replayed.
#[derive(Debug, Default)]
struct Replayed {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry>,
}

impl Replayed {
    fn replay(&mut self, record: JournalRecord) {
        match record {
            JournalRecord::Vote(vote) => self.vote = Some(vote),
            JournalRecord::Committed(committed) => self.committed = committed,
            JournalRecord::Entry(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            JournalRecord::Truncate { from } => {
                self.entries.split_off(&from);
            }
            JournalRecord::Purge { upto } => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(upto);
            }
            JournalRecord::Reset { vote, committed, last_purged } => {
                *self = Replayed { vote, committed, last_purged, entries: BTreeMap::new() };
            }
        }
    }
}

struct Journal {
    log: Log,
    state: Replayed,
    /// Journal records since the last `Reset` (or the start).
    records_since_reset: u64,
}

/// Segments of the journal: small, so compaction frees space soon.
const JOURNAL_SEGMENT_BYTES: u64 = 4 << 20;
/// Compact once the journal holds this many records more than the live ones.
const COMPACT_AFTER_DEAD_RECORDS: u64 = 4096;

fn io_error(subject: ErrorSubject<NodeId>, verb: ErrorVerb, error: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::error(error.to_string())).into()
}

impl Journal {
    fn append(&mut self, record: &JournalRecord) -> Result<(), StorageError<NodeId>> {
        let bytes = serde_json::to_vec(record).map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, error))?;
        self.log.append(&bytes).map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, error))?;
        self.records_since_reset += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError<NodeId>> {
        self.log.sync().map(drop).map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, error))
    }

    /// Appends a `Reset` and the live entries, syncs, and deletes the segments before it.
    fn compact_if_worth_it(&mut self) -> Result<(), StorageError<NodeId>> {
        let live = self.state.entries.len() as u64 + 2;
        if self.records_since_reset < live + COMPACT_AFTER_DEAD_RECORDS {
            return Ok(());
        }
        let reset_at = self.log.end_offset();
        let reset = JournalRecord::Reset { vote: self.state.vote, committed: self.state.committed, last_purged: self.state.last_purged };
        self.records_since_reset = 0;
        self.append(&reset)?;
        let entries: Vec<Entry> = self.state.entries.values().cloned().collect();
        for entry in entries {
            self.append(&JournalRecord::Entry(entry))?;
        }
        self.sync()?;
        self.log.retain_from(reset_at).map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, error))?;
        Ok(())
    }
}

/// The durable Raft log and vote of one master (see the module documentation). Cloning shares it.
#[derive(Clone)]
pub struct LogStore {
    journal: Arc<Mutex<Journal>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, replaying its journal.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError<NodeId>> {
        LogStore::open_with_segments_of(dir, JOURNAL_SEGMENT_BYTES)
    }

    fn open_with_segments_of(dir: &Path, segment_bytes_max: u64) -> Result<LogStore, StorageError<NodeId>> {
        let record_bytes_max = LogConfig::default().record_bytes_max.min((segment_bytes_max / 2) as u32);
        let config = LogConfig { segment_bytes_max, record_bytes_max, ..LogConfig::default() };
        let log = Log::open(dir, config).map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Read, error))?;
        let mut state = Replayed::default();
        let mut records_since_reset = 0;
        for offset in log.start_offset()..log.end_offset() {
            let record = log.read(offset).map_err(|error| io_error(ErrorSubject::Store, ErrorVerb::Read, error))?;
            let record: JournalRecord = serde_json::from_slice(record.payload).map_err(|error| {
                io_error(
                    ErrorSubject::Store,
                    ErrorVerb::Read,
                    format!("journal record {offset} in {} does not decode: {error}", dir.display()),
                )
            })?;
            records_since_reset = if matches!(record, JournalRecord::Reset { .. }) { 0 } else { records_since_reset + 1 };
            state.replay(record);
        }
        Ok(LogStore { journal: Arc::new(Mutex::new(Journal { log, state, records_since_reset })) })
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self.lock().state.entries.range(range).map(|(_, entry)| entry.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let journal = self.lock();
        let last_purged_log_id = journal.state.last_purged;
        let last_log_id = journal.state.entries.values().next_back().map(|entry| entry.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut journal = self.lock();
        journal.append(&JournalRecord::Vote(*vote))?;
        journal.sync()?;
        journal.state.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        // Not synced on its own: losing it costs only a re-apply after a restart, which the next
        // synced record (or the leader) brings back.
        let mut journal = self.lock();
        journal.append(&JournalRecord::Committed(committed))?;
        journal.state.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut journal = self.lock();
        for entry in entries {
            journal.append(&JournalRecord::Entry(entry.clone()))?;
            journal.state.entries.insert(entry.log_id.index, entry);
        }
        let synced = journal.log.sync().map(drop).map_err(|error| std::io::Error::other(error.to_string()));
        let failed = synced.as_ref().err().map(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, error));
        callback.log_io_completed(synced);
        match failed {
            Some(error) => Err(error),
            None => journal.compact_if_worth_it(),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut journal = self.lock();
        journal.append(&JournalRecord::Truncate { from: log_id.index })?;
        journal.sync()?;
        journal.state.replay(JournalRecord::Truncate { from: log_id.index });
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut journal = self.lock();
        journal.append(&JournalRecord::Purge { upto: log_id })?;
        journal.sync()?;
        journal.state.replay(JournalRecord::Purge { upto: log_id });
        journal.compact_if_worth_it()
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};
    use tethys_storage::test_dir::TestDir;

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 0), index), payload: EntryPayload::Blank }
    }

    fn segments(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn the_journal_is_compacted_and_replays_to_the_same_log() {
        let dir = TestDir::new("journal");
        let path = dir.path().join("log");
        let segment_bytes = 64 << 10;
        let mut store = LogStore::open_with_segments_of(&path, segment_bytes).unwrap();
        store.save_vote(&Vote::new(3, 1)).await.unwrap();
        // Many entries, purged as a snapshot would.
        for batch in 0..200u64 {
            store.blocking_append((batch * 100..(batch + 1) * 100).map(entry)).await.unwrap();
            if batch % 10 == 9 {
                store.purge(LogId::new(CommittedLeaderId::new(1, 0), batch * 100 + 89)).await.unwrap();
            }
        }
        store.truncate(LogId::new(CommittedLeaderId::new(1, 0), 19_995)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(19_989));
        assert_eq!(state.last_log_id.map(|id| id.index), Some(19_994));
        let journal_segments = segments(&path);
        drop(store);
        let mut reopened = LogStore::open_with_segments_of(&path, segment_bytes).unwrap();
        assert_eq!(reopened.get_log_state().await.unwrap(), state);
        assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
        let indexes: Vec<u64> = reopened.try_get_log_entries(0..).await.unwrap().iter().map(|entry| entry.log_id.index).collect();
        assert_eq!(indexes, (19_990..19_995).collect::<Vec<_>>());
        // 20,000 entries of about 100 bytes fill about 30 segments of 64 KiB; compaction kept few.
        assert!(journal_segments <= 8, "{journal_segments} segments left after compaction");
        let journal_records = {
            let journal = reopened.lock();
            journal.log.end_offset() - journal.log.start_offset()
        };
        assert!(journal_records < 2 * (COMPACT_AFTER_DEAD_RECORDS + 100), "{journal_records} records replayed");
    }
}
