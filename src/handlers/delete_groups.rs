//! DeleteGroups: empty groups go, with their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;

pub async fn handle(
    context: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let result = context.broker.groups.delete(&group_id.0).await;
        let mut entry = DeletableGroupResult::default();
        entry.group_id = group_id;
        entry.error_code = result.err().map_or(0, |error| error.code());
        response.results.push(entry);
    }
    response
}
