//! Group coordination in a 3-node cluster: committed offsets are records of the replicated
//! `__consumer_offsets` topic and the coordinator of a group is the leader of its partition,
//! so kill -9 of the coordinator loses no committed offset. Raw protocol: a non-coordinator
//! answers NOT_COORDINATOR, and the new coordinator returns exactly what the dead one
//! acknowledged. Java: a 2-member classic group keeps consuming and committing through the
//! failover (`java/src/main/java/sluice/it/CoordinatorFailover.java`).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, GroupId, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde_json::json;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::{
    record_batch, RawClient, TestRecord, CREATE_TOPICS_VERSION,
};
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{java_command, topic_name, wait_until};

const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 8;
const METADATA_VERSION: i16 = 12;
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The Java program's whole run, failover included.
const JAVA_DEADLINE: Duration = Duration::from_secs(240);

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// An RF=3 topic (the cluster default) of `partitions` partitions.
fn create_topic(client: &mut RawClient, name: &str, partitions: i32) {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(text(name));
    topic.num_partitions = partitions;
    topic.replication_factor = 3;
    let mut request = CreateTopicsRequest::default();
    request.topics.push(topic);
    request.timeout_ms = 30_000;
    let response = client.request(CREATE_TOPICS_VERSION, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// A standalone (generation -1) commit; the error code of each partition.
fn commit(client: &mut RawClient, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Vec<i16> {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(text(group));
    request.generation_id_or_member_epoch = -1;
    let mut entry = OffsetCommitRequestTopic::default();
    entry.name = TopicName(text(topic));
    for (partition, offset) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = 7;
        p.committed_metadata = Some(text(&format!("m{offset}")));
        entry.partitions.push(p);
    }
    request.topics.push(entry);
    let response = client.request(OFFSET_COMMIT_VERSION, &request);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch of partitions 0..count: the group error, then (offset, epoch, metadata) each.
fn fetch(
    client: &mut RawClient,
    group: &str,
    topic: &str,
    count: i32,
) -> (i16, Vec<(i64, i32, String)>) {
    let mut wanted = OffsetFetchRequestTopics::default();
    wanted.name = TopicName(text(topic));
    wanted.partition_indexes = (0..count).collect();
    let mut entry = OffsetFetchRequestGroup::default();
    entry.group_id = GroupId(text(group));
    entry.topics = Some(vec![wanted]);
    let mut request = OffsetFetchRequest::default();
    request.groups.push(entry);
    let response = client.request(OFFSET_FETCH_VERSION, &request);
    let group = &response.groups[0];
    let offsets = group
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let metadata = p
                .metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            (p.committed_offset, p.committed_leader_epoch, metadata)
        })
        .collect();
    (group.error_code, offsets)
}

/// The group's coordinator as node `asked` answers once it has one other than `not`.
fn coordinator(cluster: &Cluster, asked: i32, group: &str, not: Option<i32>) -> i32 {
    let mut client = RawClient::connect(&cluster.node(asked).bootstrap());
    wait_until(CLUSTER_DEADLINE, "a group coordinator", || {
        let found = &client.find_group_coordinators(&[group])[0];
        let node = found.node_id.0;
        (found.error_code == 0 && Some(node) != not).then_some(node)
    })
}

#[test]
fn committed_offsets_survive_kill9_of_the_coordinator() {
    let mut cluster = Cluster::start(3);
    let topic = topic_name("cluster-offsets");
    let group = "failover-group";
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    create_topic(&mut client, &topic, 3);
    let first = coordinator(&cluster, 1, group, None);
    // Every node names the same coordinator.
    for node in cluster.ids() {
        assert_eq!(coordinator(&cluster, node, group, None), first);
    }

    let other = cluster.ids().find(|id| *id != first).unwrap();
    let mut elsewhere = RawClient::connect(&cluster.node(other).bootstrap());
    let not_coordinator = ResponseError::NotCoordinator.code();
    assert_eq!(
        commit(&mut elsewhere, group, &topic, &[(0, 5), (1, 6)]),
        [not_coordinator, not_coordinator]
    );
    assert_eq!(fetch(&mut elsewhere, group, &topic, 3).0, not_coordinator);

    let mut at_coordinator = RawClient::connect(&cluster.node(first).bootstrap());
    assert_eq!(
        commit(&mut at_coordinator, group, &topic, &[(0, 41), (1, 7)]),
        [0, 0]
    );
    assert_eq!(commit(&mut at_coordinator, group, &topic, &[(0, 42)]), [0]);
    let expected = vec![
        (42, 7, "m42".to_string()),
        (7, 7, "m7".to_string()),
        (-1, -1, String::new()),
    ];
    assert_eq!(
        fetch(&mut at_coordinator, group, &topic, 3),
        (0, expected.clone())
    );
    drop(at_coordinator);

    cluster.kill9(first);
    let survivor = cluster.ids().find(|id| *id != first).unwrap();
    let second = coordinator(&cluster, survivor, group, Some(first));
    let mut at_new = RawClient::connect(&cluster.node(second).bootstrap());
    let fetched = wait_until(CLUSTER_DEADLINE, "the new coordinator loaded", || {
        let (error, offsets) = fetch(&mut at_new, group, &topic, 3);
        let loading = ResponseError::CoordinatorLoadInProgress.code();
        if error == loading {
            return None;
        }
        Some((error, offsets))
    });
    assert_eq!(fetched, (0, expected));
    // The new coordinator takes commits, and the node that was not coordinator still says so.
    assert_eq!(commit(&mut at_new, group, &topic, &[(2, 3)]), [0]);
    let third = cluster
        .ids()
        .find(|id| *id != first && *id != second)
        .unwrap();
    let mut at_third = RawClient::connect(&cluster.node(third).bootstrap());
    assert_eq!(fetch(&mut at_third, group, &topic, 3).0, not_coordinator);

    // The offsets topic is internal: listed as such, and closed to producers.
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(text(OFFSETS_TOPIC)));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![wanted]);
    let metadata = at_new.request(METADATA_VERSION, &request);
    assert_eq!(metadata.topics[0].error_code, 0);
    assert!(metadata.topics[0].is_internal);
    // Kafka's default offsets.topic.replication.factor (3), here on 3 brokers.
    assert_eq!(metadata.topics[0].partitions[0].replica_nodes.len(), 3);
    let leader = metadata.topics[0].partitions[0].leader_id.0;
    let mut at_leader = RawClient::connect(&cluster.node(leader).bootstrap());
    let records = record_batch(&[TestRecord::new(b"k", b"v")]);
    let produced = at_leader.produce(OFFSETS_TOPIC, 0, -1, records).unwrap();
    assert_eq!(
        produced.error_code,
        ResponseError::InvalidTopicException.code()
    );
}

