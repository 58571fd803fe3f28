//! ListOffsets v0: served as v1 (one offset per partition). Kafka's v0 could list several
//! segment base offsets before a time; clients of that era ask for the latest (-1) or
//! earliest (-2) offset and read the first entry, which is what is answered. A time target
//! answers the first offset at or after that time, as v1 does.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::ListOffsetsRequest;
use sluice_wire::legacy::list_offsets::{
    LegacyListOffsetsPartitionResponse, LegacyListOffsetsRequest, LegacyListOffsetsResponse,
};
use sluice_wire::legacy::LegacyTopic;

use super::{modern_context, topic_name};
use crate::handlers::{list_offsets, RequestContext};

const MODERN_LIST_OFFSETS_VERSION: i16 = 1;

pub fn handle(
    context: &RequestContext<'_>,
    request: LegacyListOffsetsRequest,
) -> LegacyListOffsetsResponse {
    let mut modern = ListOffsetsRequest::default();
    modern.replica_id = request.replica_id.into();
    for topic in &request.topics {
        let mut wanted = ListOffsetsTopic::default();
        wanted.name = topic_name(&topic.name);
        for partition in &topic.partitions {
            let mut entry = ListOffsetsPartition::default();
            entry.partition_index = partition.partition;
            entry.timestamp = partition.timestamp;
            wanted.partitions.push(entry);
        }
        modern.topics.push(wanted);
    }
    let answered = list_offsets::handle(
        &modern_context(context, MODERN_LIST_OFFSETS_VERSION),
        modern,
    );
    let mut response = LegacyListOffsetsResponse::default();
    for (topic, answered_topic) in request.topics.iter().zip(answered.topics) {
        let partitions = topic
            .partitions
            .iter()
            .zip(answered_topic.partitions)
            .map(|(wanted, answer)| {
                let found = answer.error_code == 0 && answer.offset >= 0;
                let wanted_any = wanted.max_num_offsets > 0;
                LegacyListOffsetsPartitionResponse {
                    partition: answer.partition_index,
                    error_code: answer.error_code,
                    offsets: if found && wanted_any {
                        vec![answer.offset]
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        response.topics.push(LegacyTopic {
            name: topic.name.clone(),
            partitions,
        });
    }
    response
}
