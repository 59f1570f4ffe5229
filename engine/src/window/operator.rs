//! The keyed window operator for non-merging windows (tumbling, sliding, cumulate), with allowed
//! lateness and a policy for records later than that.
//!
//! State: the open windows in a deque ordered by (end, start), each holding its keys' states by
//! key group. Records mostly belong to the newest windows, so the search starts at the back; new
//! windows are sized like the last one retired so their maps do not rehash while filling.
//!
//! Firing (Flink's semantics): a window fires when the watermark reaches its max timestamp
//! (`end - 1`). Its state is kept until the watermark passes `max timestamp + allowed lateness`;
//! until then a late record still updates it and the window fires again at once for that key,
//! marked as an update. A record whose every window is past allowed lateness is handled by the
//! operator's `LatePolicy`: dropped (and counted), sent to a side output with the window it missed,
//! or added to the earliest windows still open. Each window remembers whether it has fired (so a
//! window restored from a snapshot never fires on time twice); retired windows leave from the
//! front of the deque.
//!
//! With the disk state backend the (window, key) states live in a map state of a disk backend
//! instead ([`WindowStore::Disk`]): the window is the backend's key, placed in the key group of the
//! record key, which is the map's user key. So one window's states of one key group are one prefix
//! of the store: firing reads it with one scan, retiring deletes it as a range. The deque still
//! says which windows are open and whether they fired; snapshots have the same form either way, so
//! a savepoint moves between backends.

use std::collections::VecDeque;

use super::assigner::WindowAssigner;
use super::function::WindowFunction;
use super::TimeWindow;
use crate::base::Key;
use crate::base::UserError;
use crate::frame::Record;
use crate::key_group::{assign_key_group, KeyGroupRange};
use crate::operator::keyed::KeyedStateMap;
use crate::operator::{FrameOperator, Output, OutputTag};
use crate::state::{
    KeyGroupedState, KeyedStateBackend, MapState, OperatorKeyGroupSnapshot, ScopedKey, StateBackend, StateDescriptor, StateError,
    StateValue,
};

/// A record that came after its windows were gone, with the (last) window it missed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct LateRecord<T> {
    /// The record.
    pub record: T,
    /// The last window the record belonged to: already fired and past allowed lateness.
    pub window: TimeWindow,
    /// The operator's watermark when the record came.
    pub watermark: i64,
}

/// What a window operator does with a record later than allowed lateness.
pub enum LatePolicy<T> {
    /// Drop it and count it (metric `late_records_dropped`).
    Drop,
    /// Send it, with the window it missed, to this side output.
    SideOutput(OutputTag<LateRecord<T>>),
    /// Add it to the earliest windows still open, as if it carried the first timestamp after the
    /// watermark (metric `late_records_reassigned`).
    EarliestOpenWindow,
}

impl<T> LatePolicy<T> {
    /// What the policy does, in words (for plans and the graph fingerprint).
    pub fn describe(&self) -> String {
        match self {
            LatePolicy::Drop => "dropped".to_string(),
            LatePolicy::SideOutput(tag) => format!("to side output '{}'", tag.name()),
            LatePolicy::EarliestOpenWindow => "added to the earliest open window".to_string(),
        }
    }
}

impl<T> Clone for LatePolicy<T> {
    fn clone(&self) -> Self {
        match self {
            LatePolicy::Drop => LatePolicy::Drop,
            LatePolicy::SideOutput(tag) => LatePolicy::SideOutput(tag.clone()),
            LatePolicy::EarliestOpenWindow => LatePolicy::EarliestOpenWindow,
        }
    }
}

/// A window with state: whether it has fired (on time) and its keys' states (in memory; empty
/// with the disk store).
pub(crate) struct OpenWindow<K, S> {
    window: TimeWindow,
    fired: bool,
    state: KeyedStateMap<K, S>,
}

/// Name of the disk store's map state.
const WINDOW_CONTENTS: &str = "window-contents";

/// Where a window operator keeps its (window, key) states (see the module documentation).
pub(crate) enum WindowStore<K, S> {
    /// In each open window's own maps.
    Memory,
    /// In a map state of a disk backend: window -> (key -> state), each window in the group of
    /// the keys it holds.
    Disk { backend: Box<KeyedStateBackend<TimeWindow>>, contents: MapState<K, S> },
}

