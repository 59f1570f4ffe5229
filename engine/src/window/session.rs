//! Event-time session windows: a record at `ts` opens the window `[ts, ts + gap)`, and windows of
//! one key that intersect merge into one session, as Flink's `EventTimeSessionWindows` with its
//! `MergingWindowSet`. A session ends once no record came for `gap` after its last one.
//!
//! [`SessionWindowSet`] keeps the open sessions of ONE key, each with a state value, and is pure:
//! the window operator adds each record's window, updates the returned state, and takes the
//! sessions the watermark has passed. Merge rule (Flink's `TimeWindow.intersects` and
//! `mergeWindows`): windows `a` and `b` merge when `a.start <= b.end && b.start <= a.end`, so
//! windows that only touch (`a.end == b.start`) merge too; the merged window is their cover
//! `[min start, max end)`. Invariant: sessions are sorted by start and strictly apart
//! (`earlier.end < later.start`), so they are also sorted by end and the watermark fires a prefix.
//!
//! Why the arrival order does not matter: the final sessions are the connected groups of the
//! added intervals, a union that does not depend on order. Their states are equal whatever the
//! order when the state's merge is associative and commutative (counts, sums, min/max, sets), as
//! every arrival order combines the same record contributions, only grouped differently.

use std::time::Duration;

use super::TimeWindow;
use super::WindowError;

