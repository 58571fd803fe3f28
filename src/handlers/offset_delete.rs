//! OffsetDelete: removes committed offsets of partitions the group no longer consumes.

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
    for topic in &request.topics {
        for partition in &topic.partitions {
            let exists = image
                .by_name
                .get(topic.name.0.as_str())
                .is_some_and(|t| t.partition(partition.partition_index).is_some());
            if exists {
                known.push((topic.name.0.to_string(), partition.partition_index));
            }
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
    let mut results = known.into_iter().zip(results);
    let mut next = results.next();
    for topic in request.topics {
        let mut topic_entry = OffsetDeleteResponseTopic::default();
        for partition in topic.partitions {
            let mut entry = OffsetDeleteResponsePartition::default();
            entry.partition_index = partition.partition_index;
            let matches = next.as_ref().is_some_and(|((name, index), _)| {
                name.as_str() == topic.name.0.as_str() && *index == partition.partition_index
            });
            let error = if matches {
                let result = next.take().map(|(_, result)| result);
                next = results.next();
                result.and_then(Result::err)
            } else {
                Some(ResponseError::UnknownTopicOrPartition)
            };
            entry.error_code = error.map_or(0, |error| error.code());
            topic_entry.partitions.push(entry);
        }
        topic_entry.name = topic.name;
        response.topics.push(topic_entry);
    }
    response
}
