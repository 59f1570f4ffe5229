//! Embedded topics: durable, partitioned streams of records on local disk, what exactly-once jobs
//! read from ([`TopicSource`](crate::source::topic::TopicSource)) and write to
//! ([`TopicSink`](crate::sink::topic::TopicSink)).
//!
//! A topic is a directory holding `topic.json` (the partition count, and the tags of the
//! transactional sinks that wrote to it) and one [`Log`] per partition in `partition-<i>`.
//! Records are encoded with the engine's [`Codec`]. `topic.json` is written last when a topic is
//! created and replaced atomically when it changes, so a directory with it is a whole topic.
//!
//! A [`Log`] allows one writer per directory, and every reader needs the writer's view of open and
//! aborted transactions, so **one process holds one handle per topic**: a process-wide registry
//! maps the topic's canonical path to its handle (a `Mutex<Log>` per partition), and opening a
//! topic that is open already returns the same handle. Each log locks its directory, so another
//! process opening the topic meanwhile is refused ([`TopicError::InUse`]) instead of writing over it. The logs close when the last [`Topic`]
//! value is dropped; an `open` racing with that waits until they are closed, so two `Log`s never
//! write one directory.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use serde::{Deserialize, Serialize};
use tethys_storage::{Log, LogConfig, LogError};

use crate::base::codec::{self, Codec, CodecError};

/// The metadata file that makes a directory a topic.
pub const METADATA_FILE: &str = "topic.json";

/// Most partitions a topic may have: each is an open log with its own write buffer.
pub const PARTITIONS_MAX: usize = 1024;

/// Why a topic could not be created, opened, written or read. Each names the topic's directory.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// A partition count of zero or above [`PARTITIONS_MAX`].
    #[error("topic {}: {partitions} partitions asked for; a topic has 1 to {PARTITIONS_MAX}", .path.display())]
    InvalidPartitions {
        /// The topic's directory.
        path: PathBuf,
        /// The count asked for.
        partitions: usize,
    },
    /// `create` on a directory that already holds a topic.
    #[error("topic {} already exists", .path.display())]
    AlreadyExists {
        /// The topic's directory.
        path: PathBuf,
    },
    /// `open` on a directory without a metadata file.
    #[error("{} is not a topic: it has no {METADATA_FILE}", .path.display())]
    NotATopic {
        /// The directory.
        path: PathBuf,
    },
    /// The metadata file could not be parsed, or says something impossible.
    #[error("malformed topic metadata {}: {reason}", .path.display())]
    MalformedMetadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The metadata names a partition whose directory is missing.
    #[error("topic {} lacks partition {partition}: {} is not a directory", .path.display(), .partition_dir.display())]
    MissingPartition {
        /// The topic's directory.
        path: PathBuf,
        /// The partition.
        partition: usize,
        /// Where its log should be.
        partition_dir: PathBuf,
    },
    /// A file-system call on the topic's files failed.
    #[error("cannot {operation} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another process has the topic open: an embedded topic is served by one process at a time.
    #[error(
        "topic {} is open in another process: an embedded topic is read and written by one process at a time \
         (a job whose processes would share it runs in one process)",
        .path.display()
    )]
    InUse {
        /// The topic's directory.
        path: PathBuf,
    },
    /// The log of a partition failed.
    #[error("topic {} partition {partition}: {source}", .topic.display())]
    Log {
        /// The topic's directory.
        topic: PathBuf,
        /// The partition.
        partition: usize,
        /// The log's error.
        source: LogError,
    },
    /// A partition index at or above the partition count.
    #[error("topic {} has {partitions} partitions; there is no partition {partition}", .topic.display())]
    NoSuchPartition {
        /// The topic's directory.
        topic: PathBuf,
        /// The partition asked for.
        partition: usize,
        /// The topic's partition count.
        partitions: usize,
    },
    /// A record could not be encoded.
    #[error("topic {} partition {partition}: cannot encode a record: {source}", .topic.display())]
    Encode {
        /// The topic's directory.
        topic: PathBuf,
        /// The partition written.
        partition: usize,
        /// The codec's error.
        source: CodecError,
    },
    /// A committed record is not the encoding of a value of the type it is read as.
    #[error("topic {} partition {partition} offset {offset}: {source}", .topic.display())]
    Decode {
        /// The topic's directory.
        topic: PathBuf,
        /// The partition.
        partition: usize,
        /// The record's offset.
        offset: u64,
        /// The codec's error.
        source: CodecError,
    },
    /// Every sink tag (`1..=u16::MAX`) is given to a sink name already.
    #[error("topic {}: every transactional sink tag is taken; cannot register sink {name:?}", .topic.display())]
    SinkTagsExhausted {
        /// The topic's directory.
        topic: PathBuf,
        /// The sink asking for a tag.
        name: String,
    },
}

