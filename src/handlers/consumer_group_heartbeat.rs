//! ConsumerGroupHeartbeat (KIP-848): a consumer group member joins, heartbeats, reports the
//! partitions it owns and is told its assignment; epochs -1 and -2 leave.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::join_group::client_host;
use super::{message, str_bytes, RequestContext};
use crate::group::assignor::TopicMetadata;
use crate::group::consumer_outcome::ConsumerHeartbeat;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.error_code = GROUP_AUTHORIZATION_FAILED;
        response.error_message = Some(str_bytes("Group authorization failed."));
        return response;
    }
    let image = context.broker.topics();
    let lookup = |name: &str| {
        image.by_name.get(name).map(|topic| TopicMetadata {
            id: topic.id,
            partition_count: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
        })
    };
    let heartbeat = ConsumerHeartbeat {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|id| id.to_string()),
        rack_id: request.rack_id.map(|id| id.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|name| name.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: request.server_assignor.map(|name| name.to_string()),
        owned: request.topic_partitions.map(|topics| {
            topics
                .into_iter()
                .map(|topic| (topic.topic_id, topic.partitions))
                .collect()
        }),
        client_id: context.client_id.clone().unwrap_or_default(),
        client_host: client_host(context),
    };
    let durable = context.broker.groups.consumer_heartbeat_durable(
        &request.group_id.0,
        heartbeat,
        context.api_version,
        &lookup,
    );
    let outcome = durable.await;
    let mut response = ConsumerGroupHeartbeatResponse::default();
    match outcome {
        Ok(outcome) => {
            response.member_id = Some(str_bytes(outcome.member_id));
            response.member_epoch = outcome.member_epoch;
            response.heartbeat_interval_ms = outcome.heartbeat_interval_ms;
            response.assignment = outcome.assignment.map(|assignment| {
                let mut entry = Assignment::default();
                entry.topic_partitions = assignment
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        let mut topic = TopicPartitions::default();
                        topic.topic_id = topic_id;
                        topic.partitions = partitions.into_iter().collect();
                        topic
                    })
                    .collect();
                entry
            });
        }
        Err(error) => {
            response.error_code = error.code.code();
            response.error_message = message(&error);
        }
    }
    response
}
