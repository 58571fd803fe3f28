//! CreateTopics: Kafka's validation order and error codes, then the broker creates the topic.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::{message, str_bytes, RequestContext};
use crate::broker::ApiError;
use crate::topic_config::{self, CONFIG_KEYS};
use crate::topic_name::validate_topic_name;

pub async fn handle(
    context: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    // Kafka refuses every copy of a name that appears twice in one request.
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = request
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|name| !seen.insert(name.clone()))
        .collect();
    for wanted in request.topics {
        let name = wanted.name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = wanted.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        // Kafka: CREATE on the cluster, or on the topic.
        let creatable = context.authorize_cluster(operation::CREATE)
            || context.authorize_topic(operation::CREATE, &name);
        let outcome = if duplicated.contains(&name) {
            let text = format!("Create topics request from client contains duplicate topic {name}");
            Err(ApiError::new(ResponseError::InvalidRequest, text))
        } else if !creatable {
            let text = "Authorization failed.";
            Err(ApiError::new(ResponseError::TopicAuthorizationFailed, text))
        } else {
            create_one(context, &wanted, request.validate_only).await
        };
        match outcome {
            Ok((topic_id, partitions, replication_factor, overrides)) => {
                if context.api_version >= 7 {
                    result.topic_id = topic_id;
                }
                // Kafka: the topic's configs, partitions and replication factor only with
                // DESCRIBE_CONFIGS on it, else TOPIC_AUTHORIZATION_FAILED in their place.
                let describable = context.authorize_topic(operation::DESCRIBE_CONFIGS, &name);
                if context.api_version >= 5 && describable {
                    result.num_partitions = partitions;
                    result.replication_factor = replication_factor;
                    result.configs = Some(config_entries(context, &overrides));
                } else if context.api_version >= 5 {
                    result.configs = Some(Vec::new());
                    result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                }
            }
            Err(error) => {
                result.error_code = error.code.code();
                result.error_message = message(&error);
            }
        }
        response.topics.push(result);
    }
    response
}

async fn create_one(
    context: &RequestContext<'_>,
    wanted: &CreatableTopic,
    validate_only: bool,
) -> Result<(uuid::Uuid, i32, i16, BTreeMap<String, String>), ApiError> {
    let broker = context.broker;
    let name = wanted.name.0.as_str();
    validate_topic_name(name)
        .map_err(|m| ApiError::new(ResponseError::InvalidTopicException, m))?;
    let partitions = partition_count(context, wanted)?;
    check_replication(wanted)?;
    let assignments: BTreeMap<i32, Vec<i32>> = wanted
        .assignments
        .iter()
        .map(|a| {
            (
                a.partition_index,
                a.broker_ids.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    let mut overrides = BTreeMap::new();
    for entry in &wanted.configs {
        let Some(value) = &entry.value else {
            let text = format!(
                "Null value not supported for topic config {}",
                entry.name.as_str()
            );
            return Err(ApiError::new(ResponseError::InvalidConfig, text));
        };
        overrides.insert(entry.name.to_string(), value.to_string());
    }
    let topic = broker
        .create_topic(
            name,
            partitions,
            wanted.replication_factor,
            assignments,
            overrides,
            validate_only,
        )
        .await?;
    let replication_factor = topic
        .partitions
        .first()
        .map_or(wanted.replication_factor, |p| {
            i16::try_from(p.registration.replicas.len()).unwrap_or(i16::MAX)
        });
    Ok((
        topic.id,
        partitions,
        replication_factor,
        topic.overrides.clone(),
    ))
}

fn partition_count(context: &RequestContext<'_>, wanted: &CreatableTopic) -> Result<i32, ApiError> {
    if !wanted.assignments.is_empty() {
        if wanted.num_partitions != -1 || wanted.replication_factor != -1 {
            let text = "Both numPartitions or replicationFactor and replicasAssignments were set. \
                        Both cannot be used at the same time.";
            return Err(ApiError::new(ResponseError::InvalidRequest, text));
        }
        return i32::try_from(wanted.assignments.len())
            .map_err(|_| ApiError::code_only(ResponseError::InvalidPartitions));
    }
    match wanted.num_partitions {
        -1 => Ok(context.broker.config.default_partitions),
        count if count <= 0 => Err(ApiError::new(
            ResponseError::InvalidPartitions,
            "Number of partitions was set to an invalid non-positive value.",
        )),
        count => Ok(count),
    }
}

/// Shape checks Kafka makes before the controller; whether enough brokers are live is the
/// controller's call.
fn check_replication(wanted: &CreatableTopic) -> Result<(), ApiError> {
    match wanted.replication_factor {
        -1 => Ok(()),
        factor if factor <= 0 => Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0, or -1 to use the default value.",
        )),
        _ => Ok(()),
    }
}

/// The config entries a v5+ CreateTopics response carries: every key, override or default.
fn config_entries(
    context: &RequestContext<'_>,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    CONFIG_KEYS
        .iter()
        .map(|key| {
            let mut entry = CreatableTopicConfigs::default();
            entry.name = str_bytes(key.name);
            let value = topic_config::effective_value(&context.broker.config, overrides, key.name);
            entry.value = Some(str_bytes(value));
            entry.read_only = false;
            entry.config_source =
                topic_config::effective_source(&context.broker.config, overrides, key.name);
            entry.is_sensitive = false;
            entry
        })
        .collect()
}
