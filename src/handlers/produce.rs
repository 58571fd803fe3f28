//! Produce: validate each partition's batches, stamp offsets, append, acknowledge.
//!
//! The record payload arrives as a slice of the request frame; it is copied once into a
//! writable buffer (the broker stamps base offsets into it) and appended as is. Nothing is
//! decoded per record.
//!
//! Idempotent producers: the log checks epochs and sequences. A retried batch that is already
//! in the log is answered with error 0 and its original base offset (what Kafka does with
//! its internal DUPLICATE_SEQUENCE outcome), so the producer completes it exactly once.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::ResponseError;
use sluice_storage::{AppendError, AppendOutcome, VerificationGuard};

use sluice_raft::image::acls::operation;

use super::{authz, leader_hint, str_bytes, RequestContext};
use crate::broker::{now_ms, Partition, Replica, Topic, TopicsImage};
use crate::group::OFFSETS_TOPIC;
use crate::replication;
use crate::topic_config;
use crate::txn::TRANSACTION_STATE_TOPIC;

/// The longest acks=all waits for replication, whatever the request's timeout_ms.
const PRODUCE_WAIT_MAX: Duration = Duration::from_secs(60);
use crate::config::FlushPolicy;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut response = ProduceResponse::default();
    if !matches!(acks, -1..=1) {
        response.responses = error_for_all(
            context.api_version,
            &request,
            ResponseError::InvalidRequiredAcks,
        );
        return Some(response);
    }
    // Kafka: WRITE on the transactional id of a transactional produce.
    let refused_id = request
        .transactional_id
        .as_ref()
        .filter(|id| !authz::authorize_transactional_id(context, id.as_str()));
    if let Some(id) = refused_id {
        tracing::debug!(principal = %context.principal, transactional_id = %id.as_str(), "produce refused");
        response.responses = error_for_all(
            context.api_version,
            &request,
            ResponseError::TransactionalIdAuthorizationFailed,
        );
        return Some(response);
    }
    // Kafka: transactional records need a transactional id to be authorised against.
    if request.transactional_id.is_none() && has_transactional_records(&request) {
        response.responses = error_for_all(
            context.api_version,
            &request,
            ResponseError::TransactionalIdAuthorizationFailed,
        );
        return Some(response);
    }
    let transactional_id = request.transactional_id.as_ref().map(|id| id.0.to_string());
    let image = context.broker.topics();
    let mut appended_any = false;
    let mut appended_bytes = 0usize;
    for topic_data in request.topic_data {
        let topic = find_topic(&image, context.api_version, &topic_data);
        // Kafka authorises by name before looking the partition up; an unknown topic id has
        // no name to authorise and stays UNKNOWN_TOPIC_ID.
        let name = topic.map_or_else(|| topic_data.name.0.to_string(), |t| t.name.clone());
        let denied = !name.is_empty() && !context.authorize_topic(operation::WRITE, &name);
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic_data.name.clone();
        topic_response.topic_id = topic_data.topic_id;
        let mut topic_bytes = 0usize;
        for partition_data in topic_data.partition_data {
            let index = partition_data.index;
            let record_bytes = partition_data.records.as_ref().map_or(0, Bytes::len);
            let partition = topic.and_then(|t| t.partition(index)).cloned();
            let mut result = match (partition, partition_data.records) {
                _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                (None, _) => Err(ResponseError::UnknownTopicOrPartition),
                (Some(_), None) => Err(ResponseError::CorruptMessage),
                (Some(partition), Some(records)) => {
                    let topic = topic.map(Arc::as_ref);
                    let target = Target {
                        topic,
                        partition: &partition,
                        transactional_id: transactional_id.as_deref(),
                    };
                    produce_one(context, &target, acks, request.timeout_ms, records).await
                }
            };
            let appended = result.as_ref().is_ok_and(|outcome| !outcome.duplicate);
            appended_any |= appended;
            if appended {
                topic_bytes += record_bytes;
            }
            if context.api_version < 5 {
                // log_start_offset exists from v5 on; the encoder refuses it earlier.
                if let Ok(outcome) = &mut result {
                    outcome.log_start_offset = -1;
                }
            }
            let mut entry = partition_response(context.api_version, index, result);
            let hinted = topic.and_then(|t| t.partition(index));
            if let Some(partition) = hinted.filter(|_| wants_leader_hint(context, &entry)) {
                add_leader_hint(
                    &image,
                    partition,
                    context.listener_name,
                    &mut entry,
                    &mut response,
                );
            }
            topic_response.partition_responses.push(entry);
        }
        if let Some(topic) = topic {
            context
                .broker
                .metrics
                .add_topic_bytes_in(&topic.name, topic_bytes);
        }
        appended_bytes += topic_bytes;
        response.responses.push(topic_response);
    }
    if appended_any {
        context.broker.notify_appended();
    }
    throttle(context, &mut response, appended_bytes);
    // acks=0: the client expects no response at all.
    (acks != 0).then_some(response)
}

