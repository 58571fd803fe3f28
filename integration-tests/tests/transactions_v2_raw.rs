//! Transaction version 2 (KIP-890 part 2) on the wire with our own client, as Kafka's Java
//! client speaks it: ApiVersions finalizes `transaction.version` 2 (1 with
//! `--transaction-version 1`); Produce v12 adds its partition to the transaction without
//! AddPartitionsToTxn; TxnOffsetCommit v5 adds the group's offsets partition without
//! AddOffsetsToTxn; EndTxn v5 bumps the producer epoch on every commit and abort and answers
//! the new one, a retried EndTxn (the client missed the answer) gets the same answer, and a
//! late write of the ended transaction is fenced. read_committed readers (kcat) see exactly
//! the committed records, and all of it survives a kill -9.

use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, GroupId, OffsetFetchRequest, ProducerId, TopicName,
    TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    code, describe, end_txn_v2, find_coordinator, init, kcat_values, produce_transactional_v2,
    text, transactional_batch, wait_state, TIMEOUT_MS,
};
use sluice_integration_tests::{topic_name, Broker};

const GROUP: &str = "tv2-group";
const TXN_OFFSET_COMMIT_VERSION: i16 = 5;
const OFFSET_FETCH_VERSION: i16 = 8;
const API_VERSIONS_VERSION: i16 = 3;

/// The finalized `transaction.version` levels ApiVersions v3 answers (None: not finalized),
/// and the highest Produce and EndTxn versions it offers.
fn transaction_version(client: &mut RawClient) -> (Option<(i16, i16)>, i16, i16) {
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = text("sluice-test");
    request.client_software_version = text("1");
    let response = client.request(API_VERSIONS_VERSION, &request);
    assert_eq!(response.error_code, 0);
    let supported = response
        .supported_features
        .iter()
        .find(|feature| feature.name.as_str() == "transaction.version")
        .map(|feature| (feature.min_version, feature.max_version));
    assert_eq!(supported, Some((0, 2)), "{response:?}");
    assert!(response.finalized_features_epoch >= 0, "{response:?}");
    let finalized = response
        .finalized_features
        .iter()
        .find(|feature| feature.name.as_str() == "transaction.version")
        .map(|feature| (feature.min_version_level, feature.max_version_level));
    let max = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|entry| entry.api_key == key as i16)
            .map_or(-1, |entry| entry.max_version)
    };
    (finalized, max(ApiKey::Produce), max(ApiKey::EndTxn))
}

/// TxnOffsetCommit v5 of `offset` for partition 0 of `topic`, without AddOffsetsToTxn.
fn txn_commit_v5(
    client: &mut RawClient,
    id: &str,
    topic: &str,
    producer: (i64, i16),
    offset: i64,
) -> i16 {
    let mut request = TxnOffsetCommitRequest::default();
    request.transactional_id = TransactionalId(text(id));
    request.group_id = GroupId(text(GROUP));
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    request.generation_id = -1;
    let mut entry = TxnOffsetCommitRequestTopic::default();
    entry.name = TopicName(text(topic));
    let mut partition = TxnOffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = offset;
    partition.committed_leader_epoch = -1;
    entry.partitions.push(partition);
    request.topics.push(entry);
    let response = client.request(TXN_OFFSET_COMMIT_VERSION, &request);
    response.topics[0].partitions[0].error_code
}

