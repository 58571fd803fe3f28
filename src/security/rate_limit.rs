//! Failed authentications slow down the address they come from: each recent failure doubles
//! the delay before that address's next failure is answered, up to a bound. Other clients are
//! never delayed, and a success is never delayed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kafka's connection.failed.authentication.delay.ms default.
const DELAY_BASE: Duration = Duration::from_millis(100);
/// The longest delay before a failure is answered.
const DELAY_MAX: Duration = Duration::from_secs(3);
/// Failures older than this are forgotten.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at once; beyond it the oldest half of the table is dropped.
const ADDRESSES_MAX: usize = 10_000;

#[derive(Default)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimiter {
    /// Records one failure from `address`; returns how long to wait before answering it.
    pub fn record_failure(&self, address: IpAddr) -> Duration {
        let now = Instant::now();
        let mut failures = match self.failures.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if failures.len() >= ADDRESSES_MAX {
            failures.retain(|_, (_, last)| now.duration_since(*last) < WINDOW);
            if failures.len() >= ADDRESSES_MAX {
                failures.clear();
            }
        }
        let entry = failures.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = entry.0.saturating_sub(1).min(16);
        DELAY_BASE.saturating_mul(1 << doublings).min(DELAY_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_address_and_are_bounded() {
        let limiter = FailureLimiter::default();
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(limiter.record_failure(one), DELAY_BASE);
        assert_eq!(limiter.record_failure(one), DELAY_BASE * 2);
        for _ in 0..40 {
            assert!(limiter.record_failure(one) <= DELAY_MAX);
        }
        assert_eq!(limiter.record_failure(one), DELAY_MAX);
        assert_eq!(limiter.record_failure(two), DELAY_BASE);
    }
}
