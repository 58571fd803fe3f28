//! AlterClientQuotas: sets and removes Kafka client quotas per user / client-id entity.

use super::error_code;
use super::{ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE};
use crate::image::{
    quota_key_is_integer, EntityName, MetadataImage, MetadataRecord, QuotaEntity, QuotaValue,
    QUOTA_KEYS, STRING_BYTES_MAX,
};

/// One change to one quota key of an entity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum QuotaOp {
    Set { key: String, value: f64 },
    Remove { key: String },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClientQuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<QuotaOp>,
}

// `f64` values are finite here (checked before use), so equality is total in practice; the
// operation enum needs `Eq` and compares the bits.
impl Eq for QuotaOp {}
impl Eq for ClientQuotaAlteration {}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterClientQuotasRequest {
    pub entries: Vec<ClientQuotaAlteration>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterClientQuotasResult {
    pub entity: QuotaEntity,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// Applies each entity's ops all or nothing, as Kafka's controller does.
/// Quotas depend on no other metadata, so `_image` is unused; it keeps the operation shape.
pub fn alter_client_quotas(
    _image: &MetadataImage,
    request: &AlterClientQuotasRequest,
) -> ControllerResult<Vec<AlterClientQuotasResult>> {
    let mut budget = RecordBudget::new();
    let mut results = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        let outcome = entry_records(entry).and_then(|records| {
            if budget.fits(records.len()) {
                Ok(records)
            } else {
                Err(BUDGET_EXCEEDED_MESSAGE.to_string())
            }
        });
        let (error_code, error_message) = match outcome {
            Ok(records) => {
                if !request.validate_only {
                    budget.extend(records);
                }
                (error_code::NONE, None)
            }
            Err(message) => (error_code::INVALID_REQUEST, Some(message)),
        };
        results.push(AlterClientQuotasResult {
            entity: entry.entity.clone(),
            error_code,
            error_message,
        });
    }
    ControllerResult::new(budget.records, results)
}

fn entry_records(entry: &ClientQuotaAlteration) -> Result<Vec<MetadataRecord>, String> {
    validate_entity(&entry.entity)?;
    let mut records = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let (key, value) = match op {
            QuotaOp::Set { key, value } => (key, Some(*value)),
            QuotaOp::Remove { key } => (key, None),
        };
        if !QUOTA_KEYS.contains(&key.as_str()) {
            return Err(format!("Unknown quota key '{key}'"));
        }
        let value = match value {
            None => None,
            Some(value) => Some(validate_value(key, value)?),
        };
        records.push(MetadataRecord::ClientQuota {
            entity: entry.entity.clone(),
            key: key.clone(),
            value,
        });
    }
    Ok(records)
}

fn validate_entity(entity: &QuotaEntity) -> Result<(), String> {
    if !entity.is_valid() {
        return Err("Invalid empty client quota entity".to_string());
    }
    for name in [&entity.user, &entity.client_id].into_iter().flatten() {
        if let EntityName::Named(name) = name {
            if name.len() > STRING_BYTES_MAX {
                return Err("Client quota entity name is too long".to_string());
            }
        }
    }
    Ok(())
}

fn validate_value(key: &str, value: f64) -> Result<QuotaValue, String> {
    let Some(quota) = QuotaValue::new(value) else {
        return Err(format!("Quota {key} must be positive, not {value}"));
    };
    // Kafka's LONG-typed keys take whole numbers only.
    if quota_key_is_integer(key) && value.fract() != 0.0 {
        return Err(format!("Quota {key} must be a Long value, not {value}"));
    }
    Ok(quota)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::image::{MetadataDelta, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

    fn slow() -> QuotaEntity {
        QuotaEntity::client_id(EntityName::Named("slow".into()))
    }

    fn alter(
        image: &MetadataImage,
        ops: Vec<QuotaOp>,
        validate_only: bool,
    ) -> (i16, MetadataImage) {
        let request = AlterClientQuotasRequest {
            entries: vec![ClientQuotaAlteration {
                entity: slow(),
                ops,
            }],
            validate_only,
        };
        let result = alter_client_quotas(image, &request);
        assert_eq!(result.response.len(), 1);
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        for record in &result.records {
            delta.replay(record).unwrap();
        }
        let next = delta.apply();
        (result.response[0].error_code, next)
    }

    fn set(key: &str, value: f64) -> QuotaOp {
        QuotaOp::Set {
            key: key.into(),
            value,
        }
    }

    #[test]
    fn set_replay_snapshot_and_remove() {
        let empty = MetadataImage::empty();
        let ops = vec![
            set(PRODUCER_BYTE_RATE, 1024.0),
            set(REQUEST_PERCENTAGE, 12.5),
        ];
        let (code, image) = alter(&empty, ops, false);
        assert_eq!(code, error_code::NONE);
        let quotas = image.client_quotas.quotas(&slow()).unwrap();
        assert_eq!(quotas[PRODUCER_BYTE_RATE].get(), 1024.0);
        assert_eq!(quotas[REQUEST_PERCENTAGE].get(), 12.5);
        let replayed = MetadataImage::from_records(&image.to_records(), image.provenance).unwrap();
        assert_eq!(replayed, image);

        let remove = |key: &str| QuotaOp::Remove { key: key.into() };
        let ops = vec![remove(PRODUCER_BYTE_RATE), remove(REQUEST_PERCENTAGE)];
        let (code, image) = alter(&image, ops, false);
        assert_eq!(code, error_code::NONE);
        assert!(image.client_quotas.entities.is_empty());
    }

    #[test]
    fn validate_only_writes_nothing() {
        let empty = MetadataImage::empty();
        let (code, image) = alter(&empty, vec![set(PRODUCER_BYTE_RATE, 10.0)], true);
        assert_eq!(code, error_code::NONE);
        assert!(image.client_quotas.entities.is_empty());
    }

    #[test]
    fn bad_keys_and_values_are_invalid_requests_and_all_or_nothing() {
        let empty = MetadataImage::empty();
        for bad in [
            set("producer_bytes_rate", 10.0),
            set(PRODUCER_BYTE_RATE, 0.0),
            set(PRODUCER_BYTE_RATE, -5.0),
            set(PRODUCER_BYTE_RATE, 10.5),
            set(REQUEST_PERCENTAGE, f64::NAN),
        ] {
            let ops = vec![set(REQUEST_PERCENTAGE, 5.0), bad.clone()];
            let (code, image) = alter(&empty, ops, false);
            assert_eq!(code, error_code::INVALID_REQUEST, "{bad:?}");
            assert!(image.client_quotas.entities.is_empty(), "{bad:?}");
        }
        let request = AlterClientQuotasRequest {
            entries: vec![ClientQuotaAlteration {
                entity: QuotaEntity {
                    user: None,
                    client_id: None,
                },
                ops: vec![set(PRODUCER_BYTE_RATE, 1.0)],
            }],
            validate_only: false,
        };
        let result = alter_client_quotas(&empty, &request);
        assert_eq!(result.response[0].error_code, error_code::INVALID_REQUEST);
        assert!(result.records.is_empty());
    }
}
