//! Racks and fetch from follower (KIP-392) on 3 real nodes in racks a, b and c: every node
//! shows the racks in Metadata and DescribeCluster; the leader sends a consumer whose
//! client.rack is a follower's rack to that follower (preferred_read_replica, no records);
//! the follower serves consumers up to the high watermark it learned and refuses what it
//! cannot serve as Kafka does; a librdkafka consumer with client.rack reads every record
//! once, in order, from the follower, and one without client.rack reads from the leader:
//! both the consumer's statistics (Fetch requests per broker) and each node's /metrics
//! (record bytes served to consumers) say so.

use std::collections::BTreeMap;
use std::process::Command;

use kafka_protocol::messages::{DescribeClusterRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use sluice_integration_tests::cluster::{Cluster, ClusterPlan, CLUSTER_DEADLINE};
use sluice_integration_tests::metrics;
use sluice_integration_tests::raw_client::{
    decode_records, fetch_request, RawClient, FETCH_VERSION, LIST_OFFSETS_VERSION,
};
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{kcat, run_command, run_python, topic_name, wait_until, Broker};

const NODES: i32 = 3;
const RECORDS: u32 = 300;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const OFFSET_OUT_OF_RANGE: i16 = 1;

fn rack(node: i32) -> String {
    format!(
        "rack-{}",
        ["a", "b", "c"][usize::try_from(node - 1).expect("node ids from 1")]
    )
}

/// 3 voters, node `id` in `rack(id)`, topics replicated 3 times.
fn start_cluster() -> Cluster {
    let plan = ClusterPlan::new(NODES as usize);
    let nodes = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=NODES)
            .map(|id| {
                let mut args = plan.node_args(id);
                args.extend(["--broker-rack".to_string(), rack(id)]);
                args.extend(["--default-replication-factor".to_string(), "3".to_string()]);
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    Broker::start_with(&args)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node starts"))
            .collect()
    });
    Cluster::from_nodes(nodes)
}

/// Node id → rack, as Metadata v12 from `node` lists them.
fn metadata_racks(node: &Broker) -> BTreeMap<i32, Option<String>> {
    let mut client = RawClient::connect(&node.bootstrap());
    let response = client.request(12, &MetadataRequest::default().with_topics(Some(vec![])));
    response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect()
}

fn describe_cluster_racks(node: &Broker) -> BTreeMap<i32, Option<String>> {
    let mut client = RawClient::connect(&node.bootstrap());
    let response = client.request(0, &DescribeClusterRequest::default());
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.rack.as_ref().map(|r| r.to_string())))
        .collect()
}

/// (leader, ISR size) of partition 0 as `node` sees it.
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, usize)> {
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(
            Some(kafka_protocol::messages::TopicName(StrBytes::from_string(
                topic.to_string(),
            ))),
        ),
    ]));
    let response = client.request(12, &request);
    let partition = response.topics.first()?.partitions.first()?;
    (partition.error_code == 0 && partition.leader_id.0 > 0)
        .then_some((partition.leader_id.0, partition.isr_nodes.len()))
}

fn produce(node: &Broker, topic: &str) {
    let input: String = (0..RECORDS).map(|v| format!("{v:08}\n")).collect();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-p", "0"]);
    command.args(["-X", "acks=all", "-X", "message.timeout.ms=30000"]);
    run_command(command, input.as_bytes(), "kcat produce");
}

fn expected_values() -> Vec<String> {
    values_up_to(RECORDS)
}

fn values_up_to(end: u32) -> Vec<String> {
    (0..end).map(|v| format!("{v:08}")).collect()
}

