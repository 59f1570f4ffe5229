//! Restart strategies: whether a failed job restarts from its latest completed checkpoint, and
//! after how long, as Flink's (`fixed-delay`, `exponential-delay`, `failure-rate`, `none`).
//!
//! The decision is pure: [`RestartTracker`] is told each failure's time and answers with the
//! delay before the next attempt, or `None` when the strategy's limit is reached and the job
//! fails for good.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a job that failed is restarted.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RestartStrategy {
    /// Never: the first failure fails the job.
    None,
    /// Up to `attempts` restarts, each after `delay`.
    FixedDelay {
        /// Restarts allowed over the job's life.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restarts after a delay that starts at `initial` and is multiplied by `multiplier` after
    /// each failure, up to `max`; after `reset_after` without a failure it starts again from
    /// `initial`. At most `attempts` restarts.
    ExponentialDelay {
        /// First delay.
        initial: Duration,
        /// Longest delay.
        max: Duration,
        /// Growth per failure (at least 1).
        multiplier: f64,
        /// A run this long without failure resets the delay (and the count of attempts).
        reset_after: Duration,
        /// Restarts allowed (since the last reset).
        attempts: u32,
    },
    /// Restarts after `delay` as long as no more than `max_failures` failures happened within any
    /// `interval`.
    FailureRate {
        /// Failures allowed within `interval`.
        max_failures: u32,
        /// The window failures are counted in.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

impl RestartStrategy {
    /// Flink's default when checkpointing is on: exponential delay from 1 s, doubling up to
    /// 1 min, reset after an hour without failure. Flink allows unlimited attempts; Tethys allows
    /// 10, so a job that fails every time does not run forever.
    pub fn default_with_checkpointing() -> RestartStrategy {
        RestartStrategy::ExponentialDelay {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            reset_after: Duration::from_secs(3600),
            attempts: 10,
        }
    }

    /// Checks the parameters; the message names the bad one.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match *self {
            RestartStrategy::ExponentialDelay { initial, max, multiplier, .. } => {
                if !(multiplier >= 1.0 && multiplier.is_finite()) {
                    return Err(format!("exponential delay multiplier {multiplier} must be at least 1"));
                }
                if initial > max {
                    return Err(format!("exponential delay initial {initial:?} exceeds max {max:?}"));
                }
            }
            RestartStrategy::FailureRate { interval, .. } if interval.is_zero() => {
                return Err("failure rate interval must be positive".to_string());
            }
            _ => {}
        }
        Ok(())
    }
}

/// Applies a strategy to the failures of one job.
#[derive(Debug)]
pub(crate) struct RestartTracker {
    strategy: RestartStrategy,
    /// Restarts granted (since the last reset, for exponential delay).
    restarts: u32,
    /// Current delay of exponential delay.
    next_delay: Duration,
    /// When the previous failure happened.
    last_failure: Option<Instant>,
    /// Failure times within the failure-rate interval.
    recent: VecDeque<Instant>,
}

impl RestartTracker {
    pub(crate) fn new(strategy: RestartStrategy) -> RestartTracker {
        let next_delay = match strategy {
            RestartStrategy::ExponentialDelay { initial, .. } => initial,
            _ => Duration::ZERO,
        };
        RestartTracker { strategy, restarts: 0, next_delay, last_failure: None, recent: VecDeque::new() }
    }

    /// The job failed at `now`: the delay before restarting it, or `None` if it must not restart.
    pub(crate) fn on_failure(&mut self, now: Instant) -> Option<Duration> {
        let previous = self.last_failure.replace(now);
        match self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay } => (self.restarts < attempts).then(|| {
                self.restarts += 1;
                delay
            }),
            RestartStrategy::ExponentialDelay { initial, max, multiplier, reset_after, attempts } => {
                if previous.is_some_and(|previous| now.duration_since(previous) >= reset_after) {
                    self.restarts = 0;
                    self.next_delay = initial;
                }
                if self.restarts >= attempts {
                    return None;
                }
                self.restarts += 1;
                let delay = self.next_delay;
                self.next_delay = max.min(Duration::from_secs_f64((delay.as_secs_f64() * multiplier).min(max.as_secs_f64())));
                Some(delay)
            }
            RestartStrategy::FailureRate { max_failures, interval, delay } => {
                while self.recent.front().is_some_and(|&at| now.duration_since(at) > interval) {
                    self.recent.pop_front();
                }
                self.recent.push_back(now);
                (self.recent.len() <= max_failures as usize).then(|| {
                    self.restarts += 1;
                    delay
                })
            }
        }
    }

    /// Restarts granted so far.
    pub(crate) fn restarts(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn none_never_restarts_and_fixed_delay_counts_its_attempts() {
        let now = Instant::now();
        assert_eq!(RestartTracker::new(RestartStrategy::None).on_failure(now), None);
        let mut fixed = RestartTracker::new(RestartStrategy::FixedDelay { attempts: 2, delay: 5 * MS });
        assert_eq!(fixed.on_failure(now), Some(5 * MS));
        assert_eq!(fixed.on_failure(now), Some(5 * MS));
        assert_eq!(fixed.on_failure(now), None);
        assert_eq!(fixed.restarts(), 2);
    }

    #[test]
    fn exponential_delay_grows_to_its_max_and_resets_after_a_quiet_run() {
        let strategy =
            RestartStrategy::ExponentialDelay { initial: 10 * MS, max: 35 * MS, multiplier: 2.0, reset_after: 1000 * MS, attempts: 5 };
        let mut tracker = RestartTracker::new(strategy);
        let t0 = Instant::now();
        let delays: Vec<_> = (0..4).map(|i| tracker.on_failure(t0 + i * MS)).collect();
        assert_eq!(delays, vec![Some(10 * MS), Some(20 * MS), Some(35 * MS), Some(35 * MS)]);
        assert_eq!(tracker.on_failure(t0 + 2000 * MS), Some(10 * MS), "a quiet second resets the delay");
        let mut limited = RestartTracker::new(RestartStrategy::ExponentialDelay {
            initial: MS,
            max: MS,
            multiplier: 1.0,
            reset_after: MS * 1000,
            attempts: 1,
        });
        assert!(limited.on_failure(t0).is_some());
        assert_eq!(limited.on_failure(t0 + MS), None);
    }

    #[test]
    fn failure_rate_allows_bursts_up_to_its_limit_within_the_interval() {
        let mut tracker = RestartTracker::new(RestartStrategy::FailureRate { max_failures: 2, interval: 100 * MS, delay: MS });
        let t0 = Instant::now();
        assert!(tracker.on_failure(t0).is_some());
        assert!(tracker.on_failure(t0 + 10 * MS).is_some());
        assert_eq!(tracker.on_failure(t0 + 20 * MS), None, "a third failure within 100 ms");
        let mut spaced = RestartTracker::new(RestartStrategy::FailureRate { max_failures: 2, interval: 100 * MS, delay: MS });
        for i in 0..10 {
            assert!(spaced.on_failure(t0 + i * 60 * MS).is_some(), "failures 60 ms apart never exceed 2 per 100 ms");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let strategy = RestartStrategy::ExponentialDelay { initial: MS, max: MS, multiplier: 0.5, reset_after: MS, attempts: 1 };
        assert!(strategy.validate().unwrap_err().contains("multiplier"));
    }
}
