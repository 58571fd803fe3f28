//! AlterConfigs (legacy): a topic's overrides become exactly the given set.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use sluice_raft::image::acls::operation;

use super::{authz, message, str_bytes, RequestContext};

pub async fn handle(
    context: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
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
        match resource.resource_type {
            _ if refusal.is_some() => {
                if let Some((code, text)) = refusal {
                    result.error_code = code.code();
                    result.error_message = Some(str_bytes(text));
                }
            }
            RESOURCE_TOPIC => {
                let mut overrides = BTreeMap::new();
                for config in &resource.configs {
                    if let Some(value) = &config.value {
                        overrides.insert(config.name.to_string(), value.to_string());
                    }
                }
                let name = resource.resource_name.as_str();
                let outcome = context
                    .broker
                    .set_topic_overrides(name, overrides, request.validate_only)
                    .await;
                if let Err(error) = outcome {
                    result.error_code = error.code.code();
                    result.error_message = message(&error);
                }
            }
            RESOURCE_BROKER => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(str_bytes("Broker configs are static: set them as flags"));
            }
            _ => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = Some(str_bytes("Unsupported resource type"));
            }
        }
        response.responses.push(result);
    }
    response
}
