//! UnregisterBroker (`kafka-cluster unregister --id N`): removes a decommissioned broker from
//! the cluster, and from the metadata quorum's voters when it was one. Only a broker that is
//! fenced (stopped, or drained and shut down) can go: a live one would register again.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::ResponseError;
use sluice_raft::controller::{Operation, OperationResponse};

use super::{str_bytes, RequestContext};
use crate::broker::ApiError;

pub async fn handle(
    context: &RequestContext<'_>,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let mut response = UnregisterBrokerResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::ALTER) {
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        return response;
    }
    if let Err(error) = unregister(context, request.broker_id.0).await {
        response.error_code = error.code.code();
        response.error_message = error.message.map(str_bytes);
    }
    response
}

async fn unregister(context: &RequestContext<'_>, broker_id: i32) -> Result<(), ApiError> {
    let broker = context.broker;
    let node_id = u64::try_from(broker_id)
        .map_err(|_| ApiError::new(ResponseError::InvalidRequest, "negative broker id"))?;
    let image = broker.quorum.image();
    let registration = image.cluster.broker(broker_id);
    let is_voter = broker.quorum.is_voter(node_id);
    if registration.is_none() && !is_voter {
        return Err(ApiError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker ID {broker_id} is not registered"),
        ));
    }
    if registration.is_some_and(|r| !r.fenced) {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            format!("broker {broker_id} is active: drain it and stop it first"),
        ));
    }
    if registration.is_some() {
        match broker
            .submit(Operation::UnregisterBroker { broker_id })
            .await?
        {
            OperationResponse::UnregisterBroker(answer) if answer.error_code == 0 => {}
            OperationResponse::UnregisterBroker(answer) => {
                let code = ResponseError::try_from_code(answer.error_code)
                    .unwrap_or(ResponseError::UnknownServerError);
                return Err(ApiError::code_only(code));
            }
            _ => return Err(ApiError::code_only(ResponseError::UnknownServerError)),
        }
    }
    if is_voter {
        broker
            .quorum
            .remove_voter(node_id)
            .await
            .map_err(|error| ApiError::new(ResponseError::UnknownServerError, error.to_string()))?;
        tracing::info!(broker_id, "removed from the metadata quorum's voters");
    }
    Ok(())
}
