//! Stateless record-at-a-time operators: map, try_map, filter, flat_map, union (identity) and the
//! sink adapter. Each works on a whole frame: map builds the output frame in one pass, filter keeps
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

/// Maps every record to zero or more records.
pub(crate) struct FlatMapOperator<F>(pub F);

impl<In, Out, I, F> FrameOperator<In, Out> for FlatMapOperator<F>
where
    In: Record,
    Out: Record,
    I: IntoIterator<Item = Out>,
    F: FnMut(In) -> I + Send + 'static,
{
    fn process(&mut self, frame: Vec<In>, out: &mut Output<'_, Out>) -> Result<(), UserError> {
        for record in frame {
            for produced in (self.0)(record) {
                out.emit(produced);
            }
        }
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
}
