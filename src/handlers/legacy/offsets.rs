//! OffsetCommit v0-v1 (served as v2) and OffsetFetch v0 (served as v1). Kafka kept v0 commits
//! in ZooKeeper, apart from v1+ ones; sluice has one store, so a v0 commit is a commit
//! outside group membership (generation -1), readable by every version.

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use sluice_wire::legacy::offset_commit::{LegacyOffsetCommitRequest, LegacyOffsetCommitResponse};
use sluice_wire::legacy::offset_fetch::{
    LegacyOffsetFetchPartitionResponse, LegacyOffsetFetchRequest, LegacyOffsetFetchResponse,
};
use sluice_wire::legacy::LegacyTopic;

use super::{modern_context, topic_name};
use crate::handlers::{offset_commit, offset_fetch, str_bytes, RequestContext};

const MODERN_OFFSET_COMMIT_VERSION: i16 = 2;
const MODERN_OFFSET_FETCH_VERSION: i16 = 1;
/// OffsetCommit v2's "use the broker's retention".
const RETENTION_TIME_DEFAULT: i64 = -1;

pub async fn commit(
    context: &RequestContext<'_>,
    request: LegacyOffsetCommitRequest,
) -> LegacyOffsetCommitResponse {
    let mut modern = OffsetCommitRequest::default();
    modern.group_id = GroupId(str_bytes(request.group_id.as_str()));
    modern.generation_id_or_member_epoch = request.generation_id;
    modern.member_id = str_bytes(request.member_id.as_str());
    modern.retention_time_ms = RETENTION_TIME_DEFAULT;
    for topic in &request.topics {
        let mut wanted = OffsetCommitRequestTopic::default();
        wanted.name = topic_name(&topic.name);
        for partition in &topic.partitions {
            let mut entry = OffsetCommitRequestPartition::default();
            entry.partition_index = partition.partition;
            entry.committed_offset = partition.committed_offset;
            entry.committed_metadata = partition.committed_metadata.as_deref().map(str_bytes);
            wanted.partitions.push(entry);
        }
        modern.topics.push(wanted);
    }
    let context = modern_context(context, MODERN_OFFSET_COMMIT_VERSION);
    let answered = offset_commit::handle(&context, modern).await;
    let topics = request
        .topics
        .iter()
        .zip(answered.topics)
        .map(|(topic, answer)| LegacyTopic {
            name: topic.name.clone(),
            partitions: answer
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect(),
        })
        .collect();
    LegacyOffsetCommitResponse { topics }
}

pub fn fetch(
    context: &RequestContext<'_>,
    request: LegacyOffsetFetchRequest,
) -> LegacyOffsetFetchResponse {
    let mut modern = OffsetFetchRequest::default();
    modern.group_id = GroupId(str_bytes(request.group_id.as_str()));
    let topics = request.topics.iter().map(|topic| {
        let mut wanted = OffsetFetchRequestTopic::default();
        wanted.name = topic_name(&topic.name);
        wanted.partition_indexes = topic.partitions.clone();
        wanted
    });
    modern.topics = Some(topics.collect());
    let context = modern_context(context, MODERN_OFFSET_FETCH_VERSION);
    let answered = offset_fetch::handle(&context, modern);
    let topics = answered
        .topics
        .into_iter()
        .map(|topic| LegacyTopic {
            name: topic.name.0.to_string(),
            partitions: topic
                .partitions
                .into_iter()
                .map(|p| LegacyOffsetFetchPartitionResponse {
                    partition: p.partition_index,
                    committed_offset: p.committed_offset,
                    metadata: p.metadata.map(|m| m.to_string()),
                    error_code: p.error_code,
                })
                .collect(),
        })
        .collect();
    LegacyOffsetFetchResponse { topics }
}
