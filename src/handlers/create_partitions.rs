//! CreatePartitions: grow a topic; assignments may only name this node.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::ResponseError;

use super::{message, RequestContext};
use crate::broker::ApiError;

pub async fn handle(
    context: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let node = context.broker.node_id();
    let mut response = CreatePartitionsResponse::default();
    for wanted in request.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = wanted.name.clone();
        let foreign = wanted.assignments.iter().flatten().any(|assignment| {
            assignment.broker_ids.len() != 1 || assignment.broker_ids[0].0 != node
        });
        let outcome = if foreign {
            Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("Assignments may only name node {node}"),
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