/// The group's committed offset of partition 0 of `topic` (-1: none).
fn committed_offset(client: &mut RawClient, topic: &str) -> i64 {
    let mut wanted = OffsetFetchRequestTopics::default();
    wanted.name = TopicName(text(topic));
    wanted.partition_indexes = vec![0];
    let mut group = OffsetFetchRequestGroup::default();
    group.group_id = GroupId(text(GROUP));
    group.topics = Some(vec![wanted]);
    let mut request = OffsetFetchRequest::default();
    request.require_stable = true;
    request.groups.push(group);
    let response = client.request(OFFSET_FETCH_VERSION, &request);
    let partition = &response.groups[0].topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{response:?}");
    partition.committed_offset
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

#[test]
fn transaction_version_2_adds_partitions_implicitly_and_bumps_the_epoch_per_end() {
    let mut broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(transaction_version(&mut client), (Some((2, 2)), 13, 5));
    let topic = topic_name("tv2-raw");
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    client.wait_group_coordinators(&[GROUP], sluice_integration_tests::transactions::WAIT);
    let id = format!("{topic}-txn");
    find_coordinator(&mut client, &id);
    let (error, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));

    // Transaction 1 (commit): no AddPartitionsToTxn, no AddOffsetsToTxn.
    let batch = transactional_batch((producer_id, 0), 0, &["a", "b"]);
    assert_eq!(
        produce_transactional_v2(&mut client, &id, &topic, 0, batch),
        0
    );
    assert_eq!(
        txn_commit_v5(&mut client, &id, &topic, (producer_id, 0), 2),
        0
    );
    let (error, state, described_epoch, partitions) = describe(&mut client, &id);
    assert_eq!((error, state.as_str(), described_epoch), (0, "Ongoing", 0));
    assert_eq!(partitions.len(), 2, "{partitions:?}");
    assert!(partitions.contains(&(topic.clone(), 0)));
    assert!(partitions
        .iter()
        .any(|(name, _)| name == "__consumer_offsets"));
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), true),
        (0, producer_id, 1)
    );
    let (_, _, described_epoch, partitions) = wait_state(&mut client, &id, "CompleteCommit");
    assert_eq!(described_epoch, 1);
    assert!(partitions.is_empty());
    assert_eq!(committed_offset(&mut client, &topic), 2);
    // The client missed the answer and retries: the same answer, nothing changes.
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), true),
        (0, producer_id, 1)
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), false).0,
        code(ResponseError::InvalidTxnState)
    );
    // A late write of the ended transaction (its epoch) is fenced.
    let late = transactional_batch((producer_id, 0), 2, &["late"]);
    assert_eq!(
        produce_transactional_v2(&mut client, &id, &topic, 0, late),
        code(ResponseError::InvalidProducerEpoch)
    );

    // Transaction 2 (abort) at the bumped epoch, sequences from 0 again.
    let batch = transactional_batch((producer_id, 1), 0, &["c"]);
    assert_eq!(
        produce_transactional_v2(&mut client, &id, &topic, 0, batch),
        0
    );
    assert_eq!(
        txn_commit_v5(&mut client, &id, &topic, (producer_id, 1), 3),
        0
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 1), false),
        (0, producer_id, 2)
    );
    wait_state(&mut client, &id, "CompleteAbort");
    assert_eq!(committed_offset(&mut client, &topic), 2);

    // Transaction 3 (commit) on partition 1 only.
    let batch = transactional_batch((producer_id, 2), 0, &["d"]);
    assert_eq!(
        produce_transactional_v2(&mut client, &id, &topic, 1, batch),
        0
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 2), true),
        (0, producer_id, 3)
    );
    wait_state(&mut client, &id, "CompleteCommit");

    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 0, "read_committed"),
        strings(&["a", "b"])
    );
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 0, "read_uncommitted"),
        strings(&["a", "b", "c"])
    );
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 1, "read_committed"),
        strings(&["d"])
    );

    // The version 2 state (and with it the retry rule) survives a crash.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    find_coordinator(&mut client, &id);
    let (_, _, described_epoch, _) = wait_state(&mut client, &id, "CompleteCommit");
    assert_eq!(described_epoch, 3);
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 2), true),
        (0, producer_id, 3)
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 1), true).0,
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 0, "read_committed"),
        strings(&["a", "b"])
    );
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 1, "read_committed"),
        strings(&["d"])
    );
    assert_eq!(committed_offset(&mut client, &topic), 2);
}

#[test]
fn an_abort_of_a_transaction_the_coordinator_never_saw_still_bumps_the_epoch() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("tv2-empty-abort");
    let id = format!("{topic}-txn");
    find_coordinator(&mut client, &id);
    let (error, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), true).0,
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), false),
        (0, producer_id, 1)
    );
    let (_, _, described_epoch, _) = wait_state(&mut client, &id, "CompleteAbort");
    assert_eq!(described_epoch, 1);
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), false),
        (0, producer_id, 1)
    );
}

#[test]
fn transaction_version_1_is_finalized_when_asked() {
    let broker = Broker::start_with(&["--transaction-version", "1"]);
    let mut client = RawClient::connect(&broker.bootstrap());
    // Nothing that means version 2 is offered: Produce up to v11, EndTxn up to v4.
    assert_eq!(transaction_version(&mut client), (Some((1, 1)), 11, 4));
}
