//! Test support: checks that an operator's keyed state, moved key group by key group from one
//! subtask to two, gives the same output as one subtask that never moved.

use super::{ChainFailure, FrameSink, OperatorChain};
use crate::frame::{AnyFrame, Record};
use crate::key_group::subtask_for_key_group;

pub(crate) const MAX_PARALLELISM: usize = 128;

/// Collects the records an operator emits.
pub(crate) struct Collected<O>(pub Vec<O>);

impl<O: Record> FrameSink for Collected<O> {
    fn push(&mut self, frame: AnyFrame) -> Result<(), ChainFailure> {
        self.0.extend(frame.into_typed::<O>());
        Ok(())
    }
    fn push_side(&mut self, _output: usize, _frame: AnyFrame) -> Result<(), ChainFailure> {
        Ok(())
    }
    fn watermark(&mut self, _watermark: i64) -> Result<(), ChainFailure> {
        Ok(())
    }
    fn idleness(&mut self, _idle: bool) -> Result<(), ChainFailure> {
        Ok(())
    }
}

/// Runs `frames` (each with the watermark after it) through one subtask, and through one subtask
/// for the first half whose key groups then move to two subtasks for the rest; asserts both give
/// the same records. `make(subtask, parallelism)` builds the operator's chain; `key_group` gives a
/// record's key group.
pub(crate) fn assert_rescale_keeps_results<T: Record + Clone, O: Record + Ord + std::fmt::Debug>(
    make: impl Fn(usize, usize) -> OperatorChain,
    frames: &[(Vec<T>, i64)],
    key_group: impl Fn(&T) -> usize,
) {
    let feed = |chain: &mut OperatorChain, frame: Vec<T>, watermark: i64, out: &mut Collected<O>| {
        chain.process(AnyFrame::new(frame), out).unwrap();
        chain.watermark(watermark, out).unwrap();
    };
    let (mut reference, mut expected) = (make(0, 1), Collected(Vec::new()));
    for (frame, watermark) in frames {
        feed(&mut reference, frame.clone(), *watermark, &mut expected);
    }
    reference.watermark(i64::MAX, &mut expected).unwrap();

    let (first, second) = frames.split_at(frames.len() / 2);
    let (mut before, mut rescaled) = (make(0, 1), Collected(Vec::new()));
    for (frame, watermark) in first {
        feed(&mut before, frame.clone(), *watermark, &mut rescaled);
    }
    let mut after = [(make(0, 2), Collected(Vec::new())), (make(1, 2), Collected(Vec::new()))];
    let state = before.keyed_state(0).expect("the operator has keyed state");
    for group in 0..MAX_PARALLELISM {
        let owner = subtask_for_key_group(group, MAX_PARALLELISM, 2);
        after[owner].0.keyed_state(0).unwrap().restore_key_group(state.snapshot_key_group(group).unwrap()).unwrap();
    }
    for (frame, watermark) in second {
        for (subtask, (chain, out)) in after.iter_mut().enumerate() {
            let mine = frame.iter().filter(|r| subtask_for_key_group(key_group(r), MAX_PARALLELISM, 2) == subtask).cloned().collect();
            feed(chain, mine, *watermark, out);
        }
    }
    for (mut chain, mut out) in after {
        chain.watermark(i64::MAX, &mut out).unwrap();
        rescaled.0.extend(out.0);
    }
    let (mut expected, mut rescaled) = (expected.0, rescaled.0);
    expected.sort();
    rescaled.sort();
    assert_eq!(rescaled, expected, "output after moving key groups differs");
}
