//! ApiVersions: what this broker serves, straight from the wire crate's table, and (v3+)
//! the features: `transaction.version` supported 0-2, finalized at `--transaction-version`
//! (Kafka's Java clients switch to transaction version 2, KIP-890 part 2, when it is 2).

use kafka_protocol::messages::api_versions_response::{FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};

pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
const TRANSACTION_VERSION_SUPPORTED_MAX: i16 = 2;
/// The features never change while a broker runs; clients only need an epoch of at least 0
/// to take them (they keep the highest epoch seen).
const FINALIZED_FEATURES_EPOCH: i64 = 1;
/// The features are tagged fields of v3+.
const FEATURES_VERSION_MIN: i16 = 3;

pub fn handle(context: &RequestContext<'_>, request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = sluice_wire::versions::api_versions_keys();
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
    use super::valid_software_field;

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
