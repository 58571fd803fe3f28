//! Transactional offset commits on the wire with our own client: TxnOffsetCommit keeps the
//! offsets pending (OffsetFetch require_stable answers UNSTABLE_OFFSET_COMMIT, a plain fetch
//! the previous offset) across a kill -9, a fenced producer epoch is refused, bad input gets
//! Kafka's errors; a commit marker (WriteTxnMarkers, as the transaction coordinator sends it)
//! makes them the group's offsets, an abort marker drops them, and both survive a restart.
//! The producer is a real transactional one (InitProducerId, AddOffsetsToTxn at the
//! transaction coordinator), so the KIP-890 verification of TxnOffsetCommit passes; the
//! markers are sent by the test, so it decides exactly when the transaction ends here.

use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    find_coordinator, init_at_coordinator, ADD_OFFSETS_VERSION,
};
use sluice_integration_tests::{topic_name, Broker};

const GROUP: &str = "txn-group";
const TRANSACTIONAL_ID: &str = "txn-1";
/// Long enough that the coordinator never aborts the test's transaction by itself.
const TRANSACTION_TIMEOUT_MS: i32 = 600_000;
const TXN_OFFSET_COMMIT_VERSION: i16 = 3;
const OFFSET_FETCH_VERSION: i16 = 8;
const OFFSET_COMMIT_VERSION: i16 = 8;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
const COORDINATOR_WAIT: Duration = Duration::from_secs(30);
/// The broker's default `--offsets-topic-partitions`.
const OFFSETS_PARTITIONS: i32 = 10;

/// Kafka's `abs(groupId.hashCode) % partitions`: the group's offsets partition.
fn offsets_partition(group: &str) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % OFFSETS_PARTITIONS
}

/// A transaction marker for the group's offsets partition, as the coordinator writes it.
fn end_transaction(client: &mut RawClient, producer: (i64, i16), commit: bool) {
    let mut topic = WritableTxnMarkerTopic::default();
    topic.name = TopicName(text("__consumer_offsets"));
    topic.partition_indexes = vec![offsets_partition(GROUP)];
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(producer.0);
    marker.producer_epoch = producer.1;
    marker.transaction_result = commit;
    marker.coordinator_epoch = 0;
    marker.topics = vec![topic];
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = vec![marker];
    let response = client.request(WRITE_TXN_MARKERS_VERSION, &request);
    let code = response.markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code, 0, "{response:?}");
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// TxnOffsetCommit of `offsets` (partition, offset) of `topic`; the partitions' error codes.
fn txn_commit(
    client: &mut RawClient,
    topic: &str,
    producer: (i64, i16),
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let mut request = TxnOffsetCommitRequest::default();
    request.transactional_id = TransactionalId(text(TRANSACTIONAL_ID));
    request.group_id = GroupId(text(GROUP));
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    request.generation_id = -1;
    let mut entry = TxnOffsetCommitRequestTopic::default();
    entry.name = TopicName(text(topic));
    for (partition, offset) in offsets {
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_leader_epoch = -1;
        p.committed_metadata = Some(text("txn"));
        entry.partitions.push(p);
    }
    request.topics.push(entry);
    let response = client.request(TXN_OFFSET_COMMIT_VERSION, &request);
    assert_eq!(response.topics.len(), 1);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch of partitions 0 and 1: (partition, committed offset, error code) each.
fn fetch(client: &mut RawClient, topic: &str, require_stable: bool) -> Vec<(i32, i64, i16)> {
    let mut request = OffsetFetchRequest::default();
    request.require_stable = require_stable;
    let mut wanted = OffsetFetchRequestTopics::default();
    wanted.name = TopicName(text(topic));
    wanted.partition_indexes = vec![0, 1];
    let mut group = OffsetFetchRequestGroup::default();
    group.group_id = GroupId(text(GROUP));
    group.topics = Some(vec![wanted]);
    request.groups.push(group);
    let response = client.request(OFFSET_FETCH_VERSION, &request);
    assert_eq!(response.groups[0].error_code, 0, "{response:?}");
    response.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.error_code))
        .collect()
}

