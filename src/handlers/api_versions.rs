//! ApiVersions: what this broker serves, straight from the wire crate's table, and (v3+)
//! the features: `transaction.version` supported 0-2, finalized at `--transaction-version`
//! (Kafka's Java clients switch to transaction version 2, KIP-890 part 2, when it is 2; at 1
//! the versions that mean version 2 — Produce v12+, EndTxn v5, TxnOffsetCommit v5 — are not
//! offered).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};

pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
const TRANSACTION_VERSION_SUPPORTED_MAX: i16 = 2;
/// The features never change while a broker runs; clients only need an epoch of at least 0
/// to take them (they keep the highest epoch seen).
const FINALIZED_FEATURES_EPOCH: i64 = 1;
/// The features are tagged fields of v3+.
const FEATURES_VERSION_MIN: i16 = 3;
const TRANSACTION_VERSION_2: i16 = 2;
/// The last versions before the ones that mean transaction version 2 (KIP-890 part 2): a
/// broker kept at version 1 does not offer those, so no client can use them by version alone.
const VERSIONS_BEFORE_TRANSACTION_VERSION_2: [(ApiKey, i16); 3] = [
    (ApiKey::Produce, 11),
    (ApiKey::EndTxn, 4),
    (ApiKey::TxnOffsetCommit, 4),
];

pub fn handle(context: &RequestContext<'_>, request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = sluice_wire::versions::api_versions_keys();
    let transaction_version = context.broker.config.transaction_version;
    if transaction_version < TRANSACTION_VERSION_2 {
        cap_transaction_version_2_apis(&mut response.api_keys);
    }
    if context.api_version >= FEATURES_VERSION_MIN {
        add_features(context.broker.config.transaction_version, &mut response);
    }
    // v3+ clients name themselves; Kafka refuses names outside its pattern with INVALID_REQUEST.
    if context.api_version >= 3
        && !(valid_software_field(request.client_software_name.as_str())
            && valid_software_field(request.client_software_version.as_str()))
    {
        response.error_code = ResponseError::InvalidRequest.code();
    }
    if context.api_version >= 3
        && request.client_software_name.as_str() == crate::admission::PROBE_SOFTWARE_NAME
    {
        // The controller's address check: prove which broker incarnation answered.
        let identity = crate::admission::Identity {
            node_id: context.broker.node_id(),
            incarnation_id: context.broker.incarnation_id,
        };
        response
            .unknown_tagged_fields
            .insert(crate::admission::IDENTITY_TAG, identity.encode());
    }
    response
}

fn cap_transaction_version_2_apis(api_keys: &mut [ApiVersion]) {
    for entry in api_keys.iter_mut() {
        let cap = VERSIONS_BEFORE_TRANSACTION_VERSION_2
            .iter()
            .find(|(key, _)| *key as i16 == entry.api_key);
        if let Some((_, version_max)) = cap {
            entry.max_version = entry.max_version.min(*version_max);
        }
    }
}

fn add_features(transaction_version: i16, response: &mut ApiVersionsResponse) {
    response.supported_features = vec![SupportedFeatureKey::default()
        .with_name(str_bytes(TRANSACTION_VERSION_FEATURE))
        .with_min_version(0)
        .with_max_version(TRANSACTION_VERSION_SUPPORTED_MAX)];
    response.finalized_features_epoch = FINALIZED_FEATURES_EPOCH;
    response.finalized_features = vec![FinalizedFeatureKey::default()
        .with_name(str_bytes(TRANSACTION_VERSION_FEATURE))
        .with_min_version_level(transaction_version)
        .with_max_version_level(transaction_version)];
}

/// Kafka's `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_offers_no_transaction_version_2_api() {
        let mut keys = sluice_wire::versions::api_versions_keys();
        cap_transaction_version_2_apis(&mut keys);
        let max = |key: ApiKey| {
            keys.iter()
                .find(|entry| entry.api_key == key as i16)
                .map(|entry| entry.max_version)
        };
        assert_eq!(max(ApiKey::Produce), Some(11));
        assert_eq!(max(ApiKey::EndTxn), Some(4));
        assert_eq!(max(ApiKey::TxnOffsetCommit), Some(4));
        assert_eq!(max(ApiKey::Fetch), Some(18));
    }

    #[test]
    fn software_fields_follow_kafkas_pattern() {
        for good in [
            "a",
            "librdkafka",
            "apache-kafka-java",
            "2.3.0",
            "kafka-python",
        ] {
            assert!(valid_software_field(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", ".x"] {
            assert!(!valid_software_field(bad), "{bad}");
        }
    }
}
