//! InitProducerId: producer ids for idempotent and transactional producers.
//!
//! Without a transactional id Kafka always issues a fresh producer id with epoch 0, whatever
//! producer id and epoch the request carries (`TransactionCoordinator.handleInitProducerId`):
//! an idempotent producer bumps its epoch itself (KIP-360, client side) and only comes back
//! here when the epoch would overflow. Ids come from durable blocks, so none is ever reused,
//! also not after a restart.
//!
//! With a transactional id the transaction coordinator answers (`crate::txn`): the first
//! call gets a fresh id at epoch 0, each later one bumps the epoch (fencing older instances);
//! an ongoing transaction is aborted first and the call answered CONCURRENT_TRANSACTIONS.
//! A call naming the producer id and epoch the client has (v3+, KIP-360: recovering from an
//! abortable error) bumps that epoch, repeats the answer to a retry of the previous such call
//! and fences any other epoch (`txn::state::init_producer_id`).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};
use crate::broker::now_ms;
use crate::txn::{self, state};

/// A request field's "none" (Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`).
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;
/// Versions below this say INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 4;

pub async fn handle(
    context: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(NO_PRODUCER_ID);
    response.producer_epoch = NO_PRODUCER_EPOCH;
    // Kafka: WRITE on the transactional id, or (idempotent producers) IDEMPOTENT_WRITE on the
    // cluster or WRITE on some topic.
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
    // KafkaApis: an id without an epoch (or the reverse) is malformed.
    let has_id = request.producer_id.0 != NO_PRODUCER_ID;
    let has_epoch = request.producer_epoch != NO_PRODUCER_EPOCH;
    if has_id != has_epoch {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    let granted = match &request.transactional_id {
        None => context
            .broker
            .next_producer_id()
            .await
            .map(|id| (id, 0))
            .map_err(|error| error.code),
        Some(id) => {
            let expected = has_id.then_some((request.producer_id.0, request.producer_epoch));
            transactional(
                context,
                id.as_str(),
                request.transaction_timeout_ms,
                expected,
            )
            .await
        }
    };
    match granted {
        Ok((id, epoch)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = epoch;
        }
        Err(ResponseError::ProducerFenced) if context.api_version < PRODUCER_FENCED_VERSION_MIN => {
            response.error_code = ResponseError::InvalidProducerEpoch.code();
        }
        Err(error) => response.error_code = error.code(),
    }
    response
}

enum Step {
    NeedProducerId,
    Grant(i64, i16),
    Fenced,
}

async fn transactional(
    context: &RequestContext<'_>,
    transactional_id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), ResponseError> {
    if transactional_id.is_empty() || transactional_id.len() > txn::TRANSACTIONAL_ID_BYTES_MAX {
        return Err(ResponseError::InvalidRequest);
    }
    let broker = context.broker;
    if timeout_ms <= 0 || timeout_ms > broker.config.transaction_max_timeout_ms {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let mut fresh = None;
    loop {
        let step = txn::transition(broker, transactional_id, |current| {
            let decided = state::init_producer_id(current, timeout_ms, expected, fresh, now_ms())?;
            Ok(match decided {
                state::Init::NeedProducerId => (None, Step::NeedProducerId),
                state::Init::Grant(metadata) => {
                    let grant = Step::Grant(metadata.producer_id, metadata.producer_epoch);
                    (Some(metadata), grant)
                }
                state::Init::FenceOngoing(metadata) => (Some(metadata), Step::Fenced),
            })
        })
        .await?;
        match step {
            Step::Grant(id, epoch) => return Ok((id, epoch)),
            // The ongoing transaction is being aborted; the client retries.
            Step::Fenced => return Err(ResponseError::ConcurrentTransactions),
            Step::NeedProducerId if fresh.is_none() => {
                let id = broker
                    .next_producer_id()
                    .await
                    .map_err(|error| error.code)?;
                fresh = Some(id);
            }
            // A fresh id is always used when given; asking twice would be a bug, answered
            // as a retriable error rather than a loop.
            Step::NeedProducerId => return Err(ResponseError::ConcurrentTransactions),
        }
    }
}
