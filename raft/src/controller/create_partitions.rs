//! CreatePartitions: grows topics, placing the new partitions' replicas like CreateTopics.

use uuid::Uuid;

use super::error_code;
use super::placement::{place_replicas, rack_alternated_brokers};
use super::topics::partition_record;
use super::{ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE, RECORDS_PER_OPERATION_MAX};
use crate::image::{MetadataImage, MetadataRecord, TopicImage};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionsIncrease {
    pub name: String,
    /// The topic's partition count afterwards.
    pub count: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatePartitionsRequest {
    pub topics: Vec<PartitionsIncrease>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatePartitionsResult {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

pub fn create_partitions(
    image: &MetadataImage,
    request: &CreatePartitionsRequest,
) -> ControllerResult<Vec<CreatePartitionsResult>> {
    let mut budget = RecordBudget::new();
    let mut results = Vec::with_capacity(request.topics.len());
    for increase in &request.topics {
        let outcome = increase_records(image, increase).and_then(|records| {
            if budget.fits(records.len()) {
                Ok(records)
            } else {
                Err((error_code::POLICY_VIOLATION, BUDGET_EXCEEDED_MESSAGE.into()))
            }
        });
        let (error_code, error_message) = match outcome {
            Ok(records) => {
                if !request.validate_only {
                    budget.extend(records);
                }
                (error_code::NONE, None)
            }
            Err((code, message)) => (code, Some(message)),
        };
        results.push(CreatePartitionsResult {
            name: increase.name.clone(),
            error_code,
            error_message,
        });
    }
    assert_eq!(results.len(), request.topics.len());
    ControllerResult::new(budget.records, results)
}

fn increase_records(
    image: &MetadataImage,
    increase: &PartitionsIncrease,
) -> Result<Vec<MetadataRecord>, (i16, String)> {
    let Some(topic) = image.topics.topic_by_name(&increase.name) else {
        let message = format!("topic '{}' does not exist", increase.name);
        return Err((error_code::UNKNOWN_TOPIC_OR_PARTITION, message));
    };
    let current = topic.partitions.len();
    let wanted = usize::try_from(increase.count).unwrap_or(0);
    if wanted <= current {
        let message = format!(
            "topic currently has {current} partitions, {} would not be an increase",
            increase.count
        );
        return Err((error_code::INVALID_PARTITIONS, message));
    }
    if wanted - current > RECORDS_PER_OPERATION_MAX {
        let message = format!("{} partitions is too many to add at once", wanted - current);
        return Err((error_code::INVALID_PARTITIONS, message));
    }
    let brokers = rack_alternated_brokers(&image.cluster);
    let replication_factor = replication_factor(topic);
    if replication_factor > brokers.len() {
        let message = format!(
            "replication factor {replication_factor} is larger than the {} active brokers",
            brokers.len()
        );
        return Err((error_code::INVALID_REPLICATION_FACTOR, message));
    }
    let placement = place_replicas(
        &brokers,
        wanted,
        replication_factor,
        topic_start(topic.topic_id),
    );
    let records = (current..wanted)
        .map(|index| partition_record(&image.cluster, topic.topic_id, index, &placement[index]))
        .collect();
    Ok(records)
}

/// The topic's replication factor: its first partition's replica count.
fn replication_factor(topic: &TopicImage) -> usize {
    topic
        .partitions
        .values()
        .next()
        .map_or(1, |partition| partition.replicas.len())
        .max(1)
}

/// A per-topic rotation so that new partitions of different topics start on different brokers.
fn topic_start(topic_id: Uuid) -> usize {
    topic_id.as_bytes()[0] as usize
}
