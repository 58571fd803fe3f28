//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::{operation, resource_type};

use super::authz::GROUP_OPERATIONS_ALL;
use super::{str_bytes, RequestContext, AUTHORIZED_OPERATIONS_OMITTED};

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = context.api_version;
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut entry = DescribedGroup::default();
        entry.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        let described = if context.authorize_group(operation::DESCRIBE, &group_id.0) {
            context.broker.groups.describe(&group_id.0)
        } else {
            Err(ResponseError::GroupAuthorizationFailed)
        };
        match described {
            Ok(description) => {
                entry.group_state = str_bytes(description.state);
                entry.protocol_type = str_bytes(description.protocol_type);
                entry.protocol_data = str_bytes(description.protocol_name);
                entry.members = description
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut described = DescribedGroupMember::default();
                        described.member_id = str_bytes(member.member_id);
                        if version >= 4 {
                            described.group_instance_id = member.group_instance_id.map(str_bytes);
                        }
                        described.client_id = str_bytes(member.client_id);
                        described.client_host = str_bytes(member.client_host);
                        described.member_metadata = member.metadata;
                        described.member_assignment = member.assignment;
                        described
                    })
                    .collect();
                if version >= 3 && request.include_authorized_operations {
                    entry.authorized_operations = context.authorized_operations(
                        resource_type::GROUP,
                        &group_id.0,
                        GROUP_OPERATIONS_ALL,
                    );
                }
            }
            // Before v6 Kafka describes an unknown group as Dead, without an error.
            Err(ResponseError::GroupIdNotFound) if version < 6 => {
                entry.group_state = str_bytes("Dead");
            }
            Err(error) => {
                entry.error_code = error.code();
                entry.group_state = str_bytes("Dead");
                if version >= 6 {
                    let message = if error == ResponseError::GroupIdNotFound {
                        // Kafka 4.x's coordinator words it this way; admin tools print it.
                        format!("Group {} not found.", group_id.0.as_str())
                    } else {
                        format!("Group {} not described: {error}", group_id.0.as_str())
                    };
                    entry.error_message = Some(str_bytes(message));
                }
            }
        }
        entry.group_id = group_id;
        response.groups.push(entry);
    }
    response
}
