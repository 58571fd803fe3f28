//! The HTTP listener: /health, /ready, and /metrics series with exact values after known
//! traffic from our own wire client; and a consumer over the node's egress budget getting
//! `throttle_time_ms` and its connection muted for that long.

use std::time::{Duration, Instant};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_integration_tests::metrics::{sample, sum};
use sluice_integration_tests::raw_client::{
    fetch_request, record_batch, RawClient, TestRecord, FETCH_VERSION,
};
use sluice_integration_tests::{topic_name, wait_until, Broker};

const OFFSET_COMMIT_VERSION: i16 = 8;
const READY_DEADLINE: Duration = Duration::from_secs(30);

fn batch(count: usize, value_bytes: usize) -> bytes::Bytes {
    let value = vec![b'v'; value_bytes];
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::new(format!("k{i}").as_bytes(), &value))
        .collect();
    record_batch(&records)
}

fn commit(client: &mut RawClient, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    request.generation_id_or_member_epoch = -1;
    let mut entry = OffsetCommitRequestTopic::default();
    entry.name = TopicName(StrBytes::from_string(topic.to_string()));
    for (partition, offset) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        entry.partitions.push(p);
    }
    request.topics.push(entry);
    let response = client.request(OFFSET_COMMIT_VERSION, &request);
    for partition in &response.topics[0].partitions {
        assert_eq!(partition.error_code, 0, "{response:?}");
    }
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
}

#[test]
fn health_ready_and_unknown_paths() {
    let broker = Broker::start();
    assert_eq!(broker.http_get("/health"), (200, "ok\n".to_string()));
    wait_until(READY_DEADLINE, "/ready answers 200", || {
        (broker.http_get("/ready").0 == 200).then_some(())
    });
    assert_eq!(broker.http_get("/nope").0, 404);
}

#[test]
fn metrics_count_exactly_what_clients_did() {
    let broker = Broker::start_with(&[
        "--network-capacity-bytes-per-sec",
        "1000000000",
        "--network-target-utilization",
        "0.5",
    ]);
    let topic = topic_name("metrics");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    let first = batch(10, 100);
    let second = batch(5, 20);
    for (partition, records) in [(0, first.clone()), (1, second.clone())] {
        let response = client
            .produce(&topic, partition, -1, records)
            .expect("acks=-1");
        assert_eq!(response.error_code, 0);
    }
    let fetched = client.fetch(&topic, 0, 0);
    assert_eq!(fetched.records.as_ref().map(|r| r.len()), Some(first.len()));
    // The group's coordinator exists once the offsets topic does (FindCoordinator creates it).
    client.wait_group_coordinators(&["lag-group"], std::time::Duration::from_secs(30));
    commit(&mut client, "lag-group", &topic, &[(0, 4), (1, 5)]);

    let text = broker.scrape();
    let by_topic = [("topic", topic.as_str())];
    let produced = (first.len() + second.len()) as f64;
    assert_eq!(
        value(&text, "sluice_topic_bytes_in_total", &by_topic),
        produced
    );
    assert_eq!(
        value(&text, "sluice_topic_bytes_out_total", &by_topic),
        first.len() as f64
    );
    for (api, count) in [
        ("Produce", 2.0),
        ("Fetch", 1.0),
        ("CreateTopics", 1.0),
        ("OffsetCommit", 1.0),
    ] {
        assert_eq!(
            value(&text, "sluice_requests_total", &[("api", api)]),
            count,
            "{api}"
        );
        let latency = value(
            &text,
            "sluice_request_latency_seconds_count",
            &[("api", api)],
        );
        assert_eq!(latency, count, "{api}");
    }
    let lag = |partition: &str| {
        let labels = [
            ("group", "lag-group"),
            ("topic", topic.as_str()),
            ("partition", partition),
        ];
        value(&text, "sluice_consumer_lag_records", &labels)
    };
    assert_eq!(lag("0"), 6.0, "10 records, committed 4");
    assert_eq!(lag("1"), 0.0, "5 records, committed 5");
    let size = |partition: &str| {
        let labels = [("topic", topic.as_str()), ("partition", partition)];
        value(&text, "sluice_log_size_bytes", &labels)
    };
    assert_eq!(size("0"), first.len() as f64);
    assert_eq!(size("1"), second.len() as f64);
    assert_eq!(value(&text, "sluice_open_connections", &[]), 1.0);
    assert_eq!(value(&text, "sluice_under_replicated_partitions", &[]), 0.0);
    assert_eq!(value(&text, "sluice_offline_partitions", &[]), 0.0);
    assert_eq!(value(&text, "sluice_isr_shrinks_total", &[]), 0.0);
    assert_eq!(value(&text, "sluice_isr_expands_total", &[]), 0.0);
    assert_eq!(
        value(&text, "sluice_egress_budget_bytes_per_second", &[]),
        500_000_000.0
    );
    assert_eq!(sum(&text, "sluice_throttle_time_seconds_count"), 0.0);
    // Socket bytes include the frames around the records.
    assert!(value(&text, "sluice_node_bytes_in_total", &[]) > produced);
    assert!(value(&text, "sluice_node_bytes_out_total", &[]) > first.len() as f64);
    let utilization = value(&text, "sluice_network_egress_utilization_ratio", &[]);
    assert!((0.0..1.0).contains(&utilization), "{utilization}");

    drop(client);
    wait_until(
        READY_DEADLINE,
        "the closed connection is no longer counted",
        || {
            let text = broker.scrape();
            (value(&text, "sluice_open_connections", &[]) == 0.0).then_some(())
        },
    );
}

