//! The table of APIs and versions the broker implements. ApiVersions advertises exactly this
//! table, so it must never claim more than the broker serves: adding a row here is a promise.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiKey;

/// One row of the table: `api_key` is served for every version in `min_version..=max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version served.
    pub min_version: i16,
    /// Highest version served.
    pub max_version: i16,
}

const fn api(api_key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        api_key,
        min_version,
        max_version,
    }
}

/// Sorted by api key number, no duplicates (a unit test checks both). Minimums are the real
/// ones: versions below kafka-protocol's floor (Kafka 0.8-0.10 clients) are decoded by
/// [`legacy`](crate::legacy), see [`LEGACY_APIS`](crate::legacy::LEGACY_APIS).
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 0, 13),
    api(ApiKey::Fetch, 0, 18),
    api(ApiKey::ListOffsets, 0, 10),
    api(ApiKey::Metadata, 0, 13),
    // Not 10: `valid_versions()` says 2-10 but `OffsetCommitRequest` decodes only 2-9.
    api(ApiKey::OffsetCommit, 0, 9),
    // Not 10: `valid_versions()` says 1-10 but `OffsetFetchRequest` decodes only 1-9.
    api(ApiKey::OffsetFetch, 0, 9),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::ListGroups, 0, 5),
    // KIP-43 / KIP-152: v0 is followed by raw SASL tokens, v1 by SaslAuthenticate.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    // Not 6: kafka-protocol 0.18's `valid_versions()` says 0-6 but `InitProducerIdRequest`
    // only decodes 0-5 (its response goes to 6).
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Transactions (KIP-98): v4-5 of AddPartitionsToTxn are the brokers' batched /
    // verify-only form (KIP-890 part 1), v5 also the leaders' add for transaction version 2;
    // EndTxn v5, Produce v12 and TxnOffsetCommit v5 are transaction version 2's (part 2).
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    // Only 1: Kafka 4 removed v0 (KIP-896) and kafka-protocol decodes 1 alone.
    api(ApiKey::WriteTxnMarkers, 1, 1),
    // Sent to the group coordinator inside a transaction (KIP-98; v3+: KIP-447 member fields).
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::SaslAuthenticate, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    // KIP-455; v1 of Alter carries KIP-860's `allow_replication_factor_change`.
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    // KIP-664: the producer state of partitions this node leads.
    api(ApiKey::DescribeProducers, 0, 0),
    // `kafka-cluster unregister`: decommissions a stopped broker (and voter).
    api(ApiKey::UnregisterBroker, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    // v1: duration filter (KIP-994); v2: transactional id pattern (KIP-1152).
    api(ApiKey::ListTransactions, 0, 2),
    // KIP-848. v1: the client generates the member id (KIP-1082) and may send a regex.
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The table row for `api_key`, if the broker serves it at all.
pub fn supported_api(api_key: i16) -> Option<&'static SupportedApi> {
    SUPPORTED_APIS
        .binary_search_by_key(&api_key, |api| api.api_key as i16)
        .ok()
        .map(|index| &SUPPORTED_APIS[index])
}

/// `(min_version, max_version)` served for `api_key`, if any.
pub fn supported_range(api_key: i16) -> Option<(i16, i16)> {
    supported_api(api_key).map(|api| (api.min_version, api.max_version))
}

/// The ApiVersionsResponse `api_keys` entries, shared by the normal and the
/// UNSUPPORTED_VERSION reply so the two can never disagree.
pub fn api_versions_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.api_key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_by_key_without_duplicates() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!(
                (pair[0].api_key as i16) < (pair[1].api_key as i16),
                "{:?} must come before {:?}",
                pair[0].api_key,
                pair[1].api_key
            );
        }
    }

    #[test]
    fn every_range_is_within_what_kafka_protocol_decodes() {
        for api in SUPPORTED_APIS {
            assert!(api.min_version <= api.max_version, "{api:?}");
            let valid = api.api_key.valid_versions();
            let min_decodable = match crate::legacy::legacy_version_max(api.api_key) {
                // Documented exception: the versions below the floor are decoded by `legacy`.
                Some(legacy_max) => {
                    assert_eq!(valid.min, legacy_max + 1);
                    0
                }
                None => valid.min,
            };
            assert!(api.min_version >= min_decodable, "{api:?} vs {valid}");
            assert!(api.max_version <= valid.max, "{api:?} vs {valid}");
        }
    }

    #[test]
    fn lookups_agree_with_the_table() {
        assert_eq!(supported_range(ApiKey::Produce as i16), Some((0, 13)));
        assert_eq!(supported_range(ApiKey::Fetch as i16), Some((0, 18)));
        assert_eq!(supported_range(ApiKey::ListOffsets as i16), Some((0, 10)));
        assert_eq!(supported_range(ApiKey::OffsetCommit as i16), Some((0, 9)));
        assert_eq!(supported_range(ApiKey::OffsetFetch as i16), Some((0, 9)));
        assert_eq!(
            supported_range(ApiKey::FindCoordinator as i16),
            Some((0, 6))
        );
        assert_eq!(supported_range(ApiKey::ApiVersions as i16), Some((0, 4)));
        assert_eq!(
            supported_range(ApiKey::DescribeCluster as i16),
            Some((0, 2))
        );
        assert_eq!(supported_range(ApiKey::InitProducerId as i16), Some((0, 5)));
        assert_eq!(supported_range(ApiKey::JoinGroup as i16), Some((0, 9)));
        assert_eq!(
            supported_range(ApiKey::ConsumerGroupHeartbeat as i16),
            Some((0, 1))
        );
        assert_eq!(supported_range(ApiKey::ShareGroupHeartbeat as i16), None);
        assert_eq!(supported_range(-1), None);
        assert_eq!(supported_range(i16::MAX), None);
        for api in SUPPORTED_APIS {
            assert_eq!(supported_api(api.api_key as i16), Some(api));
        }
    }

    #[test]
    fn api_versions_keys_mirror_the_table() {
        let keys = api_versions_keys();
        assert_eq!(keys.len(), SUPPORTED_APIS.len());
        for (key, api) in keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(
                (key.api_key, key.min_version, key.max_version),
                (api.api_key as i16, api.min_version, api.max_version)
            );
            assert!(key.unknown_tagged_fields.is_empty());
        }
    }
}
