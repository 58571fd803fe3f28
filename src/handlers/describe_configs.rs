//! DescribeConfigs for topics (every known key, override or default) and for this broker.
//!
//! A topic key's source is DYNAMIC_TOPIC_CONFIG when overridden, STATIC_BROKER_CONFIG when a
//! broker flag moved its default off Kafka's, else DEFAULT_CONFIG: tools such as
//! `kafka-topics --describe` list exactly the keys whose source is not DEFAULT_CONFIG.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::{authz, str_bytes, RequestContext};
use crate::config::Config;
use crate::topic_config::{self, ConfigType, CONFIG_KEYS, SOURCE_STATIC_BROKER, SOURCE_TOPIC};

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let keys = resource.configuration_keys.as_deref();
        let refusal = authz::config_refusal(
            context,
            operation::DESCRIBE_CONFIGS,
            resource.resource_type,
            resource.resource_name.as_str(),
        );
        let entries = match (resource.resource_type, refusal) {
            (_, Some(refusal)) => Err(refusal),
            (RESOURCE_TOPIC, None) => topic_entries(
                context,
                resource.resource_name.as_str(),
                keys,
                request.include_synonyms,
            ),
            (RESOURCE_BROKER, None) => {
                broker_entries(context, resource.resource_name.as_str(), keys)
            }
            _ => Err((
                ResponseError::InvalidRequest,
                "Unsupported resource type".to_string(),
            )),
        };
        match entries {
            Ok(configs) => result.configs = configs,
            Err((code, text)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(text));
            }
        }
        response.results.push(result);
    }
    response
}

type Entries = Result<Vec<DescribeConfigsResourceResult>, (ResponseError, String)>;

fn wanted(keys: Option<&[StrBytes]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
}

fn topic_entries(
    context: &RequestContext<'_>,
    name: &str,
    keys: Option<&[StrBytes]>,
    include_synonyms: bool,
) -> Entries {
    let image = context.broker.topics();
    let Some(topic) = image.by_name.get(name) else {
        let text = format!("Topic '{name}' does not exist.");
        return Err((ResponseError::UnknownTopicOrPartition, text));
    };
    let config = &context.broker.config;
    Ok(CONFIG_KEYS
        .iter()
        .filter(|key| wanted(keys, key.name))
        .map(|key| {
            let value = topic_config::effective_value(config, &topic.overrides, key.name);
            let source = topic_config::effective_source(config, &topic.overrides, key.name);
            let mut entry = entry(context, key.name, value, source, key.config_type);
            if include_synonyms {
                entry.synonyms = synonyms(config, &topic.overrides, key.name);
            }
            entry
        })
        .collect())
}

fn synonyms(
    config: &Config,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut list = Vec::new();
    if let Some(value) = overrides.get(name) {
        let mut synonym = DescribeConfigsSynonym::default();
        synonym.name = str_bytes(name);
        synonym.value = Some(str_bytes(value.clone()));
        synonym.source = SOURCE_TOPIC;
        list.push(synonym);
    }
    // The broker level goes by its own name (`log.retention.ms` behind `retention.ms`), as
    // Kafka lists it.
    let broker_name = topic_config::broker_synonym(name).map_or(name, |(broker, _)| broker);
    let mut default = DescribeConfigsSynonym::default();
    default.name = str_bytes(broker_name);
    default.value = Some(str_bytes(topic_config::default_value(config, name)));
    default.source = topic_config::default_source(config, name);
    list.push(default);
    list
}

fn entry(
    context: &RequestContext<'_>,
    name: &str,
    value: String,
    source: i8,
    config_type: ConfigType,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default();
    entry.name = str_bytes(name);
    entry.value = Some(str_bytes(value));
    entry.read_only = false;
    entry.config_source = source;
    entry.is_sensitive = false;
    if context.api_version >= 3 {
        entry.config_type = config_type as i8;
    }
    entry
}

fn broker_entries(context: &RequestContext<'_>, name: &str, keys: Option<&[StrBytes]>) -> Entries {
    let broker = context.broker;
    if !name.is_empty() && name != broker.node_id().to_string() {
        return Err((
            ResponseError::InvalidRequest,
            format!("Unknown broker {name}"),
        ));
    }
    let config = &broker.config;
    let advertised = broker
        .advertised_listeners
        .iter()
        .map(|l| format!("{}://{}:{}", l.name, l.endpoint.host, l.endpoint.port))
        .collect::<Vec<_>>()
        .join(",");
    let values: [(&str, String, ConfigType); 10] = [
        ("node.id", config.node_id.to_string(), ConfigType::Int),
        ("advertised.listeners", advertised, ConfigType::List),
        (
            "log.dirs",
            config.data_dir.display().to_string(),
            ConfigType::String,
        ),
        (
            "num.partitions",
            config.default_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            ConfigType::String,
        ),
        (
            "log.retention.ms",
            config.retention_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "log.retention.bytes",
            config.retention_bytes.to_string(),
            ConfigType::Long,
        ),
        (
            "log.segment.bytes",
            config.segment_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "message.max.bytes",
            config.max_message_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "socket.request.max.bytes",
            config.max_request_bytes.to_string(),
            ConfigType::Int,
        ),
    ];
    Ok(values
        .into_iter()
        .filter(|(key, _, _)| wanted(keys, key))
        .map(|(key, value, config_type)| {
            let mut e = entry(context, key, value, SOURCE_STATIC_BROKER, config_type);
            e.read_only = true;
            e
        })
        .collect())
}
