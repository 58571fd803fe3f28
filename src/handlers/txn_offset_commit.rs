//! TxnOffsetCommit (API 28, v0-5): a transactional producer commits a consumer group's
//! offsets inside its transaction (`sendOffsetsToTransaction`). Sent to the group
//! coordinator after AddOffsetsToTxn; answered once the transactional batch is on every ISR
//! member of the group's offsets partition. The offsets become visible to OffsetFetch only
//! when the transaction commits (`GroupCoordinator::complete_transaction`).
//!
//! KIP-890 part 1: when the producer has no transaction ongoing on the group's offsets
//! partition, the transaction coordinator is first asked whether that partition was added
//! (AddOffsetsToTxn); a late TxnOffsetCommit of an ended transaction is refused with
//! INVALID_TXN_STATE instead of leaving offsets pending that no marker would ever end.
//! v5 (transaction version 2, KIP-890 part 2): the client sends no AddOffsetsToTxn, and
//! the partition is added to the transaction here instead of verified.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;
use sluice_storage::producer_state::NO_SEQUENCE;
use sluice_storage::VerificationGuard;

use sluice_raft::image::acls::operation;

use super::{authz, RequestContext};
use crate::broker::{now_ms, TopicsImage};
use crate::group::outcome::MemberRef;
use crate::group::{
    CommittedOffset, OffsetCommit, TxnOffsetCommit, OFFSETS_TOPIC, OFFSET_METADATA_BYTES_MAX,
};
use crate::txn::verify::{check_partition, Check};

/// TxnOffsetCommit v5+ comes from clients speaking transaction version 2.
const TRANSACTION_VERSION_2_VERSION_MIN: i16 = 5;

/// Per partition of the request: (topic index, partition, its own refusal if any).
type PartitionResult = (usize, i32, Option<ResponseError>);

pub async fn handle(
    context: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let (results, offsets) = validate(context, &request);
    let verified =
        match request_refusal(&request).or_else(|| authorization_refusal(context, &request)) {
            Some(error) => Err(error),
            None => verify(context, &request).await,
        };
    let committed = match verified {
        Err(error) => Err(error),
        Ok(verification_guard) => {
            let commit = TxnOffsetCommit {
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
                verification_guard,
                member: member(context.api_version, &request),
                offsets,
            };
            context
                .broker
                .groups
                .commit_transactional(&request.group_id.0, commit)
                .await
        }
    };
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = TxnOffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry
        })
        .collect();
    for (topic_index, partition_index, refusal) in results {
        let mut entry = TxnOffsetCommitResponsePartition::default();
        entry.partition_index = partition_index;
        let error = refusal.or(committed.err());
        entry.error_code = error.map_or(0, |error| error.code());
        response.topics[topic_index].partitions.push(entry);
    }
    response
}

/// Each partition's own refusal, and the offsets of the partitions that go to the group
/// coordinator.
fn validate(
    context: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
) -> (Vec<PartitionResult>, Vec<OffsetCommit>) {
    let image = context.broker.topics();
    let now = now_ms();
    let mut results = Vec::new();
    let mut offsets = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        for partition in &topic.partitions {
            let metadata = partition.committed_metadata.as_ref().map(|m| m.as_str());
            let refusal = if context.authorize_topic(operation::READ, &topic.name.0) {
                refusal(&image, &topic.name.0, partition.partition_index, metadata)
            } else {
                Some(ResponseError::TopicAuthorizationFailed)
            };
            if refusal.is_none() {
                offsets.push(OffsetCommit {
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                    committed: CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if context.api_version >= 2 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: metadata.unwrap_or_default().to_string(),
                        commit_timestamp_ms: now,
                    },
                });
            }
            results.push((topic_index, partition.partition_index, refusal));
        }
    }
    (results, offsets)
}

/// The committing member; v0-2 name none (KIP-447 added the fields in v3): generation -1
/// and member "", as Kafka reads them.
fn member(version: i16, request: &TxnOffsetCommitRequest) -> MemberRef {
    MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        generation_id: if version >= 3 {
            request.generation_id
        } else {
            -1
        },
    }
}

/// KIP-890 verification of the group's offsets partition with the transaction coordinator,
/// unless the producer's transaction is already ongoing there: the guard the append must
/// present (recorded before asking, so a marker landing in between fails the append). A
/// partition this node does not lead passes: the group coordinator answers NOT_COORDINATOR.
async fn verify(
    context: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
) -> Result<VerificationGuard, ResponseError> {
    let broker = context.broker;
    let group_id = request.group_id.0.as_str();
    if group_id.is_empty() {
        return Ok(VerificationGuard::NONE);
    }
    let partition = broker.groups.partition_for(group_id);
    let image = broker.topics();
    let replica = image
        .by_name
        .get(OFFSETS_TOPIC)
        .and_then(|topic| topic.partition(partition))
        .and_then(|found| found.leader_replica(broker.node_id(), -1).ok().cloned());
    let Some(replica) = replica else {
        return Ok(VerificationGuard::NONE);
    };
    let producer_id = request.producer_id.0;
    // No sequence: the group coordinator numbers the batch itself (Kafka's NO_SEQUENCE).
    let guard = replica.log.start_txn_verification(
        producer_id,
        NO_SEQUENCE,
        request.producer_epoch,
        now_ms(),
    );
    if guard.is_none() {
        return Ok(guard);
    }
    // KIP-890 part 2: v5 comes from a transaction version 2 client, which sends no
    // AddOffsetsToTxn; the group coordinator adds the offsets partition itself.
    let check = if context.api_version >= TRANSACTION_VERSION_2_VERSION_MIN {
        Check::Add
    } else {
        Check::Verify
    };
    let producer = (
        request.transactional_id.0.as_str(),
        producer_id,
        request.producer_epoch,
    );
    let verified = check_partition(broker, check, producer, OFFSETS_TOPIC, partition).await;
    // The verification speaks Produce's errors; a coordinator that cannot answer now is
    // COORDINATOR_NOT_AVAILABLE here (the client retries), as Kafka's group coordinator maps it.
    verified.map_err(|error| match error {
        ResponseError::NotEnoughReplicas => ResponseError::CoordinatorNotAvailable,
        other => other,
    })?;
    Ok(guard)
}

/// What refuses the whole request before the coordinator sees it.
/// Kafka: WRITE on the transactional id, READ on the group.
fn authorization_refusal(
    context: &RequestContext<'_>,
    request: &TxnOffsetCommitRequest,
) -> Option<ResponseError> {
    if !authz::authorize_transactional_id(context, &request.transactional_id.0) {
        return Some(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        return Some(ResponseError::GroupAuthorizationFailed);
    }
    None
}

fn request_refusal(request: &TxnOffsetCommitRequest) -> Option<ResponseError> {
    if request.transactional_id.0.is_empty() {
        return Some(ResponseError::InvalidRequest);
    }
    if request.producer_id.0 < 0 || request.producer_epoch < 0 {
        return Some(ResponseError::InvalidProducerIdMapping);
    }
    None
}

fn refusal(
    image: &TopicsImage,
    topic: &str,
    partition: i32,
    metadata: Option<&str>,
) -> Option<ResponseError> {
    let exists = image
        .by_name
        .get(topic)
        .is_some_and(|t| t.partition(partition).is_some());
    if !exists {
        return Some(ResponseError::UnknownTopicOrPartition);
    }
    if metadata.is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX) {
        return Some(ResponseError::OffsetMetadataTooLarge);
    }
    None
}
