//! DescribeAcls (29), CreateAcls (30) and DeleteAcls (31), answered as Kafka answers them:
//! DESCRIBE on the cluster to list, ALTER on the cluster to change (else
//! CLUSTER_AUTHORIZATION_FAILED), SECURITY_DISABLED when no authoriser is configured. Changes
//! are controller operations; DescribeAcls reads this node's current image.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use sluice_raft::controller::{self, Operation, OperationResponse};
use sluice_raft::image::acls::operation;
use sluice_raft::image::{AclBinding, AclFilter};

use super::authz::{CLUSTER_AUTHORIZATION_FAILED, SECURITY_DISABLED};
use super::{str_bytes, RequestContext};

/// Most creations or delete filters served from one request.
const ACLS_PER_REQUEST_MAX: usize = 1000;
const INVALID_REQUEST: i16 = 42;
const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Why a change cannot be made at all: no authoriser, or the caller lacks `wanted` on the
/// cluster. `None`: go ahead.
fn refusal(context: &RequestContext<'_>, wanted: i8) -> Option<(i16, &'static str)> {
    if context.authorizer.is_none() {
        Some((SECURITY_DISABLED, NO_AUTHORIZER))
    } else if !context.authorize_cluster(wanted) {
        Some((
            CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

fn filter_of(
    resource_type: i8,
    name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission_type: i8,
) -> AclFilter {
    AclFilter {
        resource_type,
        resource_name: name.map(|n| n.to_string()),
        pattern_type,
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation,
        permission_type,
    }
}

pub fn describe(
    context: &RequestContext<'_>,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    if let Some((code, text)) = refusal(context, operation::DESCRIBE) {
        response.error_code = code;
        response.error_message = Some(str_bytes(text));
        return response;
    }
    let filter = filter_of(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    );
    if let Some(reason) = filter.invalid_reason() {
        response.error_code = INVALID_REQUEST;
        response.error_message = Some(str_bytes(reason));
        return response;
    }
    let image = context.broker.topics();
    let mut matched: Vec<&AclBinding> = image
        .metadata
        .acls
        .matching(&filter)
        .map(|(_, acl)| acl)
        .collect();
    matched.sort();
    for acl in matched {
        let same_resource = |resource: &DescribeAclsResource| {
            resource.resource_type == acl.resource_type
                && resource.pattern_type == acl.pattern_type
                && resource.resource_name.as_str() == acl.resource_name
        };
        if !response.resources.last().is_some_and(same_resource) {
            let mut resource = DescribeAclsResource::default();
            resource.resource_type = acl.resource_type;
            resource.resource_name = str_bytes(acl.resource_name.clone());
            resource.pattern_type = acl.pattern_type;
            response.resources.push(resource);
        }
        let mut description = AclDescription::default();
        description.principal = str_bytes(acl.principal.clone());
        description.host = str_bytes(acl.host.clone());
        description.operation = acl.operation;
        description.permission_type = acl.permission_type;
        if let Some(resource) = response.resources.last_mut() {
            resource.acls.push(description);
        }
    }
    response
}

fn creation_result(code: i16, text: Option<String>) -> AclCreationResult {
    let mut result = AclCreationResult::default();
    result.error_code = code;
    result.error_message = text.map(str_bytes);
    result
}

pub async fn create(
    context: &RequestContext<'_>,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let mut response = CreateAclsResponse::default();
    let count = request.creations.len();
    if let Some((code, text)) = refusal(context, operation::ALTER) {
        response.results = (0..count)
            .map(|_| creation_result(code, Some(text.to_string())))
            .collect();
        return response;
    }
    let creations: Vec<AclBinding> = request
        .creations
        .iter()
        .take(ACLS_PER_REQUEST_MAX)
        .map(|creation| AclBinding {
            resource_type: creation.resource_type,
            resource_name: creation.resource_name.to_string(),
            pattern_type: creation.resource_pattern_type,
            principal: creation.principal.to_string(),
            host: creation.host.to_string(),
            operation: creation.operation,
            permission_type: creation.permission_type,
        })
        .collect();
    let served = creations.len();
    let operation = Operation::CreateAcls(controller::CreateAclsRequest { creations });
    match context.broker.submit(operation).await {
        Ok(OperationResponse::CreateAcls(results)) => {
            response.results = results
                .into_iter()
                .map(|r| creation_result(r.error_code, r.error_message))
                .collect();
            tracing::info!(principal = %context.principal, peer = %context.peer, served, "ACLs created");
        }
        Ok(other) => {
            tracing::error!(?other, "controller answered another operation");
            response.results = (0..served).map(|_| creation_result(-1, None)).collect();
        }
        Err(error) => {
            response.results = (0..served)
                .map(|_| creation_result(error.code.code(), error.message.clone()))
                .collect();
        }
    }
    let over = count - served;
    response.results.extend(
        (0..over).map(|_| creation_result(INVALID_REQUEST, Some("too many creations".into()))),
    );
    response
}

fn filter_result(code: i16, text: Option<String>) -> DeleteAclsFilterResult {
    let mut result = DeleteAclsFilterResult::default();
    result.error_code = code;
    result.error_message = text.map(str_bytes);
    result
}

fn matching_acl(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    let mut matching = DeleteAclsMatchingAcl::default();
    matching.resource_type = acl.resource_type;
    matching.resource_name = str_bytes(acl.resource_name.clone());
    matching.pattern_type = acl.pattern_type;
    matching.principal = str_bytes(acl.principal.clone());
    matching.host = str_bytes(acl.host.clone());
    matching.operation = acl.operation;
    matching.permission_type = acl.permission_type;
    matching
}

pub async fn delete(
    context: &RequestContext<'_>,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let mut response = DeleteAclsResponse::default();
    let count = request.filters.len();
    if let Some((code, text)) = refusal(context, operation::ALTER) {
        response.filter_results = (0..count)
            .map(|_| filter_result(code, Some(text.to_string())))
            .collect();
        return response;
    }
    let filters: Vec<AclFilter> = request
        .filters
        .iter()
        .take(ACLS_PER_REQUEST_MAX)
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let served = filters.len();
    let operation = Operation::DeleteAcls(controller::DeleteAclsRequest { filters });
    match context.broker.submit(operation).await {
        Ok(OperationResponse::DeleteAcls(results)) => {
            for outcome in results {
                let mut result = filter_result(outcome.error_code, outcome.error_message);
                result.matching_acls = outcome.deleted.iter().map(matching_acl).collect();
                response.filter_results.push(result);
            }
            tracing::info!(principal = %context.principal, peer = %context.peer, served, "ACLs deleted");
        }
        Ok(other) => {
            tracing::error!(?other, "controller answered another operation");
            response.filter_results = (0..served).map(|_| filter_result(-1, None)).collect();
        }
        Err(error) => {
            response.filter_results = (0..served)
                .map(|_| filter_result(error.code.code(), error.message.clone()))
                .collect();
        }
    }
    let over = count - served;
    response
        .filter_results
        .extend((0..over).map(|_| filter_result(INVALID_REQUEST, Some("too many filters".into()))));
    response
}