#[test]
fn a_java_group_keeps_consuming_after_its_coordinator_dies() {
    let mut cluster = Cluster::start(3);
    let topic = topic_name("cluster-java-group");
    let group = format!("{topic}-group");
    let count = 1200;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let stderr_path = scratch.path().join("java-stderr.log");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let java_log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let mut child = java_command(
        "CoordinatorFailover",
        &[
            "run",
            &cluster.bootstrap(),
            &topic,
            &group,
            &count.to_string(),
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::from(stderr))
    .spawn()
    .expect("start java");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + JAVA_DEADLINE;
    let next_line = || {
        let left = deadline.saturating_duration_since(Instant::now());
        received.recv_timeout(left)
    };
    let ready = next_line();
    if ready.as_deref() != Ok("READY") {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the Java group did not get going: {ready:?}\n{}",
            java_log()
        );
    }
    let victim = coordinator(&cluster, 1, &group, None);
    cluster.kill9(victim);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "KILLED").expect("tell java");
    drop(stdin);
    let summary = next_line();
    let status = child.wait().expect("wait for java");
    let summary = match summary {
        Ok(line) if status.success() => parse_output(&line),
        other => panic!("java exited with {status}: {other:?}\n{}", java_log()),
    };
    let survivor = cluster.ids().find(|id| *id != victim).unwrap();
    let moved_to = coordinator(&cluster, survivor, &group, Some(victim));
    assert_ne!(moved_to, victim);

    // 2 × 1200 records round-robin over 6 partitions.
    let ends = json!(vec![400; 6]);
    assert_eq!(summary["produced"], 2 * count, "{summary}");
    assert_eq!(summary["ends"], ends, "{summary}");
    assert_eq!(summary["distinct_consumed"], 2 * count, "{summary}");
    assert_eq!(summary["distinct_per_partition"], ends, "{summary}");
    assert_eq!(summary["committed"], ends, "{summary}");
    assert_eq!(summary["violations"], 0, "{summary}");
}
