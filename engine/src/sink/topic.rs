//! A sink writing records to an embedded [`Topic`], exactly once (in transactions committed in two
//! phases) or at least once (plain appends).
//!
//! The writer of subtask `i` writes partition `i mod partitions`. Exactly once, it begins a
//! transaction at its first record after a pre-commit, syncs it at `pre_commit` and hands its
//! partition and id to the committer, which commits it when the checkpoint completes; readers see
//! nothing of it before (see the contract in [`sink`](super)).
//!
//! **Transaction ids** are `tag << 48 | first_offset`: `tag` is the sink's tag on this topic (16
//! bits, given to the sink's name once and recorded in the topic's metadata, never reused), and
//! `first_offset` the offset of the transaction's first record in its partition (48 bits). A
//! transaction is begun and its first record appended under one lock of the partition, so no two
//! transactions of a partition ever share a first offset: not two writers of one sink, not a
//! writer of a restarted job beside a transaction its predecessor left open, not across crashes
//! (a committable names a transaction whose first record was synced, and a durable offset is
//! never given again). So an id never needs to be known before the transaction exists, and
//! committing a restored committable can never commit a newer transaction by mistake. The tag
//! lets the committer abort the open transactions of its own sink and no other sink's.

use std::marker::PhantomData;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tethys_storage::{LogError, TxnId};

use super::{Committable, Sink, SinkCommitter, SinkWriter};
use crate::base::{Codec, SubtaskContext, UserError};
use crate::frame::Record;
use crate::topic::{Topic, TopicError};

/// Bits of a transaction id holding the offset of its first record; the sink's tag is above them.
const TXN_OFFSET_BITS: u32 = 48;

/// Why a topic sink could not write or commit.
#[derive(Debug, thiserror::Error)]
pub enum TopicSinkError {
    /// A transaction would start at an offset its id cannot hold.
    #[error(
        "topic {} partition {partition}: offset {offset} is beyond the 2^48 offsets a transaction id can name",
        .topic.display()
    )]
    OffsetBeyondTxnIds {
        /// The topic's directory.
        topic: PathBuf,
        /// The partition.
        partition: usize,
        /// The offset the transaction would start at.
        offset: u64,
    },
    /// A committable that is not one this sink encoded.
    #[error("topic sink {sink:?} on {}: malformed committable of {bytes} bytes: {reason}", .topic.display())]
    MalformedCommittable {
        /// The topic's directory.
        topic: PathBuf,
        /// The sink's name.
        sink: String,
        /// The committable's length.
        bytes: usize,
        /// What is wrong.
        reason: String,
    },
    /// A committable of a transaction another sink (another tag) began.
    #[error(
        "topic sink {sink:?} on {}: transaction {txn} of partition {partition} belongs to the sink \
         with tag {found}, not to this one (tag {expected})",
        .topic.display()
    )]
    ForeignCommittable {
        /// The topic's directory.
        topic: PathBuf,
        /// The sink's name.
        sink: String,
        /// The partition.
        partition: usize,
        /// The transaction id.
        txn: u64,
        /// The tag in the transaction id.
        found: u16,
        /// This sink's tag.
        expected: u16,
    },
}

/// How a topic sink delivers records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Transactions committed in two phases.
    ExactlyOnce,
    /// Plain appends, synced at each pre-commit and at the end.
    AtLeastOnce,
}

/// Writes records to a topic; subtask `i` writes partition `i mod partitions`.
///
/// [`TopicSink::exactly_once`] writes in transactions that become visible when the checkpoint
/// after them completes (or the job finishes); readers of the topic see each record once even
/// when the job restarts. Two exactly-once sinks writing one topic need distinct names
/// ([`TopicSink::with_name`]): a restarted sink aborts every open transaction of its name.
/// [`TopicSink::at_least_once`] appends plainly: records are visible once synced (at each
/// checkpoint and at the end), and a restarted job writes again what followed its checkpoint.
pub struct TopicSink<T> {
    topic: Topic,
    name: String,
    delivery: Delivery,
    _records: PhantomData<fn(T)>,
}

impl<T> TopicSink<T> {
    /// An exactly-once sink, named after the topic's directory.
    pub fn exactly_once(topic: Topic) -> Self {
        TopicSink::with_delivery(topic, Delivery::ExactlyOnce)
    }

    /// An at-least-once sink: plain appends, no transactions, no committer.
    pub fn at_least_once(topic: Topic) -> Self {
        TopicSink::with_delivery(topic, Delivery::AtLeastOnce)
    }

