//! The node's Prometheus metrics: one registry, updated on the request path with atomics (once
//! per request or per partition, never per record), plus gauges computed when scraped
//! (`scrape`), served over HTTP by `http`.
//!
//! Names are `sluice_*` with the unit in the name; counters end in `_total`.

pub mod http;
mod scrape;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::broker::Broker;

/// Most consumer groups whose lag is exported (the first ones by group id): lag is one series
/// per group and partition, and a node may coordinate thousands of groups.
pub const LAG_GROUPS_EXPORTED_MAX: usize = 200;
/// API keys are small numbers; any key at or above this has no per-API series.
const API_KEY_LIMIT: usize = 128;
/// Client ids with a series of their own in `sluice_client_quota_throttle_ms`; later ones
/// are counted under [`CLIENT_ID_OTHER`] so the scrape stays bounded.
pub const QUOTA_CLIENT_IDS_EXPORTED_MAX: usize = 1_000;
pub const CLIENT_ID_OTHER: &str = "<other>";
/// Latency buckets: 0.5 ms doubling to ~16 s (long-polling Fetches sit at the top).
const LATENCY_BUCKET_FIRST_SECONDS: f64 = 0.0005;
const LATENCY_BUCKET_COUNT: u16 = 16;
/// Throttle buckets: 1 ms doubling to ~32 s.
const THROTTLE_BUCKET_FIRST_SECONDS: f64 = 0.001;
const THROTTLE_BUCKET_COUNT: u16 = 16;
/// The utilisation gauges cover this window.
const UTILIZATION_WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuotaLabels {
    pub client_id: String,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BrokerLabels {
    pub broker_id: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    group: String,
    topic: String,
    partition: i32,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Per-API request count and latency, looked up by API key without hashing.
#[derive(Clone)]
struct ApiMetrics {
    requests: Counter,
    latency: Histogram,
}

pub struct Metrics {
    registry: Registry,
    /// Every byte read from / written to client sockets.
    pub node_bytes_in: Counter,
    pub node_bytes_out: Counter,
    /// Record bytes of Fetch responses to followers (part of `node_bytes_out`).
    pub replication_bytes_out: Counter,
    topic_bytes_in: Family<TopicLabels, Counter>,
    topic_bytes_out: Family<TopicLabels, Counter>,
    apis: Vec<Option<ApiMetrics>>,
    throttle_time: HistogramFamily<ApiLabels>,
    client_quota_throttle_ms: Family<QuotaLabels, Counter>,
    /// Client ids that have their own quota series (at most QUOTA_CLIENT_IDS_EXPORTED_MAX).
    quota_client_ids: Mutex<std::collections::HashSet<String>>,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    /// Reassignments the balancer submitted while this node was the active controller.
    pub balancer_moves: Counter,
    /// Preferred leader elections the balancer asked for.
    pub balancer_preferred_elections: Counter,
    partitions_reassigning: Gauge,
    partitions_reassignment_queued: Gauge,
    broker_admission_refused: Family<BrokerLabels, Gauge>,
    pub open_connections: Gauge,
    egress_utilization: Gauge<f64, AtomicU64>,
    ingress_utilization: Gauge<f64, AtomicU64>,
    under_replicated_partitions: Gauge,
    offline_partitions: Gauge,
    log_size: Family<PartitionLabels, Gauge>,
    consumer_lag: Family<LagLabels, Gauge>,
    /// Cleanings of compacted partitions (`sluice_log_cleaner_runs_total`).
    pub log_cleaner_runs: Counter,
    /// Bytes the cleaner removed from segments.
    pub log_cleaner_bytes_reclaimed: Counter,
    /// Largest dirty ratio among this node's compacted replicas at the cleaner's last look.
    pub log_cleaner_max_dirty_ratio: Gauge<f64, AtomicU64>,
    /// Scrape-time gauges are cleared and refilled: one scrape at a time.
    scrape_lock: Mutex<()>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        LATENCY_BUCKET_FIRST_SECONDS,
        2.0,
        LATENCY_BUCKET_COUNT,
    ))
}

fn throttle_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        THROTTLE_BUCKET_FIRST_SECONDS,
        2.0,
        THROTTLE_BUCKET_COUNT,
    ))
}

