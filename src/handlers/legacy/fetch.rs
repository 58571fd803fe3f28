//! Fetch v0-v3: served by the modern Fetch handler (long poll, limits, errors), then each
//! partition's stored v2 batches are converted to the reader's message format (magic 0 for
//! v0-v1, 1 for v2-v3), only for this response: what is stored, and what modern readers get,
//! never changes.
//!
//! Down-conversion can be refused (Kafka 3.x's `message.downconversion.enable` topic config
//! and `--message-downconversion-enable` flag): such partitions get UNSUPPORTED_VERSION.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::ResponseError;
use sluice_wire::legacy::convert::{down_convert, DownConvertLimits};
use sluice_wire::legacy::fetch::{
    fetch_message_magic, LegacyFetchPartition, LegacyFetchPartitionResponse, LegacyFetchRequest,
    LegacyFetchResponse,
};
use sluice_wire::legacy::LegacyTopic;

use super::{modern_context, stats, topic_name};
use crate::broker::TopicsImage;
use crate::handlers::{fetch, RequestContext};
use crate::topic_config::{effective_value, MESSAGE_DOWNCONVERSION_ENABLE};

/// The modern Fetch version legacy requests are served as: the first kafka-protocol decodes
/// (topics by name, no sessions, no leader epochs).
const MODERN_FETCH_VERSION: i16 = 4;
/// One stored batch may expand to at most this many bytes while being converted down.
const BATCH_DECOMPRESSED_BYTES_MAX: usize = 64 * 1024 * 1024;

pub async fn handle(
    context: &RequestContext<'_>,
    request: LegacyFetchRequest,
) -> LegacyFetchResponse {
    let image = context.broker.topics();
    let mut modern = FetchRequest::default();
    modern.replica_id = request.replica_id.into();
    modern.max_wait_ms = request.max_wait_ms;
    modern.min_bytes = request.min_bytes;
    // Before v3 there is no response limit; the broker's --fetch-max-bytes still applies.
    modern.max_bytes = request.max_bytes.unwrap_or(i32::MAX);
    let enabled: Vec<bool> = request
        .topics
        .iter()
        .map(|topic| down_conversion_enabled(context, &image, &topic.name))
        .collect();
    for (topic, _) in request.topics.iter().zip(&enabled).filter(|(_, on)| **on) {
        let mut wanted = FetchTopic::default();
        wanted.topic = topic_name(&topic.name);
        wanted.partitions = topic.partitions.iter().map(modern_partition).collect();
        modern.topics.push(wanted);
    }
    let modern_context = modern_context(context, MODERN_FETCH_VERSION);
    let answered = if modern.topics.is_empty() {
        Default::default()
    } else {
        fetch::handle(&modern_context, modern).await
    };
    let magic = fetch_message_magic(context.api_version);
    let mut answered_topics = answered.responses.into_iter();
    let mut budget = Budget {
        total_bytes_max: request.max_bytes.map_or(usize::MAX, clamp_bytes),
        sent_bytes: 0,
    };
    let mut response = LegacyFetchResponse::default();
    for (topic, enabled) in request.topics.iter().zip(enabled) {
        let refused = !enabled;
        let answered_topic = if refused {
            None
        } else {
            answered_topics.next()
        };
        let mut answered_partitions = answered_topic.map(|t| t.partitions).unwrap_or_default();
        let mut entry = LegacyTopic {
            name: topic.name.clone(),
            partitions: Vec::new(),
        };
        for (index, wanted) in topic.partitions.iter().enumerate() {
            let answer = if refused {
                stats::record_down_conversion_refused();
                error_answer(wanted.partition, ResponseError::UnsupportedVersion, -1)
            } else {
                // The modern handler answers every partition it was given, in order.
                match answered_partitions.get_mut(index) {
                    Some(data) => convert_partition(context, wanted, data, magic, &mut budget),
                    None => error_answer(wanted.partition, ResponseError::UnknownServerError, -1),
                }
            };
            entry.partitions.push(answer);
        }
        response.topics.push(entry);
    }
    response
}

fn modern_partition(wanted: &LegacyFetchPartition) -> FetchPartition {
    let mut partition = FetchPartition::default();
    partition.partition = wanted.partition;
    partition.fetch_offset = wanted.fetch_offset;
    partition.partition_max_bytes = wanted.partition_max_bytes;
    partition
}

fn down_conversion_enabled(context: &RequestContext<'_>, image: &TopicsImage, name: &str) -> bool {
    let config = &context.broker.config;
    match image.by_name.get(name) {
        // Unknown topics get the modern handler's UNKNOWN_TOPIC_OR_PARTITION.
        None => true,
        Some(topic) => {
            let value = effective_value(config, &topic.overrides, MESSAGE_DOWNCONVERSION_ENABLE);
            value != "false"
        }
    }
}

/// What the response may still carry (v3's `max_bytes`; earlier versions have none).
struct Budget {
    total_bytes_max: usize,
    sent_bytes: usize,
}

fn clamp_bytes(value: i32) -> usize {
    usize::try_from(value).unwrap_or(0)
}

fn error_answer(
    partition: i32,
    error: ResponseError,
    high_watermark: i64,
) -> LegacyFetchPartitionResponse {
    LegacyFetchPartitionResponse {
        partition,
        error_code: error.code(),
        high_watermark,
        message_set: Bytes::new(),
    }
}

fn convert_partition(
    context: &RequestContext<'_>,
    wanted: &LegacyFetchPartition,
    data: &mut PartitionData,
    magic: i8,
    budget: &mut Budget,
) -> LegacyFetchPartitionResponse {
    let mut answer = error_answer(wanted.partition, ResponseError::UnknownServerError, -1);
    answer.error_code = data.error_code;
    answer.high_watermark = data.high_watermark;
    let Some(stored) = data.records.take().filter(|records| !records.is_empty()) else {
        return answer;
    };
    let limits = DownConvertLimits {
        output_bytes_max: clamp_bytes(wanted.partition_max_bytes)
            .min(budget.total_bytes_max.saturating_sub(budget.sent_bytes)),
        // KIP-74 for old readers too: the first partition with data returns at least one
        // message, so a message larger than the limits cannot stall a consumer.
        at_least_one: budget.sent_bytes == 0,
        batch_decompressed_bytes_max: BATCH_DECOMPRESSED_BYTES_MAX,
    };
    match down_convert(&stored, magic, wanted.fetch_offset, limits) {
        Ok(converted) => {
            let bytes = converted.message_set.len();
            budget.sent_bytes += bytes;
            stats::record_down_conversion(converted.message_count, bytes);
            answer.message_set = converted.message_set.freeze();
        }
        Err(error) => {
            tracing::error!(peer = %context.peer, %error, "down-conversion failed");
            answer.error_code = ResponseError::UnknownServerError.code();
        }
    }
    answer
}
