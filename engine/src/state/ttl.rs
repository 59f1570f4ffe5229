//! State time-to-live, as Flink's `StateTtlConfig`: values expire a fixed processing time after
//! they were last written (or, if so configured, last read).
//!
//! Every stored value carries the processing time of its last stamping ([`TtlValue`]); it is
//! expired once `now >= stamp + ttl`. Expired values are never returned (`NeverReturnExpired`):
//! an access that finds one removes it and behaves as if the key had none. Expired values of keys
//! that are never read again leave in the background, incrementally, as in Flink's heap backend:
//! each access of a state with TTL visits the next few entries of that state (a cursor goes round
//! its key groups) and drops the expired ones, and a state configured so does the same once per
//! processed record ([`StateTtlConfig::with_incremental_cleanup`]); so TTL bounds the state of a
//! stream of ever new keys. `StateBackend::cleanup_expired` sweeps a whole key group at once.
//! Time comes from an injectable [`Clock`], so tests move it by hand and never sleep. The clock is
//! read only for states that have a TTL, so states without one pay nothing but the stamp's eight
//! bytes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::duration_ms;

/// A source of processing time in milliseconds.
pub trait Clock: Send + Sync + 'static {
    /// Current processing time, milliseconds since the Unix epoch (or any fixed origin).
    fn now_ms(&self) -> i64;
}

/// Wall-clock processing time: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        // A clock set before 1970 reads as the epoch rather than failing: TTL then only waits longer.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told to; clones share one time. For tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock { now_ms: Arc::new(AtomicI64::new(now_ms)) }
    }

    /// Sets the time.
    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

/// When a value's time-to-live starts again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub enum TtlUpdateType {
    /// On creation and on every write.
    OnCreateAndWrite,
    /// On creation, every write and every read.
    OnReadAndWrite,
}

/// Whether expired values may be returned.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub enum StateVisibility {
    /// An expired value is never returned, even if it was not cleaned up yet.
    NeverReturnExpired,
}

/// Entries of a state visited by one incremental cleanup step: Flink's default `cleanupSize`.
pub const CLEANUP_ENTRIES_PER_STEP_DEFAULT: usize = 5;

/// How long a state's values live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct StateTtlConfig {
    ttl: Duration,
    update_type: TtlUpdateType,
    visibility: StateVisibility,
    cleanup_entries_per_step: usize,
    cleanup_on_every_record: bool,
}

impl StateTtlConfig {
    /// Values live `ttl` after creation or their last write, and are never returned once expired.
    ///
    /// Panics if `ttl` is under one millisecond: every value would expire as it is written.
    pub fn new(ttl: Duration) -> StateTtlConfig {
        assert!(ttl >= Duration::from_millis(1), "state TTL must be at least 1 ms, got {ttl:?}");
        StateTtlConfig {
            ttl,
            update_type: TtlUpdateType::OnCreateAndWrite,
            visibility: StateVisibility::NeverReturnExpired,
            cleanup_entries_per_step: CLEANUP_ENTRIES_PER_STEP_DEFAULT,
            cleanup_on_every_record: false,
        }
    }

    /// The same configuration with another incremental cleanup (Flink's `cleanupIncrementally`):
    /// each access of the state visits `entries_per_step` of its entries and drops expired ones,
    /// and with `on_every_record` so does every record the operator processes, whether it touches
    /// the state or not. The default visits 5 entries per access and none per record, as Flink.
    ///
    /// Panics if `entries_per_step` is 0: expired values of keys never read again would stay.
    pub fn with_incremental_cleanup(mut self, entries_per_step: usize, on_every_record: bool) -> StateTtlConfig {
        assert!(entries_per_step > 0, "incremental cleanup visits at least 1 entry per step");
        self.cleanup_entries_per_step = entries_per_step;
        self.cleanup_on_every_record = on_every_record;
        self
    }

    /// The same configuration with another update type.
    pub fn with_update_type(mut self, update_type: TtlUpdateType) -> StateTtlConfig {
        self.update_type = update_type;
        self
    }

    /// The time-to-live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// When the time-to-live starts again.
    pub fn update_type(&self) -> TtlUpdateType {
        self.update_type
    }

    /// Whether expired values may be returned.
    pub fn visibility(&self) -> StateVisibility {
        self.visibility
    }

    /// Entries one incremental cleanup step visits.
    pub fn cleanup_entries_per_step(&self) -> usize {
        self.cleanup_entries_per_step
    }

    /// Whether every processed record runs a cleanup step, not only every access.
    pub fn cleanup_on_every_record(&self) -> bool {
        self.cleanup_on_every_record
    }

    pub(crate) fn policy(&self) -> TtlPolicy {
        TtlPolicy {
            ttl_ms: duration_ms(self.ttl),
            refresh_on_read: self.update_type == TtlUpdateType::OnReadAndWrite,
            cleanup_entries_per_step: self.cleanup_entries_per_step,
        }
    }
}

/// What the hot path needs of a [`StateTtlConfig`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TtlPolicy {
    pub ttl_ms: i64,
    pub refresh_on_read: bool,
    /// Entries an incremental cleanup step visits (at least 1).
    pub cleanup_entries_per_step: usize,
}

impl TtlPolicy {
    /// Whether a value stamped at `stamp_ms` has expired at `now_ms`.
    #[inline]
    pub fn is_expired(&self, stamp_ms: i64, now_ms: i64) -> bool {
        now_ms >= stamp_ms.saturating_add(self.ttl_ms)
    }
}

/// A stored value and the processing time it was last stamped at (unused without TTL).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(crate) struct TtlValue<T> {
    /// The value.
    pub value: T,
    /// Processing time of the last write (or read, with `OnReadAndWrite`), milliseconds.
    pub stamp_ms: i64,
}

impl<T> TtlValue<T> {
    /// `value` stamped at `stamp_ms`.
    #[inline]
    pub fn new(value: T, stamp_ms: i64) -> TtlValue<T> {
        TtlValue { value, stamp_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_expires_exactly_ttl_after_its_stamp() {
        let policy = StateTtlConfig::new(Duration::from_millis(100)).policy();
        assert!(!policy.is_expired(1_000, 1_099));
        assert!(policy.is_expired(1_000, 1_100));
        // A stamp near the end of time never wraps around into the past.
        assert!(!policy.is_expired(i64::MAX - 1, i64::MAX - 1));
    }

    #[test]
    fn manual_clock_clones_share_one_time() {
        let clock = ManualClock::new(5);
        let view = clock.clone();
        clock.advance(Duration::from_millis(10));
        assert_eq!(view.now_ms(), 15);
        view.set_ms(3);
        assert_eq!(clock.now_ms(), 3);
    }

    #[test]
    fn system_clock_reads_milliseconds_since_the_epoch() {
        // 2020-01-01 in ms: any machine running this is later.
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }

    #[test]
    fn incremental_cleanup_defaults_to_flinks() {
        let config = StateTtlConfig::new(Duration::from_secs(1));
        assert_eq!((config.cleanup_entries_per_step(), config.cleanup_on_every_record()), (5, false));
        let config = config.with_incremental_cleanup(10, true);
        assert_eq!((config.cleanup_entries_per_step(), config.cleanup_on_every_record()), (10, true));
    }

    #[test]
    #[should_panic(expected = "at least 1 entry")]
    fn an_incremental_cleanup_of_no_entries_is_refused() {
        StateTtlConfig::new(Duration::from_secs(1)).with_incremental_cleanup(0, false);
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn a_zero_ttl_is_refused() {
        StateTtlConfig::new(Duration::ZERO);
    }
}