impl<K: Key, S: StateValue> WindowStore<K, S> {
    /// The store of the subtask owning `range`: on disk in `state_dir` if there is one, keeping
    /// `cache_bytes` of it in memory, else in memory.
    pub(crate) fn open(
        state_dir: Option<&std::path::Path>,
        cache_bytes: Option<u64>,
        range: KeyGroupRange,
        max_parallelism: usize,
    ) -> Result<Self, StateError> {
        if state_dir.is_none() {
            return Ok(WindowStore::Memory);
        }
        let mut backend = Box::new(KeyedStateBackend::open(state_dir, cache_bytes, range, max_parallelism)?);
        let contents = backend.register_map(&StateDescriptor::new(WINDOW_CONTENTS))?;
        Ok(WindowStore::Disk { backend, contents })
    }
}

/// The states of `window` in `key_group` of a disk store, read in one scan.
fn disk_group_entries<K: Key, S: StateValue>(
    backend: &mut KeyedStateBackend<TimeWindow>,
    contents: MapState<K, S>,
    window: &TimeWindow,
    key_group: usize,
) -> Vec<(K, S)> {
    let mut entries = Vec::new();
    backend.map_for_each(contents, ScopedKey::in_key_group(window, key_group), |key, state| entries.push((key.clone(), state.clone())));
    entries
}

/// One key group of a window operator's state: its windows with this group's keys.
type WindowGroupSnapshot<K, S> = Vec<(TimeWindow, bool, Vec<(K, S)>)>;

pub(crate) struct WindowOperator<K, T, F: WindowFunction<K, T>, A, KeyFn, TimestampFn> {
    pub key_fn: KeyFn,
    pub timestamp_fn: TimestampFn,
    pub assigner: A,
    pub function: F,
    pub allowed_lateness_ms: i64,
    pub late_policy: LatePolicy<T>,
    pub range: KeyGroupRange,
    pub max_parallelism: usize,
    /// Windows with state, ascending by (end, start).
    pub windows: VecDeque<OpenWindow<K, F::State>>,
    pub watermark: i64,
    /// Keys of the last window retired: the size hint for new windows.
    pub keys_per_window: usize,
    pub assigned: Vec<TimeWindow>,
    pub late_dropped: u64,
    pub late_reassigned: u64,
    /// Most (window, key) states held at once, sampled at watermarks.
    pub state_keys_peak: u64,
    /// Where firing stands in the earliest due window not yet marked fired; `None`: nothing
    /// pending.
    pub firing_cursor: Option<FiringCursor<K, F::State>>,
    /// Where the (window, key) states are.
    pub store: WindowStore<K, F::State>,
    /// Key groups changed since the last checkpoint: a record's group when it is added; every
    /// group when a window fires or retires (incremental checkpoints).
    pub changes: crate::state::KeyGroupChanges,
}

/// Where a window's firing stopped when the output blocked.
pub(crate) struct FiringCursor<K, S> {
    /// The key group (index in the subtask's range) being fired.
    pub group: usize,
    /// Its keys still to fire, listed when firing first stopped inside the group (nothing changes
    /// the window's state until firing is done: the chain holds input back meanwhile).
    pub rest: Option<Vec<K>>,
    /// With the disk store: the group's states still to fire, read when the group was entered.
    pub rest_on_disk: Option<Vec<(K, S)>>,
}

impl<K, S> FiringCursor<K, S> {
    fn at_group(group: usize) -> Self {
        FiringCursor { group, rest: None, rest_on_disk: None }
    }
}

