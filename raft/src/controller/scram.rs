//! AlterUserScramCredentials: upserts and deletes users' SCRAM credentials. The broker turns
//! the client's salted password into StoredKey/ServerKey before proposing, so no password
//! (salted or not) reaches the metadata log.

use std::collections::BTreeSet;

use super::error_code;
use super::ControllerResult;
use crate::image::{MetadataImage, MetadataRecord};

/// Kafka's bounds on SCRAM iterations.
pub const SCRAM_ITERATIONS_MIN: i32 = 4096;
pub const SCRAM_ITERATIONS_MAX: i32 = 16384;
/// Largest salt, StoredKey or ServerKey accepted (SHA-512 keys are 64 bytes).
pub const SCRAM_BYTES_MAX: usize = 1024;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterScramRequest {
    pub deletions: Vec<(String, i8)>,
    pub upsertions: Vec<ScramUpsertion>,
}

/// One user's outcome, as AlterUserScramCredentials answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterScramResult {
    pub user: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

fn refusal(user: &str, code: i16, message: &str) -> AlterScramResult {
    AlterScramResult {
        user: user.to_string(),
        error_code: code,
        error_message: Some(message.to_string()),
    }
}

pub fn alter_scram(
    image: &MetadataImage,
    request: &AlterScramRequest,
) -> ControllerResult<Vec<AlterScramResult>> {
    // Kafka refuses a user named twice in one request (same or another mechanism).
    let mut seen = BTreeSet::new();
    let mut duplicated = BTreeSet::new();
    let users = request
        .deletions
        .iter()
        .map(|(user, mechanism)| (user, *mechanism))
        .chain(request.upsertions.iter().map(|u| (&u.user, u.mechanism)));
    for (user, mechanism) in users {
        if !seen.insert((user.clone(), mechanism)) {
            duplicated.insert(user.clone());
        }
    }
    let mut records = Vec::new();
    let mut results: Vec<AlterScramResult> = Vec::new();
    for (user, mechanism) in &request.deletions {
        let result = if duplicated.contains(user) {
            refusal(user, DUPLICATE_RESOURCE, "user named twice in one request")
        } else if !(1..=2).contains(mechanism) {
            refusal(user, UNSUPPORTED_SASL_MECHANISM, "unknown SCRAM mechanism")
        } else if image.scram.credential(user, *mechanism).is_none() {
            refusal(user, RESOURCE_NOT_FOUND, "no such credential")
        } else {
            records.push(MetadataRecord::RemoveScramCredential {
                user: user.clone(),
                mechanism: *mechanism,
            });
            ok(user)
        };
        results.push(result);
    }
    for upsertion in &request.upsertions {
        let user = &upsertion.user;
        let too_large = [
            &upsertion.salt,
            &upsertion.stored_key,
            &upsertion.server_key,
        ]
        .iter()
        .any(|bytes| bytes.len() > SCRAM_BYTES_MAX || bytes.is_empty());
        let result = if duplicated.contains(user) {
            refusal(user, DUPLICATE_RESOURCE, "user named twice in one request")
        } else if user.is_empty() || too_large || user.len() > crate::image::STRING_BYTES_MAX {
            refusal(user, UNACCEPTABLE_CREDENTIAL, "empty user name or bad salt")
        } else if !(1..=2).contains(&upsertion.mechanism) {
            refusal(user, UNSUPPORTED_SASL_MECHANISM, "unknown SCRAM mechanism")
        } else if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&upsertion.iterations) {
            refusal(
                user,
                UNACCEPTABLE_CREDENTIAL,
                "iterations must be between 4096 and 16384",
            )
        } else {
            records.push(MetadataRecord::ScramCredential {
                user: user.clone(),
                mechanism: upsertion.mechanism,
                salt: upsertion.salt.clone(),
                stored_key: upsertion.stored_key.clone(),
                server_key: upsertion.server_key.clone(),
                iterations: upsertion.iterations,
            });
            ok(user)
        };
        results.push(result);
    }
    // One entry per user: its first failure, else success (Kafka answers per user).
    let mut merged: Vec<AlterScramResult> = Vec::new();
    for result in results {
        match merged.iter_mut().find(|known| known.user == result.user) {
            Some(known) if known.error_code == error_code::NONE => *known = result,
            Some(_) => {}
            None => merged.push(result),
        }
    }
    // Kafka applies each user's changes independently: a failed user's others are dropped.
    let succeeded = |user: &str| {
        merged
            .iter()
            .any(|result| result.user == user && result.error_code == error_code::NONE)
    };
    records.retain(|record| match record {
        MetadataRecord::ScramCredential { user, .. }
        | MetadataRecord::RemoveScramCredential { user, .. } => succeeded(user),
        _ => false,
    });
    ControllerResult::new(records, merged)
}

fn ok(user: &str) -> AlterScramResult {
    AlterScramResult {
        user: user.to_string(),
        error_code: error_code::NONE,
        error_message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsertion(user: &str, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            user: user.to_string(),
            mechanism: 2,
            iterations,
            salt: vec![1; 16],
            stored_key: vec![2; 64],
            server_key: vec![3; 64],
        }
    }

    #[test]
    fn alter_scram_validates_each_user() {
        let image = MetadataImage::empty();
        let request = AlterScramRequest {
            deletions: vec![("ghost".to_string(), 1), ("twice".to_string(), 2)],
            upsertions: vec![
                upsertion("alice", 4096),
                upsertion("weak", 1000),
                upsertion("twice", 4096),
            ],
        };
        let result = alter_scram(&image, &request);
        let codes: Vec<(&str, i16)> = result
            .response
            .iter()
            .map(|r| (r.user.as_str(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                ("ghost", RESOURCE_NOT_FOUND),
                ("twice", DUPLICATE_RESOURCE),
                ("alice", error_code::NONE),
                ("weak", UNACCEPTABLE_CREDENTIAL),
            ]
        );
        assert_eq!(
            result.records.len(),
            1,
            "only alice's credential is written"
        );
        assert!(matches!(
            &result.records[0],
            MetadataRecord::ScramCredential { user, iterations: 4096, .. } if user == "alice"
        ));
    }
}
