//! WriteTxnMarkers (API 27): a transaction coordinator asks the partition leaders to end a
//! producer's transaction with a commit or abort marker (Kafka's control batch).
//!
//! Every marker is appended to this node's leader replica first, then the answer waits
//! until the high watermark passes each marker (Kafka appends markers with acks=all), so a
//! coordinator that hears "done" knows every in-sync replica holds the marker. Errors are per
//! partition: UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH (an
//! older producer epoch than the partition knows), TRANSACTION_COORDINATOR_FENCED (an older
//! coordinator epoch), NOT_ENOUGH_REPLICAS(_AFTER_APPEND), REQUEST_TIMED_OUT.
//!
//! [`write_markers_here`] is the core, also called directly by the local transaction
//! coordinator for the partitions this node leads. A marker replicated on a
//! `__consumer_offsets` partition is handed to the group coordinator, which then commits or
//! drops the producer's pending transactional offsets (Kafka's
//! `GroupCoordinator.scheduleHandleTxnCompletion`).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::WritableTxnMarker;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;
use sluice_storage::{AppendError, TxnMarker};

use super::RequestContext;
use crate::broker::{now_ms, Broker, Replica, Topic};
use crate::config::FlushPolicy;
use crate::group::OFFSETS_TOPIC;
use crate::replication;
use crate::topic_config;

/// How long the markers wait for the in-sync replicas (Kafka uses `request.timeout.ms`,
/// 30 s by default).
const MARKER_REPLICATION_WAIT: Duration = Duration::from_secs(30);

pub async fn handle(
    context: &RequestContext<'_>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    // Kafka: only nodes (CLUSTER_ACTION on the cluster) and cluster administrators (ALTER,
    // for aborting hanging transactions with kafka-transactions) write markers.
    use sluice_raft::image::acls::operation;
    if !context.authorize_cluster(operation::ALTER)
        && !context.authorize_cluster(operation::CLUSTER_ACTION)
    {
        return refused_everywhere(&request);
    }
    write_markers_here(context.broker, request).await
}

/// Every partition answered CLUSTER_AUTHORIZATION_FAILED.
fn refused_everywhere(request: &WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    for marker in &request.markers {
        let mut marker_result = WritableTxnMarkerResult::default();
        marker_result.producer_id = marker.producer_id;
        for wanted in &marker.topics {
            let mut topic_result = WritableTxnMarkerTopicResult::default();
            topic_result.name = wanted.name.clone();
            for &index in &wanted.partition_indexes {
                let mut partition_result = WritableTxnMarkerPartitionResult::default();
                partition_result.partition_index = index;
                partition_result.error_code = ResponseError::ClusterAuthorizationFailed.code();
                topic_result.partitions.push(partition_result);
            }
            marker_result.topics.push(topic_result);
        }
        response.markers.push(marker_result);
    }
    response
}

/// A marker appended to one partition, waiting for replication.
struct Appended {
    producer_id: i64,
    commit: bool,
    marker_at: usize,
    topic_at: usize,
    partition_at: usize,
    replica: Arc<Replica>,
    offset: i64,
    min_insync: usize,
}

/// Writes every marker of `request` to the partitions this node leads and answers once each
/// is replicated (or failed).
pub async fn write_markers_here(
    broker: &Arc<Broker>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let image = broker.topics();
    let mut response = WriteTxnMarkersResponse::default();
    let mut waiting = Vec::new();
    for (marker_at, marker) in request.markers.iter().enumerate() {
        let mut marker_result = WritableTxnMarkerResult::default();
        marker_result.producer_id = marker.producer_id;
        for (topic_at, wanted) in marker.topics.iter().enumerate() {
            let topic = image.by_name.get(wanted.name.0.as_str());
            let mut topic_result = WritableTxnMarkerTopicResult::default();
            topic_result.name = wanted.name.clone();
            for (partition_at, &index) in wanted.partition_indexes.iter().enumerate() {
                let mut partition_result = WritableTxnMarkerPartitionResult::default();
                partition_result.partition_index = index;
                match append_one(broker, topic.map(Arc::as_ref), index, marker).await {
                    Ok((replica, offset, min_insync)) => waiting.push(Appended {
                        producer_id: marker.producer_id.0,
                        commit: marker.transaction_result,
                        marker_at,
                        topic_at,
                        partition_at,
                        replica,
                        offset,
                        min_insync,
                    }),
                    Err(error) => partition_result.error_code = error.code(),
                }
                topic_result.partitions.push(partition_result);
            }
            marker_result.topics.push(topic_result);
        }
        response.markers.push(marker_result);
    }
    if !waiting.is_empty() {
        broker.notify_appended();
    }
    // The waits overlap: every marker was appended before the first wait began, and they
    // share one deadline.
    let deadline = tokio::time::Instant::now() + MARKER_REPLICATION_WAIT;
    for appended in waiting {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let replicated = replication::wait_replicated(
            broker,
            &appended.replica,
            appended.offset,
            left,
            appended.min_insync,
        )
        .await;
        match replicated {
            Ok(()) if appended.replica.topic == OFFSETS_TOPIC => {
                broker.groups.complete_transaction(
                    appended.replica.index,
                    appended.producer_id,
                    appended.commit,
                    appended.offset,
                );
            }
            Ok(()) => {}
            Err(error) => {
                response.markers[appended.marker_at].topics[appended.topic_at].partitions
                    [appended.partition_at]
                    .error_code = error.code();
            }
        }
    }
    response
}

/// Appends `marker` to partition `index` of `topic` if this node leads it; returns the
/// replica, the marker's offset and the topic's `min.insync.replicas`.
async fn append_one(
    broker: &Arc<Broker>,
    topic: Option<&Topic>,
    index: i32,
    marker: &WritableTxnMarker,
) -> Result<(Arc<Replica>, i64, usize), ResponseError> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition)?;
    let partition = topic
        .partition(index)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let replica = Arc::clone(partition.leader_replica(broker.node_id(), -1)?);
    let min_insync = topic
        .overrides
        .get(topic_config::MIN_INSYNC_REPLICAS)
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(1);
    if partition.registration.isr.len() < min_insync {
        return Err(ResponseError::NotEnoughReplicas);
    }
    let txn_marker = TxnMarker {
        producer_id: marker.producer_id.0,
        producer_epoch: marker.producer_epoch,
        coordinator_epoch: marker.coordinator_epoch,
        commit: marker.transaction_result,
    };
    let leader_epoch = partition.leader_epoch();
    let now = now_ms();
    let outcome = if broker.config.flush_policy == FlushPolicy::EveryAppend {
        // fsync blocks for milliseconds: keep it off the async workers.
        let writer = Arc::clone(&replica);
        tokio::task::spawn_blocking(move || {
            writer.log.append_txn_marker(txn_marker, leader_epoch, now)
        })
        .await
        .map_err(|_| ResponseError::UnknownServerError)?
    } else {
        replica.log.append_txn_marker(txn_marker, leader_epoch, now)
    };
    let outcome = outcome.map_err(|error| {
        tracing::debug!(%error, topic = %topic.name, partition = index, "marker refused");
        marker_error(&error)
    })?;
    replication::recompute_high_watermark(&replica);
    Ok((replica, outcome.base_offset, min_insync))
}

fn marker_error(error: &AppendError) -> ResponseError {
    match error {
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::CoordinatorFenced { .. } => ResponseError::TransactionCoordinatorFenced,
        AppendError::Storage(_) => ResponseError::KafkaStorageError,
        other => {
            tracing::error!(error = %other, "writing a transaction marker");
            ResponseError::UnknownServerError
        }
    }
}
