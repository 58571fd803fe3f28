//! Kafka's client quotas (`producer_byte_rate`, `consumer_byte_rate`, `request_percentage`)
//! enforced per quota entity: every client whose requests resolve to the same entity (Kafka's
//! precedence, see `ClientQuotasImage::applying`) shares one token bucket, so a default quota
//! is shared by all clients without a more specific one, exactly as Kafka shares its quota
//! sensors.
//!
//! `request_percentage` is, as in Kafka, a percentage of one thread's time: 100 lets the
//! entity's requests keep one worker busy all the time, 50 half of it. Its bucket counts
//! microseconds of busy time (`BusyTime`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_raft::image::{
    ClientQuotasImage, QuotaEntity, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};

use super::bucket::TokenBucket;

/// The principal of every request until SASL lands; Kafka's unauthenticated principal. With
/// users, the handlers pass the session's principal instead.
pub const ANONYMOUS_USER: &str = "ANONYMOUS";
/// Most quota buckets held at once; beyond it the least recently used one is dropped.
pub const QUOTA_BUCKETS_MAX: usize = 10_000;
/// A bucket unused this long is dropped when room is needed.
pub const QUOTA_BUCKET_IDLE: Duration = Duration::from_secs(60);
/// Burst a quota allows: this many seconds of its rate (Kafka averages over ~11 s windows;
/// a shorter burst keeps the measured rate close to the quota over a few seconds).
const QUOTA_BURST_SECONDS: f64 = 1.0;
/// Kafka clients read throttle_time_ms as an i32; a day is far beyond anything useful.
const QUOTA_THROTTLE_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Which quota a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Bytes produced.
    Produce,
    /// Bytes fetched.
    Fetch,
    /// Microseconds of busy time, any request.
    RequestTime,
}

/// Microseconds per second of busy time that a `request_percentage` of 1 allows.
const MICROS_PER_SEC_PER_PERCENT: f64 = 1_000_000.0 / 100.0;

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::RequestTime => REQUEST_PERCENTAGE,
        }
    }

    /// The quota's value as units per second of what is charged.
    fn units_per_sec(self, value: f64) -> f64 {
        match self {
            QuotaKind::Produce | QuotaKind::Fetch => value,
            QuotaKind::RequestTime => value * MICROS_PER_SEC_PER_PERCENT,
        }
    }
}

struct QuotaBucket {
    bucket: TokenBucket,
    last_used: Instant,
}

/// The node's client-quota buckets, by (kind, entity).
#[derive(Default)]
pub struct ClientQuotaBuckets {
    buckets: Mutex<HashMap<(QuotaKind, QuotaEntity), QuotaBucket>>,
}

