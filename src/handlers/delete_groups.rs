//! DeleteGroups: empty groups go, with their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use sluice_raft::image::acls::operation;

use super::authz::GROUP_AUTHORIZATION_FAILED;
use super::RequestContext;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut entry = DeletableGroupResult::default();
        entry.error_code = if context.authorize_group(operation::DELETE, &group_id.0) {
            let result = context.broker.groups.delete(&group_id.0).await;
            result.err().map_or(0, |error| error.code())
        } else {
            GROUP_AUTHORIZATION_FAILED
        };
        entry.group_id = group_id;
        response.results.push(entry);
    }
    response
}
