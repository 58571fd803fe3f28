//! AddPartitionsToTxn: partitions join a producer's transaction before it writes to them.
//!
//! v0-3 (clients): one transaction, every partition answered with the same error, except
//! that topics the principal may not WRITE (and internal topics) make the request fail as
//! TOPIC_AUTHORIZATION_FAILED and unknown partitions as UNKNOWN_TOPIC_OR_PARTITION, each for
//! its own partitions, the others OPERATION_NOT_ATTEMPTED (Kafka's `handleAddPartitionsToTxn`).
//! v4-5 (brokers, KIP-890): a batch of transactions, each either added or only verified
//! (`verify_only`: partitions not in the ongoing transaction answer INVALID_TXN_STATE, nothing
//! is written). Only nodes send it: it needs CLUSTER_ACTION on the cluster (refused as a
//! whole with CLUSTER_AUTHORIZATION_FAILED), and then no transactional id or topic checks,
//! as Kafka's. A v5 add (not verify-only) is a partition leader adding the partition of a
//! transaction version 2 write (KIP-890 part 2), and marks the transaction as version 2.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};
use crate::broker::{now_ms, TopicsImage};
use crate::group::OFFSETS_TOPIC;
use crate::txn::{self, state, TxnPartition, TRANSACTION_STATE_TOPIC};

/// Versions below this say INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;
/// The batched (broker) form starts here.
const BATCHED_VERSION_MIN: i16 = 4;
/// A broker's add at this version is for a transaction version 2 client (Kafka's
/// `transactionVersionForAddPartitionsToTxn`).
const TRANSACTION_VERSION_2_VERSION_MIN: i16 = 5;
/// Partitions one request may name (over it: INVALID_REQUEST).
const REQUEST_PARTITIONS_MAX: usize = 100_000;

pub async fn handle(
    context: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if context.api_version < BATCHED_VERSION_MIN {
        let partitions = flatten(&request.v3_and_below_topics);
        let transactional_id = request.v3_and_below_transactional_id.as_str();
        let result = match refusal(context, transactional_id, &partitions) {
            Some(refused) => refused,
            None => {
                let pid = request.v3_and_below_producer_id.0;
                let epoch = request.v3_and_below_producer_epoch;
                add(context, transactional_id, pid, epoch, &partitions, 0).await
            }
        };
        let result = result.map_err(|error| fenced_for_version(context.api_version, error));
        response.results_by_topic_v3_and_below = results(&partitions, result_code(&result));
        return response;
    }
    let cluster_action = sluice_raft::image::acls::operation::CLUSTER_ACTION;
    if !context.authorize_cluster(cluster_action) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let total: usize = request
        .transactions
        .iter()
        .map(|transaction| flatten(&transaction.topics).len())
        .sum();
    if total > REQUEST_PARTITIONS_MAX {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    for transaction in request.transactions {
        let id = transaction.transactional_id.as_str();
        let partitions = flatten(&transaction.topics);
        let pid = transaction.producer_id.0;
        let epoch = transaction.producer_epoch;
        let topic_results = if transaction.verify_only {
            let verified = verify(context, id, pid, epoch, &partitions);
            results(&partitions, |partition| match &verified {
                Ok(missing) if missing.contains(partition) => ResponseError::InvalidTxnState.code(),
                Ok(_) => 0,
                Err(error) => error.code(),
            })
        } else {
            let version = if context.api_version >= TRANSACTION_VERSION_2_VERSION_MIN {
                state::TRANSACTION_VERSION_EPOCH_BUMP
            } else {
                0
            };
            let result = add(context, id, pid, epoch, &partitions, version).await;
            results(&partitions, result_code(&result))
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.transactional_id = transaction.transactional_id;
        result.topic_results = topic_results;
        response.results_by_transaction.push(result);
    }
    response
}

/// An add that did not fail as a whole: `Some` names the partitions that made it fail with
/// their errors (nothing was added; the others are OPERATION_NOT_ATTEMPTED), `None` means
/// added.
type Added = Option<Vec<(TxnPartition, ResponseError)>>;

fn result_code(added: &Result<Added, ResponseError>) -> impl Fn(&TxnPartition) -> i16 + '_ {
    move |partition| match added {
        Ok(None) => 0,
        Err(error) => error.code(),
        Ok(Some(failed)) => failed
            .iter()
            .find(|(entry, _)| entry == partition)
            .map_or(ResponseError::OperationNotAttempted.code(), |(_, error)| {
                error.code()
            }),
    }
}

/// A client's (v0-3) add refused by authorisation, as Kafka checks it: WRITE on the
/// transactional id (every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then WRITE on
/// each topic, internal topics never allowed (their partitions TOPIC_AUTHORIZATION_FAILED,
/// unknown partitions UNKNOWN_TOPIC_OR_PARTITION, the others OPERATION_NOT_ATTEMPTED).
/// `None`: allowed.
fn refusal(
    context: &RequestContext<'_>,
    transactional_id: &str,
    partitions: &[TxnPartition],
) -> Option<Result<Added, ResponseError>> {
    if transactional_id.is_empty() || partitions.len() > REQUEST_PARTITIONS_MAX {
        return Some(Err(ResponseError::InvalidRequest));
    }
    if !authz::authorize_transactional_id(context, transactional_id) {
        return Some(Err(ResponseError::TransactionalIdAuthorizationFailed));
    }
    let write = sluice_raft::image::acls::operation::WRITE;
    let mut allowed_topics: Vec<&str> = Vec::new();
    let mut refused_topics: Vec<&str> = Vec::new();
    for (topic, _) in partitions {
        let topic = topic.as_str();
        if allowed_topics.contains(&topic) || refused_topics.contains(&topic) {
            continue;
        }
        if !is_internal(topic) && context.authorize_topic(write, topic) {
            allowed_topics.push(topic);
        } else {
            refused_topics.push(topic);
        }
    }
    if refused_topics.is_empty() {
        return None;
    }
    let image = context.broker.topics();
    let failed = partitions
        .iter()
        .filter_map(|partition| {
            let error = if refused_topics.contains(&partition.0.as_str()) {
                ResponseError::TopicAuthorizationFailed
            } else if !partition_exists(&image, partition) {
                ResponseError::UnknownTopicOrPartition
            } else {
                return None;
            };
            Some((partition.clone(), error))
        })
        .collect();
    Some(Ok(Some(failed)))
}

/// Kafka's `Topic.isInternal`: no client may add these to a transaction.
fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC || topic == TRANSACTION_STATE_TOPIC
}

