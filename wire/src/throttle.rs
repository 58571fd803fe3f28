//! `throttle_time_ms` on any response (KIP-219): a broker that throttles a client for its
//! request-time quota says so in whatever it answers, where that version has the field.

use kafka_protocol::messages::ResponseKind;

/// Raises `response`'s `throttle_time_ms` to `throttle_ms` (a larger throttle already set by
/// the handler stays). Returns false when this API version has no such field: setting it
/// there would make the response unencodable.
pub fn raise_throttle_time_ms(
    response: &mut ResponseKind,
    api_version: i16,
    throttle_ms: i32,
) -> bool {
    macro_rules! raise {
        ($body:expr, $since:expr) => {{
            if api_version < $since {
                return false;
            }
            $body.throttle_time_ms = $body.throttle_time_ms.max(throttle_ms);
            true
        }};
    }
    match response {
        // Versions before the field existed (Kafka's JSON schemas, "throttle_time_ms" versions).
        ResponseKind::ApiVersions(body) => raise!(body, 1),
        ResponseKind::DescribeGroups(body) => raise!(body, 1),
        ResponseKind::FindCoordinator(body) => raise!(body, 1),
        ResponseKind::Heartbeat(body) => raise!(body, 1),
        ResponseKind::JoinGroup(body) => raise!(body, 2),
        ResponseKind::LeaveGroup(body) => raise!(body, 1),
        ResponseKind::ListGroups(body) => raise!(body, 1),
        ResponseKind::ListOffsets(body) => raise!(body, 2),
        ResponseKind::Metadata(body) => raise!(body, 3),
        ResponseKind::OffsetCommit(body) => raise!(body, 3),
        ResponseKind::OffsetFetch(body) => raise!(body, 3),
        ResponseKind::SyncGroup(body) => raise!(body, 1),
        // Every version kafka-protocol encodes has the field.
        ResponseKind::Produce(body) => raise!(body, 0),
        ResponseKind::Fetch(body) => raise!(body, 0),
        ResponseKind::CreateTopics(body) => raise!(body, 0),
        ResponseKind::DeleteTopics(body) => raise!(body, 0),
        ResponseKind::DeleteRecords(body) => raise!(body, 0),
        ResponseKind::InitProducerId(body) => raise!(body, 0),
        ResponseKind::OffsetForLeaderEpoch(body) => raise!(body, 0),
        ResponseKind::AddPartitionsToTxn(body) => raise!(body, 0),
        ResponseKind::AddOffsetsToTxn(body) => raise!(body, 0),
        ResponseKind::EndTxn(body) => raise!(body, 0),
        ResponseKind::TxnOffsetCommit(body) => raise!(body, 0),
        ResponseKind::DescribeAcls(body) => raise!(body, 0),
        ResponseKind::CreateAcls(body) => raise!(body, 0),
        ResponseKind::DeleteAcls(body) => raise!(body, 0),
        ResponseKind::DescribeConfigs(body) => raise!(body, 0),
        ResponseKind::AlterConfigs(body) => raise!(body, 0),
        ResponseKind::DescribeLogDirs(body) => raise!(body, 0),
        ResponseKind::CreatePartitions(body) => raise!(body, 0),
        ResponseKind::DeleteGroups(body) => raise!(body, 0),
        ResponseKind::ElectLeaders(body) => raise!(body, 0),
        ResponseKind::IncrementalAlterConfigs(body) => raise!(body, 0),
        ResponseKind::AlterPartitionReassignments(body) => raise!(body, 0),
        ResponseKind::ListPartitionReassignments(body) => raise!(body, 0),
        ResponseKind::OffsetDelete(body) => raise!(body, 0),
        ResponseKind::DescribeClientQuotas(body) => raise!(body, 0),
        ResponseKind::AlterClientQuotas(body) => raise!(body, 0),
        ResponseKind::DescribeUserScramCredentials(body) => raise!(body, 0),
        ResponseKind::AlterUserScramCredentials(body) => raise!(body, 0),
        ResponseKind::DescribeCluster(body) => raise!(body, 0),
        ResponseKind::DescribeProducers(body) => raise!(body, 0),
        ResponseKind::DescribeTransactions(body) => raise!(body, 0),
        ResponseKind::ListTransactions(body) => raise!(body, 0),
        ResponseKind::UnregisterBroker(body) => raise!(body, 0),
        ResponseKind::ConsumerGroupHeartbeat(body) => raise!(body, 0),
        ResponseKind::ConsumerGroupDescribe(body) => raise!(body, 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, MetadataResponse, ProduceResponse};

    use super::*;
    use crate::encode_response;

    #[test]
    fn raised_where_the_version_has_the_field_and_still_encodes() {
        let mut response = ResponseKind::Metadata(MetadataResponse::default());
        assert!(!raise_throttle_time_ms(&mut response, 2, 100));
        assert!(raise_throttle_time_ms(&mut response, 3, 100));
        let mut out = bytes::BytesMut::new();
        encode_response(ApiKey::Metadata, 3, 7, &response, &mut out).unwrap();

        let mut produce = ProduceResponse::default();
        produce.throttle_time_ms = 500;
        let mut response = ResponseKind::Produce(produce);
        assert!(raise_throttle_time_ms(&mut response, 9, 100));
        let ResponseKind::Produce(produce) = response else {
            unreachable!()
        };
        assert_eq!(produce.throttle_time_ms, 500, "a larger throttle stays");
    }
}
