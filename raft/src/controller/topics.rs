//! CreateTopics and DeleteTopics.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::error_code;
use super::placement::{place_replicas, rack_alternated_brokers};
use super::{ControllerConfig, ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE};
use crate::image::{BrokerId, ClusterImage, MetadataImage, MetadataRecord, LEADER_NONE};

/// Kafka's limit on topic names.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatableTopic {
    pub name: String,
    /// -1 for the controller's default.
    pub num_partitions: i32,
    /// -1 for the controller's default.
    pub replication_factor: i16,
    /// Manual placement: partition index → replicas. Empty for automatic placement.
    pub assignments: BTreeMap<i32, Vec<BrokerId>>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    /// Check everything, write nothing.
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    pub name: String,
    /// Nil unless created (or, with `validate_only`, creatable).
    pub topic_id: Uuid,
    pub error_code: i16,
    pub error_message: Option<String>,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

impl CreatedTopic {
    fn error(name: &str, error_code: i16, message: impl Into<String>) -> CreatedTopic {
        CreatedTopic {
            name: name.to_string(),
            topic_id: Uuid::nil(),
            error_code,
            error_message: Some(message.into()),
            num_partitions: -1,
            replication_factor: -1,
        }
    }
}

pub fn create_topics(
    image: &MetadataImage,
    request: &CreateTopicsRequest,
    config: &ControllerConfig,
    new_topic_id: &mut dyn FnMut() -> Uuid,
) -> ControllerResult<Vec<CreatedTopic>> {
    let mut budget = RecordBudget::new();
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut name_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for topic in &request.topics {
        *name_counts.entry(topic.name.as_str()).or_default() += 1;
    }
    let brokers = rack_alternated_brokers(&image.cluster);
    for (position, topic) in request.topics.iter().enumerate() {
        if name_counts[topic.name.as_str()] > 1 {
            responses.push(CreatedTopic::error(
                &topic.name,
                error_code::INVALID_REQUEST,
                "topic named more than once in the request",
            ));
            continue;
        }
        let start = image.topics.by_id.len() + position;
        match topic_records(image, topic, config, &brokers, start, new_topic_id) {
            Err(response) => responses.push(response),
            Ok((records, response)) => {
                if !budget.fits(records.len()) {
                    responses.push(CreatedTopic::error(
                        &topic.name,
                        error_code::POLICY_VIOLATION,
                        BUDGET_EXCEEDED_MESSAGE,
                    ));
                    continue;
                }
                if !request.validate_only {
                    budget.extend(records);
                }
                responses.push(response);
            }
        }
    }
    assert_eq!(responses.len(), request.topics.len());
    ControllerResult::new(budget.records, responses)
}

/// The records creating one topic, or the error response saying why it cannot be.
fn topic_records(
    image: &MetadataImage,
    topic: &CreatableTopic,
    config: &ControllerConfig,
    brokers: &[BrokerId],
    start: usize,
    new_topic_id: &mut dyn FnMut() -> Uuid,
) -> Result<(Vec<MetadataRecord>, CreatedTopic), CreatedTopic> {
    validate_topic_name(&topic.name).map_err(|message| {
        CreatedTopic::error(&topic.name, error_code::INVALID_TOPIC_EXCEPTION, message)
    })?;
    if image.topics.id_by_name.contains_key(&topic.name) {
        let message = format!("Topic '{}' already exists.", topic.name);
        return Err(CreatedTopic::error(
            &topic.name,
            error_code::TOPIC_ALREADY_EXISTS,
            message,
        ));
    }
    for (name, value) in &topic.configs {
        super::configs::validate_config(name, Some(value)).map_err(|message| {
            CreatedTopic::error(&topic.name, error_code::INVALID_CONFIG, message)
        })?;
    }
    let replicas = if topic.assignments.is_empty() {
        automatic_replicas(topic, config, brokers, start)?
    } else {
        manual_replicas(&image.cluster, topic)?
    };
    let topic_id = new_topic_id();
    assert!(!topic_id.is_nil(), "topic ids are never nil");
    let mut records = vec![MetadataRecord::Topic {
        topic_id,
        name: topic.name.clone(),
    }];
    for (name, value) in &topic.configs {
        records.push(MetadataRecord::Config {
            resource: crate::image::ConfigResource::Topic(topic.name.clone()),
            name: name.clone(),
            value: Some(value.clone()),
        });
    }
    for (partition_index, replicas) in replicas.iter().enumerate() {
        records.push(partition_record(
            &image.cluster,
            topic_id,
            partition_index,
            replicas,
        ));
    }
    let response = CreatedTopic {
        name: topic.name.clone(),
        topic_id,
        error_code: error_code::NONE,
        error_message: None,
        num_partitions: replicas.len() as i32,
        replication_factor: replicas.first().map_or(0, |r| r.len() as i16),
    };
    Ok((records, response))
}