    fn with_delivery(topic: Topic, delivery: Delivery) -> Self {
        let name = topic.path().file_name().map_or_else(|| "topic-sink".to_string(), |name| name.to_string_lossy().into_owned());
        TopicSink { topic, name, delivery, _records: PhantomData }
    }

    /// Names the sink: its transactions are told from those of other sinks of the topic by name,
    /// so the name must stay the same across restarts of the job and differ from every other
    /// exactly-once sink writing this topic.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic written.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

impl<T: Record + Codec> Sink<T> for TopicSink<T> {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        let tag = match self.delivery {
            Delivery::ExactlyOnce => Some(self.topic.sink_tag(&self.name)?),
            Delivery::AtLeastOnce => None,
        };
        Ok(Box::new(TopicWriter {
            topic: self.topic.clone(),
            partition: context.subtask_index % self.topic.partitions(),
            tag,
            txn: None,
            last_checkpoint: None,
            encoded: Vec::new(),
            ends: Vec::new(),
            _records: PhantomData,
        }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        Ok(match self.delivery {
            Delivery::ExactlyOnce => {
                let tag = self.topic.sink_tag(&self.name)?;
                Some(Box::new(TopicCommitter { topic: self.topic.clone(), name: self.name.clone(), tag }))
            }
            Delivery::AtLeastOnce => None,
        })
    }
}

/// What a committable of a topic sink holds.
#[derive(Debug, Serialize, Deserialize)]
struct TopicCommittable {
    partition: usize,
    txn: u64,
}

/// The writer of one subtask.
struct TopicWriter<T> {
    topic: Topic,
    partition: usize,
    /// The sink's tag when exactly once; `None`: at least once.
    tag: Option<u16>,
    /// The transaction begun since the last pre-commit.
    txn: Option<TxnId>,
    last_checkpoint: Option<u64>,
    /// The current frame's encoded records, back to back, and where each ends: reused per frame.
    encoded: Vec<u8>,
    ends: Vec<usize>,
    _records: PhantomData<fn(T)>,
}

impl<T> TopicWriter<T> {
    /// The id of a transaction of this writer's sink whose first record gets `offset`.
    fn txn_id(&self, tag: u16, offset: u64) -> Result<TxnId, TopicSinkError> {
        if offset >= 1 << TXN_OFFSET_BITS {
            return Err(TopicSinkError::OffsetBeyondTxnIds { topic: self.topic.path().into(), partition: self.partition, offset });
        }
        Ok(TxnId(u64::from(tag) << TXN_OFFSET_BITS | offset))
    }
}

impl<T: Record + Codec> SinkWriter<T> for TopicWriter<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        if frame.is_empty() {
            return Ok(());
        }
        self.encoded.clear();
        self.ends.clear();
        for record in &frame {
            record.encode_into(&mut self.encoded).map_err(|source| TopicError::Encode {
                topic: self.topic.path().into(),
                partition: self.partition,
                source,
            })?;
            self.ends.push(self.encoded.len());
        }
        let payloads = self.ends.iter().scan(0, |start, &end| Some(&self.encoded[std::mem::replace(start, end)..end]));
        let mut log = self.topic.lock_partition(self.partition)?;
        let log_error = |source| self.topic.log_error(self.partition, source);
        let Some(tag) = self.tag else {
            for payload in payloads {
                log.append(payload).map_err(log_error)?;
            }
            return Ok(());
        };
        let (txn, begun) = match self.txn {
            Some(txn) => (txn, false),
            None => {
                let txn = self.txn_id(tag, log.end_offset())?;
                // Never open already: an id names its first record's offset, appended just below.
                log.begin_transaction(txn).map_err(log_error)?;
                (txn, true)
            }
        };
        for (index, payload) in payloads.enumerate() {
            if let Err(error) = log.append_in(txn, payload) {
                if begun && index == 0 {
                    // A transaction without records would keep its id, which names the offset the
                    // next one starts at: end it. The append's error is the one to report.
                    let _ = log.abort_transaction(txn);
                }
                return Err(log_error(error).into());
            }
        }
        self.txn = Some(txn);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if self.tag.is_none() {
            self.topic.lock_partition(self.partition)?.sync().map_err(|source| self.topic.log_error(self.partition, source))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Committable>, UserError> {
        if let Some(last) = self.last_checkpoint {
            assert!(checkpoint > last, "pre-commit for checkpoint {checkpoint} after checkpoint {last}: checkpoint ids only grow");
        }
        self.last_checkpoint = Some(checkpoint);
        if self.tag.is_some() && self.txn.is_none() {
            return Ok(None);
        }
        self.topic.lock_partition(self.partition)?.sync().map_err(|source| self.topic.log_error(self.partition, source))?;
        Ok(self.txn.take().map(|txn| {
            let committable = TopicCommittable { partition: self.partition, txn: txn.0 };
            serde_json::to_vec(&committable).expect("a committable is plain data")
        }))
    }
}

/// The committer of an exactly-once topic sink.
struct TopicCommitter {
    topic: Topic,
    name: String,
    tag: u16,
}

impl TopicCommitter {
    fn decode(&self, committable: &[u8]) -> Result<TopicCommittable, TopicSinkError> {
        let decoded: TopicCommittable = serde_json::from_slice(committable).map_err(|error| TopicSinkError::MalformedCommittable {
            topic: self.topic.path().into(),
            sink: self.name.clone(),
            bytes: committable.len(),
            reason: error.to_string(),
        })?;
        let found = (decoded.txn >> TXN_OFFSET_BITS) as u16;
        if found != self.tag {
            return Err(TopicSinkError::ForeignCommittable {
                topic: self.topic.path().into(),
                sink: self.name.clone(),
                partition: decoded.partition,
                txn: decoded.txn,
                found,
                expected: self.tag,
            });
        }
        Ok(decoded)
    }
}

impl SinkCommitter for TopicCommitter {
    fn commit(&mut self, committables: &[Committable]) -> Result<(), UserError> {
        for committable in committables {
            let TopicCommittable { partition, txn } = self.decode(committable)?;
            let mut log = self.topic.lock_partition(partition)?;
            match log.commit_transaction(TxnId(txn)) {
                // Not open: decided already, by this committer before a failure.
                Ok(_) | Err(LogError::TxnNotOpen { .. }) => {}
                Err(source) => return Err(self.topic.log_error(partition, source).into()),
            }
        }
        Ok(())
    }