impl<K, T, F, A, KeyFn, TimestampFn> WindowOperator<K, T, F, A, KeyFn, TimestampFn>
where
    K: Key,
    T: Record + Clone,
    F: WindowFunction<K, T>,
    A: WindowAssigner,
    KeyFn: Fn(&T) -> K + Send + 'static,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_fn: KeyFn,
        timestamp_fn: TimestampFn,
        assigner: A,
        function: F,
        allowed_lateness_ms: i64,
        late_policy: LatePolicy<T>,
        range: KeyGroupRange,
        max_parallelism: usize,
        store: WindowStore<K, F::State>,
    ) -> Self {
        assert!(allowed_lateness_ms >= 0, "allowed lateness is never negative");
        WindowOperator {
            key_fn,
            timestamp_fn,
            assigner,
            function,
            allowed_lateness_ms,
            late_policy,
            range,
            max_parallelism,
            windows: VecDeque::new(),
            watermark: i64::MIN,
            keys_per_window: 0,
            assigned: Vec::new(),
            late_dropped: 0,
            late_reassigned: 0,
            state_keys_peak: 0,
            firing_cursor: None,
            changes: crate::state::KeyGroupChanges::all_changed(range),
            store,
        }
    }

    fn is_fired(&self, window: &TimeWindow) -> bool {
        window.max_timestamp() <= self.watermark
    }

    fn is_expired(&self, window: &TimeWindow) -> bool {
        window.max_timestamp().saturating_add(self.allowed_lateness_ms) <= self.watermark
    }

    /// Adds `record` to each of `windows` (lent to all but the last, which takes it).
    #[inline]
    fn add_to_all(&mut self, windows: &[TimeWindow], record: T, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let Some((&last, others)) = windows.split_last() else { return Ok(()) };
        let key = (self.key_fn)(&record);
        let group = assign_key_group(&key, self.max_parallelism);
        assert!(self.range.contains(group), "key group {group} routed to subtask owning {:?}", self.range);
        for &window in others {
            self.add(&key, group, window, |function, state| function.add_ref(state, &record), out)?;
        }
        self.add(&key, group, last, |function, state| function.add(state, record), out)
    }

    /// The position of `window` in the deque, opened (fired if the watermark is already past it)
    /// if it has no state yet.
    fn open(&mut self, window: TimeWindow) -> usize {
        match self.windows.iter().rposition(|w| (w.window.end, w.window.start) <= (window.end, window.start)) {
            Some(i) if self.windows[i].window == window => i,
            found => {
                let at = found.map_or(0, |i| i + 1);
                let state = KeyedStateMap::with_capacity(self.range, self.max_parallelism, self.keys_per_window);
                self.windows.insert(at, OpenWindow { window, fired: self.is_fired(&window), state });
                at
            }
        }
    }

    /// Adds a record to `window` under `key` (of key group `group`) with `add`; emits at once if
    /// the window has already fired.
    #[inline]
    fn add(
        &mut self,
        key: &K,
        group: usize,
        window: TimeWindow,
        add: impl FnOnce(&F, &mut F::State),
        out: &mut Output<'_, F::Out>,
    ) -> Result<(), UserError> {
        let position = self.open(window);
        let (function, watermark) = (&self.function, self.watermark);
        let open = &mut self.windows[position];
        if let WindowStore::Disk { backend, contents } = &mut self.store {
            let scoped = ScopedKey::in_key_group(&open.window, group);
            let existing = backend.map_read(*contents, scoped, key, |state| state.cloned());
            let existed = existing.is_some();
            let mut state = existing.unwrap_or_else(|| function.create());
            add(function, &mut state);
            // Late but within allowed lateness: fire again for this key.
            let emitted = if open.fired { function.emit(key, window, &state, existed, watermark, out) } else { Ok(()) };
            backend.map_put(*contents, scoped, key.clone(), state);
            self.changes.mark(group);
            return emitted;
        }
        if !open.fired {
            open.state.update_borrowed_in_group(group, key, || function.create(), |_, s| add(function, s));
            self.changes.mark(group);
            return Ok(());
        }
        // Late but within allowed lateness: update and fire again for this key.
        let existed = open.state.contains(key);
        let emitted = open.state.update_borrowed_in_group(
            group,
            key,
            || function.create(),
            |key, s| {
                add(function, s);
                function.emit(key, window, s, existed, watermark, out)
            },
        );
        self.changes.mark(group);
        emitted
    }
}

