//! A sink that collects every record in memory, for tests and sampled results.
//!
//! [`CollectSink::new`] is at least once: a record is visible in [`CollectSink::records`] when
//! written. [`CollectSink::exactly_once`] follows the two-phase-commit contract (see
//! [`sink`](super)) with the shared vector as the external system, so tests of exactly-once jobs
//! can read what a committed job made visible: each writer stages its records under an id per
//! pre-commit, the committable names that id, committing moves the staged records to the visible
//! ones (once: an id committed is gone from the staging area), and aborting drops what is staged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Committable, Sink, SinkCommitter, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// A committable of an exactly-once collect sink that is not 8 bytes (a staging id).
#[derive(Debug, thiserror::Error)]
#[error("collect sink: malformed committable of {bytes} bytes (expected an 8-byte staging id)")]
pub struct MalformedCollectCommittable {
    /// The committable's length.
    pub bytes: usize,
}

/// Collects records into a shared vector; read it with [`CollectSink::records`] after the job.
pub struct CollectSink<T> {
    shared: Arc<Mutex<Collected<T>>>,
    exactly_once: bool,
}

/// What the clones of one sink share.
struct Collected<T> {
    /// Records written (at least once) or committed (exactly once), in arrival order.
    visible: Vec<T>,
    /// Records written but not committed, by staging id (exactly once only).
    staged: BTreeMap<u64, Vec<T>>,
    /// The next staging id handed to a writer.
    next_staging_id: u64,
}

impl<T> Clone for CollectSink<T> {
    fn clone(&self) -> Self {
        CollectSink { shared: Arc::clone(&self.shared), exactly_once: self.exactly_once }
    }
}

impl<T> Default for CollectSink<T> {
    fn default() -> Self {
        let shared = Collected { visible: Vec::new(), staged: BTreeMap::new(), next_staging_id: 0 };
        CollectSink { shared: Arc::new(Mutex::new(shared)), exactly_once: false }
    }
}

impl<T> CollectSink<T> {
    fn lock(&self) -> MutexGuard<'_, Collected<T>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: Clone> CollectSink<T> {
    /// A new, empty, at-least-once sink. Keep a clone to read the records after the job.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty sink whose records become visible when committed (see the module
    /// documentation). Keep a clone to read the records after the job.
    pub fn exactly_once() -> Self {
        CollectSink { exactly_once: true, ..Self::default() }
    }

    /// A copy of the records visible so far (collected, or committed when exactly once), in
    /// arrival order (subtasks interleaved).
    pub fn records(&self) -> Vec<T> {
        self.lock().visible.clone()
    }
}

impl<T: Record + Clone> Sink<T> for CollectSink<T> {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(CollectWriter { sink: self.clone(), staging_id: None }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        Ok(self.exactly_once.then(|| Box::new(CollectCommitter { sink: self.clone() }) as Box<dyn SinkCommitter>))
    }
}

/// The writer of one subtask.
struct CollectWriter<T> {
    sink: CollectSink<T>,
    /// Exactly once: the id the records written since the last pre-commit are staged under.
    staging_id: Option<u64>,
}

impl<T: Record> SinkWriter<T> for CollectWriter<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        let mut shared = self.sink.lock();
        if !self.sink.exactly_once {
            shared.visible.extend(frame);
            return Ok(());
        }
        let id = *self.staging_id.get_or_insert_with(|| {
            let id = shared.next_staging_id;
            shared.next_staging_id += 1;
            id
        });
        shared.staged.entry(id).or_default().extend(frame);
        Ok(())
    }

    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Option<Committable>, UserError> {
        Ok(self.staging_id.take().map(|id| id.to_le_bytes().to_vec()))
    }
}

/// The committer of an exactly-once collect sink.
struct CollectCommitter<T> {
    sink: CollectSink<T>,
}

impl<T: Record> SinkCommitter for CollectCommitter<T> {
    fn commit(&mut self, committables: &[Committable]) -> Result<(), UserError> {
        let mut shared = self.sink.lock();
        for committable in committables {
            let id = <[u8; 8]>::try_from(committable.as_slice()).map_err(|_| MalformedCollectCommittable { bytes: committable.len() })?;
            // Absent: committed already (or aborted, which the contract never commits after).
            if let Some(records) = shared.staged.remove(&u64::from_le_bytes(id)) {
                shared.visible.extend(records);
            }
        }
        Ok(())
    }

    fn abort_uncommitted(&mut self) -> Result<(), UserError> {
        self.sink.lock().staged.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::FINAL_CHECKPOINT;

    fn writer(sink: &CollectSink<u32>) -> Box<dyn SinkWriter<u32>> {
        sink.create_writer(&SubtaskContext::for_test(5)).unwrap()
    }

    #[test]
    fn at_least_once_records_are_visible_when_written() {
        let sink = CollectSink::new();
        assert!(sink.create_committer().unwrap().is_none());
        let mut writer = writer(&sink);
        writer.write_frame(vec![1, 2]).unwrap();
        assert_eq!(sink.records(), vec![1, 2]);
    }

    #[test]
    fn exactly_once_records_are_visible_once_committed_and_only_once() {
        let sink = CollectSink::exactly_once();
        let mut committer = sink.create_committer().unwrap().expect("a committer");
        let mut writer = writer(&sink);
        writer.write_frame(vec![1, 2]).unwrap();
        let first = writer.pre_commit(1).unwrap().expect("records were written");
        writer.write_frame(vec![3]).unwrap();
        let second = writer.pre_commit(2).unwrap().expect("records were written");
        assert_eq!(writer.pre_commit(3).unwrap(), None);
        assert_eq!(sink.records(), Vec::<u32>::new());
        committer.commit(std::slice::from_ref(&first)).unwrap();
        assert_eq!(sink.records(), vec![1, 2]);
        committer.commit(&[first, second]).unwrap();
        assert_eq!(sink.records(), vec![1, 2, 3], "committing again changes nothing");
    }

    #[test]
    fn exactly_once_restart_gives_each_record_once() {
        let sink = CollectSink::exactly_once();
        let mut old = writer(&sink);
        old.write_frame(vec![1]).unwrap();
        let checkpoint_1 = old.pre_commit(1).unwrap().unwrap();
        old.write_frame(vec![2]).unwrap();
        old.pre_commit(2).unwrap().unwrap(); // checkpoint 2 never completes
        old.write_frame(vec![3]).unwrap();
        drop(old);

        let mut committer = sink.create_committer().unwrap().unwrap();
        committer.commit(&[checkpoint_1]).unwrap();
        committer.abort_uncommitted().unwrap();
        let mut new = writer(&sink);
        new.write_frame(vec![2, 3]).unwrap();
        new.finish().unwrap();
        let last = new.pre_commit(FINAL_CHECKPOINT).unwrap().unwrap();
        committer.commit(&[last]).unwrap();
        assert_eq!(sink.records(), vec![1, 2, 3]);
    }

    #[test]
    fn a_malformed_committable_is_an_error() {
        let sink = CollectSink::<u32>::exactly_once();
        let error = sink.create_committer().unwrap().unwrap().commit(&[vec![1, 2, 3]]).unwrap_err();
        assert!(matches!(error.downcast_ref::<MalformedCollectCommittable>(), Some(MalformedCollectCommittable { bytes: 3 })));
    }
}
