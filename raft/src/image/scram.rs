//! The SCRAM sub-image: every user's SCRAM credentials (RFC 5802), by (user, mechanism).
//! Only the salt, iteration count, StoredKey and ServerKey are kept; never a password.

use std::collections::BTreeMap;

/// Kafka's ScramMechanism codes: 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
pub type ScramMechanismCode = i8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredentialImage {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScramImage {
    pub credentials: BTreeMap<(String, ScramMechanismCode), ScramCredentialImage>,
}

impl ScramImage {
    pub fn credential(
        &self,
        user: &str,
        mechanism: ScramMechanismCode,
    ) -> Option<&ScramCredentialImage> {
        self.credentials.get(&(user.to_string(), mechanism))
    }
}
