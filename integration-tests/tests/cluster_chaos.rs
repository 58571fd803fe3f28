//! Acknowledged records survive repeated kill -9 of partition leaders and of the controller.
//!
//! A Java idempotent acks=all producer streams sequence-numbered values into an RF=3,
//! min.insync.replicas=2 topic while a Java consumer reads it (`FailoverStream`). Each round
//! kill -9s the leader of partition 0, restarts it and waits for it to rejoin every ISR, then
//! does the same to the controller (the Raft leader). Afterwards: every acknowledged value is
//! in the log exactly once, at the offset its acknowledgement named, in send order; nothing
//! failed; the consumer made progress after every kill and saw what the log holds; and every
//! replica's log is byte-identical to the others'.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::java_stream::{check_log_against_acks, read_partition, Stream};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{topic_name, wait_until, Broker};

const PARTITIONS: i32 = 3;
const REPLICATION_FACTOR: usize = 3;
/// Each round kills the partition leader, then the controller.
const ROUNDS: usize = 3;
/// New acknowledgements (and consumed records) awaited after each kill: the stream goes on.
const PROGRESS_AFTER_KILL: usize = 100;
const METADATA_VERSION: i16 = 12;

/// One cluster and one JVM at a time: two of each on two cores would starve the brokers'
/// heartbeats and turn the test into a test of the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Metadata of `topic` from `node`, or `None` if it cannot answer now.
fn metadata(node: &Broker, topic: &str) -> Option<MetadataResponse> {
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = false;
    client.try_request(METADATA_VERSION, &request).ok()
}

/// One partition as a node's metadata shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionView {
    leader: i32,
    replicas: Vec<i32>,
    isr: BTreeSet<i32>,
}

/// The controller and every partition of `topic`, as `node` sees them.
fn cluster_view(node: &Broker, topic: &str) -> Option<(i32, Vec<PartitionView>)> {
    let response = metadata(node, topic)?;
    let topic = response.topics.first().filter(|t| t.error_code == 0)?;
    let mut partitions: Vec<_> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let views: Vec<PartitionView> = partitions
        .iter()
        .map(|p| PartitionView {
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|id| id.0).collect(),
            isr: p.isr_nodes.iter().map(|id| id.0).collect(),
        })
        .collect();
    (views.len() == PARTITIONS as usize).then_some((response.controller_id.0, views))
}

/// Every partition led by a live node with a full ISR, as live node `observer` sees it.
fn all_in_sync(cluster: &Cluster, observer: i32, topic: &str) -> Option<(i32, Vec<PartitionView>)> {
    let (controller, views) = cluster_view(cluster.node(observer), topic)?;
    let healthy = controller > 0
        && views
            .iter()
            .all(|p| p.leader > 0 && p.isr.len() == REPLICATION_FACTOR);
    healthy.then_some((controller, views))
}

/// Kills `victim`, waits until the cluster has moved on (as `moved_on` judges from a
/// survivor's view) and the stream made progress, then restarts it and waits until every ISR
/// is full again.
fn kill_and_recover(
    cluster: &mut Cluster,
    stream: &Stream,
    topic: &str,
    victim: i32,
    moved_on: impl Fn(i32, &[PartitionView]) -> bool,
) {
    let before = stream.output();
    cluster.kill9(victim);
    eprintln!(
        "killed node {victim} after {} acks, {} consumed",
        before.acked.len(),
        before.consumed.len()
    );
    let survivor = cluster.ids().find(|id| *id != victim).expect("a survivor");
    wait_until(CLUSTER_DEADLINE, "the cluster to move on", || {
        let (controller, views) = cluster_view(cluster.node(survivor), topic)?;
        moved_on(controller, &views).then_some(())
    });
    wait_until(
        CLUSTER_DEADLINE,
        "acks and consumption after the kill",
        || {
            let now = stream.output();
            (now.acked.len() >= before.acked.len() + PROGRESS_AFTER_KILL
                && now.consumed.len() >= before.consumed.len() + PROGRESS_AFTER_KILL)
                .then_some(())
        },
    );
    cluster.restart(victim);
    wait_until(CLUSTER_DEADLINE, "every ISR full again", || {
        all_in_sync(cluster, survivor, topic)
    });
}

