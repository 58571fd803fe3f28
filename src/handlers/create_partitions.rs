//! CreatePartitions: grow a topic; assignments may only name this node.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::{message, RequestContext};
use crate::broker::ApiError;

pub async fn handle(
    context: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for wanted in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = wanted.name.clone();
        let manual = wanted.assignments.as_ref().is_some_and(|a| !a.is_empty());
        let outcome = if !context.authorize_topic(operation::ALTER, &wanted.name.0) {
            Err(ApiError::new(
                ResponseError::TopicAuthorizationFailed,
                "Authorization failed.",
            ))
        } else if manual {
            Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "Manual assignments of new partitions are not supported; leave them out",
            ))
        } else {
            let name = wanted.name.0.as_str();
            context
                .broker
                .create_partitions(name, wanted.count, request.validate_only)
                .await
        };
        if let Err(error) = outcome {
            result.error_code = error.code.code();
            result.error_message = message(&error);
        }
        response.results.push(result);
    }
    response
}
