//! Stateless record-at-a-time operators: map, try_map, filter, flat_map, union (identity), fan-out
//! and the sink adapter. Each works on a whole frame: map builds the output frame in one pass, filter keeps
//! the input frame's allocation and drops records in place.

use crate::base::UserError;

use super::{FrameOperator, Output};
use crate::frame::Record;
use crate::sink::SinkWriter;

/// Applies a function to every record.
pub(crate) struct MapOperator<F>(pub F);

impl<In: Record, Out: Record, F: FnMut(In) -> Out + Send + 'static> FrameOperator<In, Out> for MapOperator<F> {
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        out.emit_frame(frame.into_iter().map(&mut self.0).collect());
        Ok(())
    }
}

/// Applies a fallible function to every record; the first error fails the job.
pub(crate) struct TryMapOperator<F>(pub F);

impl<In, Out, E, F> FrameOperator<In, Out> for TryMapOperator<F>
where
    In: Record,
    Out: Record,
    E: Into<UserError>,
    F: FnMut(In) -> Result<Out, E> + Send + 'static,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        let mapped: Result<Vec<Out>, E> = frame.into_iter().map(&mut self.0).collect();
        out.emit_frame(mapped.map_err(Into::into)?);
        Ok(())
    }
}

/// Keeps the records for which a predicate holds.
pub(crate) struct FilterOperator<F>(pub F);

impl<T: Record, F: FnMut(&T) -> bool + Send + 'static> FrameOperator<T, T> for FilterOperator<F> {
    fn process(&mut self, mut frame: Vec<T>, out: &mut Output<'_, T>) -> Result<(), UserError> {
        frame.retain(|record| (self.0)(record));
        out.emit_frame(frame);
        Ok(())
    }
}

/// Maps every record to zero or more records. It stops when its output blocks and keeps the rest
/// of the input frame and of the current record's iterator, so a record that explodes into many
/// never queues more than one frame beyond the output's credits.
pub(crate) struct FlatMapOperator<In, I: IntoIterator, F> {
    function: F,
    /// Records of the input frame not yet mapped.
    input: std::vec::IntoIter<In>,
    /// What the current record maps to, not yet all emitted.
    current: Option<I::IntoIter>,
}

impl<In, I: IntoIterator, F> FlatMapOperator<In, I, F> {
    pub(crate) fn new(function: F) -> Self {
        FlatMapOperator { function, input: Vec::new().into_iter(), current: None }
    }
}

impl<In, Out, I, F> FlatMapOperator<In, I, F>
where
    I: IntoIterator<Item = Out>,
    F: FnMut(In) -> I,
    Out: Record,
{
    /// Emits until the input is used up or the output blocks. The current record's iterator stays
    /// on the stack and moves into `self` only when the output blocks (records can be large).
    fn drain(&mut self, out: &mut Output<'_, Out>) {
        if let Some(mut current) = self.current.take() {
            if !emit_until_blocked(&mut current, out) {
                self.current = Some(current);
                return;
            }
        }
        for record in self.input.by_ref() {
            let mut produced = (self.function)(record).into_iter();
            if !emit_until_blocked(&mut produced, out) {
                self.current = Some(produced);
                return;
            }
        }
    }
}

/// Emits what `produced` yields; false if the output blocked first (the rest stays in it).
#[inline]
fn emit_until_blocked<Out: Record>(produced: &mut impl Iterator<Item = Out>, out: &mut Output<'_, Out>) -> bool {
    for record in produced {
        out.emit(record);
        if out.is_blocked() {
            return false;
        }
    }
    true
}

impl<In, Out, I, F> FrameOperator<In, Out> for FlatMapOperator<In, I, F>
where
    In: Record,
    Out: Record,
    I: IntoIterator<Item = Out> + 'static,
    I::IntoIter: Send + 'static,
    F: FnMut(In) -> I + Send + 'static,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        debug_assert!(!self.has_pending_output(), "input while output is pending");
        self.input = frame.into_iter();
        self.drain(out);
        Ok(())
    }

    fn has_pending_output(&self) -> bool {
        self.current.is_some() || self.input.len() > 0
    }

    fn resume_output(&mut self, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        self.drain(out);
        Ok(())
    }
}

/// Passes frames through unchanged: the operator behind `union`.
pub(crate) struct IdentityOperator;

impl<T: Record> FrameOperator<T, T> for IdentityOperator {
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, T>) -> Result<(), UserError> {
        out.emit_frame(frame);
        Ok(())
    }
}

/// Sends each frame to its main output and a copy to each side output: the operator behind
/// `fan_out`, for a stream read by several operators.
pub(crate) struct FanOutOperator<T> {
    pub copies: Vec<super::OutputTag<T>>,
}

impl<T: Record + Clone> FrameOperator<T, T> for FanOutOperator<T> {
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, T>) -> Result<(), UserError> {
        for tag in &self.copies {
            out.emit_side_frame(tag, frame.clone());
        }
        out.emit_frame(frame);
        Ok(())
    }
}

/// Hands frames to a sink writer; emits nothing.
pub(crate) struct SinkOperator<T: Record> {
    pub writer: Box<dyn SinkWriter<T>>,
}

impl<T: Record> FrameOperator<T, ()> for SinkOperator<T> {
    fn process(&mut self, frame: Vec<T>, _out: &mut Output<'_, ()>) -> Result<(), UserError> {
        self.writer.write_frame(frame)
    }

    fn finish(&mut self, _out: &mut Output<'_, ()>) -> Result<(), UserError> {
        self.writer.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<crate::sink::Committable>, UserError> {
        self.writer.pre_commit(checkpoint)
    }
}
