//! ElectLeaders (KIP-460): preferred elections (leadership back to the first replica) and
//! unclean ones (a leaderless partition whose ISR is gone takes any live replica).

use std::collections::BTreeMap;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;
use sluice_raft::controller::{
    ElectLeadersRequest as ElectOperation, ElectionResult, ElectionType, Operation,
    OperationResponse,
};
use uuid::Uuid;

use super::{message, str_bytes, RequestContext};

/// Kafka's `ElectionType` values.
const ELECTION_TYPE_PREFERRED: i8 = 0;
const ELECTION_TYPE_UNCLEAN: i8 = 1;
/// The response's top-level error code starts here.
const TOP_LEVEL_ERROR_VERSION_MIN: i16 = 1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::ALTER) {
        // Kafka: the error at the top (v1+) and on every partition asked for (v0 has only
        // those to say it).
        if context.api_version >= TOP_LEVEL_ERROR_VERSION_MIN {
            response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        }
        response.replica_election_results = request
            .topic_partitions
            .iter()
            .flatten()
            .map(|topic| {
                let mut result = ReplicaElectionResult::default();
                result.topic = topic.topic.clone();
                for index in &topic.partitions {
                    let mut partition = PartitionResult::default();
                    partition.partition_id = *index;
                    partition.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
                    partition.error_message = Some(str_bytes("Cluster authorization failed."));
                    result.partition_result.push(partition);
                }
                result
            })
            .collect();
        return response;
    }
    // v0 has no election type: it is always a preferred election.
    let election_type = match request.election_type {
        _ if context.api_version == 0 => ElectionType::Preferred,
        ELECTION_TYPE_PREFERRED => ElectionType::Preferred,
        ELECTION_TYPE_UNCLEAN => ElectionType::Unclean,
        _ => {
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        }
    };
    let image = context.broker.topics();
    let topics = &image.metadata.topics;
    // Unknown topics are answered here; the controller sees only partitions it can find.
    let mut unknown: Vec<(String, i32)> = Vec::new();
    let partitions = request.topic_partitions.as_ref().map(|wanted| {
        let mut ids: Vec<(Uuid, i32)> = Vec::new();
        for topic in wanted {
            let name = topic.topic.0.as_str();
            for index in &topic.partitions {
                match topics.topic_by_name(name) {
                    Some(found) => ids.push((found.topic_id, *index)),
                    None => unknown.push((name.to_string(), *index)),
                }
            }
        }
        ids
    });
    let elect_all = partitions.is_none();
    let operation = Operation::ElectLeaders(ElectOperation {
        election_type,
        partitions,
    });
    let elected = match context.broker.submit(operation).await {
        Ok(OperationResponse::ElectLeaders(results)) => results,
        Ok(other) => {
            tracing::error!(?other, "controller answered another operation");
            response.error_code = ResponseError::UnknownServerError.code();
            return response;
        }
        Err(error) => {
            tracing::warn!(message = ?message(&error), "election refused");
            if context.api_version >= 1 {
                response.error_code = error.code.code();
            } else {
                // v0 has no top-level error: every partition asked for carries it.
                let code = error.code.code();
                let asked = request.topic_partitions.iter().flatten().flat_map(|topic| {
                    let name = topic.topic.0.to_string();
                    topic
                        .partitions
                        .iter()
                        .map(move |index| (name.clone(), *index, code))
                });
                response.replica_election_results = group_by_topic(asked.collect());
            }
            return response;
        }
    };
    let mut results: Vec<(String, i32, i16)> = Vec::new();
    for ElectionResult {
        topic_id,
        partition_index,
        error_code,
    } in elected
    {
        // Asked for everything, Kafka reports only the partitions where something happened.
        if elect_all && error_code == ResponseError::ElectionNotNeeded.code() {
            continue;
        }
        let name = topics.topic(topic_id).map(|t| t.name.clone());
        results.push((name.unwrap_or_default(), partition_index, error_code));
    }
    let unknown_code = ResponseError::UnknownTopicOrPartition.code();
    results.extend(
        unknown
            .into_iter()
            .map(|(name, index)| (name, index, unknown_code)),
    );
    response.replica_election_results = group_by_topic(results);
    response
}

fn group_by_topic(results: Vec<(String, i32, i16)>) -> Vec<ReplicaElectionResult> {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (name, index, error_code) in results {
        let mut partition = PartitionResult::default();
        partition.partition_id = index;
        partition.error_code = error_code;
        partition.error_message = (error_code != 0).then(|| str_bytes(error_text(error_code)));
        by_topic.entry(name).or_default().push(partition);
    }
    by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut topic = ReplicaElectionResult::default();
            topic.topic = TopicName(str_bytes(name));
            topic.partition_result = partitions;
            topic
        })
        .collect()
}

fn error_text(error_code: i16) -> String {
    ResponseError::try_from_code(error_code)
        .map_or_else(|| format!("error {error_code}"), |error| error.to_string())
}
