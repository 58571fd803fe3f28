//! InitProducerId: producer ids for idempotent producers. Transactions come later; a
//! transactional id is refused rather than half-served.
//!
//! Without a transactional id Kafka always issues a fresh producer id with epoch 0, whatever
//! producer id and epoch the request carries (`TransactionCoordinator.handleInitProducerId`):
//! an idempotent producer bumps its epoch itself (KIP-360, client side) and only comes back
//! here when the epoch would overflow. Ids come from durable blocks, so none is ever reused,
//! also not after a restart.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};

/// A request field's "none" (Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`).
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

pub async fn handle(
    context: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(NO_PRODUCER_ID);
    response.producer_epoch = NO_PRODUCER_EPOCH;
    let transactional_id = request.transactional_id.as_ref().map(|id| id.to_string());
    if let Some(id) = &transactional_id {
        if !authz::authorize_transactional_id(context, id) {
            response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return response;
        }
    } else if !authz::authorize_idempotent_write(context) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    if request.transactional_id.is_some() {
        // Not a coordinator for transactions yet: clients report it and stop, not retry forever.
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    // KafkaApis: an id without an epoch (or the reverse) is malformed.
    let has_id = request.producer_id.0 != NO_PRODUCER_ID;
    let has_epoch = request.producer_epoch != NO_PRODUCER_EPOCH;
    if has_id != has_epoch {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    match context.broker.next_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(error) => response.error_code = error.code.code(),
    }
    response
}
