//! ListGroups: every group, optionally filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use sluice_raft::image::acls::operation;

use super::{str_bytes, RequestContext};

pub fn handle(context: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    let version = context.api_version;
    // Kafka matches filters case-insensitively; an empty filter matches everything.
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let mut response = ListGroupsResponse::default();
    // Kafka: DESCRIBE on the cluster lists every group, else only the groups the principal
    // may describe.
    let all = context.authorize_cluster(operation::DESCRIBE);
    for listing in context.broker.groups.list() {
        if !all && !context.authorize_group(operation::DESCRIBE, &listing.group_id) {
            continue;
        }
        let state_matches =
            states.is_empty() || states.contains(&listing.state.to_ascii_lowercase());
        let type_matches = types.is_empty() || types.contains(&listing.group_type.to_string());
        if !(state_matches && type_matches) {
            continue;
        }
        let mut entry = ListedGroup::default();
        entry.group_id = GroupId(str_bytes(listing.group_id));
        entry.protocol_type = str_bytes(listing.protocol_type);
        if version >= 4 {
            entry.group_state = str_bytes(listing.state);
        }
        if version >= 5 {
            entry.group_type = str_bytes(listing.group_type);
        }
        response.groups.push(entry);
    }
    response
}
