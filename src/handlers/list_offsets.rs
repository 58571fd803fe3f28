//! ListOffsets: earliest, latest, max-timestamp, and the first offset at or after a timestamp.
//!
//! "Latest" is what a consumer can fetch (Kafka's `lastFetchableOffset`): the high watermark,
//! or with READ_COMMITTED the last stable offset; a time lookup finding an offset at or past
//! it finds nothing.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use sluice_storage::{BatchHeader, TimestampType};

use sluice_raft::image::acls::operation;

use super::RequestContext;
use crate::broker::Replica;

/// Special timestamps of ListOffsets (Kafka's ListOffsetsRequest constants).
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const LATEST_TIERED_TIMESTAMP: i64 = -5;
/// Kafka's READ_COMMITTED isolation level.
const READ_COMMITTED: i8 = 1;

pub fn handle(context: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let image = context.broker.topics();
    let mut response = ListOffsetsResponse::default();
    let read_committed = request.isolation_level == READ_COMMITTED;
    for wanted_topic in request.topics {
        let topic = image.by_name.get(wanted_topic.name.0.as_str());
        let denied = !context.authorize_topic(operation::DESCRIBE, &wanted_topic.name.0);
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = wanted_topic.name.clone();
        for wanted in wanted_topic.partitions {
            let mut entry = ListOffsetsPartitionResponse::default();
            entry.partition_index = wanted.partition_index;
            entry.timestamp = -1;
            entry.offset = -1;
            entry.leader_epoch = -1;
            let node = context.broker.node_id();
            let partition = topic.and_then(|t| t.partition(wanted.partition_index));
            let replica = partition.map(|p| p.leader_replica(node, wanted.current_leader_epoch));
            match (partition, replica) {
                _ if denied => entry.error_code = ResponseError::TopicAuthorizationFailed.code(),
                (Some(partition), Some(Ok(replica))) => {
                    match lookup(replica, wanted.timestamp, read_committed) {
                        Ok(Some((timestamp, offset))) => {
                            entry.timestamp = timestamp;
                            entry.offset = offset;
                            if context.api_version >= 4 {
                                entry.leader_epoch = partition.leader_epoch();
                            }
                        }
                        Ok(None) => {}
                        Err(error) => entry.error_code = error.code(),
                    }
                }
                (_, Some(Err(error))) => entry.error_code = error.code(),
                _ => entry.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            topic_response.partitions.push(entry);
        }
        response.topics.push(topic_response);
    }
    response
}

/// (timestamp, offset) for one partition, or `None` when no record qualifies.
fn lookup(
    partition: &Replica,
    target: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, ResponseError> {
    let log = &partition.log;
    let high_watermark = partition.high_watermark();
    let fetchable_end = if read_committed {
        log.last_stable_offset(high_watermark)
    } else {
        high_watermark
    };
    match target {
        // Consumers' end: the high watermark (or LSO), not the log end.
        LATEST_TIMESTAMP => Ok(Some((-1, fetchable_end))),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok(Some((-1, log.log_start_offset()))),
        LATEST_TIERED_TIMESTAMP => Ok(None),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Ok(Some((timestamp, batch))) => Ok(record_with_timestamp(batch, |t| t == timestamp)),
            Ok(None) => Ok(None),
            Err(error) => {
                tracing::error!(%error, "max-timestamp lookup failed");
                Err(ResponseError::KafkaStorageError)
            }
        },
        target if target >= 0 => {
            let batch = log.find_batch_by_timestamp(target).map_err(|error| {
                tracing::error!(%error, "time lookup failed");
                ResponseError::KafkaStorageError
            })?;
            Ok(batch.and_then(|batch| {
                record_with_timestamp(batch, |t| t >= target).filter(|(_, offset)| {
                    *offset >= log.log_start_offset() && *offset < fetchable_end
                })
            }))
        }
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// The first record of `batch` whose timestamp satisfies `wanted`. Decoding (and
/// decompressing) one batch is fine here: ListOffsets by time is not on the hot path.
fn record_with_timestamp(mut batch: Bytes, wanted: impl Fn(i64) -> bool) -> Option<(i64, i64)> {
    // LogAppendTime batches carry the append time only in the header, for every record.
    if let Ok(header) = BatchHeader::parse(&batch) {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            let timestamp = header.max_timestamp;
            return wanted(timestamp).then_some((timestamp, header.base_offset));
        }
    }
    let record_set = match RecordBatchDecoder::decode(&mut batch) {
        Ok(record_set) => record_set,
        Err(error) => {
            tracing::error!(%error, "a stored batch does not decode");
            return None;
        }
    };
    record_set
        .records
        .iter()
        .find(|record| wanted(record.timestamp))
        .map(|record| (record.timestamp, record.offset))
}
