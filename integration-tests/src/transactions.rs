//! Raw transactional requests for the transaction tests: FindCoordinator for a transactional
//! id, InitProducerId, AddPartitionsToTxn, EndTxn, DescribeTransactions, and transactional
//! record batches, at the versions the Java client uses with transaction version 1; and
//! Produce v12 / EndTxn v5 as it sends them with transaction version 2.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ListTransactionsRequest, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

use crate::raw_client::RawClient;
use crate::wait_until;

pub const WAIT: Duration = Duration::from_secs(30);
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;
pub const ADD_PARTITIONS_VERSION: i16 = 3;
pub const END_TXN_VERSION: i16 = 3;
pub const ADD_OFFSETS_VERSION: i16 = 3;
pub const FIND_COORDINATOR_VERSION: i16 = 3;
pub const LIST_TRANSACTIONS_VERSION: i16 = 2;
pub const TIMEOUT_MS: i32 = 60_000;
/// Produce and EndTxn as a transaction version 2 client sends them.
pub const PRODUCE_VERSION_2: i16 = 12;
pub const END_TXN_VERSION_2: i16 = 5;

pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

pub fn code(error: ResponseError) -> i16 {
    error.code()
}

/// FindCoordinator for a transactional id until it names a node (creating the topic).
pub fn find_coordinator(client: &mut RawClient, transactional_id: &str) -> i32 {
    wait_until(WAIT, "a transaction coordinator", || {
        let mut request = FindCoordinatorRequest::default();
        request.key = text(transactional_id);
        request.key_type = 1;
        let response = client.request(FIND_COORDINATOR_VERSION, &request);
        (response.error_code == 0).then_some(response.node_id.0)
    })
}

/// InitProducerId: (error, producer id, epoch).
pub fn init(client: &mut RawClient, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = Some(TransactionalId(text(id)));
    request.transaction_timeout_ms = timeout_ms;
    request.producer_id = ProducerId(-1);
    request.producer_epoch = -1;
    let response = client.request(INIT_PRODUCER_ID_VERSION, &request);
    (
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    )
}

/// InitProducerId at `version` naming the producer id and epoch the client has (KIP-360;
/// `id` None: an idempotent producer): (error, producer id, epoch).
pub fn init_as(
    client: &mut RawClient,
    id: Option<&str>,
    producer: (i64, i16),
    version: i16,
) -> (i16, i64, i16) {
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = id.map(|id| TransactionalId(text(id)));
    request.transaction_timeout_ms = TIMEOUT_MS;
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    let response = client.request(version, &request);
    (
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    )
}

/// ListTransactions v2 (KIP-994 duration, KIP-1152 id pattern): (error, sorted ids).
pub fn list_ids(
    client: &mut RawClient,
    states: &[&str],
    duration_ms: i64,
    pattern: Option<&str>,
) -> (i16, Vec<String>) {
    let mut request = ListTransactionsRequest::default();
    request.state_filters = states.iter().map(|state| text(state)).collect();
    request.duration_filter = duration_ms;
    request.transactional_id_pattern = pattern.map(text);
    let response = client.request(LIST_TRANSACTIONS_VERSION, &request);
    let mut ids: Vec<String> = response
        .transaction_states
        .iter()
        .map(|state| state.transactional_id.0.to_string())
        .collect();
    ids.sort();
    (response.error_code, ids)
}

/// InitProducerId retried while the coordinator is still taking up the id's partition
/// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), as clients do.
pub fn init_at_coordinator(client: &mut RawClient, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    wait_until(WAIT, "the coordinator to serve InitProducerId", || {
        let answer = init(client, id, timeout_ms);
        let moving = answer.0 == code(ResponseError::NotCoordinator)
            || answer.0 == code(ResponseError::CoordinatorLoadInProgress);
        (!moving).then_some(answer)
    })
}

/// InitProducerId retried while the coordinator aborts an ongoing transaction.
pub fn init_settled(client: &mut RawClient, id: &str) -> (i64, i16) {
    wait_until(WAIT, "InitProducerId", || {
        let (error, producer_id, epoch) = init(client, id, TIMEOUT_MS);
        assert!(
            error == 0 || error == code(ResponseError::ConcurrentTransactions),
            "InitProducerId error {error}"
        );
        (error == 0).then_some((producer_id, epoch))
    })
}

