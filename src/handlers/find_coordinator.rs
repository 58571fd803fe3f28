//! FindCoordinator: the node that coordinates a group or transactional id.
//!
//! A group lives in partition `abs(java_hash(group)) % partitions` of `__consumer_offsets`
//! (created here on first need, as Kafka does) and its coordinator is that partition's
//! leader: COORDINATOR_NOT_AVAILABLE while it has none. When the leader is this node the
//! answer waits (briefly) for the partition to be loaded, so clients rarely see
//! COORDINATOR_LOAD_IN_PROGRESS. A transactional id is coordinated the same way by the
//! leader of its `__transaction_state` partition (`crate::txn`).

use std::time::Duration;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_raft::image::LEADER_NONE;

use super::{str_bytes, RequestContext};
use crate::broker::Topic;
use crate::group::offsets_partition_for;
use sluice_raft::image::acls::{operation, resource_type};

use crate::net::listeners::listener_named;
use crate::offsets_topic;
use crate::txn;

/// Kafka's CoordinatorType: GROUP, TRANSACTION (SHARE is not served).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Batched keys (v4+) answered at most per request; the rest get INVALID_REQUEST.
const COORDINATOR_KEYS_MAX: usize = 10_000;
/// How long an answer naming this node waits for the group's partition to load.
const LOAD_WAIT_MAX: Duration = Duration::from_secs(5);

/// (node id, host, port) of a coordinator.
type Endpoint = (i32, String, i32);

pub async fn handle(
    context: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    let key_type = request.key_type;
    let key_type_known = matches!(key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION);
    if context.api_version >= 4 {
        for (index, key) in request.coordinator_keys.into_iter().enumerate() {
            let refused = !key_type_known || index >= COORDINATOR_KEYS_MAX;
            let found = if refused {
                Err(ResponseError::InvalidRequest)
            } else {
                find(context, key_type, key.as_str()).await
            };
            response.coordinators.push(coordinator(key, found));
        }
        return response;
    }
    let found = if key_type_known {
        find(context, key_type, request.key.as_str()).await
    } else {
        Err(ResponseError::InvalidRequest)
    };
    match found {
        Ok((node_id, host, port)) => {
            response.node_id = BrokerId(node_id);
            response.host = str_bytes(host);
            response.port = port;
        }
        Err(error) => {
            response.error_code = error.code();
            response.node_id = BrokerId(-1);
            response.host = str_bytes("");
            response.port = -1;
            if context.api_version >= 1 {
                let message = if error == ResponseError::InvalidRequest {
                    "unknown coordinator key type".to_string()
                } else {
                    error.to_string()
                };
                response.error_message = Some(str_bytes(message));
            }
        }
    }
    response
}

async fn find(
    context: &RequestContext<'_>,
    key_type: i8,
    key: &str,
) -> Result<Endpoint, ResponseError> {
    // Kafka: DESCRIBE on the group or transactional id before anything else.
    if key_type == KEY_TYPE_TRANSACTION {
        if !context.authorize(operation::DESCRIBE, resource_type::TRANSACTIONAL_ID, key) {
            return Err(ResponseError::TransactionalIdAuthorizationFailed);
        }
    } else if !context.authorize_group(operation::DESCRIBE, key) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let broker = context.broker;
    // Boxed: creating a topic is a deep future, and Metadata's auto-creation nests another.
    let created = if key_type == KEY_TYPE_TRANSACTION {
        Box::pin(txn::topic::ensure_created(broker)).await
    } else {
        Box::pin(offsets_topic::ensure_created(broker)).await
    };
    let topic = created.map_err(|error| {
        tracing::warn!(code = ?error.code, message = ?error.message, "creating an internal topic");
        ResponseError::CoordinatorNotAvailable
    })?;
    let count = i32::try_from(topic.partitions.len())
        .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
    if count == 0 {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    // Kafka's rule for both: abs(java_hash(key)) % partitions.
    let index = offsets_partition_for(key, count);
    partition_leader(context, key_type, &topic, index).await
}

/// The leader of the coordinating partition; when it is this node, the answer waits
/// (briefly) until the partition is loaded.
async fn partition_leader(
    context: &RequestContext<'_>,
    key_type: i8,
    topic: &Topic,
    index: i32,
) -> Result<Endpoint, ResponseError> {
    let broker = context.broker;
    let partition = topic
        .partition(index)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let leader = partition.registration.leader;
    if leader == LEADER_NONE {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if leader == broker.node_id() {
        if key_type == KEY_TYPE_TRANSACTION {
            broker.txns.wait_loaded(index, LOAD_WAIT_MAX).await;
        } else {
            broker.groups.wait_loaded(index, LOAD_WAIT_MAX).await;
        }
        let advertised = broker
            .advertised_on(context.listener_name)
            .unwrap_or(&broker.advertised);
        return Ok((leader, advertised.host.clone(), advertised.port));
    }
    let image = broker.topics();
    let registration = image
        .metadata
        .cluster
        .brokers
        .get(&leader)
        .filter(|registration| !registration.fenced)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let listener = listener_named(&registration.listeners, context.listener_name)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    Ok((leader, listener.host.clone(), i32::from(listener.port)))
}

fn coordinator(key: StrBytes, found: Result<Endpoint, ResponseError>) -> Coordinator {
    let mut entry = Coordinator::default();
    entry.key = key;
    match found {
        Ok((node_id, host, port)) => {
            entry.node_id = BrokerId(node_id);
            entry.host = str_bytes(host);
            entry.port = port;
        }
        Err(error) => {
            entry.error_code = error.code();
            entry.error_message = Some(str_bytes(error.to_string()));
            entry.node_id = BrokerId(-1);
            entry.port = -1;
        }
    }
    entry
}

#[cfg(test)]
mod partition_tests {
    use crate::group::offsets_partition_for;

    #[test]
    fn groups_map_to_partitions_as_in_kafka() {
        // Java: "my-group".hashCode() = -1_906_497_762; abs % 50 = 12.
        assert_eq!(offsets_partition_for("my-group", 50), 12);
        // "zzzzzzzzzzzz".hashCode() = 1_097_476_992 (wrapped); % 50 = 42.
        assert_eq!(offsets_partition_for("zzzzzzzzzzzz", 50), 42);
        // "polygenelubricants".hashCode() is Integer.MIN_VALUE; Kafka's abs maps it to 0.
        assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
        assert_eq!(offsets_partition_for("", 50), 0);
    }
}