impl<K, T, F, A, KeyFn, TimestampFn> FrameOperator<T, F::Out> for WindowOperator<K, T, F, A, KeyFn, TimestampFn>
where
    K: Key,
    T: Record + Clone,
    F: WindowFunction<K, T>,
    A: WindowAssigner,
    KeyFn: Fn(&T) -> K + Send + 'static,
    TimestampFn: Fn(&T) -> i64 + Send + 'static,
{
    fn process(&mut self, frame: Vec<T>, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let mut assigned = std::mem::take(&mut self.assigned);
        for record in frame {
            assigned.clear();
            self.assigner.assign_into((self.timestamp_fn)(&record), &mut assigned);
            // Windows past allowed lateness take nothing (Flink's rule); if that is all of them,
            // the record is late and the policy decides.
            assigned.retain(|w| !self.is_expired(w));
            if assigned.is_empty() {
                let mut missed = Vec::new();
                self.assigner.assign_into((self.timestamp_fn)(&record), &mut missed);
                let Some(&missed) = missed.iter().max_by_key(|w| w.end) else { continue };
                match &self.late_policy {
                    LatePolicy::Drop => self.late_dropped += 1,
                    LatePolicy::SideOutput(tag) => out.emit_side(tag, LateRecord { record, window: missed, watermark: self.watermark }),
                    LatePolicy::EarliestOpenWindow => {
                        self.late_reassigned += 1;
                        self.assigner.assign_into(self.watermark.saturating_add(1), &mut assigned);
                        self.add_to_all(&assigned, record, out)?;
                    }
                }
                continue;
            }
            self.add_to_all(&assigned, record, out)?;
        }
        self.assigned = assigned;
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        debug_assert!(watermark >= self.watermark, "watermark went backwards");
        self.watermark = watermark;
        let held: usize = self.windows.iter().map(|w| w.state.len()).sum();
        self.state_keys_peak = self.state_keys_peak.max(held as u64);
        // The chain holds watermarks back while a firing is pending, so none is under way here.
        debug_assert!(self.firing_cursor.is_none(), "a watermark arrived while windows were still firing");
        self.firing_cursor = Some(FiringCursor::at_group(0));
        self.resume_output(out)
    }

    fn has_pending_output(&self) -> bool {
        self.firing_cursor.is_some()
    }

    /// Fires the windows whose max timestamp the watermark has reached, in end order, key group by
    /// key group, and stops where it is when the output blocks.
    fn resume_output(&mut self, out: &mut Output<'_, F::Out>) -> Result<(), UserError> {
        let Some(mut cursor) = self.firing_cursor.take() else { return Ok(()) };
        let watermark = self.watermark;
        for open in self.windows.iter_mut() {
            if open.window.max_timestamp() > watermark {
                break;
            }
            if open.fired {
                continue;
            }
            if let WindowStore::Disk { backend, contents } = &mut self.store {
                while cursor.group < self.range.len() {
                    let mut entries = match cursor.rest_on_disk.take() {
                        Some(entries) => entries,
                        None => {
                            let mut entries = disk_group_entries(backend, *contents, &open.window, self.range.start + cursor.group);
                            entries.reverse();
                            entries
                        }
                    };
                    while let Some((key, value)) = entries.pop() {
                        self.function.emit(&key, open.window, &value, false, watermark, out)?;
                        if out.is_blocked() {
                            cursor.rest_on_disk = Some(entries);
                            self.firing_cursor = Some(cursor);
                            return Ok(());
                        }
                    }
                    cursor = FiringCursor::at_group(cursor.group + 1);
                }
            }
            while cursor.group < open.state.group_count() {
                if let Some(rest) = &mut cursor.rest {
                    while let Some(key) = rest.pop() {
                        let value = open.state.get(&key).expect("a key listed for firing has state");
                        self.function.emit(&key, open.window, value, false, watermark, out)?;
                        if out.is_blocked() {
                            self.firing_cursor = Some(cursor);
                            return Ok(());
                        }
                    }
                } else {
                    let mut entries = open.state.iter_group(cursor.group);
                    while let Some((key, value)) = entries.next() {
                        self.function.emit(key, open.window, value, false, watermark, out)?;
                        if out.is_blocked() {
                            // Listed once, so a resume does not walk the group's map again.
                            cursor.rest = Some(entries.map(|(key, _)| key.clone()).collect());
                            self.firing_cursor = Some(cursor);
                            return Ok(());
                        }
                    }
                }
                cursor = FiringCursor::at_group(cursor.group + 1);
            }
            open.fired = true;
            self.changes.mark_all();
            cursor.group = 0;
        }
        // Retire windows past allowed lateness.
        while self.windows.front().is_some_and(|w| w.window.max_timestamp().saturating_add(self.allowed_lateness_ms) <= watermark) {
            let open = self.windows.pop_front().expect("front exists");
            self.keys_per_window = open.state.len();
            if let WindowStore::Disk { backend, contents } = &mut self.store {
                for key_group in self.range.as_range() {
                    backend.clear(*contents, ScopedKey::in_key_group(&open.window, key_group));
                }
            }
            self.changes.mark_all();
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("late_records_dropped", self.late_dropped),
            ("late_records_reassigned", self.late_reassigned),
            ("state_keys_peak", self.state_keys_peak),
        ]
    }

    fn keyed_state(&mut self) -> Option<&mut dyn KeyGroupedState> {
        Some(self)
    }
}

