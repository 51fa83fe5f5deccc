//! Sign-in attempts per account and per client address.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{Error, Result};

/// Keyed limits on sign-in attempts, in this process.
pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    /// `per_account` and `per_address` attempts per minute, all usable at once.
    pub fn new(per_account: u32, per_address: u32) -> Self {
        let quota = |n: u32| {
            let n = NonZeroU32::new(n.max(1)).expect("at least one");
            Quota::per_minute(n).allow_burst(n)
        };
        LoginLimiter {
            per_account: RateLimiter::keyed(quota(per_account)),
            per_address: RateLimiter::keyed(quota(per_address)),
        }
    }

    /// Counts an attempt; [`Error::TooManyAttempts`] when either limit is used up.
    pub fn attempt(&self, email: &str, address: IpAddr) -> Result<()> {
        if self.per_address.len() > 100_000 {
            self.per_address.retain_recent();
        }
        if self.per_account.len() > 100_000 {
            self.per_account.retain_recent();
        }
        let wait = |not_until: governor::NotUntil<_>, clock: &governor::clock::DefaultClock| {
            let wait = not_until.wait_time_from(clock.now());
            Error::TooManyAttempts { retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        };
        self.per_address.check_key(&address).map_err(|n| wait(n, self.per_address.clock()))?;
        self.per_account.check_key(&email.to_lowercase()).map_err(|n| wait(n, self.per_account.clock()))?;
        Ok(())
    }
}
