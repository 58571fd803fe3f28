//! Produce v0-v2: each partition's v0/v1 message set becomes one v2 batch (see
//! `sluice_wire::legacy::convert::up_convert`), then the modern Produce handler appends it.
//! A partition whose set is corrupt (bad CRC-32, lying sizes, nested or over-large
//! compression) gets CORRUPT_MESSAGE and is never passed on, so nothing of it is written.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::ResponseError;
use sluice_wire::legacy::convert::{up_convert, UpConvertError};
use sluice_wire::legacy::produce::{
    LegacyProducePartition, LegacyProducePartitionResponse, LegacyProduceRequest,
    LegacyProduceResponse,
};
use sluice_wire::legacy::LegacyTopic;

use super::{modern_context, stats, topic_name};
use crate::broker::TopicsImage;
use crate::handlers::{produce, RequestContext};
use crate::topic_config::{effective_value, MAX_MESSAGE_BYTES};

/// The modern Produce version legacy requests are served as: the first kafka-protocol decodes,
/// with the same semantics as v0-v2 (topics by name, no log start offset, no error messages).
const MODERN_PRODUCE_VERSION: i16 = 3;
/// A wrapper may expand to at most this many times the topic's max.message.bytes. Kafka sets
/// no such bound; without one a few kilobytes of gzip could claim gigabytes of memory.
const DECOMPRESSION_RATIO_MAX: usize = 16;

pub async fn handle(
    context: &RequestContext<'_>,
    request: LegacyProduceRequest,
) -> Option<LegacyProduceResponse> {
    let image = context.broker.topics();
    let mut modern = ProduceRequest::default();
    modern.acks = request.acks;
    modern.timeout_ms = request.timeout_ms;
    // Per topic, per partition: `Some(error)` when refused before reaching the modern handler.
    let mut refusals: Vec<Vec<Option<ResponseError>>> = Vec::new();
    for topic in &request.topics {
        let mut data = TopicProduceData::default();
        data.name = topic_name(&topic.name);
        let mut topic_refusals = Vec::new();
        for partition in &topic.partitions {
            match convert_partition(context, &image, &topic.name, partition) {
                Ok(records) => {
                    let mut entry = PartitionProduceData::default();
                    entry.index = partition.partition;
                    entry.records = records;
                    data.partition_data.push(entry);
                    topic_refusals.push(None);
                }
                Err(error) => topic_refusals.push(Some(error)),
            }
        }
        modern.topic_data.push(data);
        refusals.push(topic_refusals);
    }
    let acks = request.acks;
    let modern_context = modern_context(context, MODERN_PRODUCE_VERSION);
    let answered = produce::handle(&modern_context, modern).await;
    if acks == 0 {
        return None;
    }
    let mut response = LegacyProduceResponse::default();
    let mut answered_topics = answered
        .map(|r| r.responses)
        .unwrap_or_default()
        .into_iter();
    for (topic, topic_refusals) in request.topics.iter().zip(refusals) {
        let answered_topic = answered_topics.next();
        let mut answered_partitions = answered_topic
            .map(|t| t.partition_responses)
            .unwrap_or_default()
            .into_iter();
        let mut entry = LegacyTopic {
            name: topic.name.clone(),
            partitions: Vec::new(),
        };
        for (partition, refusal) in topic.partitions.iter().zip(topic_refusals) {
            let answer = match refusal {
                Some(error) => refused(partition.partition, error),
                // The modern handler answers every partition it was given, in order.
                None => match answered_partitions.next() {
                    Some(answer) => LegacyProducePartitionResponse {
                        partition: answer.index,
                        error_code: answer.error_code,
                        base_offset: answer.base_offset,
                        log_append_time_ms: answer.log_append_time_ms,
                    },
                    None => refused(partition.partition, ResponseError::UnknownServerError),
                },
            };
            entry.partitions.push(answer);
        }
        response.topics.push(entry);
    }
    Some(response)
}

fn refused(partition: i32, error: ResponseError) -> LegacyProducePartitionResponse {
    LegacyProducePartitionResponse {
        partition,
        error_code: error.code(),
        base_offset: -1,
        log_append_time_ms: -1,
    }
}

/// The partition's records as a v2 batch. Partitions the broker does not have are passed on
/// unconverted: the modern handler answers them UNKNOWN_TOPIC_OR_PARTITION.
fn convert_partition(
    context: &RequestContext<'_>,
    image: &TopicsImage,
    topic_name: &str,
    partition: &LegacyProducePartition,
) -> Result<Option<Bytes>, ResponseError> {
    let topic = image.by_name.get(topic_name);
    let exists = topic.is_some_and(|t| t.partition(partition.partition).is_some());
    let (Some(topic), true, Some(message_set)) = (topic, exists, &partition.message_set) else {
        return Ok(partition.message_set.clone());
    };
    let config = &context.broker.config;
    let max_message_bytes = effective_value(config, &topic.overrides, MAX_MESSAGE_BYTES)
        .parse::<usize>()
        .unwrap_or(config.max_message_bytes as usize);
    let decompressed_bytes_max = max_message_bytes.saturating_mul(DECOMPRESSION_RATIO_MAX);
    match up_convert(message_set.clone(), decompressed_bytes_max) {
        Ok((batch, message_count)) => {
            stats::record_up_conversion(message_count, batch.len());
            Ok(Some(batch.freeze()))
        }
        Err(UpConvertError::Corrupt(error)) => {
            tracing::debug!(peer = %context.peer, topic = topic_name, %error, "corrupt message set");
            Err(ResponseError::CorruptMessage)
        }
        Err(error @ UpConvertError::Encode(_)) => {
            tracing::error!(peer = %context.peer, topic = topic_name, %error, "up-conversion");
            Err(ResponseError::UnknownServerError)
        }
    }
}