impl<K, T, F, A, KeyFn, TimestampFn> KeyGroupedState for WindowOperator<K, T, F, A, KeyFn, TimestampFn>
where
    K: Key,
    T: Record + Clone,
    F: WindowFunction<K, T>,
    A: WindowAssigner,
    KeyFn: Fn(&T) -> K + Send + 'static,
{
    fn snapshot_key_group(&self, key_group: usize) -> Result<OperatorKeyGroupSnapshot, StateError> {
        self.snapshot_key_group_deferred(key_group)?()
    }

    fn snapshot_key_group_deferred(&self, key_group: usize) -> Result<crate::state::DeferredKeyGroup, StateError> {
        let max_parallelism = self.max_parallelism;
        if let WindowStore::Disk { backend, .. } = &self.store {
            let open: Vec<(TimeWindow, bool)> = self.windows.iter().map(|open| (open.window, open.fired)).collect();
            let taken = backend.snapshot_key_group_deferred(key_group)?;
            return Ok(Box::new(move || {
                let group = taken()?;
                let mut by_window: std::collections::HashMap<TimeWindow, Vec<(K, F::State)>> =
                    match group.states().iter().find(|state| state.name() == WINDOW_CONTENTS) {
                        None => Default::default(),
                        Some(state) => {
                            crate::base::codec::decode::<crate::state::backend::MapEntries<TimeWindow, K, F::State>>(&state.data)
                                .map_err(|error| StateError::CorruptSnapshot {
                                    name: WINDOW_CONTENTS.to_string(),
                                    key_group,
                                    reason: error.to_string(),
                                })?
                                .into_iter()
                                .map(|(window, entries)| (window, entries.into_iter().map(|(key, stamped)| (key, stamped.value)).collect()))
                                .collect()
                        }
                    };
                let windows: WindowGroupSnapshot<K, F::State> = open
                    .into_iter()
                    .filter_map(|(window, fired)| by_window.remove(&window).map(|entries| (window, fired, entries)))
                    .collect();
                OperatorKeyGroupSnapshot::new(key_group, max_parallelism, &windows)
            }));
        }
        // Constant time per window: each window's map of this group is shared, not copied.
        let shared: Vec<_> = self.windows.iter().map(|open| (open.window, open.fired, open.state.share_group(key_group))).collect();
        Ok(Box::new(move || {
            let windows: WindowGroupSnapshot<K, F::State> = shared
                .iter()
                .filter(|(_, _, entries)| !entries.is_empty())
                .map(|(window, fired, entries)| (*window, *fired, entries.iter().map(|(k, s)| (k.clone(), s.clone())).collect()))
                .collect();
            OperatorKeyGroupSnapshot::new(key_group, max_parallelism, &windows)
        }))
    }

    fn changed_key_groups(&mut self) -> Option<Vec<usize>> {
        let changed = self.changes.key_groups();
        self.changes.clear();
        Some(changed)
    }

    fn restore_key_group(&mut self, snapshot: OperatorKeyGroupSnapshot) -> Result<(), StateError> {
        let (key_group, windows) = snapshot.into_data::<WindowGroupSnapshot<K, F::State>>(self.range, self.max_parallelism)?;
        self.changes.mark(key_group);
        for (window, fired, entries) in windows {
            let position = self.open(window);
            let open = &mut self.windows[position];
            // A window that fired before the snapshot never fires on time again.
            open.fired |= fired;
            match &mut self.store {
                WindowStore::Memory => open.state.restore_group(key_group, entries),
                WindowStore::Disk { backend, contents } => {
                    let scoped = ScopedKey::in_key_group(&open.window, key_group);
                    for (key, state) in entries {
                        backend.map_put(*contents, scoped, key, state);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::base::AggregateFunction;
    use crate::base::SubtaskContext;
    use crate::key_group::assign_key_group;
    use crate::operator::rescale_test::{assert_rescale_keeps_results, MAX_PARALLELISM};
    use crate::operator::{ErasedFrameOperator, OperatorChain};
    use crate::window::function::AggregateWindowFunction;
    use crate::window::sliding::SlidingEventTimeWindows;

    struct Count;
    impl AggregateFunction<(i64, i64), u64, u64> for Count {
        fn create_accumulator(&self) -> u64 {
            0
        }
        fn add(&self, count: &mut u64, _record: (i64, i64)) {
            *count += 1;
        }
        fn get_result(&self, count: &u64) -> u64 {
            *count
        }
    }

    /// A sliding-window count operator owning the key groups of `subtask` of `parallelism`, its
    /// state in memory, or on disk in `dir`.
    fn counting_window(subtask: usize, parallelism: usize, allowed_lateness_ms: i64, dir: Option<&std::path::Path>) -> OperatorChain {
        let range = KeyGroupRange::for_subtask(subtask, parallelism, MAX_PARALLELISM);
        let operator = WindowOperator::new(
            |r: &(i64, i64)| r.0,
            |r: &(i64, i64)| r.1,
            SlidingEventTimeWindows::of(std::time::Duration::from_millis(300), std::time::Duration::from_millis(100)),
            AggregateWindowFunction(Arc::new(Count), std::marker::PhantomData),
            allowed_lateness_ms,
            LatePolicy::Drop,
            range,
            MAX_PARALLELISM,
            WindowStore::open(dir, None, range, MAX_PARALLELISM).unwrap(),
        );
        OperatorChain::new(vec![ErasedFrameOperator::boxed(operator, 0, &SubtaskContext::for_test(1024))])
    }

    /// Records (key, time) in frames, each with the watermark after it (50 ms behind).
    fn frames() -> Vec<(Vec<(i64, i64)>, i64)> {
        let records: Vec<(i64, i64)> = (0..6_000i64).map(|i| (i % 37, i * 3)).collect();
        records.chunks(250).map(|c| (c.to_vec(), c.last().unwrap().1 - 50)).collect()
    }

    #[test]
    fn state_moved_by_key_group_to_two_subtasks_gives_the_same_results() {
        // With allowed lateness, fired windows are in the snapshot too: they must not fire again.
        // In memory and on disk, and moved from either store into the other.
        static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!("tethys-window-operator-{}", std::process::id()));
        for (one_on_disk, two_on_disk) in [(false, false), (true, true), (false, true), (true, false)] {
            for lateness in [0, 500] {
                assert_rescale_keeps_results::<_, crate::window::WindowResult<i64, u64>>(
                    |subtask, parallelism| {
                        let on_disk = if parallelism == 1 { one_on_disk } else { two_on_disk };
                        let dir = on_disk.then(|| base.join(DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string()));
                        counting_window(subtask, parallelism, lateness, dir.as_deref())
                    },
                    &frames(),
                    |r| assign_key_group(&r.0, MAX_PARALLELISM),
                );
            }
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_snapshot_is_refused_by_a_subtask_that_does_not_own_its_key_group() {
        let mut owner = counting_window(0, 2, 0, None);
        let mut other = counting_window(1, 2, 0, None);
        let snapshot = owner.keyed_state(0).unwrap().snapshot_key_group(0).unwrap();
        let error = other.keyed_state(0).unwrap().restore_key_group(snapshot).unwrap_err();
        assert!(matches!(error, StateError::KeyGroupNotOwned { key_group: 0, .. }), "{error}");
    }
}
