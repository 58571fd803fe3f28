//! JoinGroup: a member enters the group (or rejoins for a rebalance); the answer waits until
//! the group's join phase completes.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::{str_bytes, RequestContext};
use crate::group::outcome::{JoinOutcome, JoinRequest};

pub async fn handle(context: &RequestContext<'_>, request: JoinGroupRequest) -> JoinGroupResponse {
    let version = context.api_version;
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        let mut response = JoinGroupResponse::default();
        response.error_code = GROUP_AUTHORIZATION_FAILED;
        response.generation_id = -1;
        if version < 7 {
            response.protocol_name = Some(str_bytes(""));
        }
        return response;
    }
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: context.client_id.clone().unwrap_or_default(),
        client_host: client_host(context),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout for it.
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        skip_assignment_supported: version >= 9,
    };
    let group_id = request.group_id.0.to_string();
    let outcome = context.broker.groups.join(&group_id, join).await;
    response(version, outcome)
}

/// How Kafka shows a member's host: `/` and the peer address.
pub fn client_host(context: &RequestContext<'_>) -> String {
    format!("/{}", context.peer.ip())
}

fn response(version: i16, outcome: JoinOutcome) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = outcome.error.map_or(0, |error| error.code());
    response.generation_id = outcome.generation_id;
    if version >= 7 {
        response.protocol_type = outcome.protocol_type.map(str_bytes);
        response.protocol_name = outcome.protocol_name.map(str_bytes);
    } else {
        // Not nullable before v7.
        response.protocol_name = Some(str_bytes(outcome.protocol_name.unwrap_or_default()));
    }
    response.leader = str_bytes(outcome.leader_id);
    response.member_id = str_bytes(outcome.member_id);
    response.skip_assignment = version >= 9 && outcome.skip_assignment;
    response.members = outcome
        .members
        .into_iter()
        .map(|member| {
            let mut entry = JoinGroupResponseMember::default();
            entry.member_id = str_bytes(member.member_id);
            if version >= 5 {
                entry.group_instance_id = member.group_instance_id.map(str_bytes);
            }
            entry.metadata = member.metadata;
            entry
        })
        .collect();
    response
}