/// One Fetch v12 of partition 0 at `offset` with `rack_id`, answered at once.
fn fetch(
    node: &Broker,
    topic: &str,
    offset: i64,
    rack_id: &str,
    version: i16,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = fetch_request(topic, 0, offset);
    request.rack_id = StrBytes::from_string(rack_id.to_string());
    let response = client.request(version, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    response.responses[0].partitions[0].clone()
}

fn values_of(records: &bytes::Bytes) -> Vec<String> {
    decode_records(records)
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// librdkafka with client.rack = `rack` ("-": none) reads the `present` records of partition
/// 0, then `RECORDS` more it produces itself: every value once, in order.
fn consume_with_rack(cluster: &Cluster, topic: &str, present: u32, rack: &str) -> Value {
    let args = [
        cluster.bootstrap(),
        topic.to_string(),
        present.to_string(),
        RECORDS.to_string(),
        rack.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = parse_output(&run_python("confluent_rack_consumer.py", &args));
    let values: Vec<String> = output["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect();
    assert_eq!(
        values,
        values_up_to(present + RECORDS),
        "client.rack={rack}"
    );
    output
}

/// Record bytes each node served to consumers of `topic` so far, from its /metrics.
fn consumer_bytes_out(cluster: &Cluster, topic: &str) -> BTreeMap<i32, f64> {
    (1..=NODES)
        .map(|id| {
            let text = cluster.node(id).scrape();
            let served =
                metrics::sample(&text, "sluice_topic_bytes_out_total", &[("topic", topic)]);
            (id, served.unwrap_or(0.0))
        })
        .collect()
}

/// How much each node's count grew from `before` to `after`.
fn growth(before: &BTreeMap<i32, f64>, after: &BTreeMap<i32, f64>) -> BTreeMap<i32, f64> {
    after
        .iter()
        .map(|(id, value)| (*id, value - before[id]))
        .collect()
}

/// Fetch requests the consumer sent to `node`, from its statistics at `when`.
fn fetch_requests(output: &Value, when: &str, node: i32) -> u64 {
    output[when]["fetch_requests"][node.to_string()]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn consumers_read_from_a_follower_in_their_rack() {
    let cluster = start_cluster();
    let racks: BTreeMap<i32, Option<String>> = (1..=NODES).map(|id| (id, Some(rack(id)))).collect();
    for id in 1..=NODES {
        wait_until(CLUSTER_DEADLINE, "every rack in Metadata", || {
            (metadata_racks(cluster.node(id)) == racks).then_some(())
        });
        assert_eq!(describe_cluster_racks(cluster.node(id)), racks);
    }

    let topic = topic_name("follower-fetch");
    produce(cluster.node(1), &topic);
    let leader = wait_until(CLUSTER_DEADLINE, "an RF=3 partition", || {
        partition_state(cluster.node(1), &topic)
            .filter(|(_, isr)| *isr == 3)
            .map(|(leader, _)| leader)
    });
    let follower = (1..=NODES).find(|id| *id != leader).expect("a follower");
    let other = (1..=NODES)
        .find(|id| *id != leader && *id != follower)
        .expect("a third node");

    // The leader redirects a consumer in the follower's rack: no records, the offsets.
    let redirected = fetch(
        cluster.node(leader),
        &topic,
        0,
        &rack(follower),
        FETCH_VERSION,
    );
    assert_eq!(redirected.error_code, 0, "{redirected:?}");
    assert_eq!(
        redirected.preferred_read_replica.0, follower,
        "{redirected:?}"
    );
    assert_eq!(redirected.high_watermark, i64::from(RECORDS));
    assert!(redirected.records.as_ref().is_none_or(|r| r.is_empty()));
    // Its own rack, an unknown rack or none: the leader serves.
    for client_rack in [rack(leader), "rack-z".to_string(), String::new()] {
        let served = fetch(cluster.node(leader), &topic, 0, &client_rack, FETCH_VERSION);
        assert_eq!(
            served.preferred_read_replica.0, -1,
            "{client_rack}: {served:?}"
        );
        assert!(!values_of(served.records.as_ref().expect("records")).is_empty());
    }

    // The follower serves consumers every record up to the high watermark it learned.
    let from_follower = wait_until(CLUSTER_DEADLINE, "the follower's high watermark", || {
        let data = fetch(cluster.node(follower), &topic, 0, "", FETCH_VERSION);
        (data.error_code == 0 && data.high_watermark == i64::from(RECORDS)).then_some(data)
    });
    assert_eq!(from_follower.preferred_read_replica.0, -1);
    let mut values = Vec::new();
    let mut next = 0i64;
    while next < i64::from(RECORDS) {
        let data = fetch(cluster.node(follower), &topic, next, "", FETCH_VERSION);
        assert_eq!(data.error_code, 0, "{data:?}");
        let fetched = decode_records(data.records.as_ref().expect("records"));
        let fresh: Vec<_> = fetched.into_iter().filter(|r| r.offset >= next).collect();
        next = fresh.last().expect("progress").offset + 1;
        values.extend(
            fresh.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            }),
        );
    }
    assert_eq!(values, expected_values());
    // At the high watermark: nothing yet; past the log end: OFFSET_OUT_OF_RANGE.
    let at_end = fetch(
        cluster.node(follower),
        &topic,
        i64::from(RECORDS),
        "",
        FETCH_VERSION,
    );
    assert_eq!(at_end.error_code, 0, "{at_end:?}");
    assert!(at_end.records.as_ref().is_none_or(|r| r.is_empty()));
    let past = fetch(
        cluster.node(follower),
        &topic,
        i64::from(RECORDS) + 1,
        "",
        FETCH_VERSION,
    );
    assert_eq!(past.error_code, OFFSET_OUT_OF_RANGE, "{past:?}");
    // Fetch v10 has no client metadata: only the leader serves it (Kafka's fetchOnlyLeader).
    let old = fetch(cluster.node(follower), &topic, 0, "", 10);
    assert_eq!(old.error_code, NOT_LEADER_OR_FOLLOWER, "{old:?}");
    // ListOffsets stays leader-only.
    let mut client = RawClient::connect(&cluster.node(follower).bootstrap());
    let list = list_offsets(&mut client, &topic);
    assert_eq!(list, NOT_LEADER_OR_FOLLOWER);

    // librdkafka with client.rack: every record once, in order, fetched from the follower.
    // While it reads the records produced meanwhile, the follower gets its Fetches and the
    // leader none (it got only the first, which it redirected).
    let served_before = consumer_bytes_out(&cluster, &topic);
    let with_rack = consume_with_rack(&cluster, &topic, RECORDS, &rack(follower));
    let served_after = consumer_bytes_out(&cluster, &topic);
    // Server side: the follower sent every record byte, the leader and the third node none
    // (a redirect carries no records).
    let served = growth(&served_before, &served_after);
    assert!(served[&follower] > 0.0, "{served:?}");
    assert_eq!((served[&leader], served[&other]), (0.0, 0.0), "{served:?}");
    for when in ["before", "after"] {
        assert_eq!(with_rack[when]["leader"], leader, "{with_rack}");
        assert_eq!(with_rack[when]["fetch_broker"], follower, "{with_rack}");
        assert_eq!(fetch_requests(&with_rack, when, other), 0, "{with_rack}");
    }
    let leader_fetches = fetch_requests(&with_rack, "before", leader);
    assert!((1..=2).contains(&leader_fetches), "{with_rack}");
    assert_eq!(fetch_requests(&with_rack, "after", leader), leader_fetches);
    assert!(
        fetch_requests(&with_rack, "after", follower)
            > fetch_requests(&with_rack, "before", follower),
        "{with_rack}"
    );

    // Without client.rack: the leader serves everything, followers get no Fetch.
    let without_rack = consume_with_rack(&cluster, &topic, 2 * RECORDS, "-");
    let served = growth(&served_after, &consumer_bytes_out(&cluster, &topic));
    assert!(served[&leader] > 0.0, "{served:?}");
    assert_eq!(
        (served[&follower], served[&other]),
        (0.0, 0.0),
        "{served:?}"
    );
    for when in ["before", "after"] {
        assert_eq!(without_rack[when]["fetch_broker"], leader, "{without_rack}");
        assert_eq!(
            fetch_requests(&without_rack, when, follower),
            0,
            "{without_rack}"
        );
        assert_eq!(
            fetch_requests(&without_rack, when, other),
            0,
            "{without_rack}"
        );
    }
    assert!(
        fetch_requests(&without_rack, "after", leader)
            > fetch_requests(&without_rack, "before", leader),
        "{without_rack}"
    );
}

/// ListOffsets (latest) of partition 0; its error code.
fn list_offsets(client: &mut RawClient, topic: &str) -> i16 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = vec![ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1)
            .with_current_leader_epoch(-1)])];
    let response = client.request(LIST_OFFSETS_VERSION, &request);
    response.topics[0].partitions[0].error_code
}