/// The segment files of one partition on one node, concatenated.
fn log_bytes(node: &Broker, topic: &str, partition: i32) -> Vec<u8> {
    let dir = node.data_dir().join(format!("{topic}-{partition}"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read segment"))
        .collect()
}

fn chaos(nodes: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(nodes);
    let topic = topic_name("chaos");
    wait_until(CLUSTER_DEADLINE, "every broker registered", || {
        let response = metadata(cluster.node(1), &topic)?;
        (response.brokers.len() == nodes && response.controller_id.0 > 0).then_some(())
    });
    let stream = Stream::start(
        &cluster.bootstrap(),
        &topic,
        PARTITIONS,
        REPLICATION_FACTOR,
        None,
    );
    wait_until(CLUSTER_DEADLINE, "the topic in sync", || {
        all_in_sync(&cluster, 1, &topic)
    });
    wait_until(CLUSTER_DEADLINE, "the stream flowing", || {
        let output = stream.output();
        (output.acked.len() >= PROGRESS_AFTER_KILL && output.consumed.len() >= PROGRESS_AFTER_KILL)
            .then_some(())
    });
    let mut observer = 1;
    for _ in 0..ROUNDS {
        let (_, views) = wait_until(CLUSTER_DEADLINE, "in sync", || {
            all_in_sync(&cluster, observer, &topic)
        });
        let leader = views[0].leader;
        kill_and_recover(&mut cluster, &stream, &topic, leader, |_, views| {
            views[0].leader > 0 && views[0].leader != leader
        });
        observer = leader;
        let (controller, _) = wait_until(CLUSTER_DEADLINE, "in sync", || {
            all_in_sync(&cluster, observer, &topic)
        });
        kill_and_recover(&mut cluster, &stream, &topic, controller, |now, views| {
            now > 0 && now != controller && views.iter().all(|p| p.leader != controller)
        });
        observer = controller;
    }
    let output = stream.finish();
    assert!(
        output.failed.is_empty(),
        "failed sends: {:?}",
        output.failed
    );
    assert!(
        output.consumer_errors.is_empty(),
        "{:?}",
        output.consumer_errors
    );
    assert_eq!(
        Some(output.acked.len()),
        output.sent,
        "every send acknowledged"
    );
    eprintln!(
        "{} sent and acknowledged, {} consumed",
        output.acked.len(),
        output.consumed.len()
    );

    let (_, views) = wait_until(CLUSTER_DEADLINE, "the topic in sync at the end", || {
        all_in_sync(&cluster, 1, &topic)
    });
    let mut logs = BTreeMap::new();
    for (partition, view) in (0..PARTITIONS).zip(&views) {
        wait_until(CLUSTER_DEADLINE, "the leader to know it leads", || {
            let (_, own) = cluster_view(cluster.node(view.leader), &topic)?;
            (own[partition as usize].leader == view.leader).then_some(())
        });
        let log = read_partition(cluster.node(view.leader), &topic, partition);
        check_log_against_acks(&log, &output.acked, partition);
        logs.insert(partition, log);
    }
    // The consumer saw the log as it is, from the start, in order.
    for (partition, offset, value) in &output.consumed {
        let stored = usize::try_from(*offset)
            .ok()
            .and_then(|at| logs[partition].get(at));
        assert_eq!(
            stored.map(|(_, v)| v),
            Some(value),
            "consumed at {partition}/{offset}"
        );
    }
    // Every replica holds the same bytes: same records at the same offsets, same epochs.
    for (partition, view) in (0..PARTITIONS).zip(&views) {
        let leader_bytes = log_bytes(cluster.node(view.leader), &topic, partition);
        assert!(!leader_bytes.is_empty());
        wait_until(CLUSTER_DEADLINE, "identical replica logs", || {
            view.replicas
                .iter()
                .all(|id| log_bytes(cluster.node(*id), &topic, partition) == leader_bytes)
                .then_some(())
        });
    }
}

#[test]
fn three_nodes_keep_every_acknowledged_record_through_leader_and_controller_kills() {
    chaos(3);
}

#[test]
fn five_nodes_keep_every_acknowledged_record_through_leader_and_controller_kills() {
    chaos(5);
}
