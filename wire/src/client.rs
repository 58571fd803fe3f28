//! Request encoding, the way a Kafka client frames requests. The broker never calls this; it
//! exists for tests, the fuzz seed corpus and integration tests, so they frame requests exactly
//! as `decode_request` expects without a second implementation.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Encodable;

use crate::response::{encode_framed, message_error, EncodeError};

/// Appends length prefix + request header (version from `ApiKey::request_header_version`) +
/// body at `header.request_api_version`. An api key kafka-protocol does not know is refused.
pub fn encode_request(
    header: &RequestHeader,
    body: &RequestKind,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let api_key = header.request_api_key;
    let api_version = header.request_api_version;
    let Ok(known_key) = ApiKey::try_from(api_key) else {
        return Err(message_error(
            "header",
            api_key,
            api_version,
            "unknown api key",
        ));
    };
    encode_framed(out, |out| {
        header
            .encode(out, known_key.request_header_version(api_version))
            .map_err(|error| message_error("header", api_key, api_version, error))?;
        body.encode(out, api_version)
            .map_err(|error| message_error("body", api_key, api_version, error))
    })
}

/// A default (all fields at their defaults) body for `api_key`, for every key in
/// [`SUPPORTED_APIS`](crate::versions::SUPPORTED_APIS); `None` for the others.
pub fn default_request_body(api_key: ApiKey) -> Option<RequestKind> {
    use kafka_protocol::messages as m;
    let body = match api_key {
        ApiKey::Produce => RequestKind::Produce(m::ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(m::FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(m::ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(m::MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(m::ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(m::CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(m::DeleteTopicsRequest::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(m::DeleteRecordsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(m::InitProducerIdRequest::default()),
        ApiKey::WriteTxnMarkers => {
            RequestKind::WriteTxnMarkers(m::WriteTxnMarkersRequest::default())
        }
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(m::OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(m::DescribeConfigsRequest::default())
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(m::AlterConfigsRequest::default()),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(m::DescribeLogDirsRequest::default())
        }
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(m::CreatePartitionsRequest::default())
        }
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(m::IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => {
            RequestKind::DescribeCluster(m::DescribeClusterRequest::default())
        }
        ApiKey::UnregisterBroker => {
            RequestKind::UnregisterBroker(m::UnregisterBrokerRequest::default())
        }
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(m::OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(m::OffsetFetchRequest::default()),
        ApiKey::TxnOffsetCommit => {
            RequestKind::TxnOffsetCommit(m::TxnOffsetCommitRequest::default())
        }
        ApiKey::FindCoordinator => {
            RequestKind::FindCoordinator(m::FindCoordinatorRequest::default())
        }
        ApiKey::JoinGroup => RequestKind::JoinGroup(m::JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(m::HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(m::LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(m::SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(m::DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(m::ListGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(m::DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(m::OffsetDeleteRequest::default()),
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(m::DescribeClientQuotasRequest::default())
        }
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(m::AlterClientQuotasRequest::default())
        }
        ApiKey::ConsumerGroupHeartbeat => {
            RequestKind::ConsumerGroupHeartbeat(m::ConsumerGroupHeartbeatRequest::default())
        }
        ApiKey::ConsumerGroupDescribe => {
            RequestKind::ConsumerGroupDescribe(m::ConsumerGroupDescribeRequest::default())
        }
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(m::SaslHandshakeRequest::default()),
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(m::SaslAuthenticateRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            m::DescribeUserScramCredentialsRequest::default(),
        ),
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(m::AlterUserScramCredentialsRequest::default())
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(m::DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(m::CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(m::DeleteAclsRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(m::ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(
            m::AlterPartitionReassignmentsRequest::default(),
        ),
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(m::ListPartitionReassignmentsRequest::default())
        }
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(m::AddPartitionsToTxnRequest::default())
        }
        ApiKey::AddOffsetsToTxn => {
            RequestKind::AddOffsetsToTxn(m::AddOffsetsToTxnRequest::default())
        }
        ApiKey::EndTxn => RequestKind::EndTxn(m::EndTxnRequest::default()),
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(m::DescribeTransactionsRequest::default())
        }
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(m::DescribeProducersRequest::default())
        }
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(m::ListTransactionsRequest::default())
        }
        _ => return None,
    };
    Some(body)
}

/// A request header as a client sends it.
pub fn request_header(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    client_id: &'static str,
) -> RequestHeader {
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(api_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::SUPPORTED_APIS;

    #[test]
    fn every_supported_api_has_a_default_body() {
        for api in SUPPORTED_APIS {
            assert!(default_request_body(api.api_key).is_some(), "{api:?}");
        }
        assert_eq!(default_request_body(ApiKey::ShareGroupHeartbeat), None);
    }

    #[test]
    fn frames_carry_their_length() {
        let mut out = BytesMut::from(&b"z"[..]);
        let header = request_header(ApiKey::Metadata, 1, 7, "c");
        let body = default_request_body(ApiKey::Metadata).unwrap();
        encode_request(&header, &body, &mut out).unwrap();
        // prefix | key 3 | version 1 | correlation 7 | client id "c" | topics: empty array
        let expected: &[u8] = &[
            b'z', 0, 0, 0, 15, 0, 3, 0, 1, 0, 0, 0, 7, 0, 1, b'c', 0, 0, 0, 0,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn unknown_keys_and_versions_leave_the_buffer_alone() {
        let mut out = BytesMut::from(&b"z"[..]);
        let body = default_request_body(ApiKey::Metadata).unwrap();
        let mut header = request_header(ApiKey::Metadata, 99, 7, "c");
        assert!(encode_request(&header, &body, &mut out).is_err());
        header.request_api_key = 9999;
        assert!(encode_request(&header, &body, &mut out).is_err());
        assert_eq!(&out[..], b"z");
    }
}