fn fenced_for_version(version: i16, error: ResponseError) -> ResponseError {
    if version < PRODUCER_FENCED_VERSION_MIN && error == ResponseError::ProducerFenced {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

async fn add(
    context: &RequestContext<'_>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
    client_transaction_version: i16,
) -> Result<Added, ResponseError> {
    if transactional_id.is_empty() || partitions.len() > REQUEST_PARTITIONS_MAX {
        return Err(ResponseError::InvalidRequest);
    }
    let image = context.broker.topics();
    let unknown: Vec<_> = partitions
        .iter()
        .filter(|partition| !partition_exists(&image, partition))
        .map(|partition| (partition.clone(), ResponseError::UnknownTopicOrPartition))
        .collect();
    if !unknown.is_empty() {
        return Ok(Some(unknown));
    }
    txn::transition_for_producer(context.broker, transactional_id, |current| {
        let next = state::add_partitions(
            current,
            producer_id,
            producer_epoch,
            partitions,
            client_transaction_version,
            now_ms(),
        )?;
        Ok((next, None))
    })
    .await
}

fn verify(
    context: &RequestContext<'_>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
) -> Result<Vec<TxnPartition>, ResponseError> {
    context
        .broker
        .txns
        .verify(transactional_id, producer_id, producer_epoch, partitions)
}

fn partition_exists(image: &TopicsImage, (topic, index): &TxnPartition) -> bool {
    image
        .by_name
        .get(topic)
        .and_then(|found| found.partition(*index))
        .is_some()
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<TxnPartition> {
    let mut partitions = Vec::new();
    for topic in topics {
        for index in &topic.partitions {
            partitions.push((topic.name.0.to_string(), *index));
            if partitions.len() > REQUEST_PARTITIONS_MAX {
                return partitions;
            }
        }
    }
    partitions
}

/// The answer per topic, in request order, each partition coded by `code`.
fn results(
    partitions: &[TxnPartition],
    code: impl Fn(&TxnPartition) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut topics: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for partition in partitions {
        let mut entry = AddPartitionsToTxnPartitionResult::default();
        entry.partition_index = partition.1;
        entry.partition_error_code = code(partition);
        match topics.last_mut() {
            Some(topic) if topic.name.0.as_str() == partition.0 => {
                topic.results_by_partition.push(entry)
            }
            _ => {
                let mut topic = AddPartitionsToTxnTopicResult::default();
                topic.name = kafka_protocol::messages::TopicName(super::str_bytes(&partition.0));
                topic.results_by_partition.push(entry);
                topics.push(topic);
            }
        }
    }
    topics
}