pub(crate) fn partition_record(
    cluster: &ClusterImage,
    topic_id: Uuid,
    partition_index: usize,
    replicas: &[BrokerId],
) -> MetadataRecord {
    let isr: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|id| cluster.is_active(*id))
        .collect();
    assert!(
        !isr.is_empty(),
        "placement chose at least one active broker"
    );
    MetadataRecord::Partition {
        topic_id,
        partition_index: i32::try_from(partition_index).unwrap_or(i32::MAX),
        replicas: replicas.to_vec(),
        leader: isr.first().copied().unwrap_or(LEADER_NONE),
        isr,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn automatic_replicas(
    topic: &CreatableTopic,
    config: &ControllerConfig,
    brokers: &[BrokerId],
    start: usize,
) -> Result<Vec<Vec<BrokerId>>, CreatedTopic> {
    let partitions = match topic.num_partitions {
        -1 => config.default_partitions,
        count => count,
    };
    let replication_factor = match topic.replication_factor {
        -1 => config.default_replication_factor,
        factor => factor,
    };
    if partitions < 1 || partitions as usize > super::RECORDS_PER_OPERATION_MAX {
        let message = format!("number of partitions {partitions} is out of range");
        return Err(CreatedTopic::error(
            &topic.name,
            error_code::INVALID_PARTITIONS,
            message,
        ));
    }
    if replication_factor < 1 || replication_factor as usize > brokers.len() {
        let message = format!(
            "replication factor {replication_factor} is below 1 or larger than the {} \
             active brokers",
            brokers.len()
        );
        return Err(CreatedTopic::error(
            &topic.name,
            error_code::INVALID_REPLICATION_FACTOR,
            message,
        ));
    }
    Ok(place_replicas(
        brokers,
        partitions as usize,
        replication_factor as usize,
        start,
    ))
}

fn manual_replicas(
    cluster: &ClusterImage,
    topic: &CreatableTopic,
) -> Result<Vec<Vec<BrokerId>>, CreatedTopic> {
    let invalid = |message: String| {
        CreatedTopic::error(&topic.name, error_code::INVALID_REPLICA_ASSIGNMENT, message)
    };
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(CreatedTopic::error(
            &topic.name,
            error_code::INVALID_REQUEST,
            "both assignments and partitions/replication factor were given",
        ));
    }
    let mut replicas = Vec::with_capacity(topic.assignments.len());
    for (position, (index, assigned)) in topic.assignments.iter().enumerate() {
        if *index as i64 != position as i64 {
            return Err(invalid(format!(
                "partitions must be numbered from 0, got {index}"
            )));
        }
        let unique: BTreeSet<BrokerId> = assigned.iter().copied().collect();
        if assigned.is_empty() || unique.len() != assigned.len() {
            return Err(invalid(format!(
                "partition {index}: empty or repeated replicas"
            )));
        }
        if let Some(unknown) = assigned.iter().find(|id| cluster.broker(**id).is_none()) {
            return Err(invalid(format!(
                "partition {index}: broker {unknown} is not registered"
            )));
        }
        if !assigned.iter().any(|id| cluster.is_active(*id)) {
            return Err(invalid(format!(
                "partition {index}: every replica is fenced"
            )));
        }
        if let Some(first) = replicas.first().map(Vec::len) {
            if first != assigned.len() {
                return Err(invalid(
                    "replica counts differ between partitions".to_string(),
                ));
            }
        }
        replicas.push(assigned.clone());
    }
    Ok(replicas)
}

/// Kafka's topic name rules: 1..=249 bytes of `[a-zA-Z0-9._-]`, and neither `.` nor `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name '{name}' is illegal"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name is longer than {TOPIC_NAME_BYTES_MAX} bytes"
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if !name.chars().all(legal) {
        return Err(format!(
            "topic name '{name}' has characters outside [a-zA-Z0-9._-]"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DeleteTopicsRequest {
    pub names: Vec<String>,
    pub topic_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeletedTopic {
    /// As in the request: the name, or for deletes by id the name found (None if unknown).
    pub name: Option<String>,
    pub topic_id: Uuid,
    pub error_code: i16,
}

pub fn delete_topics(
    image: &MetadataImage,
    request: &DeleteTopicsRequest,
) -> ControllerResult<Vec<DeletedTopic>> {
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut records = Vec::new();
    let mut responses = Vec::new();
    for name in &request.names {
        let response = match image.topics.topic_by_name(name) {
            Some(topic) => DeletedTopic {
                name: Some(name.clone()),
                topic_id: topic.topic_id,
                error_code: remove_topic(&mut removed, &mut records, topic.topic_id),
            },
            None => DeletedTopic {
                name: Some(name.clone()),
                topic_id: Uuid::nil(),
                error_code: error_code::UNKNOWN_TOPIC_OR_PARTITION,
            },
        };
        responses.push(response);
    }
    for topic_id in &request.topic_ids {
        let response = match image.topics.topic(*topic_id) {
            Some(topic) => DeletedTopic {
                name: Some(topic.name.clone()),
                topic_id: *topic_id,
                error_code: remove_topic(&mut removed, &mut records, *topic_id),
            },
            None => DeletedTopic {
                name: None,
                topic_id: *topic_id,
                error_code: error_code::UNKNOWN_TOPIC_ID,
            },
        };
        responses.push(response);
    }
    ControllerResult::new(records, responses)
}

/// Adds one RemoveTopic per topic (a topic named twice is removed once) within the budget.
fn remove_topic(
    removed: &mut BTreeSet<Uuid>,
    records: &mut Vec<MetadataRecord>,
    topic_id: Uuid,
) -> i16 {
    if !removed.contains(&topic_id) && records.len() < super::RECORDS_PER_OPERATION_MAX {
        removed.insert(topic_id);
        records.push(MetadataRecord::RemoveTopic { topic_id });
    }
    if removed.contains(&topic_id) {
        error_code::NONE
    } else {
        error_code::POLICY_VIOLATION
    }
}
