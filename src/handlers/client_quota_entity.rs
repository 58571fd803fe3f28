//! Kafka's wire form of client-quota entities: a list of (entity type, name or null = default).

use sluice_raft::image::{EntityName, QuotaEntity};

pub const ENTITY_USER: &str = "user";
pub const ENTITY_CLIENT_ID: &str = "client-id";
/// Kafka's IP entity (connection_creation_rate); sluice does not store IP quotas.
pub const ENTITY_IP: &str = "ip";

/// Builds an entity from `(type, name)` pairs, or Kafka's INVALID_REQUEST message.
pub fn entity_from_wire<'a>(
    components: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<QuotaEntity, String> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
    };
    for (entity_type, name) in components {
        let slot = match entity_type {
            ENTITY_USER => &mut entity.user,
            ENTITY_CLIENT_ID => &mut entity.client_id,
            ENTITY_IP => return Err("IP client quotas are not supported".to_string()),
            other => return Err(format!("Unhandled client quota entity type: {other}")),
        };
        if slot.is_some() {
            return Err(format!(
                "Duplicate {entity_type} entity in client quota entity"
            ));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if !entity.is_valid() {
        return Err("Invalid empty client quota entity".to_string());
    }
    Ok(entity)
}

/// `(type, name or None for the default)` pairs of an entity, user first.
pub fn entity_to_wire(entity: &QuotaEntity) -> Vec<(&'static str, Option<&str>)> {
    let mut components = Vec::with_capacity(2);
    if let Some(user) = &entity.user {
        components.push((ENTITY_USER, user.to_wire()));
    }
    if let Some(client_id) = &entity.client_id {
        components.push((ENTITY_CLIENT_ID, client_id.to_wire()));
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_round_trip_and_bad_ones_are_refused() {
        let pair = [(ENTITY_USER, None), (ENTITY_CLIENT_ID, Some("slow"))];
        let entity = entity_from_wire(pair.into_iter()).unwrap();
        assert_eq!(entity.user, Some(EntityName::Default));
        assert_eq!(entity.client_id, Some(EntityName::Named("slow".into())));
        assert_eq!(entity_to_wire(&entity), pair.to_vec());
        let bad: [&[(&str, Option<&str>)]; 4] = [
            &[],
            &[("users", Some("a"))],
            &[(ENTITY_CLIENT_ID, Some("a")), (ENTITY_CLIENT_ID, Some("b"))],
            &[(ENTITY_IP, Some("127.0.0.1"))],
        ];
        for components in bad {
            assert!(
                entity_from_wire(components.iter().copied()).is_err(),
                "{components:?}"
            );
        }
    }
}