impl Metrics {
    /// A registry with every series; `egress_budget` and `ingress_budget` (bytes/s) are
    /// exported as constant gauges so a dashboard can draw the line.
    pub fn new(capacity_bytes_per_sec: u64, egress_budget: u64, ingress_budget: u64) -> Metrics {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let node_bytes_in = counter(
            &mut registry,
            "sluice_node_bytes_in",
            "Bytes read from client connections",
        );
        let node_bytes_out = counter(
            &mut registry,
            "sluice_node_bytes_out",
            "Bytes written to client connections",
        );
        let replication_bytes_out = counter(
            &mut registry,
            "sluice_replication_bytes_out",
            "Record bytes sent to followers in Fetch responses",
        );
        let topic_bytes_in = Family::<TopicLabels, Counter>::default();
        registry.register(
            "sluice_topic_bytes_in",
            "Record bytes produced, by topic",
            topic_bytes_in.clone(),
        );
        let topic_bytes_out = Family::<TopicLabels, Counter>::default();
        registry.register(
            "sluice_topic_bytes_out",
            "Record bytes fetched by consumers, by topic",
            topic_bytes_out.clone(),
        );
        let apis = register_apis(&mut registry);
        let throttle_time: HistogramFamily<ApiLabels> =
            Family::new_with_constructor(throttle_histogram);
        registry.register(
            "sluice_throttle_time_seconds",
            "throttle_time_ms handed to clients over the node budget, by API",
            throttle_time.clone(),
        );
        let isr_shrinks = counter(
            &mut registry,
            "sluice_isr_shrinks",
            "ISR shrinks this node asked for as leader and got",
        );
        let isr_expands = counter(
            &mut registry,
            "sluice_isr_expands",
            "ISR expands this node asked for as leader and got",
        );
        let balancer_moves = counter(
            &mut registry,
            "sluice_balancer_moves",
            "Partition moves (reassignments) the balancer submitted as the active controller",
        );
        let balancer_preferred_elections = counter(
            &mut registry,
            "sluice_balancer_preferred_elections",
            "Partitions the balancer moved back to their preferred leader",
        );
        let partitions_reassigning = Gauge::default();
        registry.register(
            "sluice_partitions_reassigning",
            "Partitions of the cluster being reassigned (replicas catching up or switching)",
            partitions_reassigning.clone(),
        );
        let broker_admission_refused = Family::<BrokerLabels, Gauge>::default();
        registry.register(
            "sluice_broker_admission_refused",
            "1 for each registered broker whose advertised address failed the admission check \
             (kept fenced, out of clients' Metadata); the reason is in `sluice brokers`",
            broker_admission_refused.clone(),
        );
        let partitions_reassignment_queued = Gauge::default();
        registry.register(
            "sluice_partitions_reassignment_queued",
            "Reassignments waiting for a slot (--reassignment-moves-max)",
            partitions_reassignment_queued.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "sluice_open_connections",
            "Client connections open",
            open_connections.clone(),
        );
        let gauge_f64 = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::<f64, AtomicU64>::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let egress_utilization = gauge_f64(
            &mut registry,
            "sluice_network_egress_utilization_ratio",
            "Bytes written over the last second as a fraction of --network-capacity-bytes-per-sec",
        );
        let ingress_utilization = gauge_f64(
            &mut registry,
            "sluice_network_ingress_utilization_ratio",
            "Bytes read over the last second as a fraction of --network-capacity-bytes-per-sec",
        );
        for (name, help, value) in [
            (
                "sluice_network_capacity_bytes_per_second",
                "Configured link capacity",
                capacity_bytes_per_sec,
            ),
            (
                "sluice_egress_budget_bytes_per_second",
                "Fetch response bytes the node sends at most",
                egress_budget,
            ),
            (
                "sluice_ingress_budget_bytes_per_second",
                "Produce bytes the node takes before throttling",
                ingress_budget,
            ),
        ] {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, gauge);
        }
        let under_replicated_partitions = Gauge::default();
        registry.register(
            "sluice_under_replicated_partitions",
            "Partitions this node leads whose ISR is smaller than their replica set",
            under_replicated_partitions.clone(),
        );
        let offline_partitions = Gauge::default();
        registry.register(
            "sluice_offline_partitions",
            "Partitions this node hosts a replica of that have no leader",
            offline_partitions.clone(),
        );
        let log_size = Family::<PartitionLabels, Gauge>::default();
        registry.register(
            "sluice_log_size_bytes",
            "Bytes of this node's replica of each partition",
            log_size.clone(),
        );
        let client_quota_throttle_ms = Family::<QuotaLabels, Counter>::default();
        registry.register(
            "sluice_client_quota_throttle_ms",
            "Throttle time from client quotas (producer_byte_rate, consumer_byte_rate, \
             request_percentage), by \
             client id (first QUOTA_CLIENT_IDS_EXPORTED_MAX ids, the rest as <other>) and API",
            client_quota_throttle_ms.clone(),
        );
        let consumer_lag = Family::<LagLabels, Gauge>::default();
        registry.register(
            "sluice_consumer_lag_records",
            "High watermark minus committed offset, for groups this node coordinates \
             (first LAG_GROUPS_EXPORTED_MAX groups by id) and partitions it holds",
            consumer_lag.clone(),
        );
        let log_cleaner_runs = counter(
            &mut registry,
            "sluice_log_cleaner_runs",
            "Cleanings of compacted partitions (cleanup.policy=compact) on this node",
        );
        let log_cleaner_bytes_reclaimed = counter(
            &mut registry,
            "sluice_log_cleaner_bytes_reclaimed",
            "Segment bytes the log cleaner removed",
        );
        let log_cleaner_max_dirty_ratio = gauge_f64(
            &mut registry,
            "sluice_log_cleaner_max_dirty_ratio",
            "Largest dirty / (clean + dirty) bytes ratio among this node's compacted replicas \
             (Kafka's max-dirty-percent / 100)",
        );
        Metrics {
            registry,
            log_cleaner_runs,
            log_cleaner_bytes_reclaimed,
            log_cleaner_max_dirty_ratio,
            node_bytes_in,
            node_bytes_out,
            replication_bytes_out,
            topic_bytes_in,
            topic_bytes_out,
            apis,
            throttle_time,
            client_quota_throttle_ms,
            quota_client_ids: Mutex::new(std::collections::HashSet::new()),
            isr_shrinks,
            isr_expands,
            balancer_moves,
            balancer_preferred_elections,
            partitions_reassigning,
            partitions_reassignment_queued,
            broker_admission_refused,
            open_connections,
            egress_utilization,
            ingress_utilization,
            under_replicated_partitions,
            offline_partitions,
            log_size,
            consumer_lag,
            scrape_lock: Mutex::new(()),
        }
    }

    /// One request of `api_key` served in `elapsed`.
    pub fn record_request(&self, api_key: i16, elapsed: Duration) {
        let Some(Some(api)) = usize::try_from(api_key).ok().and_then(|k| self.apis.get(k)) else {
            return;
        };
        api.requests.inc();
        api.latency.observe(elapsed.as_secs_f64());
    }

    pub fn record_throttle(&self, api: ApiKey, throttle: Duration) {
        let labels = ApiLabels { api: api_name(api) };
        self.throttle_time
            .get_or_create(&labels)
            .observe(throttle.as_secs_f64());
    }

    /// Throttle time a client quota gave `client_id` on one request of `api`.
    pub fn record_client_quota_throttle(&self, api: ApiKey, client_id: &str, throttle: Duration) {
        let client_id = {
            let mut known = self
                .quota_client_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if known.contains(client_id) {
                client_id
            } else if known.len() < QUOTA_CLIENT_IDS_EXPORTED_MAX {
                known.insert(client_id.to_string());
                client_id
            } else {
                CLIENT_ID_OTHER
            }
        };
        let labels = QuotaLabels {
            client_id: client_id.to_string(),
            api: api_name(api),
        };
        let millis = u64::try_from(throttle.as_millis()).unwrap_or(u64::MAX);
        self.client_quota_throttle_ms
            .get_or_create(&labels)
            .inc_by(millis);
    }

    /// Record bytes produced to `topic` by one request.
    pub fn add_topic_bytes_in(&self, topic: &str, bytes: usize) {
        add_topic(&self.topic_bytes_in, topic, bytes);
    }

    /// Record bytes fetched from `topic` by a consumer in one response.
    pub fn add_topic_bytes_out(&self, topic: &str, bytes: usize) {
        add_topic(&self.topic_bytes_out, topic, bytes);
    }

    /// The text exposition, with the scrape-time gauges computed from `broker` (absent while
    /// the broker is starting).
    pub fn encode(&self, broker: Option<&Broker>) -> String {
        let _one_scrape = self.scrape_lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(broker) = broker {
            scrape::refresh(self, broker);
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics");
        }
        text
    }

    /// Every [`UTILIZATION_WINDOW`]: bytes moved in it over the capacity.
    pub fn spawn_utilization_sampler(
        self: &Arc<Self>,
        capacity_bytes_per_sec: u64,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        let capacity = capacity_bytes_per_sec.max(1) as f64 * UTILIZATION_WINDOW.as_secs_f64();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(UTILIZATION_WINDOW);
            let mut last = (metrics.node_bytes_in.get(), metrics.node_bytes_out.get());
            loop {
                ticker.tick().await;
                let now = (metrics.node_bytes_in.get(), metrics.node_bytes_out.get());
                metrics
                    .ingress_utilization
                    .set(now.0.saturating_sub(last.0) as f64 / capacity);
                metrics
                    .egress_utilization
                    .set(now.1.saturating_sub(last.1) as f64 / capacity);
                last = now;
            }
        })
    }
}

