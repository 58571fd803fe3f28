//! The node's network budgets: what it may send in Fetch responses and take in Produce
//! requests per second, so that more read demand than the link carries slows consumers down
//! (smaller responses, `throttle_time_ms`) instead of saturating the link until the node drops
//! out, as in the outage in issue 6.
//!
//! - Egress budget = `--network-capacity-bytes-per-sec` x `--network-target-utilization`.
//!   Replication (follower fetches) has [`REPLICATION_SHARE`] of it in a bucket of its own that
//!   consumers never draw from; replication may also use what consumers leave.
//! - A Fetch is granted at most what its bucket holds (and, for consumers, a fair part of the
//!   bucket's depth); the first batch may exceed the grant (Kafka's "at least one record
//!   batch", KIP-74), putting the bucket into debt. Debt delays the next fetches.
//! - Fairness is per connection: each connection that moved bytes in the last second gets an
//!   equal share of the rate, enforced by pacing it (a connection that took `b` bytes is
//!   throttled `b / share`). Per connection rather than per client id because it needs no
//!   shared map (each connection owns its pacing state, so memory is bounded by the connection
//!   limit) and a consumer fetches from a node over one connection; a client opening many
//!   connections gets many shares, bounded by `--max-connections` (per-client quotas are the
//!   tool against that).
//! - Throttling is Kafka's (KIP-219): the response says `throttle_time_ms`, and the broker
//!   stops reading that connection for that long. Nothing queues: a throttled connection's next
//!   request waits in its socket buffer.
//! - Ingress: Produce is appended, then charged to the ingress bucket and paced the same way.

mod bucket;
mod busy_time;
mod client_quotas;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use bucket::TokenBucket;
pub use busy_time::BusyTime;
pub use client_quotas::{ClientQuotaBuckets, QuotaKind, ANONYMOUS_USER};

use crate::config::Config;

/// Fraction of the egress budget kept for follower fetches.
pub const REPLICATION_SHARE: f64 = 0.2;
/// Bucket depth in seconds of rate: the burst a quiet node allows, and the tolerance of the
/// budget over a window.
const BUCKET_DEPTH_SECONDS: f64 = 0.25;
/// A connection counts as active (taking a share) for this long after it moved bytes.
const ACTIVE_WINDOW: Duration = Duration::from_secs(1);
/// A connection idle for a while may bank this much pacing time (a small burst).
const PACING_SLACK: Duration = Duration::from_millis(50);
/// Back-off for a fetch that found its bucket empty, at least.
const EMPTY_GRANT_BACKOFF: Duration = Duration::from_millis(20);
/// Kafka clients read throttle_time_ms as an i32; a day is far beyond anything useful.
const THROTTLE_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Whose fetch it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchKind {
    Consumer,
    /// A follower replicating (Fetch with replica_id >= 0).
    Replication,
}

/// Buckets and active-connection counts of one direction.
struct Direction {
    bucket: TokenBucket,
    active: Mutex<ActiveWindow>,
}

/// Connections that moved bytes in the current and the previous [`ACTIVE_WINDOW`].
struct ActiveWindow {
    sequence: u64,
    started_at: Instant,
    current: u32,
    previous: u32,
}

impl Direction {
    fn new(rate_bytes_per_sec: f64) -> Direction {
        let depth = (rate_bytes_per_sec * BUCKET_DEPTH_SECONDS).max(1.0);
        Direction {
            bucket: TokenBucket::new(rate_bytes_per_sec, depth),
            active: Mutex::new(ActiveWindow {
                sequence: 1,
                started_at: Instant::now(),
                current: 0,
                previous: 0,
            }),
        }
    }

    /// Counts `pacer`'s connection as active now; returns how many share the rate (>= 1).
    fn share_count(&self, pacer: &Pacer, now: Instant) -> u32 {
        let mut window = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(window.started_at);
        if elapsed >= ACTIVE_WINDOW {
            window.previous = if elapsed >= 2 * ACTIVE_WINDOW {
                0
            } else {
                window.current
            };
            window.current = 0;
            window.sequence += 1;
            window.started_at = now;
        }
        if pacer.counted_in.swap(window.sequence, Ordering::AcqRel) != window.sequence {
            window.current += 1;
        }
        window.current.max(window.previous).max(1)
    }

