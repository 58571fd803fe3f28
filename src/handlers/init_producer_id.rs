//! InitProducerId: producer ids for idempotent producers. Transactions come later; a
//! transactional id is refused rather than half-served.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;

pub fn handle(
    context: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        // Not a coordinator for transactions yet: clients report it and stop, not retry forever.
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    // KIP-360: a producer that lost track of its sequence numbers asks for a new epoch of its
    // id; the epoch bumps until it would overflow, then a new id is issued.
    let existing = request.producer_id.0;
    if existing >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
        response.producer_id = ProducerId(existing);
        response.producer_epoch = request.producer_epoch + 1;
        return response;
    }
    match context.broker.next_producer_id() {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(error) => response.error_code = error.code.code(),
    }
    response
}
