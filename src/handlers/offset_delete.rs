//! OffsetDelete: removes committed offsets of partitions the group no longer consumes.
//!
//! Authorised as Kafka's `KafkaApis` does: DELETE on the group first (refused as a whole with
//! GROUP_AUTHORIZATION_FAILED), then READ on each topic; the partitions of a topic the
//! principal may not read answer TOPIC_AUTHORIZATION_FAILED and are not deleted.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::RequestContext;

pub async fn handle(
    context: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if !context.authorize_group(operation::DELETE, &request.group_id.0) {
        let mut response = OffsetDeleteResponse::default();
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let image = context.broker.topics();
    let mut known = Vec::new();
    // Per requested partition, in order: the error it gets without reaching the group.
    let mut refused = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let readable = context.authorize_topic(operation::READ, name);
        for partition in &topic.partitions {
            let exists = image
                .by_name
                .get(name)
                .is_some_and(|t| t.partition(partition.partition_index).is_some());
            let error = if !readable {
                Some(ResponseError::TopicAuthorizationFailed)
            } else if !exists {
                Some(ResponseError::UnknownTopicOrPartition)
            } else {
                known.push((name.to_string(), partition.partition_index));
                None
            };
            refused.push(error);
        }
    }
    let deleted = context
        .broker
        .groups
        .delete_offsets(&request.group_id.0, &known)
        .await;
    let mut response = OffsetDeleteResponse::default();
    let results = match deleted {
        Err(error) => {
            response.error_code = error.code();
            return response;
        }
        Ok(results) => results,
    };
    // `known` and `results` are in request order, one per partition `refused` let through.
    let mut results = results.into_iter();
    let mut refused = refused.into_iter();
    for topic in request.topics {
        let mut topic_entry = OffsetDeleteResponseTopic::default();
        for partition in topic.partitions {
            let mut entry = OffsetDeleteResponsePartition::default();
            entry.partition_index = partition.partition_index;
            let error = match refused.next().flatten() {
                Some(error) => Some(error),
                None => results
                    .next()
                    .map_or(Some(ResponseError::UnknownServerError), Result::err),
            };
            entry.error_code = error.map_or(0, |error| error.code());
            topic_entry.partitions.push(entry);
        }
        topic_entry.name = topic.name;
        response.topics.push(topic_entry);
    }
    response
}