    /// Pacing of `pacer` after it moved `bytes`, at its equal share of the rate.
    fn pace(&self, pacer: &Pacer, bytes: usize, now: Instant) -> Duration {
        let sharing = self.share_count(pacer, now);
        let share_rate = self.bucket.rate_bytes_per_sec() / f64::from(sharing);
        pacer.advance(Duration::from_secs_f64(bytes as f64 / share_rate), now)
    }
}

/// The node's budgets; one per broker.
pub struct NodeBudget {
    consumers: Direction,
    replication: TokenBucket,
    ingress: Direction,
}

impl NodeBudget {
    pub fn new(config: &Config) -> NodeBudget {
        let budget = egress_budget_bytes_per_sec(config) as f64;
        let replication = budget * REPLICATION_SHARE;
        NodeBudget {
            consumers: Direction::new(budget - replication),
            replication: TokenBucket::new(
                replication,
                (replication * BUCKET_DEPTH_SECONDS).max(1.0),
            ),
            ingress: Direction::new(ingress_budget_bytes_per_sec(config) as f64),
        }
    }

    /// The most record bytes a Fetch may return now (0: throttled, answer empty).
    pub fn fetch_grant(&self, kind: FetchKind, now: Instant) -> usize {
        let consumers = self.consumers.bucket.available(now);
        match kind {
            FetchKind::Consumer => {
                // A fair part of the depth, so one connection cannot empty the bucket at once.
                let sharing = self
                    .consumers
                    .active
                    .lock()
                    .map_or(1, |w| w.current.max(w.previous).max(1));
                let fair = (self.consumers.bucket.depth_bytes() / f64::from(sharing)) as usize;
                consumers.min(fair.max(1))
            }
            FetchKind::Replication => self.replication.available(now).saturating_add(consumers),
        }
    }

    /// Charges a Fetch response of `bytes` record bytes (`granted` is what
    /// [`NodeBudget::fetch_grant`] allowed); returns the throttle time for the client.
    pub fn charge_fetch(
        &self,
        kind: FetchKind,
        connection: &ConnectionShare,
        bytes: usize,
        granted: usize,
        now: Instant,
    ) -> Duration {
        let throttle = match kind {
            FetchKind::Consumer => {
                let debt = self.consumers.bucket.take(bytes, now);
                let paced = if bytes > 0 {
                    self.consumers.pace(&connection.fetch, bytes, now)
                } else {
                    Duration::ZERO
                };
                debt.max(paced)
            }
            FetchKind::Replication => {
                let reserved = self.replication.take_available(bytes, now);
                let rest = bytes - reserved;
                if rest > 0 {
                    self.consumers.bucket.take(rest, now)
                } else {
                    Duration::ZERO
                }
            }
        };
        let throttle = if granted == 0 {
            throttle
                .max(EMPTY_GRANT_BACKOFF)
                .max(self.consumers.bucket.delay(now))
        } else {
            throttle
        };
        throttle.min(THROTTLE_MAX)
    }

    /// Charges a Produce request of `bytes` record bytes, already appended; returns the
    /// throttle time for the client (Kafka throttles produce after the append).
    pub fn charge_produce(
        &self,
        connection: &ConnectionShare,
        bytes: usize,
        now: Instant,
    ) -> Duration {
        if bytes == 0 {
            return Duration::ZERO;
        }
        let debt = self.ingress.bucket.take(bytes, now);
        let paced = self.ingress.pace(&connection.produce, bytes, now);
        debt.max(paced).min(THROTTLE_MAX)
    }
}

pub fn egress_budget_bytes_per_sec(config: &Config) -> u64 {
    (config.network_capacity_bytes_per_sec as f64 * config.network_target_utilization) as u64
}

/// Ingress has the same budget as egress: the link is full duplex.
pub fn ingress_budget_bytes_per_sec(config: &Config) -> u64 {
    egress_budget_bytes_per_sec(config)
}

