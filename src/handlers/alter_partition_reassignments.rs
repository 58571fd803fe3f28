//! AlterPartitionReassignments (KIP-455): start or cancel moving partitions to new replicas.
//! The controller validates and records each partition; moving then happens as the new
//! replicas catch up (see `sluice_raft::controller::alter_reassignments`).

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use sluice_raft::controller::{
    AlterReassignmentsRequest, Operation, OperationResponse, ReassignmentResult, ReassignmentTarget,
};

use super::{message, str_bytes, RequestContext};

pub async fn handle(
    context: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.allow_replication_factor_change = request.allow_replication_factor_change;
    if !context.authorize_cluster(sluice_raft::image::acls::operation::ALTER) {
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        response.error_message = Some(super::str_bytes("Cluster authorization failed."));
        return response;
    }
    let targets: Vec<ReassignmentTarget> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| ReassignmentTarget {
                topic: topic.name.0.to_string(),
                partition_index: partition.partition_index,
                replicas: partition
                    .replicas
                    .as_ref()
                    .map(|replicas| replicas.iter().map(|id| id.0).collect()),
            })
        })
        .collect();
    let operation = Operation::AlterReassignments(AlterReassignmentsRequest {
        targets,
        allow_replication_factor_change: request.allow_replication_factor_change,
    });
    let results = match context.broker.submit(operation).await {
        Ok(OperationResponse::AlterReassignments(results)) => results,
        Ok(other) => {
            tracing::error!(?other, "controller answered another operation");
            response.error_code = kafka_protocol::ResponseError::UnknownServerError.code();
            return response;
        }
        Err(error) => {
            response.error_code = error.code.code();
            response.error_message = message(&error);
            return response;
        }
    };
    response.responses = group_by_topic(results);
    response
}

/// Results arrive in request order, one per partition; Kafka groups them by topic.
fn group_by_topic(results: Vec<ReassignmentResult>) -> Vec<ReassignableTopicResponse> {
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for result in results {
        let mut partition = ReassignablePartitionResponse::default();
        partition.partition_index = result.partition_index;
        partition.error_code = result.error_code;
        partition.error_message = result.error_message.map(str_bytes);
        match topics.last_mut() {
            Some(topic) if topic.name.0.as_str() == result.topic => {
                topic.partitions.push(partition)
            }
            _ => {
                let mut topic = ReassignableTopicResponse::default();
                topic.name = TopicName(str_bytes(result.topic));
                topic.partitions.push(partition);
                topics.push(topic);
            }
        }
    }
    topics
}
