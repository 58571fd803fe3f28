//! AlterClientQuotas (API 49): sets and removes quotas per user / client-id entity through the
//! controller (`sluice_raft::controller::alter_client_quotas`), so `kafka-configs --alter
//! --entity-type clients` works.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::ResponseError;
use sluice_raft::controller::{
    AlterClientQuotasRequest as QuotasOperation, ClientQuotaAlteration, Operation,
    OperationResponse, QuotaOp,
};

use super::client_quota_entity::entity_from_wire;
use super::{message, str_bytes, RequestContext};

pub async fn handle(
    context: &RequestContext<'_>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Each entry is checked here first (entity types are wire strings); valid ones go to the
    // controller in one operation and their results are put back in request order.
    let mut outcomes: Vec<Result<usize, (ResponseError, String)>> = Vec::new();
    let mut alterations = Vec::new();
    let allowed = context.authorize_cluster(sluice_raft::image::acls::operation::ALTER_CONFIGS);
    for entry in &request.entries {
        if !allowed {
            let text = "Cluster authorization failed.".to_string();
            outcomes.push(Err((ResponseError::ClusterAuthorizationFailed, text)));
            continue;
        }
        let components = entry
            .entity
            .iter()
            .map(|entity| (entity.entity_type.as_str(), entity.entity_name.as_deref()));
        match entity_from_wire(components) {
            Ok(entity) => {
                outcomes.push(Ok(alterations.len()));
                alterations.push(ClientQuotaAlteration {
                    entity,
                    ops: entry.ops.iter().map(quota_op).collect(),
                });
            }
            Err(text) => outcomes.push(Err((ResponseError::InvalidRequest, text))),
        }
    }
    let results = if alterations.is_empty() {
        Ok(Vec::new())
    } else {
        let operation = Operation::AlterClientQuotas(QuotasOperation {
            entries: alterations,
            validate_only: request.validate_only,
        });
        match context.broker.submit(operation).await {
            Ok(OperationResponse::AlterClientQuotas(results)) => Ok(results),
            Ok(other) => {
                tracing::error!(?other, "controller answered another operation");
                Err((ResponseError::UnknownServerError, None))
            }
            Err(error) => Err((error.code, message(&error))),
        }
    };
    let mut response = AlterClientQuotasResponse::default();
    for (entry, outcome) in request.entries.into_iter().zip(outcomes) {
        let mut data = EntryData::default();
        data.entity = entry
            .entity
            .into_iter()
            .map(|wire| {
                let mut entity = EntityData::default();
                entity.entity_type = wire.entity_type;
                entity.entity_name = wire.entity_name;
                entity
            })
            .collect();
        match (outcome, &results) {
            (Err((code, text)), _) => {
                data.error_code = code.code();
                data.error_message = Some(str_bytes(text));
            }
            (Ok(index), Ok(results)) => match results.get(index) {
                Some(result) => {
                    data.error_code = result.error_code;
                    data.error_message = result.error_message.clone().map(str_bytes);
                }
                None => data.error_code = ResponseError::UnknownServerError.code(),
            },
            (Ok(_), Err((code, text))) => {
                data.error_code = code.code();
                data.error_message = text.clone();
            }
        }
        response.entries.push(data);
    }
    response
}

fn quota_op(op: &kafka_protocol::messages::alter_client_quotas_request::OpData) -> QuotaOp {
    let key = op.key.to_string();
    if op.remove {
        QuotaOp::Remove { key }
    } else {
        QuotaOp::Set {
            key,
            value: op.value,
        }
    }
}
