//! Incremental aggregation, as Flink's `AggregateFunction`: used by keyed streams, windows and state.

/// Computes an aggregate incrementally: Flink's `AggregateFunction`.
pub trait AggregateFunction<In, Acc, Out>: Send + Sync + 'static {
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Acc;
    /// Adds one input to the accumulator.
    fn add(&self, accumulator: &mut Acc, value: In);
    /// Adds one input the caller keeps (a record in several windows is added to all but the
    /// last this way). Clones it for `add` unless an aggregate that only reads it says otherwise.
    #[inline]
    fn add_ref(&self, accumulator: &mut Acc, value: &In)
    where
        In: Clone,
    {
        self.add(accumulator, value.clone());
    }
    /// The result for the accumulator's current contents.
    fn get_result(&self, accumulator: &Acc) -> Out;
}

/// An aggregate whose accumulators can be merged, as session windows need when two sessions
/// join (Flink's `AggregateFunction::merge`).
pub trait MergingAggregateFunction<In, Acc, Out>: AggregateFunction<In, Acc, Out> {
    /// Combines two accumulators (earlier first).
    fn merge(&self, earlier: Acc, later: Acc) -> Acc;
}
