//! ApiVersions: what this broker serves, straight from the wire crate's table.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;

pub fn handle(context: &RequestContext<'_>, request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = sluice_wire::versions::api_versions_keys();
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