/// Kafka throttles produce after the append: the answer carries throttle_time_ms and the
/// connection is muted for that long.
fn throttle(context: &RequestContext<'_>, response: &mut ProduceResponse, bytes: usize) {
    let now = std::time::Instant::now();
    let node_throttle = context
        .broker
        .budget
        .charge_produce(context.connection, bytes, now);
    let quota_throttle = super::client_quota_throttle(
        context,
        kafka_protocol::messages::ApiKey::Produce,
        crate::budget::QuotaKind::Produce,
        bytes,
        now,
    );
    let throttle = node_throttle.max(quota_throttle);
    if throttle.is_zero() {
        return;
    }
    context
        .broker
        .metrics
        .record_throttle(kafka_protocol::messages::ApiKey::Produce, throttle);
    context.connection.mute_for(throttle, now);
    // throttle_time_ms exists from v1 on.
    if context.api_version >= 1 {
        response.throttle_time_ms = crate::budget::throttle_ms(throttle);
    }
}

fn wants_leader_hint(context: &RequestContext<'_>, entry: &PartitionProduceResponse) -> bool {
    context.api_version >= leader_hint::PRODUCE_VERSION_MIN
        && leader_hint::wanted_for(entry.error_code)
}

/// KIP-951: the current leader in the partition's answer, its endpoint in the response.
fn add_leader_hint(
    image: &TopicsImage,
    partition: &Partition,
    listener_name: &str,
    entry: &mut PartitionProduceResponse,
    response: &mut ProduceResponse,
) {
    let hint = leader_hint::leader_hint(image, partition, listener_name);
    entry.current_leader = LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(hint.leader_id))
        .with_leader_epoch(hint.leader_epoch);
    let Some(endpoint) = hint.endpoint else {
        return;
    };
    if response
        .node_endpoints
        .iter()
        .any(|known| known.node_id.0 == hint.leader_id)
    {
        return;
    }
    response.node_endpoints.push(
        NodeEndpoint::default()
            .with_node_id(BrokerId(hint.leader_id))
            .with_host(str_bytes(endpoint.host))
            .with_port(endpoint.port)
            .with_rack(endpoint.rack.map(str_bytes)),
    );
}

fn find_topic<'a>(
    image: &'a TopicsImage,
    version: i16,
    topic_data: &kafka_protocol::messages::produce_request::TopicProduceData,
) -> Option<&'a Arc<Topic>> {
    // v13+ (KIP-516) names topics by id only.
    if version >= 13 {
        image.by_id.get(&topic_data.topic_id)
    } else {
        image.by_name.get(topic_data.name.0.as_str())
    }
}

/// Where a partition's records go, and for whose transaction.
struct Target<'a> {
    topic: Option<&'a Topic>,
    partition: &'a Partition,
    transactional_id: Option<&'a str>,
}

/// True if any partition's first batch is transactional.
fn has_transactional_records(request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .flat_map(|topic| &topic.partition_data)
        .filter_map(|partition| partition.records.as_ref())
        .any(|records| {
            sluice_storage::BatchHeader::parse(records)
                .is_ok_and(|header| header.is_transactional())
        })
}

/// KIP-890: the first transactional batch of a producer on this partition must belong to a
/// transaction the coordinator added the partition to. The guard is recorded before the
/// coordinator is asked and the append presents it: a marker written in between removes it
/// and the append fails (Kafka's verification guard), so a late answer cannot start a
/// transaction the coordinator already ended. No guard (`NONE`) when the producer has a
/// transaction ongoing here or the batch is not transactional.
async fn verify_transactional(
    context: &RequestContext<'_>,
    target: &Target<'_>,
    replica: &Replica,
    records: &Bytes,
) -> Result<VerificationGuard, ResponseError> {
    let Ok(header) = sluice_storage::BatchHeader::parse(records) else {
        // The append refuses it with the precise error.
        return Ok(VerificationGuard::NONE);
    };
    if !header.is_transactional() {
        return Ok(VerificationGuard::NONE);
    }
    let Some(transactional_id) = target.transactional_id else {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    };
    let guard = replica.log.start_txn_verification(
        header.producer_id,
        header.base_sequence,
        header.producer_epoch,
        now_ms(),
    );
    if guard.is_none() {
        return Ok(guard);
    }
    let topic = target.topic.map_or("", |topic| topic.name.as_str());
    crate::txn::verify::verify_partition(
        context.broker,
        transactional_id,
        header.producer_id,
        header.producer_epoch,
        topic,
        target.partition.index,
    )
    .await?;
    Ok(guard)
}