    fn abort_uncommitted(&mut self) -> Result<(), UserError> {
        for partition in 0..self.topic.partitions() {
            let mut log = self.topic.lock_partition(partition)?;
            for txn in log.open_transactions() {
                if txn.0 >> TXN_OFFSET_BITS == u64::from(self.tag) {
                    log.abort_transaction(txn).map_err(|source| self.topic.log_error(partition, source))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FINAL_CHECKPOINT;
    use crate::test_dir::TestDir;

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext { subtask_index, parallelism, ..SubtaskContext::for_test(5) }
    }

    fn writer(sink: &TopicSink<u64>, subtask_index: usize) -> Box<dyn SinkWriter<u64>> {
        sink.create_writer(&context(subtask_index, 2)).unwrap()
    }

    fn committer(sink: &TopicSink<u64>) -> Box<dyn SinkCommitter> {
        sink.create_committer().unwrap().expect("an exactly-once sink has a committer")
    }

    /// The values readers of `partition` see now.
    fn visible(topic: &Topic, partition: usize) -> Vec<u64> {
        topic.read_committed::<u64>(partition, 0).unwrap().into_iter().map(|(_, value)| value).collect()
    }

    /// Every record of every partition is decided: nothing holds readers back.
    fn assert_all_decided(topic: &Topic) {
        for partition in 0..topic.partitions() {
            let log = topic.lock_partition(partition).unwrap();
            assert_eq!(log.open_transactions(), vec![], "partition {partition}");
            assert_eq!(log.last_stable_offset(), log.end_offset(), "partition {partition}");
        }
    }

    #[test]
    fn exactly_once_records_become_visible_per_committed_pre_commit() {
        let dir = TestDir::new("topic-sink-commit");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let sink = TopicSink::exactly_once(topic.clone());
        let mut writer = writer(&sink, 0);
        writer.write_frame(vec![1, 2]).unwrap();
        let first = writer.pre_commit(1).unwrap().expect("records were written");
        writer.write_frame(vec![3]).unwrap();
        let second = writer.pre_commit(2).unwrap().expect("records were written");
        assert_eq!(writer.pre_commit(3).unwrap(), None, "nothing written since the last pre-commit");
        assert_eq!(visible(&topic, 0), Vec::<u64>::new(), "pre-committed is not visible");

        let mut committer = committer(&sink);
        committer.commit(std::slice::from_ref(&first)).unwrap();
        assert_eq!(visible(&topic, 0), vec![1, 2]);
        committer.commit(std::slice::from_ref(&first)).unwrap();
        assert_eq!(visible(&topic, 0), vec![1, 2], "committing again changes nothing");
        committer.commit(&[first, second]).unwrap();
        assert_eq!(visible(&topic, 0), vec![1, 2, 3]);
        assert_all_decided(&topic);
    }

    #[test]
    fn abort_uncommitted_discards_what_was_not_committed() {
        let dir = TestDir::new("topic-sink-abort");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let sink = TopicSink::exactly_once(topic.clone());
        let mut writer = writer(&sink, 0);
        writer.write_frame(vec![1]).unwrap();
        let first = writer.pre_commit(1).unwrap().unwrap();
        writer.write_frame(vec![2]).unwrap();
        writer.pre_commit(2).unwrap().unwrap();
        writer.write_frame(vec![3]).unwrap();

        let mut committer = committer(&sink);
        committer.commit(&[first]).unwrap();
        committer.abort_uncommitted().unwrap();
        assert_eq!(visible(&topic, 0), vec![1]);
        assert_all_decided(&topic);
    }

    /// What a job restoring from a checkpoint does before its writers start: reopen the topic
    /// (after a crash), commit the checkpoint's committables (again), abort the rest.
    fn restore(dir: &TestDir, checkpoint: &[Committable]) -> (TopicSink<u64>, Box<dyn SinkCommitter>) {
        let sink = TopicSink::exactly_once(Topic::open(dir.path()).unwrap());
        let mut committer = committer(&sink);
        committer.commit(checkpoint).unwrap();
        committer.abort_uncommitted().unwrap();
        (sink, committer)
    }

    #[test]
    fn restarts_after_crashes_give_each_record_once() {
        let dir = TestDir::new("topic-sink-restart");
        let checkpoint_1 = {
            let sink = TopicSink::exactly_once(Topic::create(dir.path(), 2).unwrap());
            let mut writer = writer(&sink, 1);
            writer.write_frame(vec![1, 2]).unwrap();
            let first = writer.pre_commit(1).unwrap().unwrap();
            writer.write_frame(vec![3]).unwrap();
            // Checkpoint 2 never completes: its transaction stays prepared.
            writer.pre_commit(2).unwrap().unwrap();
            writer.write_frame(vec![4]).unwrap();
            first
            // The crash: writer and topic dropped without commit or abort.
        };
        {
            let topic = Topic::open(dir.path()).unwrap();
            // Both prepared transactions survive; the last one too if its record reached the file.
            assert!(topic.lock_partition(1).unwrap().open_transactions().len() >= 2);
        }

        // Restored from checkpoint 1, the job fails again before its next checkpoint completes,
        // leaving a transaction open beside the one checkpoint 1 names.
        {
            let (sink, _committer) = restore(&dir, std::slice::from_ref(&checkpoint_1));
            writer(&sink, 1).write_frame(vec![3]).unwrap();
        }
        // Restored from checkpoint 1 again: committing its committable once more must not commit
        // the failed run's transaction.
        let (sink, mut committer) = restore(&dir, std::slice::from_ref(&checkpoint_1));
        let mut writer = writer(&sink, 1);
        writer.write_frame(vec![3, 4]).unwrap();
        writer.finish().unwrap();
        let last = writer.pre_commit(FINAL_CHECKPOINT).unwrap().unwrap();
        committer.commit(&[last]).unwrap();

        let topic = sink.topic();
        assert_eq!(visible(topic, 1), vec![1, 2, 3, 4]);
        assert_eq!(visible(topic, 0), Vec::<u64>::new());
        assert_all_decided(topic);
    }

    #[test]
    fn a_new_writer_beside_a_transaction_left_open_neither_fails_nor_shares_it() {
        let dir = TestDir::new("topic-sink-beside");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let sink = TopicSink::exactly_once(topic.clone());
        let mut old = writer(&sink, 0);
        old.write_frame(vec![1]).unwrap();
        drop(old); // failed without pre-commit: its transaction is still open
        let mut new = writer(&sink, 0);
        new.write_frame(vec![2]).unwrap();
        let committable = new.pre_commit(1).unwrap().unwrap();
        let mut committer = committer(&sink);
        committer.commit(&[committable]).unwrap();
        assert_eq!(visible(&topic, 0), Vec::<u64>::new(), "the open transaction holds readers back");
        committer.abort_uncommitted().unwrap();
        assert_eq!(visible(&topic, 0), vec![2]);
    }

    #[test]
    fn writers_of_two_subtasks_on_one_partition_commit_independently() {
        let dir = TestDir::new("topic-sink-shared-partition");
        let topic = Topic::create(dir.path(), 2).unwrap();
        let sink = TopicSink::exactly_once(topic.clone());
        let (mut zero, mut two) = (writer(&sink, 0), writer(&sink, 2));
        zero.write_frame(vec![1]).unwrap();
        two.write_frame(vec![20]).unwrap();
        zero.write_frame(vec![2]).unwrap();
        let (from_zero, from_two) = (zero.pre_commit(1).unwrap().unwrap(), two.pre_commit(1).unwrap().unwrap());
        assert_ne!(from_zero, from_two, "one transaction per writer");
        let mut committer = committer(&sink);
        committer.commit(&[from_two]).unwrap();
        committer.abort_uncommitted().unwrap();
        assert_eq!(visible(&topic, 0), vec![20]);
    }

    #[test]
    fn two_sinks_on_one_topic_do_not_abort_each_other() {
        let dir = TestDir::new("topic-sink-two");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let (left, right) =
            (TopicSink::exactly_once(topic.clone()).with_name("left"), TopicSink::exactly_once(topic.clone()).with_name("right"));
        let (mut left_writer, mut right_writer) = (writer(&left, 0), writer(&right, 0));
        left_writer.write_frame(vec![1]).unwrap();
        right_writer.write_frame(vec![2]).unwrap();
        let (left_committable, right_committable) =
            (left_writer.pre_commit(1).unwrap().unwrap(), right_writer.pre_commit(1).unwrap().unwrap());
        let (mut left_committer, mut right_committer) = (committer(&left), committer(&right));
        left_committer.abort_uncommitted().unwrap();
        right_committer.commit(&[right_committable]).unwrap();
        assert_eq!(visible(&topic, 0), vec![2]);
        let error = right_committer.commit(&[left_committable]).unwrap_err();
        assert!(matches!(error.downcast_ref::<TopicSinkError>(), Some(TopicSinkError::ForeignCommittable { .. })), "{error}");
    }

    #[test]
    fn a_refused_first_record_leaves_no_transaction_behind() {
        let dir = TestDir::new("topic-sink-refused");
        let topic = Topic::create(dir.path(), 1).unwrap();
        let sink = TopicSink::<Vec<u8>>::exactly_once(topic.clone());
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        let too_large = vec![0u8; tethys_storage::LogConfig::default().record_bytes_max as usize + 1];
        let error = writer.write_frame(vec![too_large]).unwrap_err();
        assert!(error.to_string().contains("record_bytes_max"), "{error}");
        assert_eq!(topic.lock_partition(0).unwrap().open_transactions(), vec![]);
        writer.write_frame(vec![vec![7]]).unwrap();
        let committable = writer.pre_commit(1).unwrap().unwrap();
        sink.create_committer().unwrap().unwrap().commit(&[committable]).unwrap();
        assert_eq!(topic.read_committed::<Vec<u8>>(0, 0).unwrap().into_iter().map(|(_, value)| value).collect::<Vec<_>>(), vec![vec![7]]);
    }

    #[test]
    fn a_malformed_committable_is_an_error_naming_the_sink() {
        let dir = TestDir::new("topic-sink-malformed");
        let sink = TopicSink::<u64>::exactly_once(Topic::create(dir.path(), 1).unwrap()).with_name("totals");
        let error = committer(&sink).commit(&[b"not json".to_vec()]).unwrap_err();
        assert!(matches!(error.downcast_ref::<TopicSinkError>(), Some(TopicSinkError::MalformedCommittable { bytes: 8, .. })), "{error}");
        assert!(error.to_string().contains("totals"), "{error}");
    }

    #[test]
    fn at_least_once_records_are_visible_once_synced_and_there_is_no_committer() {
        let dir = TestDir::new("topic-sink-at-least-once");
        let topic = Topic::create(dir.path(), 2).unwrap();
        let sink = TopicSink::at_least_once(topic.clone());
        assert!(sink.create_committer().unwrap().is_none());
        let (mut zero, mut one) = (writer(&sink, 0), writer(&sink, 1));
        zero.write_frame(vec![1, 2]).unwrap();
        one.write_frame(vec![3]).unwrap();
        assert_eq!(zero.pre_commit(1).unwrap(), None);
        assert_eq!(visible(&topic, 0), vec![1, 2]);
        assert_eq!(visible(&topic, 1), Vec::<u64>::new(), "not synced yet");
        one.finish().unwrap();
        assert_eq!(visible(&topic, 1), vec![3]);
    }
}