fn add_topic(family: &Family<TopicLabels, Counter>, topic: &str, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let labels = TopicLabels {
        topic: topic.to_string(),
    };
    family.get_or_create(&labels).inc_by(bytes as u64);
}

/// One counter and one histogram per served API, created up front so the request path only
/// indexes a vector.
fn register_apis(registry: &mut Registry) -> Vec<Option<ApiMetrics>> {
    let requests = Family::<ApiLabels, Counter>::default();
    registry.register(
        "sluice_requests",
        "Requests served, by API",
        requests.clone(),
    );
    let latency: HistogramFamily<ApiLabels> = Family::new_with_constructor(latency_histogram);
    registry.register(
        "sluice_request_latency_seconds",
        "Time from a request's decoding to its response, by API (Fetch includes its long poll)",
        latency.clone(),
    );
    let mut apis = vec![None; API_KEY_LIMIT];
    for api in sluice_wire::versions::SUPPORTED_APIS {
        let key = api.api_key as i16;
        let Some(slot) = usize::try_from(key).ok().and_then(|k| apis.get_mut(k)) else {
            continue;
        };
        let labels = ApiLabels {
            api: api_name(api.api_key),
        };
        *slot = Some(ApiMetrics {
            requests: requests.get_or_create_owned(&labels),
            latency: latency.get_or_create_owned(&labels),
        });
    }
    apis
}

