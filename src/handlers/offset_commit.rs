//! OffsetCommit: a group member (or a standalone `assign()` consumer, generation -1) stores
//! its positions; answered once they are durable.

use crate::group::CommittedOffset;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::RequestContext;
use crate::broker::{now_ms, TopicsImage};
use crate::group::outcome::MemberRef;
use crate::group::{OffsetCommit, OFFSET_METADATA_BYTES_MAX};

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = context.api_version;
    let image = context.broker.topics();
    let now = now_ms();
    // Per partition: its own refusal, or `None` when it goes to the coordinator.
    let mut results: Vec<(usize, i32, Option<ResponseError>)> = Vec::new();
    let mut commits = Vec::new();
    let group_denied = !context.authorize_group(operation::READ, &request.group_id.0);
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let topic_denied = !context.authorize_topic(operation::READ, &topic.name.0);
        for partition in &topic.partitions {
            let metadata = partition.committed_metadata.as_ref().map(|m| m.as_str());
            let refusal = if group_denied {
                Some(ResponseError::GroupAuthorizationFailed)
            } else if topic_denied {
                Some(ResponseError::TopicAuthorizationFailed)
            } else {
                refusal(&image, &topic.name.0, partition.partition_index, metadata)
            };
            if refusal.is_none() {
                commits.push(OffsetCommit {
                    topic: topic.name.0.to_string(),
                    partition: partition.partition_index,
                    committed: CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
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
    let member = MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        generation_id: request.generation_id_or_member_epoch,
    };
    let committed = if group_denied {
        Ok(())
    } else {
        context
            .broker
            .groups
            .commit(&request.group_id.0, &member, commits)
            .await
    };
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = OffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry
        })
        .collect();
    for (topic_index, partition_index, refusal) in results {
        let mut entry = OffsetCommitResponsePartition::default();
        entry.partition_index = partition_index;
        let error = refusal.or(committed.err());
        entry.error_code = error.map_or(0, |error| error.code());
        response.topics[topic_index].partitions.push(entry);
    }
    response
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