/// What `topic.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicMetadata {
    partitions: usize,
    /// The tag of each transactional sink that wrote to the topic, by sink name; tags are never
    /// reused, so a sink's transactions are told from every other sink's (`sink/topic.rs`).
    #[serde(default)]
    sinks: BTreeMap<String, u16>,
}

/// A topic, open in this process. Clones share one handle (see the module documentation).
#[derive(Clone)]
pub struct Topic {
    handle: Arc<TopicHandle>,
}

/// The process's one handle on a topic directory.
struct TopicHandle {
    /// Canonical; the registry's key.
    path: PathBuf,
    partitions: Vec<Mutex<Log>>,
    metadata: Mutex<TopicMetadata>,
}

/// Topics open in this process, by canonical path. An entry whose handle is dead is being closed;
/// its `Drop` removes it and signals `closed`.
struct Registry {
    topics: Mutex<HashMap<PathBuf, Weak<TopicHandle>>>,
    closed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry { topics: Mutex::new(HashMap::new()), closed: Condvar::new() })
}

/// Locks a mutex whose holder may have panicked: every value guarded here stays consistent
/// between calls (a log refuses writes itself after a failed one).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Topic {
    /// Creates a topic of `partitions` partitions in `dir` (created if missing). Fails if `dir`
    /// holds a topic already.
    pub fn create(dir: impl AsRef<Path>, partitions: usize) -> Result<Topic, TopicError> {
        let dir = dir.as_ref();
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(TopicError::InvalidPartitions { path: dir.to_path_buf(), partitions });
        }
        fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        Topic::acquire(canonical(dir)?, Some(partitions))
    }

    /// Opens the topic in `dir`, or returns this process's handle on it if it is open already.
    pub fn open(dir: impl AsRef<Path>) -> Result<Topic, TopicError> {
        let dir = dir.as_ref();
        if !dir.join(METADATA_FILE).is_file() {
            return Err(TopicError::NotATopic { path: dir.to_path_buf() });
        }
        Topic::acquire(canonical(dir)?, None)
    }

    /// This process's handle on the topic in `dir`, if the process has it open (a job here reads
    /// or writes it); `None` otherwise, without opening it (so no other process is locked out).
    pub fn open_held(dir: impl AsRef<Path>) -> Option<Topic> {
        let path = fs::canonicalize(dir.as_ref()).ok()?;
        let handle = lock(&registry().topics).get(&path).and_then(Weak::upgrade)?;
        Some(Topic { handle })
    }

    /// Finds the handle on `path` in the registry, or creates (`create`: with that many
    /// partitions) or loads it.
    fn acquire(path: PathBuf, create: Option<usize>) -> Result<Topic, TopicError> {
        let registry = registry();
        let mut topics = lock(&registry.topics);
        loop {
            match topics.get(&path).map(Weak::upgrade) {
                Some(Some(handle)) => {
                    // Release the registry first: if this is the last handle, its drop takes it.
                    drop(topics);
                    return match create {
                        Some(_) => Err(TopicError::AlreadyExists { path }),
                        None => Ok(Topic { handle }),
                    };
                }
                Some(None) => topics = registry.closed.wait(topics).unwrap_or_else(PoisonError::into_inner),
                None => break,
            }
        }
        let handle = match create {
            Some(partitions) => TopicHandle::create(path.clone(), partitions)?,
            None => TopicHandle::load(path.clone())?,
        };
        let handle = Arc::new(handle);
        topics.insert(path, Arc::downgrade(&handle));
        Ok(Topic { handle })
    }

    /// The topic's directory (canonical).
    pub fn path(&self) -> &Path {
        &self.handle.path
    }

    /// The number of partitions.
    pub fn partitions(&self) -> usize {
        self.handle.partitions.len()
    }

    /// Appends `record` to `partition` outside any transaction and returns its offset. Readers see
    /// it after the next [`sync`](Topic::sync).
    pub fn append<T: Codec>(&self, partition: usize, record: &T) -> Result<u64, TopicError> {
        let payload = codec::encode(record).map_err(|source| TopicError::Encode { topic: self.path().into(), partition, source })?;
        let mut log = self.lock_partition(partition)?;
        log.append(&payload).map_err(|source| self.log_error(partition, source))
    }

    /// Makes everything appended to every partition durable and visible to readers.
    pub fn sync(&self) -> Result<(), TopicError> {
        for partition in 0..self.partitions() {
            self.lock_partition(partition)?.sync().map_err(|source| self.log_error(partition, source))?;
        }
        Ok(())
    }

    /// The committed records of `partition` from offset `from` up to its last stable offset,
    /// with their offsets, decoded as `T`.
    pub fn read_committed<T: Codec>(&self, partition: usize, from: u64) -> Result<Vec<(u64, T)>, TopicError> {
        self.read_committed_range(partition, from, usize::MAX)
    }

    /// As [`read_committed`](Topic::read_committed), at most `max` records: the partition is
    /// locked for those only (a reader beside a running job holds its writer up no longer).
    pub fn read_committed_range<T: Codec>(&self, partition: usize, from: u64, max: usize) -> Result<Vec<(u64, T)>, TopicError> {
        let log = self.lock_partition(partition)?;
        let records = log.read_committed(from).map_err(|source| self.log_error(partition, source))?;
        records
            .take(max)
            .map(|record| {
                let record = record.map_err(|source| self.log_error(partition, source))?;
                Ok((record.offset, self.decode(partition, record.offset, record.payload)?))
            })
            .collect()
    }

    /// The offset the next record of each partition gets.
    pub fn end_offsets(&self) -> Vec<u64> {
        self.handle.partitions.iter().map(|log| lock(log).end_offset()).collect()
    }

    /// The log of `partition`, locked.
    pub(crate) fn lock_partition(&self, partition: usize) -> Result<MutexGuard<'_, Log>, TopicError> {
        let log = self.handle.partitions.get(partition).ok_or_else(|| TopicError::NoSuchPartition {
            topic: self.path().into(),
            partition,
            partitions: self.partitions(),
        })?;
        Ok(lock(log))
    }

    /// An error of the log of `partition`, naming the topic.
    pub(crate) fn log_error(&self, partition: usize, source: LogError) -> TopicError {
        TopicError::Log { topic: self.path().into(), partition, source }
    }

    /// Decodes the payload of the record at `offset` of `partition`.
    pub(crate) fn decode<T: Codec>(&self, partition: usize, offset: u64, payload: &[u8]) -> Result<T, TopicError> {
        codec::decode(payload).map_err(|source| TopicError::Decode { topic: self.path().into(), partition, offset, source })
    }

    /// The tag of the transactional sink `name` on this topic: the one recorded in the metadata,
    /// or the next free one, recorded durably before it is returned. Tags start at 1.
    pub(crate) fn sink_tag(&self, name: &str) -> Result<u16, TopicError> {
        let mut metadata = lock(&self.handle.metadata);
        if let Some(&tag) = metadata.sinks.get(name) {
            return Ok(tag);
        }
        let tag = match metadata.sinks.values().max() {
            None => 1,
            Some(&max) => {
                max.checked_add(1).ok_or_else(|| TopicError::SinkTagsExhausted { topic: self.path().into(), name: name.into() })?
            }
        };
        let mut updated = metadata.clone();
        updated.sinks.insert(name.to_string(), tag);
        write_metadata(self.path(), &updated)?;
        *metadata = updated;
        Ok(tag)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topic").field("path", &self.path()).field("partitions", &self.partitions()).finish()
    }
}

