//! Incremental aggregation, as Flink's `AggregateFunction`: used by keyed streams, windows and state.

/// Computes an aggregate incrementally: Flink's `AggregateFunction`.
pub trait AggregateFunction<In, Acc, Out>: Send + Sync + 'static {
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Acc;
    /// Adds one input to the accumulator.
    fn add(&self, accumulator: &mut Acc, value: In);
    /// The result for the accumulator's current contents.
    fn get_result(&self, accumulator: &Acc) -> Out;
}

/// An aggregate whose accumulators can be merged, as session windows need when two sessions
/// join (Flink's `AggregateFunction::merge`).
pub trait MergingAggregateFunction<In, Acc, Out>: AggregateFunction<In, Acc, Out> {
    /// Combines two accumulators (earlier first).
    fn merge(&self, earlier: Acc, later: Acc) -> Acc;
}
