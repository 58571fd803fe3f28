//! IncrementalAlterConfigs for topics and brokers.

use super::error_code;
use super::{ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE};
use crate::image::{ConfigResource, MetadataImage, MetadataRecord, STRING_BYTES_MAX};

/// Longest config name accepted.
pub const CONFIG_NAME_BYTES_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigOp {
    Set { name: String, value: String },
    Delete { name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterConfigsResource {
    /// `Broker(-1)` is the cluster-wide default for every broker.
    pub resource: ConfigResource,
    pub ops: Vec<ConfigOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterConfigsRequest {
    pub resources: Vec<AlterConfigsResource>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterConfigsResult {
    pub resource: ConfigResource,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// Applies each resource's ops all or nothing. Which names and values are legal is the
/// broker's business (it knows Kafka's config keys); the controller checks only shape.
pub fn alter_configs(
    image: &MetadataImage,
    request: &AlterConfigsRequest,
) -> ControllerResult<Vec<AlterConfigsResult>> {
    let mut budget = RecordBudget::new();
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let outcome = resource_records(image, resource).and_then(|records| {
            if budget.fits(records.len()) {
                Ok(records)
            } else {
                Err((
                    error_code::POLICY_VIOLATION,
                    BUDGET_EXCEEDED_MESSAGE.to_string(),
                ))
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
        results.push(AlterConfigsResult {
            resource: resource.resource.clone(),
            error_code,
            error_message,
        });
    }
    ControllerResult::new(budget.records, results)
}

fn resource_records(
    image: &MetadataImage,
    resource: &AlterConfigsResource,
) -> Result<Vec<MetadataRecord>, (i16, String)> {
    match &resource.resource {
        ConfigResource::Topic(name) => {
            if !image.topics.id_by_name.contains_key(name) {
                let message = format!("topic '{name}' does not exist");
                return Err((error_code::UNKNOWN_TOPIC_OR_PARTITION, message));
            }
        }
        ConfigResource::Broker(broker_id) => {
            if *broker_id < -1 {
                return Err((
                    error_code::INVALID_REQUEST,
                    format!("broker id {broker_id}"),
                ));
            }
        }
    }
    let mut records = Vec::with_capacity(resource.ops.len());
    for op in &resource.ops {
        let (name, value) = match op {
            ConfigOp::Set { name, value } => (name, Some(value)),
            ConfigOp::Delete { name } => (name, None),
        };
        validate_config(name, value.map(String::as_str))
            .map_err(|message| (error_code::INVALID_CONFIG, message))?;
        records.push(MetadataRecord::Config {
            resource: resource.resource.clone(),
            name: name.clone(),
            value: value.cloned(),
        });
    }
    Ok(records)
}

pub(crate) fn validate_config(name: &str, value: Option<&str>) -> Result<(), String> {
    if name.is_empty() || name.len() > CONFIG_NAME_BYTES_MAX {
        return Err(format!("config name '{name}' is empty or too long"));
    }
    if value.is_some_and(|value| value.len() > STRING_BYTES_MAX) {
        return Err(format!("value of config '{name}' is too long"));
    }
    Ok(())
}
