//! Group APIs on the wire with our own client: exact lag from `sluice groups`, 10,000 groups'
//! commits surviving a crash, and bad group input answered with Kafka's error codes.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::{record_batch, RawClient, TestRecord};
use sluice_integration_tests::{run_command, sluice_bin, topic_name, Broker};

const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 8;
const JOIN_GROUP_VERSION: i16 = 7;
const HEARTBEAT_VERSION: i16 = 4;
const SYNC_GROUP_VERSION: i16 = 5;
/// How long a test waits for a group coordinator to be available.
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A simple (generation -1) commit of `offset` for each partition; returns the error codes.
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
        p.committed_metadata = Some(text(&format!("{group}@{offset}")));
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

fn produce(client: &mut RawClient, topic: &str, partition: i32, count: usize) {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::new(format!("k{i}").as_bytes(), b"v"))
        .collect();
    let response = client
        .produce(topic, partition, -1, record_batch(&records))
        .expect("acks=-1 answers");
    assert_eq!(response.error_code, 0);
}

#[test]
fn sluice_groups_prints_exact_lag() {
    let broker = Broker::start();
    let topic = topic_name("lag");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    client.wait_group_coordinators(&["lag-group", "other-group"], COORDINATOR_WAIT);
    produce(&mut client, &topic, 0, 10);
    produce(&mut client, &topic, 1, 5);
    assert_eq!(
        commit(&mut client, "lag-group", &topic, &[(0, 4), (1, 5)]),
        [0, 0]
    );
    assert_eq!(commit(&mut client, "other-group", &topic, &[(1, 2)]), [0]);
    let run = |extra: &[&str]| {
        let mut command = Command::new(sluice_bin());
        command
            .args(["groups", "--bootstrap-server", &broker.bootstrap()])
            .args(extra);
        let output = run_command(command, b"", "sluice groups");
        output
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let header = [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ];
    let row = |group: &str, partition: &str, committed: &str, end: &str, lag: &str| {
        [group, topic.as_str(), partition, committed, end, lag]
            .map(str::to_string)
            .to_vec()
    };
    let one = run(&["--group", "lag-group"]);
    assert_eq!(
        one,
        [
            header.map(str::to_string).to_vec(),
            row("lag-group", "0", "4", "10", "6"),
            row("lag-group", "1", "5", "5", "0"),
        ]
    );
    let all = run(&[]);
    assert_eq!(
        all,
        [
            header.map(str::to_string).to_vec(),
            row("lag-group", "0", "4", "10", "6"),
            row("lag-group", "1", "5", "5", "0"),
            row("other-group", "1", "2", "5", "3"),
        ]
    );
}

#[test]
fn ten_thousand_groups_commit_and_survive_a_crash() {
    const GROUPS: usize = 10_000;
    const THREADS: usize = 20;
    let mut broker = Broker::start();
    let topic = topic_name("many-groups");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 3, &[]), 0);
    let groups: Vec<String> = (0..GROUPS).map(|index| format!("group-{index}")).collect();
    let group_ids: Vec<&str> = groups.iter().map(String::as_str).collect();
    client.wait_group_coordinators(&group_ids, COORDINATOR_WAIT);
    let bootstrap = broker.bootstrap();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (bootstrap, topic) = (&bootstrap, &topic);
            scope.spawn(move || {
                let mut client = RawClient::connect(bootstrap);
                for index in (thread..GROUPS).step_by(THREADS) {
                    let group = format!("group-{index}");
                    let partition = (index % 3) as i32;
                    let errors = commit(&mut client, &group, topic, &[(partition, index as i64)]);
                    assert_eq!(errors, [0], "{group}");
                }
            });
        }
    });
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    // Clients find the coordinator again after a restart: it answers once it has replayed
    // the offsets partitions.
    client.wait_group_coordinators(&group_ids, COORDINATOR_WAIT);
    for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(500) {
        let mut request = OffsetFetchRequest::default();
        for index in chunk {
            let mut wanted = OffsetFetchRequestTopics::default();
            wanted.name = TopicName(text(&topic));
            wanted.partition_indexes = vec![0, 1, 2];
            let mut group = OffsetFetchRequestGroup::default();
            group.group_id = GroupId(text(&format!("group-{index}")));
            group.topics = Some(vec![wanted]);
            request.groups.push(group);
        }
        let response = client.request(OFFSET_FETCH_VERSION, &request);
        assert_eq!(response.groups.len(), chunk.len());
        for (index, group) in chunk.iter().zip(&response.groups) {
            assert_eq!(group.group_id.0.as_str(), format!("group-{index}"));
            assert_eq!(group.error_code, 0);
            let partitions = &group.topics[0].partitions;
            let found: Vec<(i32, i64, String)> = partitions
                .iter()
                .map(|p| {
                    let metadata = p
                        .metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    (p.partition_index, p.committed_offset, metadata)
                })
                .collect();
            let expected: Vec<(i32, i64, String)> = (0..3)
                .map(|p| {
                    if p == (index % 3) as i32 {
                        (p, *index as i64, format!("group-{index}@{index}"))
                    } else {
                        (p, -1, String::new())
                    }
                })
                .collect();
            assert_eq!(found, expected, "group-{index}");
        }
    }
}

