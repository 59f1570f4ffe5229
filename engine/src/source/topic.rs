//! A source reading an embedded [`Topic`]: subtask `i` reads partition `i`, committed records only
//! (read-committed: records of open transactions wait, those of aborted ones never come), in
//! offset order.
//!
//! The reader's position is the next offset of its partition, so a restored reader seeks there and
//! reads exactly what followed; offsets of transaction markers and aborted records are skipped,
//! never returned. The parallelism must equal the partition count: a partition read by two
//! subtasks would be read twice, and one read by none would be lost, so any other parallelism is
//! refused when the readers are created. Reading locks the partition's log for one batch of at
//! most `records_max` records, decoded while the lock is held; writers of the topic wait that long.

use std::marker::PhantomData;
use std::path::PathBuf;

use super::{ReaderStatus, Source, SourceReader};
use crate::base::{Codec, SubtaskContext, UserError};
use crate::frame::Record;
use crate::topic::Topic;

/// Why a topic source could not start or move to a position.
#[derive(Debug, thiserror::Error)]
pub enum TopicSourceError {
    /// The source's parallelism is not the topic's partition count.
    #[error(
        "topic source over {}: parallelism {parallelism} differs from the topic's {partitions} partitions \
         (subtask i reads partition i); run the source with parallelism {partitions}",
        .topic.display()
    )]
    Parallelism {
        /// The topic's directory.
        topic: PathBuf,
        /// The topic's partition count.
        partitions: usize,
        /// The source's parallelism.
        parallelism: usize,
    },
    /// `seek` to an offset the partition does not hold (deleted by retention, or not durable:
    /// a position of another topic or partition).
    #[error(
        "topic {} partition {partition}: cannot seek to offset {position}: the partition holds offsets {start_offset}..{durable_end}",
        .topic.display()
    )]
    SeekOutOfRange {
        /// The topic's directory.
        topic: PathBuf,
        /// The reader's partition.
        partition: usize,
        /// The offset asked for.
        position: u64,
        /// The first offset the partition holds.
        start_offset: u64,
        /// One past its last durable offset.
        durable_end: u64,
    },
}

/// Reads the committed records of a topic, partition `i` by subtask `i`.
///
/// [`TopicSource::new`] is bounded: each reader reads its partition up to the end it had when the
/// reader was created, then finishes; records of transactions still open below that end are
/// waited for (the reader is idle until they are decided). [`TopicSource::unbounded`] keeps
/// following the partition and is idle when caught up. Event time is the user's: apply
/// `assign_timestamps_and_watermarks` to the stream.
pub struct TopicSource<T> {
    topic: Topic,
    follow: bool,
    _records: PhantomData<fn() -> T>,
}

impl<T> TopicSource<T> {
    /// A bounded source: every record committed up to each partition's end as of reader creation.
    pub fn new(topic: Topic) -> Self {
        TopicSource { topic, follow: false, _records: PhantomData }
    }

    /// An unbounded source: follows each partition as it grows, never finishing.
    pub fn unbounded(topic: Topic) -> Self {
        TopicSource { topic, follow: true, _records: PhantomData }
    }

    /// The topic read.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

impl<T: Record + Codec> Source<T> for TopicSource<T> {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let partitions = self.topic.partitions();
        if context.parallelism != partitions {
            let topic = self.topic.path().to_path_buf();
            return Err(Box::new(TopicSourceError::Parallelism { topic, partitions, parallelism: context.parallelism }));
        }
        let partition = context.subtask_index;
        let (next, end) = {
            let log = self.topic.lock_partition(partition)?;
            (log.start_offset(), log.end_offset())
        };
        let bound = (!self.follow).then_some(end);
        Ok(Box::new(TopicReader { topic: self.topic.clone(), partition, next, bound, _records: PhantomData }))
    }
}

/// The reader of one partition.
struct TopicReader<T> {
    topic: Topic,
    partition: usize,
    /// The next offset to read: the reader's position.
    next: u64,
    /// Where a bounded reader finishes; `None` when following.
    bound: Option<u64>,
    _records: PhantomData<fn() -> T>,
}