/// Appends to this node's leader replica; with acks=all also waits until every ISR member
/// has the records (the high watermark passed them), at most `timeout_ms`.
async fn produce_one(
    context: &RequestContext<'_>,
    target: &Target<'_>,
    acks: i16,
    timeout_ms: i32,
    records: Bytes,
) -> Result<AppendOutcome, ResponseError> {
    let topic = target.topic;
    let partition = target.partition;
    if topic.is_some_and(|t| t.name == OFFSETS_TOPIC || t.name == TRANSACTION_STATE_TOPIC) {
        // Kafka: "Cannot append to internal topic"; only the coordinators write them.
        return Err(ResponseError::InvalidTopicException);
    }
    let replica = partition.leader_replica(context.broker.node_id(), -1)?;
    let compacted =
        topic.is_some_and(|t| topic_config::policy_has(&t.overrides, topic_config::POLICY_COMPACT));
    if compacted && crate::log_cleaner::has_null_key(&records) {
        // Kafka: "Compacted topic cannot accept message without key".
        return Err(ResponseError::InvalidRecord);
    }
    let guard = verify_transactional(context, target, replica, &records).await?;
    let min_insync = min_insync_replicas(topic);
    if acks == -1 && partition.registration.isr.len() < min_insync {
        return Err(ResponseError::NotEnoughReplicas);
    }
    let epoch = partition.leader_epoch();
    let bytes = records.len();
    let outcome = append(context, replica.clone(), epoch, records, guard).await?;
    replica.record_traffic(bytes);
    replication::recompute_high_watermark(replica);
    // Wake waiting Fetches now: followers must see the records for acks=all to complete.
    context.broker.notify_appended();
    if acks == -1 {
        let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
        let timeout = timeout.min(PRODUCE_WAIT_MAX);
        let last_offset = outcome.last_offset;
        replication::wait_replicated(context.broker, replica, last_offset, timeout, min_insync)
            .await?;
    }
    Ok(outcome)
}

fn min_insync_replicas(topic: Option<&Topic>) -> usize {
    topic
        .and_then(|t| t.overrides.get(topic_config::MIN_INSYNC_REPLICAS))
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(1)
}

async fn append(
    context: &RequestContext<'_>,
    partition: Arc<Replica>,
    leader_epoch: i32,
    records: Bytes,
    guard: VerificationGuard,
) -> Result<AppendOutcome, ResponseError> {
    // Stamping needs a writable copy; the frame is shared by every partition of the request.
    let mut batches = BytesMut::from(&records[..]);
    let now = now_ms();
    let outcome = if context.broker.config.flush_policy == FlushPolicy::EveryAppend {
        // fsync blocks for milliseconds: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            partition
                .log
                .append_verified(&mut batches, leader_epoch, now, guard)
        })
        .await
        .map_err(|_| ResponseError::UnknownServerError)?
    } else {
        partition
            .log
            .append_verified(&mut batches, leader_epoch, now, guard)
    };
    outcome.map_err(|error| {
        tracing::debug!(peer = %context.peer, client = ?context.client_id, %error, "append refused");
        append_error_code(&error)
    })
}

fn append_error_code(error: &AppendError) -> ResponseError {
    match error {
        AppendError::Batch(batch_error) => batch_error_code(batch_error),
        AppendError::LargerThanSegment { .. } => ResponseError::RecordListTooLarge,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        // Not PRODUCER_FENCED: since Kafka 2.7 an old epoch of an idempotent producer is the
        // retriable INVALID_PRODUCER_EPOCH (fencing is for transactional ids).
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::InvalidSequence { .. } => ResponseError::InvalidRecord,
        // Kafka: a client's control batch is an invalid record; markers come from
        // WriteTxnMarkers only.
        AppendError::ControlBatchFromClient => ResponseError::InvalidRecord,
        AppendError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        AppendError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        AppendError::Storage(_) => ResponseError::KafkaStorageError,
    }
}

fn batch_error_code(error: &sluice_storage::BatchError) -> ResponseError {
    use sluice_storage::BatchError;
    match error {
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        // Produce v3+ carries only magic 2 batches; Kafka answers others with INVALID_RECORD.
        BatchError::UnsupportedMagic(_) => ResponseError::InvalidRecord,
        BatchError::Empty | BatchError::Corrupt(_) => ResponseError::CorruptMessage,
    }
}

fn partition_response(
    version: i16,
    index: i32,
    result: Result<AppendOutcome, ResponseError>,
) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default();
    response.index = index;
    match result {
        Ok(outcome) => {
            response.base_offset = outcome.base_offset;
            response.log_append_time_ms = outcome.log_append_time_ms;
            response.log_start_offset = outcome.log_start_offset;
        }
        Err(error) => {
            response.error_code = error.code();
            response.base_offset = -1;
            response.log_append_time_ms = -1;
            response.log_start_offset = -1;
            if version >= 8 {
                response.error_message = Some(str_bytes(error.to_string()));
            }
        }
    }
    response
}

fn error_for_all(
    version: i16,
    request: &ProduceRequest,
    error: ResponseError,
) -> Vec<TopicProduceResponse> {
    request
        .topic_data
        .iter()
        .map(|topic_data| {
            let mut topic_response = TopicProduceResponse::default();
            topic_response.name = topic_data.name.clone();
            topic_response.topic_id = topic_data.topic_id;
            topic_response.partition_responses = topic_data
                .partition_data
                .iter()
                .map(|p| partition_response(version, p.index, Err(error)))
                .collect();
            topic_response
        })
        .collect()
}