impl TopicHandle {
    /// Creates the partitions' logs, then the metadata file (last: it marks a whole topic).
    fn create(path: PathBuf, partitions: usize) -> Result<TopicHandle, TopicError> {
        if path.join(METADATA_FILE).exists() {
            return Err(TopicError::AlreadyExists { path });
        }
        let logs = (0..partitions).map(|partition| open_log(&path, partition)).collect::<Result<Vec<_>, _>>()?;
        let metadata = TopicMetadata { partitions, sinks: BTreeMap::new() };
        write_metadata(&path, &metadata)?;
        Ok(TopicHandle { path, partitions: logs, metadata: Mutex::new(metadata) })
    }

    /// Reads the metadata file and opens every partition's log (recovering it).
    fn load(path: PathBuf) -> Result<TopicHandle, TopicError> {
        let file = path.join(METADATA_FILE);
        let text = match fs::read(&file) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(TopicError::NotATopic { path }),
            Err(source) => return Err(TopicError::Io { operation: "read", path: file, source }),
        };
        let metadata: TopicMetadata = serde_json::from_slice(&text)
            .map_err(|error| TopicError::MalformedMetadata { path: file.clone(), reason: error.to_string() })?;
        if metadata.partitions == 0 || metadata.partitions > PARTITIONS_MAX {
            let reason = format!("{} partitions; a topic has 1 to {PARTITIONS_MAX}", metadata.partitions);
            return Err(TopicError::MalformedMetadata { path: file, reason });
        }
        let mut logs = Vec::with_capacity(metadata.partitions);
        for partition in 0..metadata.partitions {
            let partition_dir = partition_dir(&path, partition);
            if !partition_dir.is_dir() {
                return Err(TopicError::MissingPartition { path, partition, partition_dir });
            }
            logs.push(open_log(&path, partition)?);
        }
        Ok(TopicHandle { path, partitions: logs, metadata: Mutex::new(metadata) })
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        let registry = registry();
        let mut topics = lock(&registry.topics);
        // Close the logs while holding the registry, so no other handle opens them meanwhile.
        self.partitions.clear();
        if topics.get(&self.path).is_some_and(|entry| entry.strong_count() == 0) {
            topics.remove(&self.path);
        }
        drop(topics);
        registry.closed.notify_all();
    }
}

