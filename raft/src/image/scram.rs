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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::image::{
        decode_batch, encode_batch, MetadataDelta, MetadataImage, MetadataRecord, Provenance,
    };

    fn credential(user: &str, mechanism: i8) -> MetadataRecord {
        MetadataRecord::ScramCredential {
            user: user.to_string(),
            mechanism,
            salt: vec![1, 2, 3],
            stored_key: vec![4; 64],
            server_key: vec![5; 64],
            iterations: 8192,
        }
    }

    #[test]
    fn scram_records_round_trip_and_replay() {
        let records = vec![
            credential("alice", 2),
            credential("alice", 1),
            credential("bob", 2),
            MetadataRecord::RemoveScramCredential {
                user: "alice".to_string(),
                mechanism: 1,
            },
        ];
        let decoded = decode_batch(&encode_batch(&records), 16).expect("decodes");
        assert_eq!(decoded, records);
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for record in &records {
            delta.replay(record).expect("replays");
        }
        let image = delta.apply();
        let users: Vec<_> = image.scram.credentials.keys().cloned().collect();
        assert_eq!(users, [("alice".to_string(), 2), ("bob".to_string(), 2)]);
        assert_eq!(
            image.scram.credential("bob", 2).map(|c| c.iterations),
            Some(8192)
        );
        // Snapshots carry the credentials.
        let rebuilt =
            MetadataImage::from_records(&image.to_records(), Provenance::default()).expect("ok");
        assert_eq!(rebuilt.scram, image.scram);
    }
}
