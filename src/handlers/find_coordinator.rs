//! FindCoordinator: this single node coordinates every group and transactional id.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};

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
    response.node_id = BrokerId(context.broker.node_id());
    response.host = str_bytes(context.broker.advertised.host.clone());
    response.port = context.broker.advertised.port;
    response
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
            entry.node_id = BrokerId(context.broker.node_id());
            entry.host = str_bytes(context.broker.advertised.host.clone());
            entry.port = context.broker.advertised.port;
        }
    }
    entry
}
