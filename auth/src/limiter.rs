//! Failed sign-ins, counted per (account, client address), per client address, and per account
//! with a looser ceiling: a stranger guessing from one address locks only themselves out, not
//! the account's owner elsewhere. Successful sign-ins count for nothing.
//!
//! Hand-written rather than `governor`: a sign-in must be refused *before* its password is
//! checked when its keys are used up, and only a failure may use them up, which needs a look at
//! a counter without spending from it.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The window the limits count failures in.
const WINDOW: Duration = Duration::from_secs(60);

/// The most keys one counter keeps: memory stays bounded whatever the traffic. When a flood
/// fills it with live windows, it starts over (the flood's own counts go too).
pub const MAX_KEYS: usize = 50_000;

/// The failures limits, per minute.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures of one account from one client address.
    pub per_account_and_address: u32,
    /// Failures from one client address, whatever the account.
    pub per_address: u32,
    /// Failures of one account, from anywhere: the looser ceiling.
    pub per_account: u32,
}

/// Failed sign-ins in this process.
pub struct LoginLimiter {
    limits: Limits,
    per_account_and_address: Counter<(String, IpAddr)>,
    per_address: Counter<IpAddr>,
    per_account: Counter<String>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            per_account_and_address: Counter::default(),
            per_address: Counter::default(),
            per_account: Counter::default(),
        }
    }

    /// [`Error::TooManyAttempts`] when a limit of `email` from `address` is used up.
    pub fn check(&self, email: &str, address: IpAddr) -> Result<()> {
        let (account, address) = (email.to_lowercase(), client_key(address));
        let waits = [
            self.per_account_and_address
                .blocked(&(account.clone(), address), self.limits.per_account_and_address),
            self.per_address.blocked(&address, self.limits.per_address),
            self.per_account.blocked(&account, self.limits.per_account),
        ];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(Error::TooManyAttempts {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in of `email` from `address`.
    pub fn failed(&self, email: &str, address: IpAddr) {
        let (account, address) = (email.to_lowercase(), client_key(address));
        self.per_account_and_address.add((account.clone(), address));
        self.per_address.add(address);
        self.per_account.add(account);
    }
}

/// The key of a client address: IPv6 clients by their /64, which one subscriber usually holds
/// whole (so rotating addresses inside it buys nothing).
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
    }
}

/// Failures per key in fixed windows.
struct Counter<K> {
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K> Default for Counter<K> {
    fn default() -> Self {
        Counter { windows: Mutex::default() }
    }
}

impl<K: Hash + Eq> Counter<K> {
    /// How long until `key` may fail again, when it has `limit` failures in its window.
    fn blocked(&self, key: &K, limit: u32) -> Option<Duration> {
        let windows = self.windows.lock().expect("the counter's lock");
        let (started, failures) = windows.get(key)?;
        let left = WINDOW.checked_sub(started.elapsed())?;
        (*failures >= limit.max(1)).then_some(left)
    }

    fn add(&self, key: K) {
        let mut windows = self.windows.lock().expect("the counter's lock");
        if windows.len() >= MAX_KEYS && !windows.contains_key(&key) {
            windows.retain(|_, (started, _)| started.elapsed() < WINDOW);
            if windows.len() >= MAX_KEYS {
                tracing::warn!(keys = windows.len(), "sign-in failure counter full: starting over");
                windows.clear();
            }
        }
        let window = windows.entry(key).or_insert((Instant::now(), 0));
        if window.0.elapsed() >= WINDOW {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { per_account_and_address: 3, per_address: 5, per_account: 10 };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_failures_count_and_a_stranger_locks_out_only_their_own_address() {
        let limiter = LoginLimiter::new(LIMITS);
        for _ in 0..3 {
            limiter.check("admin@ates.local", ip("203.0.113.5")).unwrap();
            limiter.failed("admin@ates.local", ip("203.0.113.5"));
        }
        assert!(limiter.check("ADMIN@ates.local", ip("203.0.113.5")).is_err(), "the stranger is stopped");
        assert!(limiter.check("admin@ates.local", ip("198.51.100.7")).is_ok(), "the owner elsewhere is not");
        for n in 0..3 {
            limiter.failed("admin@ates.local", ip(&format!("198.51.100.{n}")));
            limiter.failed("admin@ates.local", ip(&format!("192.0.2.{n}")));
            limiter.failed("admin@ates.local", ip(&format!("192.0.3.{n}")));
        }
        assert!(
            limiter.check("admin@ates.local", ip("198.51.100.99")).is_err(),
            "the ceiling per account holds"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limiter = LoginLimiter::new(LIMITS);
        for n in 1..=5 {
            limiter.failed(&format!("user{n}@ates.test"), ip(&format!("2001:db8:1:2::{n}")));
        }
        assert!(limiter.check("other@ates.test", ip("2001:db8:1:2:ffff::1")).is_err(), "the same /64");
        assert!(limiter.check("other@ates.test", ip("2001:db8:1:3::1")).is_ok(), "another /64");
    }

    #[test]
    fn memory_stays_bounded_whatever_the_flood() {
        let counter: Counter<usize> = Counter::default();
        for key in 0..(MAX_KEYS * 2 + 7) {
            counter.add(key);
            assert!(counter.len() <= MAX_KEYS);
        }
    }
}
