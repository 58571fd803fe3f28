//! EndTxn: the producer commits or aborts its transaction. The answer comes once
//! PrepareCommit/PrepareAbort is durable; the markers are written afterwards
//! (`crate::txn::markers`), and the next request of the producer gets
//! CONCURRENT_TRANSACTIONS until they are.
//!
//! v5 is transaction version 2 (KIP-890 part 2): the end bumps the producer epoch (or
//! moves to a fresh producer id when the epoch is exhausted) and the answer names the
//! producer id and epoch the client continues with.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};
use crate::broker::now_ms;
use crate::txn::{self, state};

/// Versions below this say INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;
/// EndTxn v5+ is sent by clients speaking transaction version 2 (Kafka's `KafkaApis`).
const TRANSACTION_VERSION_2_VERSION_MIN: i16 = 5;

pub async fn handle(context: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    response.producer_id = ProducerId(state::NO_PRODUCER_ID);
    response.producer_epoch = -1;
    let transactional_id = request.transactional_id.as_str();
    let result = if transactional_id.is_empty() {
        Err(ResponseError::InvalidRequest)
    } else if !authz::authorize_transactional_id(context, transactional_id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        end(context, &request).await
    };
    match result {
        Ok((producer_id, producer_epoch)) => {
            if context.api_version >= TRANSACTION_VERSION_2_VERSION_MIN {
                response.producer_id = ProducerId(producer_id);
                response.producer_epoch = producer_epoch;
            }
        }
        Err(ResponseError::ProducerFenced) if context.api_version < PRODUCER_FENCED_VERSION_MIN => {
            response.error_code = ResponseError::InvalidProducerEpoch.code();
        }
        Err(error) => response.error_code = error.code(),
    }
    response
}

/// Decides and writes the end; an exhausted epoch (version 2) takes one fresh producer id.
async fn end(
    context: &RequestContext<'_>,
    request: &EndTxnRequest,
) -> Result<(i64, i16), ResponseError> {
    let broker = context.broker;
    let client_transaction_version = if context.api_version >= TRANSACTION_VERSION_2_VERSION_MIN {
        state::TRANSACTION_VERSION_EPOCH_BUMP
    } else {
        0
    };
    let mut fresh = None;
    loop {
        let decided =
            txn::transition_for_producer(broker, request.transactional_id.as_str(), |current| {
                let end = state::end_txn(
                    current,
                    request.producer_id.0,
                    request.producer_epoch,
                    request.committed,
                    client_transaction_version,
                    fresh,
                    now_ms(),
                )?;
                let answer = end.answer();
                Ok(match end {
                    state::End::Prepare(next) => (Some(next), Some(answer)),
                    state::End::Done { .. } => (None, Some(answer)),
                    state::End::NeedProducerId => (None, None),
                })
            })
            .await?;
        match decided {
            Some(answer) => return Ok(answer),
            None if fresh.is_none() => {
                let id = broker
                    .next_producer_id()
                    .await
                    .map_err(|error| error.code)?;
                fresh = Some(id);
            }
            // A fresh id is always used when given: a retriable error rather than a loop.
            None => return Err(ResponseError::ConcurrentTransactions),
        }
    }
}
