//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::RequestContext;
use crate::group::outcome::MemberRef;

pub fn handle(context: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        let mut response = HeartbeatResponse::default();
        response.error_code = GROUP_AUTHORIZATION_FAILED;
        return response;
    }
    let member = MemberRef {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
    };
    let result = context
        .broker
        .groups
        .heartbeat(&request.group_id.0, &member);
    let mut response = HeartbeatResponse::default();
    response.error_code = result.err().map_or(0, |error| error.code());
    response
}
