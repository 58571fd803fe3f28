//! The reassignment throttle: a node-wide byte budget for the catch-up fetches of replicas a
//! reassignment is adding, so that moving data never starves clients (Kafka's
//! `follower.replication.throttled.rate`, applied to adding replicas only).
//!
//! A token bucket with no burst allowance: each fetched chunk is paid for after it arrives,
//! by waiting until the bucket is back to zero. Over any catch-up, bytes / elapsed therefore
//! stays at or under the rate, however many fetchers share the node.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Fetches per second a throttled fetcher aims for: smaller chunks, smoother pacing.
const CHUNKS_PER_SECOND: u64 = 4;

/// Shared by every fetcher of the node. The rate is passed to each call because it may
/// change at any time (a dynamic broker config); 0 means no throttle.
pub struct ReassignmentThrottle {
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Never above zero (no burst); negative while bytes are owed.
    tokens: f64,
    refilled_at: Instant,
}

impl Default for ReassignmentThrottle {
    fn default() -> Self {
        ReassignmentThrottle::new()
    }
}

impl ReassignmentThrottle {
    pub fn new() -> ReassignmentThrottle {
        ReassignmentThrottle {
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// The partition byte limit for one throttled fetch, at most `bytes_max`.
    pub fn chunk_bytes(bytes_per_sec: u64, bytes_max: i32) -> i32 {
        if bytes_per_sec == 0 {
            return bytes_max;
        }
        let chunk = (bytes_per_sec / CHUNKS_PER_SECOND).max(1);
        i32::try_from(chunk).unwrap_or(i32::MAX).min(bytes_max)
    }

    /// How long the caller must wait after receiving `bytes`.
    pub fn charge(&self, bytes: usize, bytes_per_sec: u64, now: Instant) -> Duration {
        if bytes_per_sec == 0 {
            return Duration::ZERO;
        }
        let rate = bytes_per_sec as f64;
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(bucket.refilled_at);
        bucket.tokens = (bucket.tokens + elapsed.as_secs_f64() * rate).min(0.0);
        bucket.refilled_at = now;
        bucket.tokens -= bytes as f64;
        Duration::from_secs_f64(-bucket.tokens / rate)
    }

    /// Charges `bytes` and waits until they are paid for.
    pub async fn pay(&self, bytes: usize, bytes_per_sec: u64) {
        let wait = self.charge(bytes, bytes_per_sec, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_keep_bytes_per_second_under_the_rate() {
        let throttle = ReassignmentThrottle::new();
        let start = Instant::now();
        // Two fetchers each get 500 bytes at once: together they owe one second.
        assert_eq!(
            throttle.charge(500, 1000, start),
            Duration::from_millis(500)
        );
        assert_eq!(throttle.charge(500, 1000, start), Duration::from_secs(1));
        // Half a second later half the debt is paid.
        let later = start + Duration::from_millis(500);
        assert_eq!(throttle.charge(0, 1000, later), Duration::from_millis(500));
        // Idle time builds no burst allowance.
        let idle = start + Duration::from_secs(60);
        assert_eq!(throttle.charge(250, 1000, idle), Duration::from_millis(250));
        assert_eq!(ReassignmentThrottle::chunk_bytes(1000, 1 << 20), 250);
    }

    #[test]
    fn zero_means_unthrottled() {
        let throttle = ReassignmentThrottle::new();
        assert_eq!(throttle.charge(1 << 30, 0, Instant::now()), Duration::ZERO);
        assert_eq!(ReassignmentThrottle::chunk_bytes(0, 77), 77);
    }
}
