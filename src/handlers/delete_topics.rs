//! DeleteTopics: by name (all versions) or by topic id (v6+).
//!
//! Authorised as Kafka's controller does: DELETE on the cluster allows every topic, else
//! DELETE on each topic; a refused topic asked for by id is named in the answer only to a
//! principal that may DESCRIBE it, and a missing one is UNKNOWN_TOPIC_OR_PARTITION rather
//! than refused to a principal that may DESCRIBE it.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use sluice_raft::image::acls::operation;

use super::{message, str_bytes, RequestContext};

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut response = DeleteTopicsResponse::default();
    // v0-v5 list names; v6+ list (name or id) states.
    let mut wanted: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let cluster_delete = context.authorize_cluster(operation::DELETE);
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        let name = match name {
            Some(name) => Some(name),
            None => context
                .broker
                .topics()
                .by_id
                .get(&id)
                .map(|t| t.name.clone()),
        };
        result.name = name.as_ref().map(|n| TopicName(str_bytes(n.clone())));
        let Some(name) = name else {
            result.error_code = ResponseError::UnknownTopicId.code();
            response.responses.push(result);
            continue;
        };
        if !cluster_delete && !context.authorize_topic(operation::DELETE, &name) {
            let describable = context.authorize_topic(operation::DESCRIBE, &name);
            let exists = context.broker.topics().by_name.contains_key(&name);
            // Kafka: a missing topic the principal may see is named missing, not refused.
            result.error_code = if describable && !exists {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::TopicAuthorizationFailed.code()
            };
            if id != Uuid::nil() && !describable {
                // Asked by id: the name is not given away.
                result.name = None;
            }
            response.responses.push(result);
            continue;
        }
        match context.broker.delete_topic(&name).await {
            Ok(deleted_id) if context.api_version >= 6 => result.topic_id = deleted_id,
            Ok(_) => {}
            Err(error) => {
                result.error_code = error.code.code();
                if context.api_version >= 5 {
                    result.error_message = message(&error);
                }
            }
        }
        response.responses.push(result);
    }
    response
}