fn join_request(group: &str, member_id: &str, metadata: Bytes) -> JoinGroupRequest {
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = text("range");
    protocol.metadata = metadata;
    let mut request = JoinGroupRequest::default();
    request.group_id = GroupId(text(group));
    request.member_id = text(member_id);
    request.session_timeout_ms = 10_000;
    request.rebalance_timeout_ms = 10_000;
    request.protocol_type = text("consumer");
    request.protocols = vec![protocol];
    request
}

fn heartbeat(client: &mut RawClient, group: &str, member_id: &str, generation: i32) -> i16 {
    let mut request = HeartbeatRequest::default();
    request.group_id = GroupId(text(group));
    request.member_id = text(member_id);
    request.generation_id = generation;
    client.request(HEARTBEAT_VERSION, &request).error_code
}

#[test]
fn bad_group_input_gets_kafkas_errors_and_the_broker_keeps_serving() {
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"]);
    let topic = topic_name("bad-groups");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    client.wait_group_coordinators(&["g", "nope"], COORDINATOR_WAIT);
    let code = |error: ResponseError| error.code();

    // Empty group id, bad session timeout, huge metadata.
    let empty = client.request(JOIN_GROUP_VERSION, &join_request("", "", Bytes::new()));
    assert_eq!(empty.error_code, code(ResponseError::InvalidGroupId));
    let mut short = join_request("g", "", Bytes::new());
    short.session_timeout_ms = 10;
    assert_eq!(
        client.request(JOIN_GROUP_VERSION, &short).error_code,
        code(ResponseError::InvalidSessionTimeout)
    );
    let huge = join_request("g", "", Bytes::from(vec![7u8; 2 * 1024 * 1024]));
    assert_eq!(
        client.request(JOIN_GROUP_VERSION, &huge).error_code,
        code(ResponseError::UnknownServerError)
    );
    assert_eq!(
        commit(&mut client, "", &topic, &[(0, 1)]),
        [code(ResponseError::InvalidGroupId)]
    );
    assert_eq!(
        heartbeat(&mut client, "", "m", 1),
        code(ResponseError::InvalidGroupId)
    );

    // A real member: MEMBER_ID_REQUIRED, then join (completes at once: no delay), sync.
    let first = client.request(JOIN_GROUP_VERSION, &join_request("g", "", Bytes::new()));
    assert_eq!(first.error_code, code(ResponseError::MemberIdRequired));
    let member_id = first.member_id.to_string();
    let joined = client.request(
        JOIN_GROUP_VERSION,
        &join_request("g", &member_id, Bytes::new()),
    );
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let mut sync = SyncGroupRequest::default();
    sync.group_id = GroupId(text("g"));
    sync.member_id = text(&member_id);
    sync.generation_id = 1;
    assert_eq!(client.request(SYNC_GROUP_VERSION, &sync).error_code, 0);

    assert_eq!(heartbeat(&mut client, "g", &member_id, 1), 0);
    assert_eq!(
        heartbeat(&mut client, "g", &member_id, 2),
        code(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        heartbeat(&mut client, "g", "stranger", 1),
        code(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        heartbeat(&mut client, "nope", &member_id, 1),
        code(ResponseError::UnknownMemberId)
    );
    let mut stale = OffsetCommitRequest::default();
    stale.group_id = GroupId(text("g"));
    stale.generation_id_or_member_epoch = 0;
    stale.member_id = text(&member_id);
    let mut entry = OffsetCommitRequestTopic::default();
    entry.name = TopicName(text(&topic));
    let mut partition = OffsetCommitRequestPartition::default();
    partition.committed_offset = 3;
    partition.committed_metadata = Some(text(&"m".repeat(4097)));
    let mut fine = partition.clone();
    fine.committed_metadata = Some(text(&"m".repeat(4096)));
    entry.partitions = vec![partition.clone()];
    stale.topics = vec![entry.clone()];
    let response = client.request(OFFSET_COMMIT_VERSION, &stale);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        code(ResponseError::OffsetMetadataTooLarge)
    );
    entry.partitions = vec![fine];
    stale.topics = vec![entry.clone()];
    let response = client.request(OFFSET_COMMIT_VERSION, &stale);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        code(ResponseError::IllegalGeneration)
    );
    stale.generation_id_or_member_epoch = 1;
    let response = client.request(OFFSET_COMMIT_VERSION, &stale);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    // A simple commit into a group with members is refused.
    assert_eq!(
        commit(&mut client, "g", &topic, &[(0, 1)]),
        [code(ResponseError::UnknownMemberId)]
    );
    assert_eq!(
        commit(&mut client, "g", "no-such-topic", &[(0, 1)]),
        [code(ResponseError::UnknownTopicOrPartition)]
    );
    // Still serving: the member's heartbeat is fine.
    assert_eq!(heartbeat(&mut client, "g", &member_id, 1), 0);
}
