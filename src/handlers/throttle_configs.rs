//! The dynamic broker configs: `sluice.drain` (move every replica off the broker), and
//! Kafka's replication throttle configs, as `kafka-reassign-partitions --throttle` sets and
//! `--verify` clears them: the broker rates are stored in the metadata (a broker resource, or
//! `""` for the cluster default) and read by the reassignment throttle; the topic-level
//! `*.replication.throttled.replicas` lists are accepted and not stored, because sluice
//! throttles exactly the replicas a reassignment is adding.

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::ResponseError;
use sluice_raft::controller::{
    AlterConfigsRequest, AlterConfigsResource, ConfigOp, Operation, OperationResponse,
};
use sluice_raft::image::ConfigResource;

use super::RequestContext;
use crate::broker::ApiError;

/// Bytes/s this node fetches for replicas being added to it (the one sluice applies).
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";
/// Accepted for Kafka's tools; sluice throttles on the fetching side only.
const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
const LOG_DIRS_THROTTLED_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
const BROKER_THROTTLE_KEYS: [&str; 3] = [
    FOLLOWER_THROTTLED_RATE,
    LEADER_THROTTLED_RATE,
    LOG_DIRS_THROTTLED_RATE,
];
const TOPIC_THROTTLE_KEYS: [&str; 2] = [
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// `true`: the balancer moves every replica off this broker (`sluice node drain`).
pub const DRAIN: &str = "sluice.drain";

/// Kafka's AlterConfigOp types this module serves.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// Whether every change is to a dynamic broker config (a throttle, or the drain flag).
pub fn only_broker_throttles(changes: &[AlterableConfig]) -> bool {
    !changes.is_empty()
        && changes.iter().all(|c| {
            let name = c.name.as_str();
            BROKER_THROTTLE_KEYS.contains(&name) || name == DRAIN
        })
}

/// Whether `name` is a topic throttle list, accepted and ignored.
pub fn is_topic_throttle(name: &str) -> bool {
    TOPIC_THROTTLE_KEYS.contains(&name)
}

/// Stores broker throttle rates for `resource_name` (a broker id, or "" for all brokers).
pub async fn alter_broker_throttles(
    context: &RequestContext<'_>,
    resource_name: &str,
    changes: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), ApiError> {
    let invalid = |text: String| ApiError::new(ResponseError::InvalidConfig, text);
    let broker_id = if resource_name.is_empty() {
        -1
    } else {
        resource_name
            .parse::<i32>()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| invalid(format!("Invalid broker id '{resource_name}'")))?
    };
    let mut ops = Vec::with_capacity(changes.len());
    for change in changes {
        let name = change.name.to_string();
        let op = match (change.config_operation, change.value.as_ref()) {
            (OP_SET, Some(value)) if name == DRAIN => {
                if value.as_str() != "true" && value.as_str() != "false" {
                    return Err(invalid(format!("{name} must be true or false")));
                }
                if broker_id < 0 {
                    return Err(invalid(format!(
                        "{name} is set per broker, not cluster-wide"
                    )));
                }
                ConfigOp::Set {
                    name,
                    value: value.to_string(),
                }
            }
            (OP_SET, Some(value)) => {
                let valid = value.parse::<i64>().is_ok_and(|rate| rate >= 0);
                if !valid {
                    return Err(invalid(format!("{name} must be a non-negative long")));
                }
                ConfigOp::Set {
                    name,
                    value: value.to_string(),
                }
            }
            (OP_DELETE, _) => ConfigOp::Delete { name },
            _ => return Err(invalid(format!("Unsupported operation on {name}"))),
        };
        ops.push(op);
    }
    let request = AlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource: ConfigResource::Broker(broker_id),
            ops,
        }],
        validate_only,
    };
    match context
        .broker
        .submit(Operation::AlterConfigs(request))
        .await?
    {
        OperationResponse::AlterConfigs(results) => match results.first() {
            Some(result) if result.error_code != 0 => Err(ApiError {
                code: ResponseError::try_from_code(result.error_code)
                    .unwrap_or(ResponseError::UnknownServerError),
                message: result.error_message.clone(),
            }),
            _ => Ok(()),
        },
        _ => Err(ApiError::code_only(ResponseError::UnknownServerError)),
    }
}
