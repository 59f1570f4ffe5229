//! The token bucket behind a throttle: how many bytes a flow may write now, or when it may write.
//!
//! Pure: it is given the time and returns a decision, so it is tested with a simulated clock. The
//! bucket fills at the rate, holds at most [`THROTTLE_BURST`]'s worth (at least one byte, at most
//! one read chunk), and starts empty, so writing N bytes through a fresh throttle of R bytes per
//! second takes at least N / R seconds.

use std::time::Duration;

use tokio::time::Instant;

use crate::limits::{READ_CHUNK_BYTES, THROTTLE_BURST};

/// The answer to "may I write this much now?".
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Admission {
    /// Write this many bytes now (at least one, at most what was asked for).
    Granted(u64),
    /// Ask again at this instant.
    WaitUntil(Instant),
}

/// A token bucket of bytes.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate_bytes_per_s: u64,
    capacity_bytes: u64,
    /// Fractional, so that slow rates and short intervals lose nothing to rounding.
    tokens_bytes: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// An empty bucket that fills at `rate_bytes_per_s` from `now`.
    pub(crate) fn new(rate_bytes_per_s: u64, now: Instant) -> TokenBucket {
        assert!(rate_bytes_per_s > 0, "a zero rate is refused where the throttle is set");
        let burst_bytes = u128::from(rate_bytes_per_s) * THROTTLE_BURST.as_nanos() / 1_000_000_000;
        let capacity_bytes = burst_bytes.clamp(1, READ_CHUNK_BYTES as u128) as u64;
        TokenBucket { rate_bytes_per_s, capacity_bytes, tokens_bytes: 0.0, refilled_at: now }
    }

    /// The rate this bucket fills at.
    pub(crate) fn rate_bytes_per_s(&self) -> u64 {
        self.rate_bytes_per_s
    }

    /// Asks to write `wanted_bytes` (more than zero) at `now`. Grants as much as the bucket holds
    /// once it holds enough for the whole request or a full bucket, whichever is smaller; until
    /// then says when it will.
    pub(crate) fn take(&mut self, wanted_bytes: u64, now: Instant) -> Admission {
        assert!(wanted_bytes > 0, "nothing to write");
        self.refill(now);
        let piece_bytes = wanted_bytes.min(self.capacity_bytes);
        let missing_bytes = piece_bytes as f64 - self.tokens_bytes;
        if missing_bytes <= 0.0 {
            self.tokens_bytes -= piece_bytes as f64;
            debug_assert!(self.tokens_bytes >= 0.0);
            return Admission::Granted(piece_bytes);
        }
        let wait_ns = (missing_bytes * 1e9 / self.rate_bytes_per_s as f64).ceil();
        // At least a nanosecond, so a caller that waits as told always finds the bucket fuller.
        Admission::WaitUntil(now + Duration::from_nanos((wait_ns as u64).max(1)))
    }

    fn refill(&mut self, now: Instant) {
        // A clock that appears to go backwards (an older `now`) adds nothing.
        let elapsed = now.saturating_duration_since(self.refilled_at);
        if elapsed.is_zero() {
            return;
        }
        let earned_bytes = elapsed.as_secs_f64() * self.rate_bytes_per_s as f64;
        self.tokens_bytes = (self.tokens_bytes + earned_bytes).min(self.capacity_bytes as f64);
        self.refilled_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `total_bytes` through `bucket`, waiting exactly as told; returns the simulated time
    /// it took and the sizes of the writes.
    fn write_through(bucket: &mut TokenBucket, start: Instant, total_bytes: u64) -> (Duration, Vec<u64>) {
        let mut now = start;
        let mut left_bytes = total_bytes;
        let mut writes = Vec::new();
        while left_bytes > 0 {
            match bucket.take(left_bytes, now) {
                Admission::Granted(bytes) => {
                    assert!(bytes > 0 && bytes <= left_bytes);
                    writes.push(bytes);
                    left_bytes -= bytes;
                }
                Admission::WaitUntil(then) => {
                    assert!(then > now, "a wait must lie in the future");
                    now = then;
                }
            }
        }
        (now - start, writes)
    }

    #[test]
    fn a_fresh_bucket_is_empty() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1_000, now);
        assert_eq!(bucket.take(5, now), Admission::WaitUntil(now + Duration::from_millis(5)));
    }

    #[test]
    fn writing_n_bytes_takes_at_least_n_over_rate() {
        for (rate_bytes_per_s, total_bytes) in [(1_000, 10_000), (3, 10), (1 << 20, 5 << 20), (7_777, 123_457)] {
            let start = Instant::now();
            let mut bucket = TokenBucket::new(rate_bytes_per_s, start);
            let (took, writes) = write_through(&mut bucket, start, total_bytes);
            let floor = Duration::from_secs_f64(total_bytes as f64 / rate_bytes_per_s as f64);
            assert!(took + Duration::from_micros(1) >= floor, "{total_bytes} B at {rate_bytes_per_s} B/s took {took:?}");
            // Waiting exactly as told, it takes no more than the floor plus rounding.
            assert!(took <= floor + Duration::from_millis(1), "{total_bytes} B at {rate_bytes_per_s} B/s took {took:?}");
            assert_eq!(writes.iter().sum::<u64>(), total_bytes);
        }
    }

    #[test]
    fn an_idle_bucket_holds_at_most_its_burst() {
        let start = Instant::now();
        // 100 kB/s: a 10 ms burst is 1,000 bytes.
        let mut bucket = TokenBucket::new(100_000, start);
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.take(1_000_000, later), Admission::Granted(1_000));
        assert!(matches!(bucket.take(1, later), Admission::WaitUntil(_)));
    }

    #[test]
    fn burst_is_at_least_one_byte_and_at_most_one_read_chunk() {
        let start = Instant::now();
        let later = start + Duration::from_secs(3_600);
        assert_eq!(TokenBucket::new(1, start).take(10, later), Admission::Granted(1));
        assert_eq!(TokenBucket::new(u64::MAX, start).take(u64::MAX, later), Admission::Granted(READ_CHUNK_BYTES as u64));
    }

    #[test]
    fn a_clock_going_backwards_earns_nothing() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1_000, start);
        let earlier = start - Duration::from_secs(1);
        assert!(matches!(bucket.take(1, earlier), Admission::WaitUntil(_)));
        assert!(matches!(bucket.take(1, start), Admission::WaitUntil(_)));
    }
}