/// One direction's pacing of one connection: it may move bytes again at `paced_until`.
#[derive(Default)]
struct Pacer {
    paced_until: Mutex<Option<Instant>>,
    /// The [`ActiveWindow::sequence`] this connection was last counted in.
    counted_in: AtomicU64,
}

impl Pacer {
    fn advance(&self, cost: Duration, now: Instant) -> Duration {
        let mut paced_until = self.paced_until.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = now.checked_sub(PACING_SLACK).unwrap_or(now);
        let from = paced_until.map_or(earliest, |until| until.max(earliest));
        let until = from + cost;
        *paced_until = Some(until);
        until.saturating_duration_since(now)
    }
}

/// A connection's share of the budgets and its mute (Kafka mutes a throttled channel).
#[derive(Default)]
pub struct ConnectionShare {
    fetch: Pacer,
    produce: Pacer,
    muted_until: Mutex<Option<Instant>>,
}

impl ConnectionShare {
    /// Stops reading this connection's requests for `throttle` (after the current response).
    pub fn mute_for(&self, throttle: Duration, now: Instant) {
        if throttle.is_zero() {
            return;
        }
        let mut muted = self.muted_until.lock().unwrap_or_else(|e| e.into_inner());
        let until = now + throttle;
        *muted = Some(muted.map_or(until, |current| current.max(until)));
    }

    /// When the connection may serve its next request, if it is muted; clears the mute.
    pub fn take_mute(&self) -> Option<Instant> {
        self.muted_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Throttle time as Kafka's `throttle_time_ms`.
pub fn throttle_ms(throttle: Duration) -> i32 {
    i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(capacity: u64) -> NodeBudget {
        use clap::Parser;
        let capacity = capacity.to_string();
        let config = Config::try_parse_from([
            "sluice",
            "--network-capacity-bytes-per-sec",
            capacity.as_str(),
            "--network-target-utilization",
            "0.5",
        ])
        .expect("flags");
        NodeBudget::new(&config)
    }

    #[test]
    fn consumers_share_the_rate_equally_by_connection() {
        // Budget 1000 B/s: consumers 800, replication 200.
        let budget = budget(2000);
        let now = Instant::now();
        let (a, b) = (ConnectionShare::default(), ConnectionShare::default());
        // Both active: each paced at 400 B/s; 400 bytes cost one second, less the slack.
        let first = budget.charge_fetch(FetchKind::Consumer, &a, 100, 100, now);
        let second = budget.charge_fetch(FetchKind::Consumer, &b, 100, 100, now);
        assert_eq!(first, Duration::from_millis(125 - 50));
        assert_eq!(second, Duration::from_millis(250 - 50));
        // a again: two sharing now, 100 more bytes = 250 ms more.
        let third = budget.charge_fetch(FetchKind::Consumer, &a, 100, 100, now);
        assert_eq!(third, Duration::from_millis(75 + 250));
    }

    #[test]
    fn replication_keeps_its_share_when_consumers_are_in_debt() {
        let budget = budget(2000);
        let now = Instant::now();
        let consumer = ConnectionShare::default();
        let depth = budget.fetch_grant(FetchKind::Consumer, now);
        assert_eq!(depth, 200, "a quarter second of 800 B/s");
        budget.charge_fetch(FetchKind::Consumer, &consumer, 1000, depth, now);
        assert_eq!(budget.fetch_grant(FetchKind::Consumer, now), 0);
        // The reserved 200 B/s bucket (depth 50) is untouched by consumers.
        assert_eq!(budget.fetch_grant(FetchKind::Replication, now), 50);
        let follower = ConnectionShare::default();
        let throttle = budget.charge_fetch(FetchKind::Replication, &follower, 50, 50, now);
        assert_eq!(throttle, Duration::ZERO);
        // An empty grant backs off until the consumer debt (800 B at 800 B/s) is paid.
        let empty = budget.charge_fetch(FetchKind::Consumer, &consumer, 0, 0, now);
        assert_eq!(empty, Duration::from_secs(1));
    }
}
