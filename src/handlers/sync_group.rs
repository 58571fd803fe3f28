//! SyncGroup: the leader hands in assignments, every member gets its own (followers wait for
//! the leader's).

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::{str_bytes, RequestContext};
use crate::group::outcome::SyncRequest;

pub async fn handle(context: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    let version = context.api_version;
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        let mut response = SyncGroupResponse::default();
        response.error_code = GROUP_AUTHORIZATION_FAILED;
        return response;
    }
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let group_id = request.group_id.0.to_string();
    let outcome = context.broker.groups.sync(&group_id, sync).await;
    let mut response = SyncGroupResponse::default();
    response.error_code = outcome.error.map_or(0, |error| error.code());
    if version >= 5 {
        response.protocol_type = outcome.protocol_type.map(str_bytes);
        response.protocol_name = outcome.protocol_name.map(str_bytes);
    }
    response.assignment = outcome.assignment;
    response
}
