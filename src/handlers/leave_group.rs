//! LeaveGroup: one member (v0-2) or a batch of members (v3+, KIP-345) leave at once.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::{str_bytes, RequestContext};
use crate::group::outcome::LeavingMember;

pub fn handle(context: &RequestContext<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let version = context.api_version;
    if !context.authorize_group(operation::READ, &request.group_id.0) {
        let mut response = LeaveGroupResponse::default();
        response.error_code = GROUP_AUTHORIZATION_FAILED;
        return response;
    }
    let leaving: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let result = context.broker.groups.leave(&request.group_id.0, &leaving);
    let mut response = LeaveGroupResponse::default();
    match result {
        Err(error) => response.error_code = error.code(),
        Ok(results) if version < 3 => {
            // One member, reported at the top level.
            let first_error = results.into_iter().find_map(Result::err);
            response.error_code = first_error.map_or(0, |error| error.code());
        }
        Ok(results) => {
            response.members = leaving
                .into_iter()
                .zip(results)
                .map(|(member, result)| {
                    let mut entry = MemberResponse::default();
                    entry.member_id = str_bytes(member.member_id);
                    entry.group_instance_id = member.group_instance_id.map(str_bytes);
                    entry.error_code = result.err().map_or(0, |error| error.code());
                    entry
                })
                .collect();
        }
    }
    response
}
