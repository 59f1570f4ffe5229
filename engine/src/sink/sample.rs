//! A sink that counts records and keeps a small sample of recent ones, for live views (the demo,
//! later the console's sampled results) without storing the stream.
//!
//! It samples the last record of each frame into a ring of `capacity` records: one lock per frame,
//! not per record, so it can sit behind a fast job.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Sink, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Counts records and keeps the most recent samples.
pub struct SampleSink<T> {
    records: Arc<AtomicU64>,
    samples: Arc<Mutex<VecDeque<T>>>,
    capacity: usize,
}

impl<T> Clone for SampleSink<T> {
    fn clone(&self) -> Self {
        SampleSink { records: Arc::clone(&self.records), samples: Arc::clone(&self.samples), capacity: self.capacity }
    }
}

impl<T: Clone> SampleSink<T> {
    /// A sink keeping up to `capacity` samples.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "a sample sink keeps at least one sample");
        SampleSink { records: Arc::new(AtomicU64::new(0)), samples: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))), capacity }
    }

    /// Records received so far by all subtasks.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// The current samples, oldest first.
    pub fn samples(&self) -> Vec<T> {
        self.samples.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}

impl<T: Record + Clone> Sink<T> for SampleSink<T> {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(self.clone()))
    }
}

impl<T: Record + Clone> SinkWriter<T> for SampleSink<T> {
    fn write_frame(&mut self, mut frame: Vec<T>) -> Result<(), UserError> {
        self.records.fetch_add(frame.len() as u64, Ordering::Relaxed);
        if let Some(last) = frame.pop() {
            let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() == self.capacity {
                samples.pop_front();
            }
            samples.push_back(last);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_record_of_recent_frames_and_counts_all() {
        let sink = SampleSink::<u32>::new(2);
        let mut writer = sink.clone();
        for frame in [vec![1, 2], vec![3], vec![4, 5, 6]] {
            writer.write_frame(frame).unwrap();
        }
        assert_eq!(sink.records(), 6);
        assert_eq!(sink.samples(), vec![3, 6]);
    }
}