impl ClientQuotaBuckets {
    /// Charges `bytes` moved (microseconds busy, for [`QuotaKind::RequestTime`]) for
    /// `client_id` (as `user`) to the quota that applies, if any; returns how long the client
    /// must wait (zero when within its quota).
    pub fn charge(
        &self,
        quotas: &ClientQuotasImage,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) -> Duration {
        let Some((entity, value)) = quotas.applying(user, client_id, kind.key()) else {
            return Duration::ZERO;
        };
        let rate = kind.units_per_sec(value);
        if bytes == 0 {
            return Duration::ZERO;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, entity);
        let current = buckets
            .get(&key)
            .is_some_and(|held| held.bucket.rate_bytes_per_sec() == rate);
        if !current {
            if !buckets.contains_key(&key) && buckets.len() >= QUOTA_BUCKETS_MAX {
                evict(&mut buckets, now);
            }
            let depth = (rate * QUOTA_BURST_SECONDS).max(1.0);
            let bucket = TokenBucket::new(rate, depth);
            buckets.insert(
                key.clone(),
                QuotaBucket {
                    bucket,
                    last_used: now,
                },
            );
        }
        let held = buckets.get_mut(&key);
        let held = held.unwrap_or_else(|| panic!("bucket for {key:?} inserted above"));
        held.last_used = now;
        held.bucket.take(bytes, now).min(QUOTA_THROTTLE_MAX)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Drops idle buckets, or the least recently used one when none is idle.
fn evict(buckets: &mut HashMap<(QuotaKind, QuotaEntity), QuotaBucket>, now: Instant) {
    buckets.retain(|_, held| now.saturating_duration_since(held.last_used) < QUOTA_BUCKET_IDLE);
    if buckets.len() < QUOTA_BUCKETS_MAX {
        return;
    }
    let oldest = buckets
        .iter()
        .min_by_key(|(_, held)| held.last_used)
        .map(|(key, _)| key.clone());
    if let Some(oldest) = oldest {
        buckets.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use sluice_raft::image::{EntityName, QuotaValue};

    use super::*;

    fn quotas(client: EntityName, key: &str, rate: f64) -> ClientQuotasImage {
        let mut image = ClientQuotasImage::default();
        image
            .entities
            .entry(QuotaEntity::client_id(client))
            .or_default()
            .insert(key.to_string(), QuotaValue::new(rate).unwrap());
        image
    }

    #[test]
    fn over_quota_throttles_for_the_debt_and_others_are_free() {
        let image = quotas(EntityName::Named("slow".into()), PRODUCER_BYTE_RATE, 1000.0);
        let buckets = ClientQuotaBuckets::default();
        let now = Instant::now();
        let charge = |client: &str, kind, bytes| {
            buckets.charge(&image, kind, ANONYMOUS_USER, client, bytes, now)
        };
        // The first second's burst is free; 500 bytes beyond it cost half a second.
        assert_eq!(charge("slow", QuotaKind::Produce, 1000), Duration::ZERO);
        assert_eq!(
            charge("slow", QuotaKind::Produce, 500),
            Duration::from_millis(500)
        );
        assert_eq!(charge("slow", QuotaKind::Fetch, 1 << 20), Duration::ZERO);
        assert_eq!(charge("fast", QuotaKind::Produce, 1 << 20), Duration::ZERO);
        assert_eq!(buckets.len(), 1);
    }

    #[test]
    fn a_default_quota_is_shared_and_a_changed_rate_starts_a_new_bucket() {
        let buckets = ClientQuotaBuckets::default();
        let now = Instant::now();
        let image = quotas(EntityName::Default, CONSUMER_BYTE_RATE, 100.0);
        let charge = |image: &ClientQuotasImage, client: &str| {
            buckets.charge(image, QuotaKind::Fetch, ANONYMOUS_USER, client, 100, now)
        };
        assert_eq!(charge(&image, "a"), Duration::ZERO);
        assert_eq!(charge(&image, "b"), Duration::from_secs(1));
        let raised = quotas(EntityName::Default, CONSUMER_BYTE_RATE, 200.0);
        assert_eq!(charge(&raised, "a"), Duration::ZERO);
        assert_eq!(buckets.len(), 1);
    }

    #[test]
    fn request_percentage_is_a_share_of_one_workers_time() {
        // 10 %: 100 ms of busy time per second, a second's worth as burst.
        let image = quotas(EntityName::Named("busy".into()), REQUEST_PERCENTAGE, 10.0);
        let buckets = ClientQuotaBuckets::default();
        let now = Instant::now();
        let charge = |micros| {
            buckets.charge(
                &image,
                QuotaKind::RequestTime,
                ANONYMOUS_USER,
                "busy",
                micros,
                now,
            )
        };
        assert_eq!(charge(100_000), Duration::ZERO);
        assert_eq!(charge(50_000), Duration::from_millis(500));
    }

    #[test]
    fn buckets_are_bounded() {
        let buckets = ClientQuotaBuckets::default();
        let image = quotas(EntityName::Default, PRODUCER_BYTE_RATE, 100.0);
        let start = Instant::now();
        let mut named = image.clone();
        for index in 0..=QUOTA_BUCKETS_MAX {
            let entity = QuotaEntity::client_id(EntityName::Named(format!("c{index}")));
            let value = QuotaValue::new(100.0).unwrap();
            named
                .entities
                .entry(entity)
                .or_default()
                .insert(PRODUCER_BYTE_RATE.into(), value);
        }
        for index in 0..=QUOTA_BUCKETS_MAX {
            let now = start + Duration::from_millis(index as u64);
            let client = format!("c{index}");
            buckets.charge(&named, QuotaKind::Produce, ANONYMOUS_USER, &client, 1, now);
        }
        assert_eq!(buckets.len(), QUOTA_BUCKETS_MAX);
    }
}
