//! Where a query's results go: the queries are written once and end in whatever [`QueryEnd`]
//! they are given (a discarding sink for measurements, digests in a topic for comparing runs).

use tethys_engine::frame::Record;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::DataStream;

/// The end of a query: takes its last stream, whatever its record type.
pub trait QueryEnd {
    /// Ends `stream` (adds its sink).
    fn end<T: Record + Clone>(self, stream: DataStream<T>);
}

impl QueryEnd for DiscardSink {
    fn end<T: Record + Clone>(self, stream: DataStream<T>) {
        stream.sink("discard", self);
    }
}

/// `stream.end_with(end)`: ends a stream with a [`QueryEnd`] in the middle of a call chain.
pub trait EndWith {
    /// Ends the stream with `end`.
    fn end_with(self, end: impl QueryEnd);
}

impl<T: Record + Clone> EndWith for DataStream<T> {
    fn end_with(self, end: impl QueryEnd) {
        end.end(self);
    }
}