/// Kafka's request names (`Produce`, `Fetch`, ...), as its own request metrics label them.
fn api_name(api: ApiKey) -> &'static str {
    use ApiKey::*;
    match api {
        Produce => "Produce",
        Fetch => "Fetch",
        ListOffsets => "ListOffsets",
        Metadata => "Metadata",
        OffsetCommit => "OffsetCommit",
        OffsetFetch => "OffsetFetch",
        FindCoordinator => "FindCoordinator",
        JoinGroup => "JoinGroup",
        Heartbeat => "Heartbeat",
        LeaveGroup => "LeaveGroup",
        SyncGroup => "SyncGroup",
        DescribeGroups => "DescribeGroups",
        ListGroups => "ListGroups",
        ApiVersions => "ApiVersions",
        CreateTopics => "CreateTopics",
        DeleteTopics => "DeleteTopics",
        DeleteRecords => "DeleteRecords",
        InitProducerId => "InitProducerId",
        OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        DescribeConfigs => "DescribeConfigs",
        AlterConfigs => "AlterConfigs",
        DescribeLogDirs => "DescribeLogDirs",
        CreatePartitions => "CreatePartitions",
        DeleteGroups => "DeleteGroups",
        IncrementalAlterConfigs => "IncrementalAlterConfigs",
        OffsetDelete => "OffsetDelete",
        DescribeClientQuotas => "DescribeClientQuotas",
        AlterClientQuotas => "AlterClientQuotas",
        DescribeCluster => "DescribeCluster",
        ConsumerGroupHeartbeat => "ConsumerGroupHeartbeat",
        ConsumerGroupDescribe => "ConsumerGroupDescribe",
        _ => "Other",
    }
}