impl<T: Record + Codec> SourceReader<T> for TopicReader<T> {
    fn poll_frame(&mut self, frame: &mut Vec<T>, records_max: usize) -> Result<ReaderStatus, UserError> {
        let bound = self.bound.unwrap_or(u64::MAX);
        if self.next >= bound {
            return Ok(ReaderStatus::Finished);
        }
        let log = self.topic.lock_partition(self.partition)?;
        let mut records = log.read_committed(self.next).map_err(|source| self.topic.log_error(self.partition, source))?;
        // Everything below `end` is decided; a reader caught up with it waits for more.
        let end = records.end_offset().min(bound);
        let mut appended = 0;
        let caught_up = loop {
            if appended == records_max {
                break false;
            }
            match records.next() {
                Some(Ok(record)) if record.offset < end => {
                    frame.push(self.topic.decode(self.partition, record.offset, record.payload)?);
                    self.next = record.offset + 1;
                    appended += 1;
                }
                Some(Err(source)) => return Err(self.topic.log_error(self.partition, source).into()),
                Some(Ok(_)) | None => {
                    debug_assert!(end >= self.next, "a topic reader never goes back");
                    self.next = end;
                    break true;
                }
            }
        };
        Ok(if self.next >= bound {
            ReaderStatus::Finished
        } else if caught_up {
            ReaderStatus::Idle
        } else {
            ReaderStatus::Ready
        })
    }

    fn position(&self) -> Option<u64> {
        Some(self.next)
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        let log = self.topic.lock_partition(self.partition)?;
        let (start_offset, durable_end) = (log.start_offset(), log.durable_end());
        if !(start_offset..=durable_end).contains(&position) {
            let topic = self.topic.path().to_path_buf();
            return Err(Box::new(TopicSourceError::SeekOutOfRange {
                topic,
                partition: self.partition,
                position,
                start_offset,
                durable_end,
            }));
        }
        self.next = position;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tethys_storage::TxnId;

    use super::*;
    use crate::test_dir::TestDir;

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext { subtask_index, parallelism, ..SubtaskContext::for_test(5) }
    }

    /// Polls `frames` times, 5 records at most each; the records and the last status.
    fn read(reader: &mut dyn SourceReader<u64>, frames: usize) -> (Vec<u64>, ReaderStatus) {
        let mut records = Vec::new();
        let mut status = ReaderStatus::Ready;
        for _ in 0..frames {
            let mut frame = Vec::new();
            status = reader.poll_frame(&mut frame, 5).unwrap();
            assert!(frame.len() <= 5);
            records.extend(frame);
        }
        (records, status)
    }

    /// A topic of two partitions; partition `p` holds `p * 1000 + i` for `i` in `0..records`.
    fn filled_topic(dir: &TestDir, records: u64) -> Topic {
        let topic = Topic::create(dir.path(), 2).unwrap();
        for i in 0..records {
            topic.append(0, &i).unwrap();
            topic.append(1, &(1000 + i)).unwrap();
        }
        topic.sync().unwrap();
        topic
    }

    #[test]
    fn topic_reader_replays_from_its_position() {
        let dir = TestDir::new("topic-source-replay");
        let source = TopicSource::<u64>::new(filled_topic(&dir, 100));
        let mut original = source.create_reader(&context(1, 2)).unwrap();
        let (first, _) = read(original.as_mut(), 3);
        assert_eq!(first, (1000..1015).collect::<Vec<u64>>(), "subtask 1 reads partition 1");
        let position = original.position().expect("a topic reader reports a position");
        assert_eq!(position, 15);
        let (continuation, _) = read(original.as_mut(), 2);
        let mut restored = source.create_reader(&context(1, 2)).unwrap();
        restored.seek(position).unwrap();
        assert_eq!(read(restored.as_mut(), 2).0, continuation);
        let error = restored.seek(101).unwrap_err();
        assert!(
            matches!(error.downcast_ref::<TopicSourceError>(), Some(TopicSourceError::SeekOutOfRange { position: 101, .. })),
            "{error}"
        );
    }

