//! Exponential backoff with jitter for retry loops.

use std::time::Duration;

use rand::Rng;

/// Doubles the delay after every failure, up to a ceiling; `reset` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, current: initial }
    }

    /// Starts at `max` until the first `reset`, then from `initial`.
    pub fn at_ceiling(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, current: max }
    }

    /// The next delay: the current step with ±20% jitter, so instances do not retry in lockstep.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        step.mul_f64(rand::rng().random_range(0.8..1.2))
    }

    /// Back to the initial delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

/// The delay before redelivering a message that failed `delivered` times.
pub(crate) fn redelivery_delay(delivered: i64, initial: Duration, max: Duration) -> Duration {
    let exponent = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    initial.saturating_mul(2u32.saturating_pow(exponent)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        let mut backoff = Backoff::new(initial, max);
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(80) && delays[0] <= Duration::from_millis(120));
        assert!(delays[5] >= Duration::from_millis(800) && delays[5] <= Duration::from_millis(1200));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn redelivery_waits_longer_after_each_failure() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(redelivery_delay(1, initial, max), Duration::from_secs(1));
        assert_eq!(redelivery_delay(3, initial, max), Duration::from_secs(4));
        assert_eq!(redelivery_delay(40, initial, max), Duration::from_secs(60));
    }
}