/// AddPartitionsToTxn v3: every partition's error code, in request order.
pub fn add_partitions(
    client: &mut RawClient,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<i16> {
    let mut request = AddPartitionsToTxnRequest::default();
    request.v3_and_below_transactional_id = TransactionalId(text(id));
    request.v3_and_below_producer_id = ProducerId(producer.0);
    request.v3_and_below_producer_epoch = producer.1;
    for (topic, partition) in partitions {
        let mut entry = AddPartitionsToTxnTopic::default();
        entry.name = TopicName(text(topic));
        entry.partitions = vec![*partition];
        request.v3_and_below_topics.push(entry);
    }
    let response = client.request(ADD_PARTITIONS_VERSION, &request);
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|topic| &topic.results_by_partition)
        .map(|partition| partition.partition_error_code)
        .collect()
}

pub fn end_txn(client: &mut RawClient, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let mut request = EndTxnRequest::default();
    request.transactional_id = TransactionalId(text(id));
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    request.committed = commit;
    client.request(END_TXN_VERSION, &request).error_code
}

/// (error, state, producer epoch, partitions) of one id.
pub fn describe(client: &mut RawClient, id: &str) -> (i16, String, i16, Vec<(String, i32)>) {
    let mut request = DescribeTransactionsRequest::default();
    request.transactional_ids = vec![TransactionalId(text(id))];
    let response = client.request(0, &request);
    let state = &response.transaction_states[0];
    let partitions = state
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.topic.0.to_string(), *partition))
        })
        .collect();
    (
        state.error_code,
        state.transaction_state.to_string(),
        state.producer_epoch,
        partitions,
    )
}

pub fn wait_state(
    client: &mut RawClient,
    id: &str,
    want: &str,
) -> (i16, String, i16, Vec<(String, i32)>) {
    wait_until(WAIT, want, || {
        let described = describe(client, id);
        (described.1 == want).then_some(described)
    })
}

/// A transactional batch of `values` from `producer` with sequences from `base_sequence`.
pub fn transactional_batch(producer: (i64, i16), base_sequence: i32, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(index, value)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            sequence: base_sequence + index as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode");
    out.freeze()
}

/// A transactional Produce (acks=all) to partition 0: the partition's error code.
pub fn produce_transactional(client: &mut RawClient, id: &str, topic: &str, batch: Bytes) -> i16 {
    produce_transactional_to(client, id, topic, 0, batch)
}

/// A transactional Produce (acks=all) to `partition`: the partition's error code.
pub fn produce_transactional_to(
    client: &mut RawClient,
    id: &str,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> i16 {
    let mut request = crate::raw_client::produce_request(topic, partition, -1, Some(batch));
    request.transactional_id = Some(TransactionalId(text(id)));
    let response = client.request(crate::raw_client::PRODUCE_VERSION, &request);
    response.responses[0].partition_responses[0].error_code
}

/// A transactional Produce v12 (transaction version 2: the leader adds the partition) of
/// `batch` to `partition`: the partition's error code.
pub fn produce_transactional_v2(
    client: &mut RawClient,
    id: &str,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> i16 {
    let mut request = crate::raw_client::produce_request(topic, partition, -1, Some(batch));
    request.transactional_id = Some(TransactionalId(text(id)));
    let response = client.request(PRODUCE_VERSION_2, &request);
    response.responses[0].partition_responses[0].error_code
}

/// EndTxn v5 (transaction version 2): (error, producer id, producer epoch) answered.
pub fn end_txn_v2(
    client: &mut RawClient,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let mut request = EndTxnRequest::default();
    request.transactional_id = TransactionalId(text(id));
    request.producer_id = ProducerId(producer.0);
    request.producer_epoch = producer.1;
    request.committed = commit;
    let response = client.request(END_TXN_VERSION_2, &request);
    (
        response.error_code,
        response.producer_id.0,
        response.producer_epoch,
    )
}

/// Values of one partition, from its start to its end, as kcat reads them with `isolation`
/// (read_committed or read_uncommitted).
pub fn kcat_values(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> Vec<String> {
    let mut command = std::process::Command::new(crate::kcat());
    command.arg("-b").arg(bootstrap).args([
        "-C",
        "-t",
        topic,
        "-p",
        &partition.to_string(),
        "-o",
        "beginning",
        "-e",
        "-f",
        "%s\\n",
        "-X",
        &format!("isolation.level={isolation}"),
    ]);
    let output = crate::run_command(command, b"", "kcat -C");
    output.lines().map(str::to_string).collect()
}
