//! CreateAcls and DeleteAcls, as Kafka's `AclControlManager`: each creation is validated on
//! its own (a bad one fails alone), creating an entry that exists already is a success that
//! writes nothing, and each delete filter removes every entry it matches (an entry matched by
//! two filters is removed, and reported, once).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{error_code, ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE};
use crate::image::acls::{operation, pattern_type, permission, resource_type};
use crate::image::{AclBinding, AclFilter, MetadataImage, MetadataRecord, STRING_BYTES_MAX};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreateAclsRequest {
    pub creations: Vec<AclBinding>,
}

/// One creation's outcome, in request order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclCreationResult {
    pub error_code: i16,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeleteAclsRequest {
    pub filters: Vec<AclFilter>,
}

/// One filter's outcome, in request order: the entries it removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclDeletionResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub deleted: Vec<AclBinding>,
}

/// Why Kafka would refuse to store `acl` (`None`: it is valid).
pub fn invalid_acl_reason(acl: &AclBinding) -> Option<&'static str> {
    if !(resource_type::TOPIC..=resource_type::USER).contains(&acl.resource_type) {
        return Some("invalid resource type");
    }
    if acl.pattern_type != pattern_type::LITERAL && acl.pattern_type != pattern_type::PREFIXED {
        return Some("invalid pattern type: must be LITERAL or PREFIXED");
    }
    if !(operation::ALL..=operation::TWO_PHASE_COMMIT).contains(&acl.operation) {
        return Some("invalid operation");
    }
    if acl.permission_type != permission::ALLOW && acl.permission_type != permission::DENY {
        return Some("invalid permission type");
    }
    if acl.resource_name.is_empty() {
        return Some("resource name should not be empty");
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => return Some("principal must be of the form Type:name"),
    }
    if acl.host.is_empty() {
        return Some("host should not be empty");
    }
    let longest = [&acl.resource_name, &acl.principal, &acl.host]
        .iter()
        .map(|text| text.len())
        .max()
        .unwrap_or(0);
    if longest > STRING_BYTES_MAX {
        return Some("name too long");
    }
    None
}

pub fn create_acls(
    image: &MetadataImage,
    request: &CreateAclsRequest,
    new_id: &mut dyn FnMut() -> Uuid,
) -> ControllerResult<Vec<AclCreationResult>> {
    let mut budget = RecordBudget::new();
    let mut created = BTreeSet::new();
    let mut results = Vec::with_capacity(request.creations.len());
    for acl in &request.creations {
        let refusal = |code: i16, message: &str| AclCreationResult {
            error_code: code,
            error_message: Some(message.to_string()),
        };
        let result = if let Some(reason) = invalid_acl_reason(acl) {
            refusal(error_code::INVALID_REQUEST, reason)
        } else if image.acls.find(acl).is_some() || created.contains(acl) {
            success()
        } else if !budget.fits(1) {
            refusal(error_code::INVALID_REQUEST, BUDGET_EXCEEDED_MESSAGE)
        } else {
            created.insert(acl.clone());
            budget.extend(vec![MetadataRecord::AccessControlEntry {
                id: new_id(),
                acl: acl.clone(),
            }]);
            success()
        };
        results.push(result);
    }
    ControllerResult::new(budget.records, results)
}

fn success() -> AclCreationResult {
    AclCreationResult {
        error_code: error_code::NONE,
        error_message: None,
    }
}