/// Assigns each timestamp the window `[ts, ts + gap)`; a [`SessionWindowSet`] merges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeSessionWindows {
    gap_ms: i64,
}

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` without records.
    ///
    /// # Panics
    /// If `gap` is under a millisecond (see `try_with_gap`).
    pub fn with_gap(gap: Duration) -> Self {
        Self::try_with_gap(gap).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Sessions that end after `gap` without records; a gap under a millisecond is refused
    /// (Flink rejects a gap `<= 0`).
    pub fn try_with_gap(gap: Duration) -> Result<Self, WindowError> {
        Ok(EventTimeSessionWindows { gap_ms: super::positive_ms("a session gap", gap)? })
    }

    /// The gap in milliseconds.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// The window of a record at `timestamp`: `[timestamp, timestamp + gap)`.
    ///
    /// Timestamps within `gap` of `i64::MAX` overflow the window's end.
    #[inline]
    pub fn assign(&self, timestamp: i64) -> TimeWindow {
        TimeWindow { start: timestamp, end: timestamp + self.gap_ms }
    }
}

/// Whether `a` and `b` merge into one session: they overlap or touch (Flink's
/// `TimeWindow.intersects`).
#[inline]
pub fn windows_intersect(a: &TimeWindow, b: &TimeWindow) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// The open session windows of one key, each with a state of type `S`, merged as records come.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SessionWindowSet<S> {
    /// Sorted by start; `sessions[i].0.end < sessions[i + 1].0.start`.
    sessions: Vec<(TimeWindow, S)>,
}

/// Where an added window ended up; see [`SessionWindowSet::add`].
#[derive(Debug)]
pub struct SessionAdded<'a, S> {
    /// The session that now contains the added window.
    pub window: TimeWindow,
    /// The session's state, for the caller to add the record to.
    pub state: &'a mut S,
    /// How many existing sessions the added window merged with: 0 when it opened a new session,
    /// 1 when it fell into or extended one, more when it joined sessions into one.
    pub sessions_merged: usize,
}

impl<S> Default for SessionWindowSet<S> {
    fn default() -> Self {
        SessionWindowSet { sessions: Vec::new() }
    }
}

impl<S> SessionWindowSet<S> {
    /// No sessions; allocates nothing until the first window is added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `window` (a record's window) and merges it with every session it intersects.
    ///
    /// A window that intersects no session opens one with state `init()`. Otherwise the
    /// sessions it intersects become one session covering them and the window, whose state is
    /// their states combined by `merge_state(earlier, later)` in start order; `init` is not
    /// called. The caller then adds the record to the returned state. Merging never reaches past
    /// the sessions the window intersects, because sessions are strictly apart.
    ///
    /// For timers: the returned window's `max_timestamp` is when the session is due; the sessions
    /// merged away are those [`intersecting`](Self::intersecting) named before the call, other
    /// than the returned window.
    pub fn add(&mut self, window: TimeWindow, mut merge_state: impl FnMut(S, S) -> S, init: impl FnOnce() -> S) -> SessionAdded<'_, S> {
        debug_assert!(window.start < window.end, "a session window is not empty: {window:?}");
        // Sessions are sorted by start and by end, so those intersecting `window` are the run
        // from the first that ends at or after its start to the last that starts at or before
        // its end.
        let first = self.sessions.partition_point(|(session, _)| session.end < window.start);
        let past_last = self.sessions.partition_point(|(session, _)| session.start <= window.end);
        let sessions_merged = past_last - first;
        match sessions_merged {
            0 => self.sessions.insert(first, (window, init())),
            1 => {
                let session = &mut self.sessions[first].0;
                *session = cover(session, &window);
            }
            _ => {
                let mut merged = self.sessions.drain(first..past_last);
                let (first_window, first_state) = merged.next().expect("at least two sessions merge");
                let (covered, state) = merged
                    .fold((cover(&first_window, &window), first_state), |(covered, state), (session, session_state)| {
                        (cover(&covered, &session), merge_state(state, session_state))
                    });
                self.sessions.insert(first, (covered, state));
            }
        }
        debug_assert!(self.is_strictly_apart(), "sessions overlap after adding {window:?}");
        let (window, state) = &mut self.sessions[first];
        SessionAdded { window: *window, state, sessions_merged }
    }

    /// The sessions `window` would merge with if added: those it intersects (overlaps or
    /// touches), earliest first.
    pub fn intersecting(&self, window: TimeWindow) -> impl ExactSizeIterator<Item = TimeWindow> + '_ {
        let first = self.sessions.partition_point(|(session, _)| session.end < window.start);
        let past_last = self.sessions.partition_point(|(session, _)| session.start <= window.end);
        self.sessions[first..past_last.max(first)].iter().map(|(session, _)| *session)
    }

    /// Whether a session has `max_timestamp` exactly `timestamp`. Sessions are sorted by end, so
    /// this is a binary search.
    pub fn has_max_timestamp(&self, timestamp: i64) -> bool {
        self.sessions.binary_search_by_key(&timestamp, |(session, _)| session.max_timestamp()).is_ok()
    }

    /// Keeps only the sessions for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(TimeWindow, &S) -> bool) {
        self.sessions.retain(|(window, state)| keep(*window, state));
    }

    /// Removes and returns, earliest first, every session whose `max_timestamp` (`end - 1`) is
    /// at or before `watermark`: those the watermark has completed.
    ///
    /// The sessions not yet taken when the iterator is dropped are removed all the same.
    pub fn fire_until(&mut self, watermark: i64) -> std::vec::Drain<'_, (TimeWindow, S)> {
        let due = self.sessions.partition_point(|(session, _)| session.max_timestamp() <= watermark);
        self.sessions.drain(..due)
    }

    /// Removes the session exactly equal to `window` and returns its state, if there is one:
    /// for an operator that drops a session the watermark had already passed when it opened (a
    /// late record that merged with nothing), as Flink retires such a window.
    pub fn remove(&mut self, window: TimeWindow) -> Option<S> {
        let at = self.sessions.binary_search_by_key(&window.start, |(session, _)| session.start).ok()?;
        (self.sessions[at].0 == window).then(|| self.sessions.remove(at).1)
    }

    /// The open sessions, earliest first.
    pub fn windows(&self) -> impl ExactSizeIterator<Item = TimeWindow> + '_ {
        self.sessions.iter().map(|(window, _)| *window)
    }

    /// The open sessions with their states, earliest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (TimeWindow, &S)> + '_ {
        self.sessions.iter().map(|(window, state)| (*window, state))
    }

    /// The open sessions with mutable states, earliest first.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (TimeWindow, &mut S)> + '_ {
        self.sessions.iter_mut().map(|(window, state)| (*window, state))
    }

    /// The earliest `max_timestamp` of an open session: the watermark at which the next session
    /// fires, if any.
    pub fn next_fire_timestamp(&self) -> Option<i64> {
        self.sessions.first().map(|(window, _)| window.max_timestamp())
    }

    /// The number of open sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there is no open session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn is_strictly_apart(&self) -> bool {
        self.sessions.windows(2).all(|pair| pair[0].0.end < pair[1].0.start)
    }
}

/// The smallest window containing `a` and `b`.
fn cover(a: &TimeWindow, b: &TimeWindow) -> TimeWindow {
    TimeWindow { start: a.start.min(b.start), end: a.end.max(b.end) }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn window(start: i64, end: i64) -> TimeWindow {
        TimeWindow { start, end }
    }

    /// What the tests keep per session: records, sum and smallest of their timestamps.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Summary {
        records: u64,
        timestamp_sum: i64,
        timestamp_min: i64,
    }

    impl Summary {
        const EMPTY: Summary = Summary { records: 0, timestamp_sum: 0, timestamp_min: i64::MAX };

        fn merge(self, other: Summary) -> Summary {
            Summary {
                records: self.records + other.records,
                timestamp_sum: self.timestamp_sum + other.timestamp_sum,
                timestamp_min: self.timestamp_min.min(other.timestamp_min),
            }
        }

        fn add(&mut self, timestamp: i64) {
            *self = self.merge(Summary { records: 1, timestamp_sum: timestamp, timestamp_min: timestamp });
        }
    }

    /// The sessions and summaries after adding records at `timestamps` in that order.
    fn sessions_of(gap_ms: u64, timestamps: &[i64]) -> Vec<(TimeWindow, Summary)> {
        let assigner = EventTimeSessionWindows::with_gap(Duration::from_millis(gap_ms));
        let mut sessions = SessionWindowSet::new();
        for &timestamp in timestamps {
            let added = sessions.add(assigner.assign(timestamp), Summary::merge, || Summary::EMPTY);
            assert!(added.window.start <= timestamp && timestamp < added.window.end);
            added.state.add(timestamp);
        }
        sessions.iter().map(|(window, summary)| (window, *summary)).collect()
    }

    #[test]
    fn assigner_opens_a_gap_long_window_at_the_timestamp() {
        let assigner = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        assert_eq!(assigner.assign(5), window(5, 15));
        assert_eq!(assigner.assign(-20), window(-20, -10));
    }

    #[test]
    fn windows_that_overlap_or_touch_intersect() {
        assert!(windows_intersect(&window(0, 10), &window(5, 15)));
        assert!(windows_intersect(&window(0, 10), &window(10, 20)), "touching windows merge, as in Flink");
        assert!(windows_intersect(&window(10, 20), &window(0, 10)));
        assert!(windows_intersect(&window(0, 30), &window(10, 20)));
        assert!(!windows_intersect(&window(0, 10), &window(11, 20)));
    }

    #[test]
    fn add_reports_the_session_the_record_ended_in() {
        let mut sessions = SessionWindowSet::new();
        let added = sessions.add(window(0, 10), u32::wrapping_add, || 0);
        assert_eq!((added.window, added.sessions_merged), (window(0, 10), 0));
        *added.state += 1;
        let added = sessions.add(window(30, 40), u32::wrapping_add, || 0);
        assert_eq!((added.window, added.sessions_merged), (window(30, 40), 0));
        *added.state += 1;
        let added = sessions.add(window(5, 15), u32::wrapping_add, || 0);
        assert_eq!((added.window, added.sessions_merged, *added.state), (window(0, 15), 1, 1));
        *added.state += 1;
        let added = sessions.add(window(2, 8), u32::wrapping_add, || 0);
        assert_eq!((added.window, added.sessions_merged, *added.state), (window(0, 15), 1, 2), "inside a session: no change");
        *added.state += 1;
        let added = sessions.add(window(15, 30), u32::wrapping_add, || 0);
        assert_eq!((added.window, added.sessions_merged, *added.state), (window(0, 40), 2, 4), "joins both sessions");
        *added.state += 1;
        assert_eq!(sessions.iter().collect::<Vec<_>>(), vec![(window(0, 40), &5)]);
    }

    #[test]
    fn a_window_can_join_many_sessions_at_once() {
        let mut sessions = SessionWindowSet::new();
        for start in [0, 20, 40, 60, 80] {
            *sessions.add(window(start, start + 5), |a: Vec<i64>, b: Vec<i64>| [a, b].concat(), Vec::new).state = vec![start];
        }
        assert_eq!(sessions.len(), 5);
        let added = sessions.add(window(4, 61), |a, b| [a, b].concat(), Vec::new);
        assert_eq!(added.window, window(0, 65));
        assert_eq!(added.sessions_merged, 4);
        assert_eq!(*added.state, vec![0, 20, 40, 60], "states merge in start order");
        assert_eq!(sessions.windows().collect::<Vec<_>>(), vec![window(0, 65), window(80, 85)]);
    }

    #[test]
    fn every_arrival_order_gives_the_same_sessions_and_states() {
        // Gap 4: 7 touches the session of 3 ([3, 7)) and 44 the one of 40 ([40, 44)).
        let timestamps = [1, 3, 7, 10, 25, 26, 40, 44, 47, -2, -16];
        let expected = vec![
            (window(-16, -12), Summary { records: 1, timestamp_sum: -16, timestamp_min: -16 }),
            (window(-2, 14), Summary { records: 5, timestamp_sum: 19, timestamp_min: -2 }),
            (window(25, 30), Summary { records: 2, timestamp_sum: 51, timestamp_min: 25 }),
            (window(40, 51), Summary { records: 3, timestamp_sum: 131, timestamp_min: 40 }),
        ];
        let mut orders = vec![timestamps.to_vec()];
        orders.push(timestamps.iter().rev().copied().collect());
        let mut sorted = timestamps.to_vec();
        sorted.sort_unstable();
        orders.push(sorted.clone());
        orders.push(sorted.iter().rev().copied().collect());
        orders.push(vec![47, -16, 7, 26, 1, 44, -2, 10, 25, 3, 40]);
        for order in orders {
            assert_eq!(sessions_of(4, &order), expected, "arrival order {order:?}");
        }
    }

    #[test]
    fn watermark_fires_the_sessions_it_has_passed() {
        let mut sessions = SessionWindowSet::new();
        for start in [0, 20, 40] {
            *sessions.add(window(start, start + 10), u32::wrapping_add, || 0).state += 1;
        }
        assert_eq!(sessions.next_fire_timestamp(), Some(9));
        assert_eq!(sessions.fire_until(8).count(), 0);
        assert_eq!(sessions.fire_until(29).collect::<Vec<_>>(), vec![(window(0, 10), 1), (window(20, 30), 1)]);
        assert_eq!(sessions.windows().collect::<Vec<_>>(), vec![window(40, 50)]);
        assert_eq!(sessions.next_fire_timestamp(), Some(49));
        assert_eq!(sessions.fire_until(i64::MAX).collect::<Vec<_>>(), vec![(window(40, 50), 1)]);
        assert!(sessions.is_empty());
        assert_eq!(sessions.next_fire_timestamp(), None);
    }

    #[test]
    fn remove_retires_only_the_exact_window() {
        let mut sessions = SessionWindowSet::new();
        sessions.add(window(0, 10), u32::wrapping_add, || 7);
        assert_eq!(sessions.remove(window(0, 9)), None);
        assert_eq!(sessions.remove(window(1, 10)), None);
        assert_eq!(sessions.remove(window(0, 10)), Some(7));
        assert!(sessions.is_empty());
    }

    #[test]
    fn intersecting_names_the_sessions_a_window_would_merge_with() {
        let mut sessions = SessionWindowSet::new();
        for start in [0, 20, 40] {
            sessions.add(window(start, start + 10), u32::wrapping_add, || 0);
        }
        let intersecting = |w| sessions.intersecting(w).collect::<Vec<_>>();
        assert_eq!(intersecting(window(11, 19)), vec![]);
        assert_eq!(intersecting(window(10, 19)), vec![window(0, 10)], "touching the end");
        assert_eq!(intersecting(window(11, 20)), vec![window(20, 30)], "touching the start");
        assert_eq!(intersecting(window(5, 45)), vec![window(0, 10), window(20, 30), window(40, 50)]);
        assert_eq!(intersecting(window(22, 24)), vec![window(20, 30)], "inside");
        assert!(sessions.has_max_timestamp(29));
        assert!(!sessions.has_max_timestamp(30));
        sessions.retain(|w, _| w.start != 20);
        assert_eq!(sessions.windows().collect::<Vec<_>>(), vec![window(0, 10), window(40, 50)]);
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn zero_gap_is_rejected() {
        let _ = EventTimeSessionWindows::with_gap(Duration::ZERO);
    }

    /// The sessions of `timestamps` by brute force: sort the windows by start and join each to
    /// the previous session while it intersects it.
    fn brute_force(gap: i64, timestamps: &[i64]) -> Vec<(TimeWindow, Summary)> {
        let mut sorted = timestamps.to_vec();
        sorted.sort_unstable();
        let mut sessions: Vec<(TimeWindow, Summary)> = Vec::new();
        for timestamp in sorted {
            let own = window(timestamp, timestamp + gap);
            match sessions.last_mut() {
                Some((session, summary)) if session.end >= own.start => {
                    session.end = session.end.max(own.end);
                    summary.add(timestamp);
                }
                _ => {
                    let mut summary = Summary::EMPTY;
                    summary.add(timestamp);
                    sessions.push((own, summary));
                }
            }
        }
        sessions
    }

    proptest! {
        #[test]
        fn sessions_are_the_merged_union_whatever_the_arrival_order(
            gap in 1i64..30,
            (timestamps, shuffled) in proptest::collection::vec(-300i64..300, 0..60)
                .prop_flat_map(|timestamps| (Just(timestamps.clone()), Just(timestamps).prop_shuffle())),
        ) {
            let expected = brute_force(gap, &timestamps);
            prop_assert_eq!(sessions_of(gap as u64, &timestamps), expected.clone());
            prop_assert_eq!(sessions_of(gap as u64, &shuffled), expected);
        }

        #[test]
        fn firing_takes_exactly_the_sessions_the_watermark_passed(
            gap in 1i64..30,
            timestamps in proptest::collection::vec(-300i64..300, 0..60),
            watermark in -350i64..350,
        ) {
            let assigner = EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64));
            let mut sessions = SessionWindowSet::new();
            for &timestamp in &timestamps {
                *sessions.add(assigner.assign(timestamp), |a: u64, b: u64| a + b, || 0).state += 1;
            }
            let before: Vec<TimeWindow> = sessions.windows().collect();
            let fired: Vec<TimeWindow> = sessions.fire_until(watermark).map(|(window, _)| window).collect();
            let kept: Vec<TimeWindow> = sessions.windows().collect();
            prop_assert!(fired.iter().all(|w| w.max_timestamp() <= watermark));
            prop_assert!(kept.iter().all(|w| w.max_timestamp() > watermark));
            prop_assert_eq!([fired, kept].concat(), before);
        }
    }
}
