//! The client-quotas sub-image: Kafka's quota configs per user / client-id entity.

use std::collections::BTreeMap;

/// Kafka's quota keys that sluice stores. Byte rates are bytes/s; `request_percentage` is a
/// share of one request-handler thread in percent.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const QUOTA_KEYS: [&str; 3] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE];

/// Whether a quota key holds a whole number (Kafka's LONG-typed keys).
pub fn quota_key_is_integer(key: &str) -> bool {
    key == PRODUCER_BYTE_RATE || key == CONSUMER_BYTE_RATE
}

/// One component of an entity: a named user or client-id, or the default (`<default>`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum EntityName {
    Default,
    Named(String),
}

impl EntityName {
    /// Kafka's wire form: `None` is the default entity.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        match name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name.to_string()),
        }
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Named(name) => Some(name),
        }
    }
}

/// A quota entity: a user, a client-id, or a user and client-id pair. At least one is set
/// (an invariant checked by the controller and by replay).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

impl QuotaEntity {
    pub fn client_id(name: EntityName) -> QuotaEntity {
        QuotaEntity {
            user: None,
            client_id: Some(name),
        }
    }

    pub fn is_valid(&self) -> bool {
        self.user.is_some() || self.client_id.is_some()
    }
}

/// A quota value: a finite positive `f64` as Kafka's, kept as its bits so records stay `Eq`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct QuotaValue(u64);

impl QuotaValue {
    /// `None` unless `value` is finite and positive.
    pub fn new(value: f64) -> Option<QuotaValue> {
        (value.is_finite() && value > 0.0).then(|| QuotaValue(value.to_bits()))
    }

    pub fn from_bits(bits: u64) -> QuotaValue {
        QuotaValue(bits)
    }

    pub fn to_bits(self) -> u64 {
        self.0
    }

    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

/// Every entity's quotas; an entity with none is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientQuotasImage {
    pub entities: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

impl ClientQuotasImage {
    pub fn quotas(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, QuotaValue>> {
        self.entities.get(entity)
    }

    /// The quota `key` that applies to a request from `user` with `client_id`, in Kafka's
    /// precedence order (the first entity that sets the key wins), and the entity it came
    /// from: the bucket that request is charged to.
    pub fn applying(&self, user: &str, client_id: &str, key: &str) -> Option<(QuotaEntity, f64)> {
        let named = |name: &str| Some(EntityName::Named(name.to_string()));
        let precedence = [
            (named(user), named(client_id)),
            (named(user), Some(EntityName::Default)),
            (named(user), None),
            (Some(EntityName::Default), named(client_id)),
            (Some(EntityName::Default), Some(EntityName::Default)),
            (Some(EntityName::Default), None),
            (None, named(client_id)),
            (None, Some(EntityName::Default)),
        ];
        precedence.into_iter().find_map(|(user, client_id)| {
            let entity = QuotaEntity { user, client_id };
            let value = self.entities.get(&entity)?.get(key)?;
            Some((entity, value.get()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entries: &[(QuotaEntity, f64)]) -> ClientQuotasImage {
        let mut image = ClientQuotasImage::default();
        for (entity, value) in entries {
            image.entities.entry(entity.clone()).or_default().insert(
                PRODUCER_BYTE_RATE.to_string(),
                QuotaValue::new(*value).unwrap(),
            );
        }
        image
    }

    #[test]
    fn precedence_is_kafkas() {
        let named = |name: &str| Some(EntityName::Named(name.to_string()));
        let client_slow = QuotaEntity::client_id(EntityName::Named("slow".into()));
        let client_default = QuotaEntity::client_id(EntityName::Default);
        let user_alice = QuotaEntity {
            user: named("alice"),
            client_id: None,
        };
        let pair = QuotaEntity {
            user: named("alice"),
            client_id: named("slow"),
        };
        let all = image(&[
            (client_slow.clone(), 1.0),
            (client_default.clone(), 2.0),
            (user_alice.clone(), 3.0),
            (pair.clone(), 4.0),
        ]);
        let key = PRODUCER_BYTE_RATE;
        assert_eq!(all.applying("alice", "slow", key), Some((pair, 4.0)));
        assert_eq!(all.applying("alice", "other", key), Some((user_alice, 3.0)));
        assert_eq!(all.applying("bob", "slow", key), Some((client_slow, 1.0)));
        assert_eq!(all.applying("bob", "x", key), Some((client_default, 2.0)));
        assert_eq!(all.applying("bob", "x", CONSUMER_BYTE_RATE), None);
        assert_eq!(ClientQuotasImage::default().applying("a", "b", key), None);
    }

    #[test]
    fn values_must_be_finite_and_positive() {
        assert_eq!(QuotaValue::new(1024.0).map(QuotaValue::get), Some(1024.0));
        assert_eq!(QuotaValue::new(0.0), None);
        assert_eq!(QuotaValue::new(-1.0), None);
        assert_eq!(QuotaValue::new(f64::NAN), None);
        assert_eq!(QuotaValue::new(f64::INFINITY), None);
    }
}