fn plain_commit(client: &mut RawClient, topic: &str, partition: i32, offset: i64) {
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(text(GROUP));
    request.generation_id_or_member_epoch = -1;
    let mut entry = OffsetCommitRequestTopic::default();
    entry.name = TopicName(text(topic));
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    entry.partitions.push(p);
    request.topics.push(entry);
    let response = client.request(OFFSET_COMMIT_VERSION, &request);
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

/// A transactional producer whose ongoing transaction includes the group's offsets.
fn transactional_producer(client: &mut RawClient) -> (i64, i16) {
    find_coordinator(client, TRANSACTIONAL_ID);
    let (error, producer_id, epoch) =
        init_at_coordinator(client, TRANSACTIONAL_ID, TRANSACTION_TIMEOUT_MS);
    assert_eq!(error, 0);
    let mut request = AddOffsetsToTxnRequest::default();
    request.transactional_id = TransactionalId(text(TRANSACTIONAL_ID));
    request.producer_id = ProducerId(producer_id);
    request.producer_epoch = epoch;
    request.group_id = GroupId(text(GROUP));
    assert_eq!(client.request(ADD_OFFSETS_VERSION, &request).error_code, 0);
    (producer_id, epoch)
}

#[test]
fn a_txn_offset_commit_outside_a_transaction_is_refused() {
    let broker = Broker::start();
    let topic = topic_name("txn-late");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    client.wait_group_coordinators(&[GROUP], COORDINATOR_WAIT);
    find_coordinator(&mut client, TRANSACTIONAL_ID);
    let (error, producer_id, epoch) =
        init_at_coordinator(&mut client, TRANSACTIONAL_ID, TRANSACTION_TIMEOUT_MS);
    assert_eq!(error, 0);
    // No AddOffsetsToTxn: the coordinator has not added the offsets partition (KIP-890).
    assert_eq!(
        txn_commit(&mut client, &topic, (producer_id, epoch), &[(0, 1)]),
        [ResponseError::InvalidTxnState.code()]
    );
    // An id the coordinator never granted.
    assert_eq!(
        txn_commit(&mut client, &topic, (producer_id + 1000, 0), &[(0, 1)]),
        [ResponseError::InvalidProducerIdMapping.code()]
    );
    assert_eq!(fetch(&mut client, &topic, true), [(0, -1, 0), (1, -1, 0)]);
}

#[test]
fn transactional_offsets_wait_for_their_marker_across_crashes_and_fenced_epochs_are_refused() {
    let unstable = ResponseError::UnstableOffsetCommit.code();
    let mut broker = Broker::start();
    let topic = topic_name("txn-in");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    client.wait_group_coordinators(&[GROUP], COORDINATOR_WAIT);
    let producer = transactional_producer(&mut client);

    plain_commit(&mut client, &topic, 0, 5);
    assert_eq!(
        txn_commit(&mut client, &topic, producer, &[(0, 10), (1, 3), (7, 1)]),
        [0, 0, ResponseError::UnknownTopicOrPartition.code()]
    );
    assert_eq!(fetch(&mut client, &topic, false), [(0, 5, 0), (1, -1, 0)]);
    assert_eq!(
        fetch(&mut client, &topic, true),
        [(0, -1, unstable), (1, -1, unstable)]
    );
    // A later commit of the same transaction replaces the pending offset.
    assert_eq!(txn_commit(&mut client, &topic, producer, &[(0, 12)]), [0]);

    // The pending offsets are in the offsets topic: a crash keeps them pending.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    client.wait_group_coordinators(&[GROUP], COORDINATOR_WAIT);
    assert_eq!(fetch(&mut client, &topic, false), [(0, 5, 0), (1, -1, 0)]);
    assert_eq!(
        fetch(&mut client, &topic, true),
        [(0, -1, unstable), (1, -1, unstable)]
    );

    // The commit marker makes the newest pending offsets the group's; the abort marker of the
    // next transaction leaves them.
    end_transaction(&mut client, producer, true);
    assert_eq!(fetch(&mut client, &topic, true), [(0, 12, 0), (1, 3, 0)]);
    assert_eq!(txn_commit(&mut client, &topic, producer, &[(1, 40)]), [0]);
    assert_eq!(
        fetch(&mut client, &topic, true),
        [(0, 12, 0), (1, -1, unstable)]
    );
    end_transaction(&mut client, producer, false);
    assert_eq!(fetch(&mut client, &topic, true), [(0, 12, 0), (1, 3, 0)]);
    // A plain commit after a transactional one and before its commit marker stays (Kafka
    // keeps the later record).
    assert_eq!(txn_commit(&mut client, &topic, producer, &[(0, 50)]), [0]);
    plain_commit(&mut client, &topic, 0, 60);
    end_transaction(&mut client, producer, true);
    assert_eq!(fetch(&mut client, &topic, true), [(0, 60, 0), (1, 3, 0)]);

    // A new instance's InitProducerId bumps the epoch and aborts with it: the old epoch's
    // commits are refused from then on by the offsets partition itself.
    assert_eq!(txn_commit(&mut client, &topic, producer, &[(0, 70)]), [0]);
    let bumped = (producer.0, producer.1 + 1);
    end_transaction(&mut client, bumped, false);
    assert_eq!(
        txn_commit(&mut client, &topic, producer, &[(0, 99)]),
        [ResponseError::InvalidProducerEpoch.code()]
    );
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    client.wait_group_coordinators(&[GROUP], COORDINATOR_WAIT);
    assert_eq!(fetch(&mut client, &topic, true), [(0, 60, 0), (1, 3, 0)]);
    assert_eq!(
        txn_commit(&mut client, &topic, producer, &[(0, 99)]),
        [ResponseError::InvalidProducerEpoch.code()]
    );

    // Bad input: no transactional id, an empty group id.
    let mut request = TxnOffsetCommitRequest::default();
    request.group_id = GroupId(text(GROUP));
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    let mut entry = TxnOffsetCommitRequestTopic::default();
    entry.name = TopicName(text(&topic));
    entry
        .partitions
        .push(TxnOffsetCommitRequestPartition::default());
    request.topics.push(entry);
    let response = client.request(TXN_OFFSET_COMMIT_VERSION, &request);
    let error = response.topics[0].partitions[0].error_code;
    assert_eq!(error, ResponseError::InvalidRequest.code());
    request.transactional_id = TransactionalId(text("txn-1"));
    request.group_id = GroupId(text(""));
    let response = client.request(TXN_OFFSET_COMMIT_VERSION, &request);
    let error = response.topics[0].partitions[0].error_code;
    assert_eq!(error, ResponseError::InvalidGroupId.code());
}
