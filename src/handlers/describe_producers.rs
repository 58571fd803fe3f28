//! DescribeProducers (API 61, KIP-664): the producers a partition leader's log remembers —
//! id, epoch, last sequence and timestamp, coordinator epoch and the first offset of the
//! ongoing transaction — for `kafka-transactions.sh describe-producers` and `find-hanging`.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;
use sluice_raft::image::acls::operation;
use sluice_storage::ProducerEntry;

use super::RequestContext;
use crate::broker::TopicsImage;

/// Partitions one request may describe; the rest are answered INVALID_REQUEST (each can
/// list up to `PRODUCERS_MAX` producers).
const DESCRIBED_PARTITIONS_MAX: usize = 1_000;

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let image = context.broker.topics();
    let mut described = 0usize;
    let mut response = DescribeProducersResponse::default();
    for topic in request.topics {
        let name = topic.name.0.as_str();
        // Kafka: READ on the topic, checked before the partition is looked up.
        let readable = context.authorize_topic(operation::READ, name);
        let mut topic_response = TopicResponse::default();
        topic_response.name = topic.name.clone();
        for index in topic.partition_indexes {
            described += 1;
            let result = if described > DESCRIBED_PARTITIONS_MAX {
                Err(ResponseError::InvalidRequest)
            } else if !readable {
                Err(ResponseError::TopicAuthorizationFailed)
            } else {
                active_producers(context, &image, name, index)
            };
            let mut partition = PartitionResponse::default();
            partition.partition_index = index;
            match result {
                Ok(producers) => partition.active_producers = producers,
                Err(error) => partition.error_code = error.code(),
            }
            topic_response.partitions.push(partition);
        }
        response.topics.push(topic_response);
    }
    response
}

/// Kafka's `ReplicaManager.activeProducerState`: only the partition's leader answers.
fn active_producers(
    context: &RequestContext<'_>,
    image: &TopicsImage,
    topic: &str,
    index: i32,
) -> Result<Vec<ProducerState>, ResponseError> {
    let partition = image
        .by_name
        .get(topic)
        .and_then(|found| found.partition(index))
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let replica = partition.leader_replica(context.broker.node_id(), -1)?;
    let producers = replica.log.producers();
    Ok(producers
        .iter()
        .map(|(producer_id, entry)| producer_state(*producer_id, entry))
        .collect())
}

fn producer_state(producer_id: i64, entry: &ProducerEntry) -> ProducerState {
    let mut state = ProducerState::default();
    state.producer_id = ProducerId(producer_id);
    state.producer_epoch = i32::from(entry.producer_epoch);
    state.last_sequence = entry.last_sequence();
    // The last batch's timestamp; a producer known from a marker alone: the marker's.
    state.last_timestamp = entry
        .batches
        .back()
        .map_or(entry.last_append_ms, |batch| batch.max_timestamp_ms);
    state.coordinator_epoch = entry.coordinator_epoch;
    state.current_txn_start_offset = entry.current_txn_first_offset.unwrap_or(-1);
    state
}
