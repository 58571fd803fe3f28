//! FindCoordinator: the node that coordinates a group or transactional id.
//!
//! Every node computes the same answer from its metadata image: a stable hash of the key over
//! the registered brokers, skipping fenced ones (Kafka places a group on the leader of its
//! `__consumer_offsets` partition, `hash(key) % 50`). All members of a group therefore meet on
//! one node, whichever broker they ask.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};
use crate::net::listeners::listener_named;

/// Kafka's CoordinatorType: GROUP, TRANSACTION (SHARE is not served).
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Batched keys (v4+) answered at most per request; the rest get INVALID_REQUEST.
const COORDINATOR_KEYS_MAX: usize = 10_000;

pub fn handle(
    context: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    let key_type_known = matches!(request.key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION);
    if context.api_version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| {
                let refused = !key_type_known || index >= COORDINATOR_KEYS_MAX;
                let error = refused.then_some(ResponseError::InvalidRequest);
                coordinator(context, key, error)
            })
            .collect();
        return response;
    }
    if !key_type_known {
        response.error_code = ResponseError::InvalidRequest.code();
        response.node_id = BrokerId(-1);
        response.host = str_bytes("");
        response.port = -1;
        if context.api_version >= 1 {
            response.error_message = Some(str_bytes("unknown coordinator key type"));
        }
        return response;
    }
    let (node_id, host, port) = coordinator_node(context, request.key.as_str());
    response.node_id = BrokerId(node_id);
    response.host = str_bytes(host);
    response.port = port;
    response
}

/// (node id, host, port) coordinating `key`; this node while the image names no live broker
/// (a single node before its registration is published).
fn coordinator_node(context: &RequestContext<'_>, key: &str) -> (i32, String, i32) {
    let this_node = || {
        let advertised = context
            .broker
            .advertised_on(context.listener_name)
            .unwrap_or(&context.broker.advertised);
        (
            context.broker.node_id(),
            advertised.host.clone(),
            advertised.port,
        )
    };
    let image = context.broker.topics();
    let brokers: Vec<_> = image.metadata.cluster.brokers.values().collect();
    if brokers.is_empty() {
        return this_node();
    }
    let start = (stable_hash(key) % brokers.len() as u64) as usize;
    for step in 0..brokers.len() {
        let candidate = brokers[(start + step) % brokers.len()];
        if candidate.fenced {
            continue;
        }
        if let Some(listener) = listener_named(&candidate.listeners, context.listener_name) {
            return (
                candidate.broker_id,
                listener.host.clone(),
                i32::from(listener.port),
            );
        }
    }
    this_node()
}

/// FNV-1a: the same on every node and every run (std's hasher is randomly seeded).
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn coordinator(
    context: &RequestContext<'_>,
    key: StrBytes,
    error: Option<ResponseError>,
) -> Coordinator {
    let mut entry = Coordinator::default();
    entry.key = key;
    match error {
        Some(error) => {
            entry.error_code = error.code();
            entry.error_message = Some(str_bytes(error.to_string()));
            entry.node_id = BrokerId(-1);
            entry.port = -1;
        }
        None => {
            let (node_id, host, port) = coordinator_node(context, entry.key.as_str());
            entry.node_id = BrokerId(node_id);
            entry.host = str_bytes(host);
            entry.port = port;
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn the_hash_is_stable_across_runs() {
        // Fixed values: a change here moves every group to another coordinator.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(stable_hash("group-1"), stable_hash("group-2"));
    }
}