#[test]
fn a_consumer_over_the_budget_is_throttled_and_muted() {
    // Budget 50 kB/s: consumers 40 kB/s, a bucket of a quarter second (10 kB).
    let broker = Broker::start_with(&[
        "--network-capacity-bytes-per-sec",
        "100000",
        "--network-target-utilization",
        "0.5",
    ]);
    let topic = topic_name("throttled");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let records = batch(50, 1000);
    let length = records.len();
    assert!(length > 50_000);
    // The producer is throttled too (ingress 50 kB/s), so produce on its own connection.
    let mut producer = RawClient::connect(&broker.bootstrap());
    let response = producer.produce(&topic, 0, -1, records).expect("acks=-1");
    assert_eq!(response.error_code, 0);

    // Shaped: at most the grant (the 10 kB bucket) comes back, in whole batches, though the
    // client asked for everything; this connection is then paced at 40 kB/s, less the slack.
    let response = client.request(FETCH_VERSION, &fetch_request(&topic, 0, 0));
    let partition = &response.responses[0].partitions[0];
    let fetched = partition.records.as_ref().map_or(0, |r| r.len());
    assert!(fetched > 0 && fetched <= 10_000, "{fetched} bytes");
    let expected_ms = (fetched as f64 / 40_000.0 * 1000.0) as i32 - 50;
    let throttle_ms = response.throttle_time_ms;
    assert!(
        (expected_ms - 5..=expected_ms).contains(&throttle_ms),
        "throttle {throttle_ms} ms, expected about {expected_ms} ms"
    );
    // Muted: the next request on this connection is served only after the throttle time.
    let started = Instant::now();
    let next = client.request(FETCH_VERSION, &fetch_request(&topic, 0, 0));
    let waited = started.elapsed();
    assert_eq!(next.responses[0].partitions[0].error_code, 0);
    assert!(next.throttle_time_ms > 0, "the second fetch is paced too");
    assert!(
        waited >= Duration::from_millis(u64::try_from(throttle_ms).unwrap() - 20),
        "answered after {waited:?}, throttled {throttle_ms} ms"
    );
    let text = broker.scrape();
    let fetch_throttles = [("api", "Fetch")];
    assert_eq!(
        value(
            &text,
            "sluice_throttle_time_seconds_count",
            &fetch_throttles
        ),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "sluice_throttle_time_seconds_count",
            &[("api", "Produce")]
        ),
        1.0
    );
}