/// The directory of a partition's log.
fn partition_dir(topic: &Path, partition: usize) -> PathBuf {
    topic.join(format!("partition-{partition}"))
}

fn open_log(topic: &Path, partition: usize) -> Result<Mutex<Log>, TopicError> {
    let log = Log::open(partition_dir(topic, partition), LogConfig::default()).map_err(|source| match source {
        // This process holds one handle per topic (the registry), so the holder is another.
        LogError::InUse { .. } => TopicError::InUse { path: topic.to_path_buf() },
        source => TopicError::Log { topic: topic.to_path_buf(), partition, source },
    })?;
    Ok(Mutex::new(log))
}

fn canonical(dir: &Path) -> Result<PathBuf, TopicError> {
    fs::canonicalize(dir).map_err(io_error("resolve", dir))
}

fn io_error<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TopicError + 'a {
    move |source| TopicError::Io { operation, path: path.to_path_buf(), source }
}

/// Replaces the metadata file atomically: a temporary file, synced, renamed over it, and the
/// directory synced, so a crash leaves the old file or the new one.
fn write_metadata(topic: &Path, metadata: &TopicMetadata) -> Result<(), TopicError> {
    let temporary = topic.join(format!("{METADATA_FILE}.tmp"));
    let text = serde_json::to_vec_pretty(metadata).expect("topic metadata is plain data");
    let mut file = File::create(&temporary).map_err(io_error("create", &temporary))?;
    file.write_all(&text).and_then(|()| file.sync_all()).map_err(io_error("write", &temporary))?;
    let path = topic.join(METADATA_FILE);
    fs::rename(&temporary, &path).map_err(io_error("replace", &path))?;
    File::open(topic).and_then(|dir| dir.sync_all()).map_err(io_error("sync directory", topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn a_topic_is_created_then_opened_with_its_partitions() {
        let dir = TestDir::new("topic-create");
        let path = dir.path().join("orders");
        let created = Topic::create(&path, 3).unwrap();
        assert_eq!(created.partitions(), 3);
        assert_eq!(created.end_offsets(), vec![0, 0, 0]);
        for partition in 0..3 {
            assert!(path.join(format!("partition-{partition}")).is_dir());
        }
        assert!(path.join(METADATA_FILE).is_file());
        drop(created);
        let opened = Topic::open(&path).unwrap();
        assert_eq!(opened.partitions(), 3);
    }

    #[test]
    fn a_topic_another_process_holds_is_refused_by_name() {
        let dir = TestDir::new("topic-in-use");
        let path = dir.path().join("orders");
        drop(Topic::create(&path, 2).unwrap());
        // Another process's handle on the topic holds its partitions' logs as this one does.
        let held_elsewhere = Log::open(path.join("partition-1"), LogConfig::default()).unwrap();
        let error = Topic::open(&path).unwrap_err();
        assert!(matches!(&error, TopicError::InUse { path: refused } if *refused == canonical(&path).unwrap()), "{error}");
        assert!(error.to_string().contains("open in another process"), "{error}");
        drop(held_elsewhere);
        assert_eq!(Topic::open(&path).unwrap().partitions(), 2, "free again once the other lets go");
    }

    #[test]
    fn opening_an_open_topic_shares_its_handle_and_closing_it_reopens_from_disk() {
        let dir = TestDir::new("topic-shared");
        let first = Topic::create(dir.path(), 2).unwrap();
        let second = Topic::open(dir.path()).unwrap();
        assert!(Arc::ptr_eq(&first.handle, &second.handle), "one handle per topic in a process");
        first.append(1, &"kept".to_string()).unwrap();
        first.sync().unwrap();
        assert_eq!(second.read_committed::<String>(1, 0).unwrap(), vec![(0, "kept".to_string())]);
        drop((first, second));
        let reopened = Topic::open(dir.path()).unwrap();
        assert_eq!(reopened.end_offsets(), vec![0, 1]);
        assert_eq!(reopened.read_committed::<String>(1, 0).unwrap(), vec![(0, "kept".to_string())]);
    }

    #[test]
    fn records_appended_are_read_after_sync_in_order_per_partition() {
        let dir = TestDir::new("topic-append");
        let topic = Topic::create(dir.path(), 2).unwrap();
        for value in 0..10u64 {
            assert_eq!(topic.append((value % 2) as usize, &value).unwrap(), value / 2);
        }
        assert!(topic.read_committed::<u64>(0, 0).unwrap().is_empty(), "not synced yet");
        topic.sync().unwrap();
        assert_eq!(topic.read_committed::<u64>(0, 0).unwrap(), vec![(0, 0), (1, 2), (2, 4), (3, 6), (4, 8)]);
        assert_eq!(topic.read_committed::<u64>(1, 3).unwrap(), vec![(3, 7), (4, 9)]);
        assert_eq!(topic.end_offsets(), vec![5, 5]);
    }

    #[test]
    fn create_refuses_zero_partitions_and_an_existing_topic() {
        let dir = TestDir::new("topic-refuse");
        let error = Topic::create(dir.path().join("none"), 0).unwrap_err();
        assert!(matches!(error, TopicError::InvalidPartitions { partitions: 0, .. }), "{error}");
        let _topic = Topic::create(dir.path().join("t"), 1).unwrap();
        let error = Topic::create(dir.path().join("t"), 1).unwrap_err();
        assert!(matches!(error, TopicError::AlreadyExists { .. }), "{error}");
    }

    #[test]
    fn opening_what_is_not_a_whole_topic_names_the_path() {
        let dir = TestDir::new("topic-not");
        let error = Topic::open(dir.path()).unwrap_err();
        assert!(matches!(error, TopicError::NotATopic { .. }), "{error}");
        assert!(error.to_string().contains(&dir.path().display().to_string()), "{error}");

        let path = dir.path().join("t");
        drop(Topic::create(&path, 2).unwrap());
        fs::remove_dir_all(path.join("partition-1")).unwrap();
        let error = Topic::open(&path).unwrap_err();
        assert!(matches!(error, TopicError::MissingPartition { partition: 1, .. }), "{error}");
        assert!(error.to_string().contains("partition-1"), "{error}");

        fs::write(path.join(METADATA_FILE), "{\"partitions\": \"two\"}").unwrap();
        let error = Topic::open(&path).unwrap_err();
        assert!(matches!(error, TopicError::MalformedMetadata { .. }), "{error}");
    }

    #[test]
    fn a_record_that_does_not_decode_names_topic_partition_and_offset() {
        let dir = TestDir::new("topic-decode");
        let topic = Topic::create(dir.path(), 2).unwrap();
        topic.append(1, &1u64).unwrap();
        topic.append(1, &"not a number".to_string()).unwrap();
        topic.sync().unwrap();
        let error = topic.read_committed::<u64>(1, 0).unwrap_err();
        assert!(matches!(error, TopicError::Decode { partition: 1, offset: 1, .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(&topic.path().display().to_string()) && message.contains("partition 1 offset 1"), "{message}");
    }

    #[test]
    fn a_partition_out_of_range_is_an_error() {
        let dir = TestDir::new("topic-range");
        let topic = Topic::create(dir.path(), 2).unwrap();
        let error = topic.append(2, &1u64).unwrap_err();
        assert!(matches!(error, TopicError::NoSuchPartition { partition: 2, partitions: 2, .. }), "{error}");
    }

    #[test]
    fn sink_tags_are_distinct_per_name_and_survive_reopening() {
        let dir = TestDir::new("topic-tags");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let (a, b) = (topic.sink_tag("a").unwrap(), topic.sink_tag("b").unwrap());
        assert_ne!(a, b);
        assert_eq!(topic.sink_tag("a").unwrap(), a);
        drop(topic);
        let topic = Topic::open(dir.path()).unwrap();
        assert_eq!((topic.sink_tag("b").unwrap(), topic.sink_tag("a").unwrap()), (b, a));
        assert!(![a, b].contains(&topic.sink_tag("c").unwrap()));
    }
}
