//! KIP-890 part 1, the partition leader's side: before the first transactional batch of a
//! producer on a partition (no transaction of it ongoing there), the leader asks the
//! transaction coordinator whether the partition was added to the producer's ongoing
//! transaction; a batch for a partition not added is refused with INVALID_TXN_STATE, so a
//! late or hanging write can never start a transaction the coordinator will not end.
//!
//! The coordinator is asked directly when it is this node, otherwise with an
//! AddPartitionsToTxn v4 `verify_only` request over a peer connection.
//!
//! KIP-890 part 2 (transaction version 2: Produce v12+, TxnOffsetCommit v5+): the client
//! no longer adds partitions itself, so the leader *adds* the partition instead of only
//! verifying it (AddPartitionsToTxn v5, `verify_only` false), with the same guard.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, RequestKind,
    TopicName, TransactionalId,
};
use kafka_protocol::ResponseError;
use sluice_raft::image::LEADER_NONE;

use super::{markers, state, TRANSACTION_STATE_TOPIC};
use crate::broker::now_ms;
use crate::broker::Broker;
use crate::handlers::str_bytes;

const VERIFY_VERSION: i16 = 4;
/// The broker's add for a transaction version 2 client.
const ADD_VERSION: i16 = 5;
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the leader asks of the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Transaction version 1: the client added the partition; is it in the transaction?
    Verify,
    /// Transaction version 2: add the partition to the producer's transaction.
    Add,
}

/// Ok if `(topic, partition)` is (`Check::Verify`) or was just put (`Check::Add`) in the
/// ongoing transaction of this producer.
pub async fn check_partition(
    broker: &Arc<Broker>,
    check: Check,
    producer: (&str, i64, i16),
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    let (transactional_id, producer_id, producer_epoch) = producer;
    let entry = (topic.to_string(), partition);
    let coordinator = coordinator_node(broker, transactional_id)?;
    let code = if coordinator == broker.node_id() {
        local_code(broker, check, producer, &entry).await
    } else {
        let mut request = verify_request(transactional_id, producer_id, producer_epoch, &entry);
        let version = match check {
            Check::Verify => VERIFY_VERSION,
            Check::Add => {
                request.transactions[0].verify_only = false;
                ADD_VERSION
            }
        };
        remote_code(broker, coordinator, version, request, &entry).await
    };
    produce_error(code)
}

async fn local_code(
    broker: &Arc<Broker>,
    check: Check,
    producer: (&str, i64, i16),
    entry: &(String, i32),
) -> i16 {
    let (transactional_id, producer_id, producer_epoch) = producer;
    let entries = std::slice::from_ref(entry);
    let result = match check {
        Check::Verify => broker
            .txns
            .verify(transactional_id, producer_id, producer_epoch, entries)
            .and_then(|missing| match missing.is_empty() {
                true => Ok(()),
                false => Err(ResponseError::InvalidTxnState),
            }),
        Check::Add => {
            super::transition_for_producer(broker, transactional_id, |current| {
                let next = state::add_partitions(
                    current,
                    producer_id,
                    producer_epoch,
                    entries,
                    state::TRANSACTION_VERSION_EPOCH_BUMP,
                    now_ms(),
                )?;
                Ok((next, ()))
            })
            .await
        }
    };
    result.map_or_else(|error| error.code(), |()| 0)
}

/// The node leading the id's `__transaction_state` partition.
fn coordinator_node(broker: &Broker, transactional_id: &str) -> Result<i32, ResponseError> {
    let index = broker
        .txns
        .partition_for(transactional_id)
        .ok_or(ResponseError::InvalidTxnState)?;
    let image = broker.topics();
    let leader = image
        .by_name
        .get(TRANSACTION_STATE_TOPIC)
        .and_then(|topic| topic.partition(index))
        .map(|found| found.registration.leader)
        .ok_or(ResponseError::InvalidTxnState)?;
    if leader == LEADER_NONE {
        return Err(ResponseError::NotEnoughReplicas);
    }
    Ok(leader)
}

fn verify_request(
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    entry: &(String, i32),
) -> AddPartitionsToTxnRequest {
    let mut topic = AddPartitionsToTxnTopic::default();
    topic.name = TopicName(str_bytes(&entry.0));
    topic.partitions = vec![entry.1];
    let mut transaction = AddPartitionsToTxnTransaction::default();
    transaction.transactional_id = TransactionalId(str_bytes(transactional_id));
    transaction.producer_id = ProducerId(producer_id);
    transaction.producer_epoch = producer_epoch;
    transaction.verify_only = true;
    transaction.topics = vec![topic];
    let mut request = AddPartitionsToTxnRequest::default();
    request.transactions = vec![transaction];
    request
}

async fn remote_code(
    broker: &Broker,
    coordinator: i32,
    version: i16,
    request: AddPartitionsToTxnRequest,
    entry: &(String, i32),
) -> i16 {
    let Some(address) = markers::leader_address(broker, coordinator) else {
        return ResponseError::CoordinatorNotAvailable.code();
    };
    let answered = broker
        .txns
        .peers
        .request::<AddPartitionsToTxnResponse>(
            &broker.inter_broker,
            &address,
            ApiKey::AddPartitionsToTxn,
            version,
            RequestKind::AddPartitionsToTxn(request),
            VERIFY_TIMEOUT,
        )
        .await;
    let response = match answered {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(coordinator, %error, "verifying a transactional produce");
            return ResponseError::CoordinatorNotAvailable.code();
        }
    };
    if response.error_code != 0 {
        return response.error_code;
    }
    response
        .results_by_transaction
        .iter()
        .flat_map(|result| &result.topic_results)
        .filter(|topic| topic.name.0.as_str() == entry.0)
        .flat_map(|topic| &topic.results_by_partition)
        .find(|result| result.partition_index == entry.1)
        .map_or(ResponseError::InvalidTxnState.code(), |result| {
            result.partition_error_code
        })
}

/// The coordinator's answer as a Produce error: a coordinator that cannot answer now is
/// NOT_ENOUGH_REPLICAS, which producers retry (as Kafka's `AddPartitionsToTxnManager` maps it).
fn produce_error(code: i16) -> Result<(), ResponseError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    Err(match error {
        ResponseError::NotCoordinator
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::ConcurrentTransactions => ResponseError::NotEnoughReplicas,
        ResponseError::ProducerFenced => ResponseError::InvalidProducerEpoch,
        other => other,
    })
}