    #[test]
    fn bounded_reader_stops_at_the_end_as_of_its_creation() {
        let dir = TestDir::new("topic-source-bounded");
        let topic = filled_topic(&dir, 7);
        let mut reader = TopicSource::<u64>::new(topic.clone()).create_reader(&context(0, 2)).unwrap();
        topic.append(0, &99u64).unwrap();
        topic.sync().unwrap();
        let (records, status) = read(reader.as_mut(), 2);
        assert_eq!(records, (0..7).collect::<Vec<u64>>());
        assert_eq!(status, ReaderStatus::Finished);
        assert_eq!(reader.position(), Some(7));
    }

    #[test]
    fn unbounded_reader_is_idle_when_caught_up_then_reads_what_follows() {
        let dir = TestDir::new("topic-source-unbounded");
        let topic = filled_topic(&dir, 3);
        let mut reader = TopicSource::<u64>::unbounded(topic.clone()).create_reader(&context(0, 2)).unwrap();
        assert_eq!(read(reader.as_mut(), 1), (vec![0, 1, 2], ReaderStatus::Idle));
        topic.append(0, &3u64).unwrap();
        assert_eq!(read(reader.as_mut(), 1), (vec![], ReaderStatus::Idle), "not synced: not visible");
        topic.sync().unwrap();
        assert_eq!(read(reader.as_mut(), 1), (vec![3], ReaderStatus::Idle));
    }

    #[test]
    fn reader_sees_only_committed_transactional_records() {
        let dir = TestDir::new("topic-source-txn");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let mut reader = TopicSource::<u64>::unbounded(topic.clone()).create_reader(&context(0, 1)).unwrap();
        {
            let mut log = topic.lock_partition(0).unwrap();
            log.append(&crate::base::codec::encode(&1u64).unwrap()).unwrap();
            for (txn, values) in [(TxnId(10), [2u64, 3]), (TxnId(11), [90, 91]), (TxnId(12), [4, 5])] {
                log.begin_transaction(txn).unwrap();
                for value in values {
                    log.append_in(txn, &crate::base::codec::encode(&value).unwrap()).unwrap();
                }
            }
            log.commit_transaction(TxnId(10)).unwrap();
            log.abort_transaction(TxnId(11)).unwrap();
        }
        // Transaction 12 is open: what follows its first record waits.
        assert_eq!(read(reader.as_mut(), 2), (vec![1, 2, 3], ReaderStatus::Idle));
        topic.lock_partition(0).unwrap().commit_transaction(TxnId(12)).unwrap();
        assert_eq!(read(reader.as_mut(), 2), (vec![4, 5], ReaderStatus::Idle));
        let mut bounded = TopicSource::<u64>::new(topic).create_reader(&context(0, 1)).unwrap();
        assert_eq!(read(bounded.as_mut(), 3), (vec![1, 2, 3, 4, 5], ReaderStatus::Finished));
    }

    #[test]
    fn bounded_reader_waits_for_a_transaction_open_below_its_end() {
        let dir = TestDir::new("topic-source-wait");
        let topic = Topic::create(dir.path(), 1).unwrap();
        {
            let mut log = topic.lock_partition(0).unwrap();
            log.begin_transaction(TxnId(1)).unwrap();
            log.append_in(TxnId(1), &crate::base::codec::encode(&7u64).unwrap()).unwrap();
            log.sync().unwrap();
        }
        let mut reader = TopicSource::<u64>::new(topic.clone()).create_reader(&context(0, 1)).unwrap();
        assert_eq!(read(reader.as_mut(), 1), (vec![], ReaderStatus::Idle));
        topic.lock_partition(0).unwrap().commit_transaction(TxnId(1)).unwrap();
        assert_eq!(read(reader.as_mut(), 1), (vec![7], ReaderStatus::Finished));
    }

    #[test]
    fn parallelism_other_than_the_partition_count_is_refused_naming_both() {
        let dir = TestDir::new("topic-source-parallelism");
        let source = TopicSource::<u64>::new(Topic::create(dir.path(), 3).unwrap());
        let Err(error) = source.create_reader(&context(0, 2)) else {
            panic!("a reader for parallelism 2 over 3 partitions was created");
        };
        assert!(matches!(
            error.downcast_ref::<TopicSourceError>(),
            Some(TopicSourceError::Parallelism { partitions: 3, parallelism: 2, .. })
        ));
        let message = error.to_string();
        assert!(message.contains(&source.topic().path().display().to_string()) && message.contains("parallelism 3"), "{message}");
    }
}
