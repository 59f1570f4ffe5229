//! Joins of two streams by key and event time: window joins (pairs of records of the same key in
//! the same window) and interval joins (pairs whose times lie within a bound of each other).
//!
//! Both are built from the engine's single-input parts, as Flink builds its window join: the two
//! inputs are tagged (`JoinSide`), unioned, and keyed by each side's key, so both sides of a key
//! meet in one subtask and the watermark is the minimum of both inputs. The window join then
//! runs a window process function that pairs the window's left and right records; the interval
//! join runs `IntervalJoinOperator`.

use std::sync::Arc;

use super::stream::DataStream;
use crate::base::Key;
use crate::frame::Record;
use crate::graph::logical::OperatorKind;
use crate::key_group::KeyGroupRange;
use crate::operator::join::{IntervalJoinOperator, JoinSide};
use crate::state::StateValue;
use crate::window::assigner::WindowAssigner;

/// Two streams to be joined, before keys are chosen.
pub struct JoinedStreams<L, R> {
    left: DataStream<L>,
    right: DataStream<R>,
}

/// Two streams to be joined on keys.
pub struct KeyedJoin<L, R, K> {
    left: DataStream<L>,
    right: DataStream<R>,
    left_key: Arc<dyn Fn(&L) -> K + Send + Sync>,
    right_key: Arc<dyn Fn(&R) -> K + Send + Sync>,
}

impl<L: Record + StateValue> DataStream<L> {
    /// Starts a join of this stream (left) with `right`.
    pub fn join<R: Record + Clone>(self, right: DataStream<R>) -> JoinedStreams<L, R> {
        JoinedStreams { left: self, right }
    }
}

impl<L: Record + StateValue, R: Record + StateValue> JoinedStreams<L, R> {
    /// Joins records whose keys are equal.
    pub fn on<K: Key>(
        self,
        left_key: impl Fn(&L) -> K + Send + Sync + 'static,
        right_key: impl Fn(&R) -> K + Send + Sync + 'static,
    ) -> KeyedJoin<L, R, K> {
        KeyedJoin { left: self.left, right: self.right, left_key: Arc::new(left_key), right_key: Arc::new(right_key) }
    }
}

impl<L: Record + StateValue, R: Record + StateValue, K: Key> KeyedJoin<L, R, K> {
    /// Both inputs tagged, unioned and keyed by each side's key.
    fn tagged(self) -> (DataStream<JoinSide<L, R>>, impl Fn(&JoinSide<L, R>) -> K + Clone + Send + Sync + 'static) {
        let left = self.left.map(JoinSide::<L, R>::Left).name("JoinLeft");
        let right = self.right.map(JoinSide::<L, R>::Right).name("JoinRight");
        let (left_key, right_key) = (self.left_key, self.right_key);
        let key_fn = move |side: &JoinSide<L, R>| match side {
            JoinSide::Left(l) => left_key(l),
            JoinSide::Right(r) => right_key(r),
        };
        (left.union([right]), key_fn)
    }

    /// Pairs records of the same key that fall in the same window of `assigner`; `left_time` and
    /// `right_time` give each side's event time. Emits `join(left, right)` for every pair when the
    /// window fires.
    pub fn window<A, O>(
        self,
        assigner: A,
        left_time: impl Fn(&L) -> i64 + Send + Sync + 'static,
        right_time: impl Fn(&R) -> i64 + Send + Sync + 'static,
        join: impl Fn(&L, &R) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        A: WindowAssigner,
        O: Record,
    {
        let (tagged, key_fn) = self.tagged();
        let time = move |side: &JoinSide<L, R>| match side {
            JoinSide::Left(l) => left_time(l),
            JoinSide::Right(r) => right_time(r),
        };
        tagged
            .key_by(key_fn)
            .window(assigner, time)
            .process(move |_ctx, records: &[JoinSide<L, R>], out| {
                for left in records.iter().filter_map(|s| if let JoinSide::Left(l) = s { Some(l) } else { None }) {
                    for right in records.iter().filter_map(|s| if let JoinSide::Right(r) = s { Some(r) } else { None }) {
                        out.emit(join(left, right));
                    }
                }
                Ok(())
            })
            .name("WindowJoin")
    }

    /// Pairs each left record with the right records of the same key whose time lies in
    /// `[left + lower, left + upper]` (bounds in milliseconds, may be negative), emitting
    /// `join(left, right)` as soon as both are there.
    pub fn interval<O>(
        self,
        lower_ms: i64,
        upper_ms: i64,
        left_time: impl Fn(&L) -> i64 + Send + Sync + 'static,
        right_time: impl Fn(&R) -> i64 + Send + Sync + 'static,
        join: impl Fn(&L, &R) -> O + Send + Sync + 'static,
    ) -> DataStream<O>
    where
        O: Record,
    {
        assert!(lower_ms <= upper_ms, "interval join bounds: lower {lower_ms} > upper {upper_ms}");
        let (tagged, key_fn) = self.tagged();
        let (left_time, right_time, join) = (Arc::new(left_time), Arc::new(right_time), Arc::new(join));
        let partition_key = key_fn.clone();
        tagged.key_by(partition_key).into_stream().add_operator("IntervalJoin", OperatorKind::Join, true, move |context| {
            let range = KeyGroupRange::for_subtask(context.subtask_index, context.parallelism, context.max_parallelism);
            let (left_time, right_time, join) = (Arc::clone(&left_time), Arc::clone(&right_time), Arc::clone(&join));
            Ok(IntervalJoinOperator::new(
                key_fn.clone(),
                move |l: &L| left_time(l),
                move |r: &R| right_time(r),
                lower_ms,
                upper_ms,
                move |l: &L, r: &R| join(l, r),
                range,
                context.max_parallelism,
            ))
        })
    }
}
