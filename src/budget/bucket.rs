//! A token bucket that may go into debt: a request is granted what the bucket holds, may use
//! a little more (Kafka's "at least one record batch"), and the debt then delays whoever
//! comes next until the refill has paid it back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TokenBucket {
    rate_bytes_per_sec: f64,
    depth_bytes: f64,
    state: Mutex<State>,
}

struct State {
    /// Negative while in debt.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate_bytes_per_sec: f64, depth_bytes: f64) -> TokenBucket {
        assert!(rate_bytes_per_sec > 0.0 && depth_bytes > 0.0);
        TokenBucket {
            rate_bytes_per_sec,
            depth_bytes,
            state: Mutex::new(State {
                tokens: depth_bytes,
                refilled_at: Instant::now(),
            }),
        }
    }

    pub fn rate_bytes_per_sec(&self) -> f64 {
        self.rate_bytes_per_sec
    }

    pub fn depth_bytes(&self) -> f64 {
        self.depth_bytes
    }

    /// Whole bytes available now (0 while in debt).
    pub fn available(&self, now: Instant) -> usize {
        let mut state = self.lock();
        self.refill(&mut state, now);
        state.tokens.max(0.0) as usize
    }

    /// Takes `bytes` (possibly into debt) and returns how long until the bucket is out of
    /// debt again.
    pub fn take(&self, bytes: usize, now: Instant) -> Duration {
        let mut state = self.lock();
        self.refill(&mut state, now);
        state.tokens -= bytes as f64;
        self.debt_delay(state.tokens)
    }

    /// Takes up to what the bucket holds (never into debt); returns what it took.
    pub fn take_available(&self, bytes: usize, now: Instant) -> usize {
        let mut state = self.lock();
        self.refill(&mut state, now);
        let taken = (bytes as f64).min(state.tokens.max(0.0));
        state.tokens -= taken;
        taken as usize
    }

    /// How long until the bucket is out of debt (zero when it is not in debt).
    pub fn delay(&self, now: Instant) -> Duration {
        let mut state = self.lock();
        self.refill(&mut state, now);
        self.debt_delay(state.tokens)
    }

    fn debt_delay(&self, tokens: f64) -> Duration {
        if tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-tokens / self.rate_bytes_per_sec)
    }

    fn refill(&self, state: &mut State, now: Instant) {
        let elapsed = now.saturating_duration_since(state.refilled_at);
        state.tokens =
            (state.tokens + elapsed.as_secs_f64() * self.rate_bytes_per_sec).min(self.depth_bytes);
        state.refilled_at = state.refilled_at.max(now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_what_it_holds_and_delays_by_its_debt() {
        let bucket = TokenBucket::new(1000.0, 500.0);
        let start = Instant::now();
        assert_eq!(bucket.available(start), 500);
        // One batch larger than the tokens: allowed, 700 bytes of debt = 0.7 s at 1000 B/s.
        let delay = bucket.take(1200, start);
        assert_eq!(delay, Duration::from_millis(700));
        assert_eq!(bucket.available(start), 0);
        let later = start + Duration::from_secs(1);
        assert_eq!(bucket.available(later), 300);
        // Refill stops at the depth.
        assert_eq!(bucket.available(start + Duration::from_secs(60)), 500);
        assert_eq!(
            bucket.take_available(800, start + Duration::from_secs(60)),
            500
        );
        assert_eq!(
            bucket.delay(start + Duration::from_secs(60)),
            Duration::ZERO
        );
    }
}