pub fn delete_acls(
    image: &MetadataImage,
    request: &DeleteAclsRequest,
) -> ControllerResult<Vec<AclDeletionResult>> {
    let mut budget = RecordBudget::new();
    let mut removed = BTreeSet::new();
    let mut results = Vec::with_capacity(request.filters.len());
    for filter in &request.filters {
        if let Some(reason) = filter.invalid_reason() {
            results.push(AclDeletionResult {
                error_code: error_code::INVALID_REQUEST,
                error_message: Some(reason.to_string()),
                deleted: Vec::new(),
            });
            continue;
        }
        let matched: Vec<_> = image
            .acls
            .matching(filter)
            .filter(|(id, _)| !removed.contains(*id))
            .collect();
        if !budget.fits(matched.len()) {
            results.push(AclDeletionResult {
                error_code: error_code::INVALID_REQUEST,
                error_message: Some(BUDGET_EXCEEDED_MESSAGE.to_string()),
                deleted: Vec::new(),
            });
            continue;
        }
        let mut deleted = Vec::with_capacity(matched.len());
        for (id, acl) in matched {
            removed.insert(*id);
            budget.extend(vec![MetadataRecord::RemoveAccessControlEntry { id: *id }]);
            deleted.push(acl.clone());
        }
        results.push(AclDeletionResult {
            error_code: error_code::NONE,
            error_message: None,
            deleted,
        });
    }
    ControllerResult::new(budget.records, results)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::image::acls::WILDCARD;
    use crate::image::MetadataDelta;

    fn acl(name: &str, principal: &str, operation: i8) -> AclBinding {
        AclBinding {
            resource_type: resource_type::TOPIC,
            resource_name: name.to_string(),
            pattern_type: pattern_type::LITERAL,
            principal: principal.to_string(),
            host: WILDCARD.to_string(),
            operation,
            permission_type: permission::ALLOW,
        }
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        for record in records {
            delta.replay(record).expect("replays");
        }
        delta.apply()
    }

    #[test]
    fn create_validates_each_entry_and_skips_existing_ones() {
        let mut next = 0u128;
        let mut new_id = || {
            next += 1;
            Uuid::from_u128(next)
        };
        let read = acl("orders", "User:alice", operation::READ);
        let mut bad_principal = read.clone();
        bad_principal.principal = "alice".into();
        let mut bad_pattern = read.clone();
        bad_pattern.pattern_type = pattern_type::MATCH;
        let mut any_operation = read.clone();
        any_operation.operation = operation::ANY;
        let request = CreateAclsRequest {
            creations: vec![
                read.clone(),
                bad_principal,
                read.clone(),
                bad_pattern,
                any_operation,
            ],
        };
        let result = create_acls(&MetadataImage::empty(), &request, &mut new_id);
        let codes: Vec<i16> = result.response.iter().map(|r| r.error_code).collect();
        let invalid = error_code::INVALID_REQUEST;
        assert_eq!(codes, [0, invalid, 0, invalid, invalid]);
        assert_eq!(result.records.len(), 1, "the duplicate is written once");
        let image = apply(&MetadataImage::empty(), &result.records);
        let again = create_acls(
            &image,
            &CreateAclsRequest {
                creations: vec![read],
            },
            &mut new_id,
        );
        assert_eq!(again.response, [success()]);
        assert!(
            again.records.is_empty(),
            "an existing entry is not written again"
        );
    }

    #[test]
    fn delete_removes_each_match_once() {
        let mut next = 0u128;
        let mut new_id = || {
            next += 1;
            Uuid::from_u128(next)
        };
        let creations = vec![
            acl("orders", "User:alice", operation::READ),
            acl("orders", "User:bob", operation::WRITE),
            acl("payments", "User:alice", operation::READ),
        ];
        let created = create_acls(
            &MetadataImage::empty(),
            &CreateAclsRequest { creations },
            &mut new_id,
        );
        let image = apply(&MetadataImage::empty(), &created.records);
        let mut alice = AclFilter::any();
        alice.principal = Some("User:alice".into());
        let mut orders = AclFilter::any();
        orders.resource_name = Some("orders".into());
        let mut bad = AclFilter::any();
        bad.permission_type = permission::UNKNOWN;
        let request = DeleteAclsRequest {
            filters: vec![alice, orders, bad],
        };
        let result = delete_acls(&image, &request);
        let deleted: Vec<Vec<(&str, &str)>> = result
            .response
            .iter()
            .map(|r| {
                r.deleted
                    .iter()
                    .map(|a| (a.resource_name.as_str(), a.principal.as_str()))
                    .collect()
            })
            .collect();
        assert_eq!(
            deleted,
            [
                vec![("orders", "User:alice"), ("payments", "User:alice")],
                vec![("orders", "User:bob")],
                vec![],
            ]
        );
        assert_eq!(result.response[2].error_code, error_code::INVALID_REQUEST);
        let image = apply(&image, &result.records);
        assert!(image.acls.by_id.is_empty());
    }
}
