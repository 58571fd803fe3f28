//! Completing a transaction: its commit or abort marker is written to every partition in it
//! (Kafka's `TransactionMarkerChannelManager`), then Complete{Commit,Abort} is written to the
//! transaction log.
//!
//! Partitions are grouped by their leader: this node's are written directly
//! (`write_markers_here`), others get a WriteTxnMarkers request over a peer connection.
//! Partitions that failed are retried, with backoff, until every one is done or this node
//! stops coordinating the id (the next coordinator loads PrepareCommit/PrepareAbort from the
//! log and starts over; markers are idempotent for the data path).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, RequestKind, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::ResponseError;
use sluice_raft::image::LEADER_NONE;

use super::{state, transition, TxnMetadata, TxnPartition};
use crate::broker::{now_ms, Broker};
use crate::handlers::str_bytes;

const WRITE_TXN_MARKERS_VERSION: i16 = 1;
const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Sends the markers of the preparing transaction `transactional_id` and completes it, for
/// as long as this node coordinates `partition` at `coordinator_epoch`.
pub fn spawn_completion(
    broker: Arc<Broker>,
    transactional_id: String,
    partition: i32,
    coordinator_epoch: i32,
) {
    tokio::spawn(async move {
        complete(&broker, &transactional_id, partition, coordinator_epoch).await;
    });
}

async fn complete(broker: &Arc<Broker>, transactional_id: &str, partition: i32, epoch: i32) {
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        if !broker.txns.coordinating(partition, epoch) {
            return;
        }
        let metadata = match broker.txns.describe(transactional_id) {
            Ok(Some(metadata)) if metadata.state.is_preparing() => metadata,
            _ => return,
        };
        let mut remaining = metadata.partitions.clone();
        while !remaining.is_empty() {
            if !broker.txns.coordinating(partition, epoch) {
                return;
            }
            send_round(broker, &metadata, epoch, &mut remaining).await;
            if !remaining.is_empty() {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
        let producer = (metadata.producer_id, metadata.producer_epoch);
        let completed = transition(broker, transactional_id, |current| {
            // Only the transaction whose markers were just written.
            let next = current
                .filter(|now| (now.producer_id, now.producer_epoch) == producer)
                .and_then(|now| state::complete(now, now_ms()));
            Ok((next, ()))
        })
        .await;
        match completed {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(
                    transactional_id,
                    ?error,
                    "writing the transaction's completion"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }
}

/// One attempt at every remaining partition; removes those written.
async fn send_round(
    broker: &Arc<Broker>,
    metadata: &TxnMetadata,
    coordinator_epoch: i32,
    remaining: &mut BTreeSet<TxnPartition>,
) {
    let image = broker.topics();
    let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
    let mut gone = Vec::new();
    for entry in remaining.iter() {
        let found = image
            .by_name
            .get(&entry.0)
            .and_then(|topic| topic.partition(entry.1));
        match found {
            // A deleted topic needs no marker (Kafka drops it the same way).
            None => gone.push(entry.clone()),
            Some(partition) if partition.registration.leader == LEADER_NONE => {}
            Some(partition) => by_leader
                .entry(partition.registration.leader)
                .or_default()
                .push(entry.clone()),
        }
    }
    for entry in gone {
        remaining.remove(&entry);
    }
    for (leader, partitions) in by_leader {
        let request = marker_request(metadata, coordinator_epoch, &partitions);
        let response = if leader == broker.node_id() {
            Ok(crate::handlers::write_txn_markers::write_markers_here(broker, request).await)
        } else {
            send_remote(broker, leader, request).await
        };
        match response {
            Ok(response) => take_done(&response, remaining),
            Err(error) => tracing::debug!(leader, %error, "sending transaction markers"),
        }
    }
}

fn marker_request(
    metadata: &TxnMetadata,
    coordinator_epoch: i32,
    partitions: &[TxnPartition],
) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        topics.entry(topic.as_str()).or_default().push(*index);
    }
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(metadata.producer_id);
    marker.producer_epoch = metadata.producer_epoch;
    marker.transaction_result = metadata.state == super::TxnState::PrepareCommit;
    marker.coordinator_epoch = coordinator_epoch;
    marker.topics = topics
        .into_iter()
        .map(|(name, indexes)| {
            let mut topic = WritableTxnMarkerTopic::default();
            topic.name = TopicName(str_bytes(name));
            topic.partition_indexes = indexes;
            topic
        })
        .collect();
    let mut request = WriteTxnMarkersRequest::default();
    request.markers.push(marker);
    request
}

/// Removes from `remaining` every partition the response says is written. A fenced answer
/// (a newer producer epoch or coordinator there) also ends the partition: Kafka's channel
/// manager stops sending, as retrying could never succeed.
fn take_done(response: &WriteTxnMarkersResponse, remaining: &mut BTreeSet<TxnPartition>) {
    for marker in &response.markers {
        for topic in &marker.topics {
            for partition in &topic.partitions {
                let entry = (topic.name.0.to_string(), partition.partition_index);
                let code = partition.error_code;
                let fenced = code == ResponseError::InvalidProducerEpoch.code()
                    || code == ResponseError::TransactionCoordinatorFenced.code();
                if fenced {
                    tracing::warn!(topic = %entry.0, partition = entry.1, code, "marker refused");
                }
                if code == 0 || fenced {
                    remaining.remove(&entry);
                }
            }
        }
    }
}

async fn send_remote(
    broker: &Broker,
    leader: i32,
    request: WriteTxnMarkersRequest,
) -> Result<WriteTxnMarkersResponse, String> {
    let address = leader_address(broker, leader).ok_or("leader has no address")?;
    broker
        .txns
        .peers
        .request(
            &broker.inter_broker,
            &address,
            ApiKey::WriteTxnMarkers,
            WRITE_TXN_MARKERS_VERSION,
            RequestKind::WriteTxnMarkers(request),
            PEER_REQUEST_TIMEOUT,
        )
        .await
}

/// The inter-broker listener of `node`.
pub(crate) fn leader_address(broker: &Broker, node: i32) -> Option<String> {
    let image = broker.topics();
    let registration = image.metadata.cluster.broker(node)?;
    broker.inter_broker.address_of(&registration.listeners)
}
