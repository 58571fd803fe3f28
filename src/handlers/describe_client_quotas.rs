//! DescribeClientQuotas (API 48): the quotas in this node's metadata image that match a
//! filter, as Kafka's `ClientQuotasImage.describe` matches them.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::ResponseError;
use sluice_raft::image::{ClientQuotasImage, EntityName, QuotaEntity};

use super::client_quota_entity::{entity_to_wire, ENTITY_CLIENT_ID, ENTITY_IP, ENTITY_USER};
use super::{str_bytes, RequestContext};

/// Kafka's filter match types.
pub const MATCH_TYPE_EXACT: i8 = 0;
pub const MATCH_TYPE_DEFAULT: i8 = 1;
pub const MATCH_TYPE_SPECIFIED: i8 = 2;

/// How one entity type of the filter must match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TypeMatch {
    Exact(String),
    Default,
    /// Any name, the default included, as long as the entity has this type.
    Specified,
}

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::DESCRIBE_CONFIGS) {
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        response.error_message = Some(super::str_bytes("Cluster authorization failed."));
        return response;
    }
    let filter = match parse_filter(&request) {
        Ok(filter) => filter,
        Err(text) => {
            response.error_code = ResponseError::InvalidRequest.code();
            response.error_message = Some(str_bytes(text));
            return response;
        }
    };
    let image = context.broker.topics().metadata.clone();
    response.entries = Some(describe(&image.client_quotas, &filter, request.strict));
    response
}

fn parse_filter(
    request: &DescribeClientQuotasRequest,
) -> Result<BTreeMap<String, TypeMatch>, String> {
    let mut filter = BTreeMap::new();
    for component in &request.components {
        let entity_type = component.entity_type.as_str();
        if ![ENTITY_USER, ENTITY_CLIENT_ID, ENTITY_IP].contains(&entity_type) {
            return Err(format!("Custom entity type '{entity_type}' not supported"));
        }
        let matching = match (component.match_type, component._match.as_deref()) {
            (MATCH_TYPE_EXACT, Some(name)) => TypeMatch::Exact(name.to_string()),
            (MATCH_TYPE_EXACT, None) => {
                return Err(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null".to_string(),
                )
            }
            (MATCH_TYPE_DEFAULT, None) => TypeMatch::Default,
            (MATCH_TYPE_SPECIFIED, None) => TypeMatch::Specified,
            (MATCH_TYPE_DEFAULT | MATCH_TYPE_SPECIFIED, Some(_)) => {
                return Err(
                    "Request specified a match string with a non-exact match type".to_string(),
                )
            }
            (other, _) => return Err(format!("Unknown match type {other}")),
        };
        if filter.insert(entity_type.to_string(), matching).is_some() {
            return Err(format!(
                "Entity type {entity_type} cannot appear more than once in the filter"
            ));
        }
    }
    if filter.contains_key(ENTITY_IP) && filter.len() > 1 {
        return Err("Filtering by ip and user or client-id is not supported".to_string());
    }
    Ok(filter)
}

fn describe(
    image: &ClientQuotasImage,
    filter: &BTreeMap<String, TypeMatch>,
    strict: bool,
) -> Vec<EntryData> {
    image
        .entities
        .iter()
        .filter(|(entity, _)| matches(entity, filter, strict))
        .map(|(entity, quotas)| {
            let mut entry = EntryData::default();
            entry.entity = entity_to_wire(entity)
                .into_iter()
                .map(|(entity_type, name)| {
                    let mut data = EntityData::default();
                    data.entity_type = str_bytes(entity_type);
                    data.entity_name = name.map(str_bytes);
                    data
                })
                .collect();
            entry.values = quotas
                .iter()
                .map(|(key, value)| {
                    let mut data = ValueData::default();
                    data.key = str_bytes(key.clone());
                    data.value = value.get();
                    data
                })
                .collect();
            entry
        })
        .collect()
}

fn matches(entity: &QuotaEntity, filter: &BTreeMap<String, TypeMatch>, strict: bool) -> bool {
    let components = [
        (ENTITY_USER, &entity.user),
        (ENTITY_CLIENT_ID, &entity.client_id),
    ];
    for (entity_type, name) in components {
        let wanted = filter.get(entity_type);
        let fits = match (wanted, name) {
            (None, None) => true,
            // A type the filter does not name: allowed unless the match is strict.
            (None, Some(_)) => !strict,
            (Some(_), None) => false,
            (Some(TypeMatch::Specified), Some(_)) => true,
            (Some(TypeMatch::Default), Some(name)) => *name == EntityName::Default,
            (Some(TypeMatch::Exact(wanted)), Some(EntityName::Named(name))) => wanted == name,
            (Some(TypeMatch::Exact(_)), Some(EntityName::Default)) => false,
        };
        if !fits {
            return false;
        }
    }
    // An ip filter matches no user / client-id entity; sluice stores no ip quotas.
    !filter.contains_key(ENTITY_IP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_raft::image::{QuotaValue, PRODUCER_BYTE_RATE};

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity { user, client_id }
    }

    fn named(name: &str) -> Option<EntityName> {
        Some(EntityName::Named(name.into()))
    }

    fn filter(components: &[(&str, TypeMatch)]) -> BTreeMap<String, TypeMatch> {
        components
            .iter()
            .map(|(entity_type, matching)| (entity_type.to_string(), matching.clone()))
            .collect()
    }

    #[test]
    fn filters_match_as_kafkas() {
        let slow = entity(None, named("slow"));
        let default_client = entity(None, Some(EntityName::Default));
        let pair = entity(named("alice"), named("slow"));
        let exact_slow = filter(&[(ENTITY_CLIENT_ID, TypeMatch::Exact("slow".into()))]);
        assert!(matches(&slow, &exact_slow, true));
        assert!(matches(&pair, &exact_slow, false));
        assert!(!matches(&pair, &exact_slow, true));
        assert!(!matches(&default_client, &exact_slow, false));
        let default = filter(&[(ENTITY_CLIENT_ID, TypeMatch::Default)]);
        assert!(matches(&default_client, &default, true));
        assert!(!matches(&slow, &default, true));
        let any_client = filter(&[(ENTITY_CLIENT_ID, TypeMatch::Specified)]);
        assert!(matches(&slow, &any_client, true));
        assert!(matches(&default_client, &any_client, true));
        let users = filter(&[(ENTITY_USER, TypeMatch::Specified)]);
        assert!(!matches(&slow, &users, false));
        assert!(matches(&pair, &users, false));
        assert!(matches(&slow, &BTreeMap::new(), false));
        assert!(!matches(&slow, &BTreeMap::new(), true));
    }

    #[test]
    fn describe_lists_matching_entities_with_their_values() {
        let mut image = ClientQuotasImage::default();
        let value = QuotaValue::new(2048.0).unwrap();
        for name in ["slow", "fast"] {
            image
                .entities
                .entry(entity(None, named(name)))
                .or_default()
                .insert(PRODUCER_BYTE_RATE.into(), value);
        }
        let exact = filter(&[(ENTITY_CLIENT_ID, TypeMatch::Exact("slow".into()))]);
        let entries = describe(&image, &exact, false);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].entity[0].entity_type.as_str(), ENTITY_CLIENT_ID);
        assert_eq!(entries[0].entity[0].entity_name.as_deref(), Some("slow"));
        assert_eq!(entries[0].values[0].key.as_str(), PRODUCER_BYTE_RATE);
        assert_eq!(entries[0].values[0].value, 2048.0);
        assert_eq!(describe(&image, &BTreeMap::new(), false).len(), 2);
    }
}
