//! Retry strategies of async I/O requests (Flink's `AsyncRetryStrategy`): how many attempts a
//! request gets, how long it waits before each retry, and which errors are worth retrying.
//!
//! The delay before a retry is a pure function of the attempt that failed, so strategies are
//! tested without a clock. Attempts and delays have named maxima, checked when the operator is
//! created (`AsyncOptions::validate`), so a retry loop is always bounded; the request's timeout
//! covers all its attempts and the delays between them, as in Flink.

use std::sync::Arc;
use std::time::Duration;

use super::AsyncOptionsError;
use crate::base::UserError;

/// Most attempts (the first call and its retries) a strategy may allow.
pub const RETRY_ATTEMPTS_MAX: u32 = 1_000;
/// Longest delay a strategy may wait before one retry.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(3_600);

/// How long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// The same delay before every retry.
    Fixed(Duration),
    /// `initial` before the first retry, multiplied by `multiplier` for each further one, never
    /// more than `max`.
    Exponential {
        /// Delay before the first retry.
        initial: Duration,
        /// Growth per retry; at least 1.
        multiplier: f64,
        /// Upper bound of any delay.
        max: Duration,
    },
}

/// Which errors are retried.
type RetryPredicate = Arc<dyn Fn(&UserError) -> bool + Send + Sync>;

/// How a failed request is retried: at most `max_attempts` attempts in all, with a backoff between
/// them, for the errors the predicate accepts (every error unless `retry_if` narrows it).
#[derive(Clone)]
pub struct RetryStrategy {
    max_attempts: u32,
    backoff: Backoff,
    retry_if: Option<RetryPredicate>,
}

impl std::fmt::Debug for RetryStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryStrategy")
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("retry_if", &self.retry_if.as_ref().map(|_| "predicate"))
            .finish()
    }
}

impl Default for RetryStrategy {
    fn default() -> Self {
        RetryStrategy::no_retry()
    }
}

impl RetryStrategy {
    /// One attempt: a failed request fails the job.
    pub fn no_retry() -> Self {
        RetryStrategy { max_attempts: 1, backoff: Backoff::Fixed(Duration::ZERO), retry_if: None }
    }

    /// Up to `max_attempts` attempts, `delay` apart.
    pub fn fixed_delay(max_attempts: u32, delay: Duration) -> Self {
        RetryStrategy { max_attempts, backoff: Backoff::Fixed(delay), retry_if: None }
    }

    /// Up to `max_attempts` attempts; `initial` before the first retry, growing by `multiplier`
    /// per retry up to `max_delay`.
    pub fn exponential_backoff(max_attempts: u32, initial: Duration, multiplier: f64, max_delay: Duration) -> Self {
        RetryStrategy { max_attempts, backoff: Backoff::Exponential { initial, multiplier, max: max_delay }, retry_if: None }
    }

    /// Retries only the errors for which `predicate` holds; the others fail the request at once.
    pub fn retry_if(mut self, predicate: impl Fn(&UserError) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Attempts in all, the first one included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Whether a request whose attempt number `attempt` (1-based) failed with `error` is tried
    /// again.
    pub fn should_retry(&self, attempt: u32, error: &UserError) -> bool {
        attempt < self.max_attempts && self.retry_if.as_ref().is_none_or(|retry_if| retry_if(error))
    }

    /// The delay after failed attempt number `attempt` (1-based), before the next one.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { initial, multiplier, max } => {
                let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
                let seconds = initial.as_secs_f64() * multiplier.powi(exponent);
                Duration::try_from_secs_f64(seconds).map_or(max, |delay| delay.min(max))
            }
        }
    }

    /// Checks the attempts and delays against their maxima.
    pub fn validate(&self) -> Result<(), AsyncOptionsError> {
        if !(1..=RETRY_ATTEMPTS_MAX).contains(&self.max_attempts) {
            return Err(AsyncOptionsError::Attempts { attempts: self.max_attempts, max: RETRY_ATTEMPTS_MAX });
        }
        let longest = match self.backoff {
            Backoff::Fixed(delay) => delay,
            Backoff::Exponential { initial, multiplier, max } => {
                if !multiplier.is_finite() || multiplier < 1.0 {
                    return Err(AsyncOptionsError::Multiplier { multiplier });
                }
                initial.max(max)
            }
        };
        if longest > RETRY_DELAY_MAX {
            return Err(AsyncOptionsError::Delay { delay: longest, max: RETRY_DELAY_MAX });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> UserError {
        text.into()
    }

    #[test]
    fn fixed_delay_waits_the_same_before_every_retry_and_stops_at_max_attempts() {
        let strategy = RetryStrategy::fixed_delay(3, Duration::from_millis(5));
        assert_eq!((1..=3).map(|a| strategy.delay_after(a)).collect::<Vec<_>>(), vec![Duration::from_millis(5); 3]);
        assert!(strategy.should_retry(1, &error("x")));
        assert!(strategy.should_retry(2, &error("x")));
        assert!(!strategy.should_retry(3, &error("x")), "three attempts in all");
        assert!(!RetryStrategy::no_retry().should_retry(1, &error("x")));
    }

    #[test]
    fn exponential_backoff_grows_by_the_multiplier_up_to_the_maximum() {
        let strategy = RetryStrategy::exponential_backoff(10, Duration::from_millis(10), 2.0, Duration::from_millis(100));
        let delays: Vec<u128> = (1..=6).map(|a| strategy.delay_after(a).as_millis()).collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 100, 100]);
        // Huge exponents saturate at the maximum instead of overflowing.
        assert_eq!(strategy.delay_after(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn the_predicate_decides_which_errors_retry() {
        let strategy = RetryStrategy::fixed_delay(5, Duration::ZERO).retry_if(|e| e.to_string().contains("transient"));
        assert!(strategy.should_retry(1, &error("transient: busy")));
        assert!(!strategy.should_retry(1, &error("permanent: no such key")));
    }

    #[test]
    fn validation_rejects_strategies_beyond_their_maxima() {
        assert!(RetryStrategy::fixed_delay(3, Duration::from_millis(1)).validate().is_ok());
        assert!(matches!(RetryStrategy::fixed_delay(0, Duration::ZERO).validate(), Err(AsyncOptionsError::Attempts { .. })));
        assert!(matches!(
            RetryStrategy::fixed_delay(RETRY_ATTEMPTS_MAX + 1, Duration::ZERO).validate(),
            Err(AsyncOptionsError::Attempts { .. })
        ));
        assert!(matches!(RetryStrategy::fixed_delay(2, RETRY_DELAY_MAX * 2).validate(), Err(AsyncOptionsError::Delay { .. })));
        let shrinking = RetryStrategy::exponential_backoff(2, Duration::from_millis(1), 0.5, Duration::from_secs(1));
        assert!(matches!(shrinking.validate(), Err(AsyncOptionsError::Multiplier { .. })));
        let nan = RetryStrategy::exponential_backoff(2, Duration::from_millis(1), f64::NAN, Duration::from_secs(1));
        assert!(matches!(nan.validate(), Err(AsyncOptionsError::Multiplier { .. })));
    }
}
