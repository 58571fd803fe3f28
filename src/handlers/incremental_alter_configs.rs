//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on a topic's overrides.

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use sluice_raft::image::acls::operation;

use super::{authz, message, throttle_configs, RequestContext};
use crate::broker::ApiError;
use crate::topic_config::{self, ConfigType};

/// Kafka's AlterConfigOp types.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    context: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let refusal = authz::config_refusal(
            context,
            operation::ALTER_CONFIGS,
            resource.resource_type,
            resource.resource_name.as_str(),
        );
        let outcome = match (resource.resource_type, refusal) {
            (_, Some((code, text))) => Err(ApiError::new(code, text)),
            (RESOURCE_TOPIC, None) => {
                alter_topic(
                    context,
                    resource.resource_name.as_str(),
                    &resource.configs,
                    request.validate_only,
                )
                .await
            }
            (RESOURCE_BROKER, None)
                if throttle_configs::only_broker_throttles(&resource.configs) =>
            {
                throttle_configs::alter_broker_throttles(
                    context,
                    resource.resource_name.as_str(),
                    &resource.configs,
                    request.validate_only,
                )
                .await
            }
            (RESOURCE_BROKER, None) => Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Broker configs are static (set them as flags), except the replication throttles \
                 and sluice.drain",
            )),
            _ => Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Unsupported resource type",
            )),
        };
        if let Err(error) = outcome {
            result.error_code = error.code.code();
            result.error_message = message(&error);
        }
        response.responses.push(result);
    }
    response
}

async fn alter_topic(
    context: &RequestContext<'_>,
    name: &str,
    changes: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), ApiError> {
    let Some(topic) = context.broker.topics().by_name.get(name).cloned() else {
        let text = format!("Topic '{name}' does not exist.");
        return Err(ApiError::new(ResponseError::UnknownTopicOrPartition, text));
    };
    let mut overrides = topic.overrides.clone();
    for change in changes {
        if throttle_configs::is_topic_throttle(change.name.as_str()) {
            continue;
        }
        apply(context, &mut overrides, change)?;
    }
    context
        .broker
        .set_topic_overrides(name, overrides, validate_only)
        .await
}

fn apply(
    context: &RequestContext<'_>,
    overrides: &mut BTreeMap<String, String>,
    change: &AlterableConfig,
) -> Result<(), ApiError> {
    let key = change.name.to_string();
    let invalid = |text: String| ApiError::new(ResponseError::InvalidConfig, text);
    let Some(definition) = topic_config::config_key(&key) else {
        return Err(invalid(format!("Unknown topic config name: {key}")));
    };
    let value = change.value.as_ref().map(|v| v.to_string());
    match change.config_operation {
        OP_SET => {
            let value = value.ok_or_else(|| invalid(format!("Null value for {key}")))?;
            overrides.insert(key, value);
        }
        OP_DELETE => {
            overrides.remove(&key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if definition.config_type != ConfigType::List {
                let text = format!("Config {key} is not a list; APPEND/SUBTRACT need a list");
                return Err(invalid(text));
            }
            let current = topic_config::effective_value(&context.broker.config, overrides, &key);
            let mut items: Vec<String> = current
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            for item in value
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                let present = items.iter().any(|i| i == item);
                if change.config_operation == OP_APPEND && !present {
                    items.push(item.to_string());
                } else if change.config_operation == OP_SUBTRACT {
                    items.retain(|i| i != item);
                }
            }
            overrides.insert(key, items.join(","));
        }
        other => return Err(invalid(format!("Unknown config operation {other}"))),
    }
    Ok(())
}
