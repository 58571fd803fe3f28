//! AddOffsetsToTxn: a group's `__consumer_offsets` partition joins the producer's
//! transaction, so that its TxnOffsetCommits get the transaction's marker.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use kafka_protocol::ResponseError;

use super::{authz, RequestContext};
use crate::broker::now_ms;
use crate::group::{offsets_partition_for, OFFSETS_TOPIC};
use crate::offsets_topic;
use crate::txn::{self, state};

/// Versions below this say INVALID_PRODUCER_EPOCH where newer ones say PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION_MIN: i16 = 2;

pub async fn handle(
    context: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let result = add(context, &request).await;
    response.error_code = match result {
        Ok(()) => 0,
        Err(ResponseError::ProducerFenced) if context.api_version < PRODUCER_FENCED_VERSION_MIN => {
            ResponseError::InvalidProducerEpoch.code()
        }
        Err(error) => error.code(),
    };
    response
}

async fn add(
    context: &RequestContext<'_>,
    request: &AddOffsetsToTxnRequest,
) -> Result<(), ResponseError> {
    let transactional_id = request.transactional_id.as_str();
    if transactional_id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let group = request.group_id.as_str();
    if group.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    // Kafka: WRITE on the transactional id, READ on the group.
    if !authz::authorize_transactional_id(context, transactional_id) {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !context.authorize_group(sluice_raft::image::acls::operation::READ, group) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let created = Box::pin(offsets_topic::ensure_created(context.broker));
    let topic = created
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
    let count = i32::try_from(topic.partitions.len())
        .ok()
        .filter(|count| *count > 0)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = (
        OFFSETS_TOPIC.to_string(),
        offsets_partition_for(group, count),
    );
    let producer_id = request.producer_id.0;
    let producer_epoch = request.producer_epoch;
    txn::transition_for_producer(context.broker, transactional_id, |current| {
        let next = state::add_partitions(
            current,
            producer_id,
            producer_epoch,
            std::slice::from_ref(&partition),
            0,
            now_ms(),
        )?;
        Ok((next, ()))
    })
    .await
}
