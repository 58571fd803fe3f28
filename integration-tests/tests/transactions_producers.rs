//! DescribeProducers (API 61) through Apache Kafka's own tool: `kafka-transactions.sh
//! describe-producers` shows the partition leader's producer state (epoch, last sequence,
//! last timestamp, coordinator epoch, open transaction's start offset) before and after the
//! commit marker, and `find-hanging` (DescribeProducers + ListTransactions +
//! DescribeTransactions) finds no hanging transaction for an old but coordinator-known one.
//! Raw requests check Kafka's errors: unknown partitions, and on 3 nodes
//! NOT_LEADER_OR_FOLLOWER from every node but the partition's leader.

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{DescribeProducersRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_integration_tests::cluster::Cluster;
use sluice_integration_tests::kafka_cli::kafka_tool;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, end_txn, find_coordinator, init, produce_transactional, transactional_batch,
    wait_state, TIMEOUT_MS, WAIT,
};
use sluice_integration_tests::{topic_name, wait_until, Broker};

const METADATA_VERSION: i16 = 12;
/// `kafka-transactions.sh`.
const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";
/// The record timestamp `transactional_batch` writes (November 2023: long "hanging").
const BATCH_TIMESTAMP_MS: &str = "1700000000000";

fn tool(broker: &Broker, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let all = [&["--bootstrap-server", bootstrap.as_str()][..], args].concat();
    kafka_tool(TRANSACTIONS, &all, b"").success(&format!("{TRANSACTIONS} {args:?}"))
}

/// Data rows (header skipped) of a tool table, whitespace-split.
fn rows(output: &str, header_first: &str) -> Vec<Vec<String>> {
    let mut lines = output
        .lines()
        .skip_while(|line| !line.trim_start().starts_with(header_first));
    assert!(
        lines.next().is_some(),
        "no table headed {header_first} in {output}"
    );
    lines
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .filter(|columns: &Vec<String>| !columns.is_empty())
        .collect()
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

#[test]
fn kafka_transactions_tool_describes_producers_and_finds_no_hanging_transaction() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-producers");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let id = format!("{topic}-id");
    find_coordinator(&mut client, &id);
    let (_, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, epoch);
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    let batch = transactional_batch(producer, 0, &["a", "b", "c"]);
    assert_eq!(produce_transactional(&mut client, &id, &topic, batch), 0);
    let (pid, epoch_text) = (producer_id.to_string(), epoch.to_string());

    let describe = ["describe-producers", "--topic", &topic, "--partition", "0"];
    let ongoing = tool(&broker, &describe);
    assert_eq!(
        rows(&ongoing, "ProducerId"),
        vec![strings(&[
            &pid,
            &epoch_text,
            "-1",
            "2",
            BATCH_TIMESTAMP_MS,
            "0"
        ])],
        "{ongoing}"
    );

    // Its last timestamp is years old, but the coordinator knows the transaction and this
    // partition in it: not hanging.
    // The harness's single broker is node 1 (sluice's default --node-id).
    let hanging = tool(&broker, &["find-hanging", "--broker-id", "1"]);
    assert_eq!(
        rows(&hanging, "Topic"),
        Vec::<Vec<String>>::new(),
        "{hanging}"
    );

    assert_eq!(end_txn(&mut client, &id, producer, true), 0);
    wait_state(&mut client, &id, "CompleteCommit");
    let committed = tool(&broker, &describe);
    let rows = rows(&committed, "ProducerId");
    assert_eq!(rows.len(), 1, "{committed}");
    // The commit marker recorded the coordinator's epoch and closed the transaction.
    assert_eq!(
        rows[0],
        strings(&[&pid, &epoch_text, "0", "2", BATCH_TIMESTAMP_MS, "None"]),
        "{committed}"
    );

    // Kafka's errors on the wire (the tool never asks for a partition without a leader):
    // a missing partition or topic is UNKNOWN_TOPIC_OR_PARTITION.
    let mut missing_partition = TopicRequest::default();
    missing_partition.name = TopicName(StrBytes::from_string(topic.clone()));
    missing_partition.partition_indexes = vec![0, 7];
    let mut missing_topic = TopicRequest::default();
    missing_topic.name = TopicName(StrBytes::from_static_str("no-such-topic"));
    missing_topic.partition_indexes = vec![0];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![missing_partition, missing_topic];
    let response = client.request(0, &request);
    let answers: Vec<(String, i32, i16, usize)> = response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                (
                    topic.name.0.to_string(),
                    partition.partition_index,
                    partition.error_code,
                    partition.active_producers.len(),
                )
            })
        })
        .collect();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        answers,
        vec![
            (topic.clone(), 0, 0, 1),
            (topic.clone(), 7, unknown, 0),
            ("no-such-topic".to_string(), 0, unknown, 0),
        ]
    );
}

/// Each partition's leader per Metadata, once every partition has one.
fn leaders(client: &mut RawClient, topic: &str, partitions: usize) -> Vec<i32> {
    wait_until(WAIT, "partition leaders", || {
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![wanted]);
        let response = client.request(METADATA_VERSION, &request);
        let mut found = response.topics[0].partitions.clone();
        found.sort_by_key(|partition| partition.partition_index);
        let leaders: Vec<i32> = found.iter().map(|p| p.leader_id.0).collect();
        (leaders.len() == partitions && leaders.iter().all(|leader| *leader > 0)).then_some(leaders)
    })
}

#[test]
fn only_the_partition_leader_describes_its_producers() {
    const PARTITIONS: i32 = 3;
    let cluster = Cluster::start(3);
    let mut admin = RawClient::connect(&cluster.node(1).bootstrap());
    let topic = topic_name("txn-producers-cluster");
    assert_eq!(admin.create_topic(&topic, PARTITIONS, &[]), 0);
    let leaders = leaders(&mut admin, &topic, PARTITIONS as usize);
    for node in cluster.ids() {
        let mut client = RawClient::connect(&cluster.node(node).bootstrap());
        let mut wanted = TopicRequest::default();
        wanted.name = TopicName(StrBytes::from_string(topic.clone()));
        wanted.partition_indexes = (0..PARTITIONS).collect();
        let mut request = DescribeProducersRequest::default();
        request.topics = vec![wanted];
        // The topic reaches each node's metadata image in its own time: ask until it is there.
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let codes: Vec<(i32, i16)> = wait_until(WAIT, "the topic known on every node", || {
            let response = client.request(0, &request);
            let codes: Vec<(i32, i16)> = response.topics[0]
                .partitions
                .iter()
                .map(|partition| (partition.partition_index, partition.error_code))
                .collect();
            codes
                .iter()
                .all(|(_, code)| *code != unknown)
                .then_some(codes)
        });
        let expected: Vec<(i32, i16)> = (0..PARTITIONS)
            .map(|index| {
                let led_here = leaders[index as usize] == node;
                let code = if led_here {
                    0
                } else {
                    ResponseError::NotLeaderOrFollower.code()
                };
                (index, code)
            })
            .collect();
        assert_eq!(codes, expected, "node {node}, leaders {leaders:?}");
    }
}
