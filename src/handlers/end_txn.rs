//! EndTxn: the producer commits or aborts its transaction. The answer comes once
//! PrepareCommit/PrepareAbort is durable; the markers are written afterwards
//! (`crate::txn::markers`), and the next request of the producer gets
//! CONCURRENT_TRANSACTIONS until they are.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};
use crate::broker::now_ms;
use crate::txn::{self, state};

/// Versions below this say INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;

pub async fn handle(context: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    // v5 (transaction version 2) answers these; we stay at version 1 semantics.
    response.producer_id = kafka_protocol::messages::ProducerId(-1);
    response.producer_epoch = -1;
    let transactional_id = request.transactional_id.as_str();
    let result = if transactional_id.is_empty() {
        Err(ResponseError::InvalidRequest)
    } else if !authz::authorize_transactional_id(context, transactional_id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        let producer_id = request.producer_id.0;
        let producer_epoch = request.producer_epoch;
        let commit = request.committed;
        txn::transition(context.broker, transactional_id, |current| {
            let next = state::end_txn(current, producer_id, producer_epoch, commit, now_ms())?;
            Ok((next, ()))
        })
        .await
    };
    response.error_code = match result {
        Ok(()) => 0,
        Err(ResponseError::ProducerFenced) if context.api_version < PRODUCER_FENCED_VERSION_MIN => {
            ResponseError::InvalidProducerEpoch.code()
        }
        Err(error) => error.code(),
    };
    response
}
