//! Request handlers, one module per API key. A handler reads the broker's state, may change
//! it through [`Broker`] methods, and returns the response body; it never touches sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::budget::ConnectionShare;

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
pub mod authz;
mod client_quota_entity;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
pub(crate) mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leader_hint;
mod leave_group;
pub mod legacy;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod read_replica;
mod sync_group;
pub(crate) mod throttle_configs;
mod txn_offset_commit;
mod unregister_broker;
mod user_scram_credentials;
pub mod write_txn_markers;
pub use throttle_configs::FOLLOWER_THROTTLED_RATE;
#[cfg(test)]
mod version_matrix_tests;

/// What a handler knows about the request besides its body.
pub struct RequestContext<'a> {
    pub broker: &'a Arc<Broker>,
    pub api_version: i16,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    /// The listener the request came in on: endpoints handed out are on the same listener.
    pub listener_name: &'a str,
    /// The connection's share of the node budgets (and its throttle mute).
    pub connection: &'a ConnectionShare,
    /// `User:ANONYMOUS`, `User:<certificate CN>` or `User:<SASL user>`.
    pub principal: &'a str,
    /// `Some` when ACLs apply (see [`authz`]).
    pub authorizer: Option<&'a crate::security::authorizer::Authorizer>,
}

/// Charges `amount` (bytes, or microseconds busy) to the client quota of `kind` that applies
/// to this request (Kafka's precedence over user and client-id entities) and counts any
/// throttle against `api`; returns the throttle (zero within quota). The caller combines it
/// with the node budget's throttle and mutes the connection.
pub fn client_quota_throttle(
    context: &RequestContext<'_>,
    api: kafka_protocol::messages::ApiKey,
    kind: crate::budget::QuotaKind,
    amount: usize,
    now: std::time::Instant,
) -> std::time::Duration {
    let broker = context.broker;
    let metadata = broker.topics().metadata.clone();
    let client_id = context.client_id.as_deref().unwrap_or("");
    // The quota user is the principal's name: the SASL user, the certificate's CN, or
    // ANONYMOUS.
    let user = context
        .principal
        .strip_prefix("User:")
        .unwrap_or(crate::budget::ANONYMOUS_USER);
    let throttle =
        broker
            .client_quotas
            .charge(&metadata.client_quotas, kind, user, client_id, amount, now);
    if !throttle.is_zero() {
        broker
            .metrics
            .record_client_quota_throttle(api, client_id, throttle);
    }
    throttle
}

/// Serves one request, then charges the time it kept a worker busy to the client's
/// `request_percentage` quota: over it, the response carries throttle_time_ms and the
/// connection is muted for that long (Kafka's ClientRequestQuotaManager). Replica fetches
/// and ApiVersions are exempt, as Kafka exempts inter-broker traffic and the handshake.
pub async fn dispatch_within_request_quota(
    context: &RequestContext<'_>,
    api_key: kafka_protocol::messages::ApiKey,
    body: RequestKind,
) -> Option<ResponseKind> {
    let exempt = match &body {
        RequestKind::ApiVersions(_) => true,
        RequestKind::Fetch(request) => fetch::is_replica_fetch(context.api_version, request),
        _ => false,
    };
    let serving = std::pin::pin!(dispatch(context, body));
    let (mut response, busy) = crate::budget::BusyTime::new(serving).await;
    if exempt {
        return response;
    }
    let micros = usize::try_from(busy.as_micros()).unwrap_or(usize::MAX);
    let now = std::time::Instant::now();
    let kind = crate::budget::QuotaKind::RequestTime;
    let throttle = client_quota_throttle(context, api_key, kind, micros, now);
    if throttle.is_zero() {
        return response;
    }
    if let Some(answer) = response.as_mut() {
        let throttle_ms = crate::budget::throttle_ms(throttle);
        sluice_wire::raise_throttle_time_ms(answer, context.api_version, throttle_ms);
    }
    context.connection.mute_for(throttle, now);
    response
}

/// Serves one request. `None` means no response is sent (Produce with acks=0).
pub async fn dispatch(context: &RequestContext<'_>, body: RequestKind) -> Option<ResponseKind> {
    let response = match body {
        RequestKind::ApiVersions(request) => {
            ResponseKind::ApiVersions(api_versions::handle(context, request))
        }
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(context, request).await)
        }
        RequestKind::Produce(request) => {
            return produce::handle(context, request)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(request) => ResponseKind::Fetch(fetch::handle(context, request).await),
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(context, request))
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics::handle(context, request).await)
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(delete_topics::handle(context, request).await)
        }
        RequestKind::CreatePartitions(request) => {
            ResponseKind::CreatePartitions(create_partitions::handle(context, request).await)
        }
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(context, request))
        }
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(alter_configs::handle(context, request).await)
        }
        RequestKind::DescribeClientQuotas(request) => {
            ResponseKind::DescribeClientQuotas(describe_client_quotas::handle(context, request))
        }
        RequestKind::AlterClientQuotas(request) => {
            ResponseKind::AlterClientQuotas(alter_client_quotas::handle(context, request).await)
        }
        RequestKind::IncrementalAlterConfigs(request) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(context, request).await,
        ),
        RequestKind::DeleteRecords(request) => {
            ResponseKind::DeleteRecords(delete_records::handle(context, request))
        }
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(context, request))
        }
        RequestKind::UnregisterBroker(request) => {
            ResponseKind::UnregisterBroker(unregister_broker::handle(context, request).await)
        }
        RequestKind::OffsetForLeaderEpoch(request) => {
            ResponseKind::OffsetForLeaderEpoch(offset_for_leader_epoch::handle(context, request))
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id::handle(context, request).await)
        }
        RequestKind::WriteTxnMarkers(request) => {
            ResponseKind::WriteTxnMarkers(write_txn_markers::handle(context, request).await)
        }
        RequestKind::DescribeLogDirs(request) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs::handle(context, request))
        }
        RequestKind::FindCoordinator(request) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(context, request).await)
        }
        RequestKind::JoinGroup(request) => {
            ResponseKind::JoinGroup(join_group::handle(context, request).await)
        }
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync_group::handle(context, request).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat::handle(context, request))
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave_group::handle(context, request))
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(offset_commit::handle(context, request).await)
        }
        RequestKind::TxnOffsetCommit(request) => {
            ResponseKind::TxnOffsetCommit(txn_offset_commit::handle(context, request).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(context, request))
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(describe_groups::handle(context, request))
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list_groups::handle(context, request))
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(delete_groups::handle(context, request).await)
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(offset_delete::handle(context, request).await)
        }
        RequestKind::ConsumerGroupHeartbeat(request) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(context, request).await,
        ),
        RequestKind::ConsumerGroupDescribe(request) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group_describe::handle(context, request))
        }
        RequestKind::ElectLeaders(request) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(context, request).await)
        }
        RequestKind::AlterPartitionReassignments(request) => {
            ResponseKind::AlterPartitionReassignments(
                alter_partition_reassignments::handle(context, request).await,
            )
        }
        RequestKind::ListPartitionReassignments(request) => {
            ResponseKind::ListPartitionReassignments(list_partition_reassignments::handle(
                context, request,
            ))
        }
        RequestKind::DescribeUserScramCredentials(request) => {
            ResponseKind::DescribeUserScramCredentials(user_scram_credentials::describe(
                context, request,
            ))
        }
        RequestKind::AlterUserScramCredentials(request) => ResponseKind::AlterUserScramCredentials(
            user_scram_credentials::alter(context, request).await,
        ),
        RequestKind::DescribeAcls(request) => {
            ResponseKind::DescribeAcls(acls::describe(context, request))
        }
        RequestKind::CreateAcls(request) => {
            ResponseKind::CreateAcls(acls::create(context, request).await)
        }
        RequestKind::DeleteAcls(request) => {
            ResponseKind::DeleteAcls(acls::delete(context, request).await)
        }
        RequestKind::AddPartitionsToTxn(request) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn::handle(context, request).await)
        }
        RequestKind::AddOffsetsToTxn(request) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn::handle(context, request).await)
        }
        RequestKind::EndTxn(request) => {
            ResponseKind::EndTxn(end_txn::handle(context, request).await)
        }
        RequestKind::DescribeTransactions(request) => {
            ResponseKind::DescribeTransactions(describe_transactions::handle(context, request))
        }
        RequestKind::DescribeProducers(request) => {
            ResponseKind::DescribeProducers(describe_producers::handle(context, request))
        }
        RequestKind::ListTransactions(request) => {
            ResponseKind::ListTransactions(list_transactions::handle(context, request))
        }
        RequestKind::SaslHandshake(_) => {
            // Kafka: a handshake on a non-SASL listener, or a second one, is illegal.
            let mut response = kafka_protocol::messages::SaslHandshakeResponse::default();
            response.error_code = kafka_protocol::ResponseError::IllegalSaslState.code();
            ResponseKind::SaslHandshake(response)
        }
        RequestKind::SaslAuthenticate(_) => {
            let mut response = kafka_protocol::messages::SaslAuthenticateResponse::default();
            response.error_code = kafka_protocol::ResponseError::IllegalSaslState.code();
            response.error_message = Some(str_bytes("no SASL exchange in progress"));
            ResponseKind::SaslAuthenticate(response)
        }
        other => {
            // The wire table and this match must agree; a test checks every table entry.
            tracing::error!(peer = %context.peer, request = ?api_name(&other), "no handler");
            return None;
        }
    };
    Some(response)
}

pub fn api_name(body: &RequestKind) -> String {
    let text = format!("{body:?}");
    text.split('(').next().unwrap_or_default().to_string()
}

/// Kafka strings from Rust strings.
pub fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// Error messages are only sent when the request version has the field; the encoder ignores
/// fields a version lacks, so handlers always fill them.
pub fn message(error: &crate::broker::ApiError) -> Option<StrBytes> {
    error.message.clone().map(str_bytes)
}

/// `topic_authorized_operations` when the client did not ask for them (Kafka's INT32_MIN).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// With no authoriser every operation is allowed: READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (Kafka's AclOperation codes 3-8, 10, 11).
pub const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Cluster operations: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE (codes 5, 7, 8, 9, 10, 11, 12).
pub const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    /// Every API the wire table advertises has an arm in `dispatch`.
    #[test]
    fn every_advertised_api_has_a_handler() {
        let handled = [
            ApiKey::ApiVersions,
            ApiKey::Metadata,
            ApiKey::Produce,
            ApiKey::Fetch,
            ApiKey::ListOffsets,
            ApiKey::CreateTopics,
            ApiKey::DeleteTopics,
            ApiKey::CreatePartitions,
            ApiKey::DescribeConfigs,
            ApiKey::AlterConfigs,
            ApiKey::IncrementalAlterConfigs,
            ApiKey::DescribeClientQuotas,
            ApiKey::AlterClientQuotas,
            ApiKey::DeleteRecords,
            ApiKey::DescribeCluster,
            ApiKey::UnregisterBroker,
            ApiKey::OffsetForLeaderEpoch,
            ApiKey::InitProducerId,
            ApiKey::WriteTxnMarkers,
            ApiKey::DescribeLogDirs,
            ApiKey::FindCoordinator,
            ApiKey::JoinGroup,
            ApiKey::SyncGroup,
            ApiKey::Heartbeat,
            ApiKey::LeaveGroup,
            ApiKey::OffsetCommit,
            ApiKey::OffsetFetch,
            ApiKey::TxnOffsetCommit,
            ApiKey::DescribeGroups,
            ApiKey::ListGroups,
            ApiKey::DeleteGroups,
            ApiKey::OffsetDelete,
            ApiKey::ConsumerGroupHeartbeat,
            ApiKey::ConsumerGroupDescribe,
            ApiKey::ElectLeaders,
            ApiKey::AlterPartitionReassignments,
            ApiKey::ListPartitionReassignments,
            ApiKey::SaslHandshake,
            ApiKey::SaslAuthenticate,
            ApiKey::DescribeUserScramCredentials,
            ApiKey::AlterUserScramCredentials,
            ApiKey::DescribeAcls,
            ApiKey::CreateAcls,
            ApiKey::DeleteAcls,
            ApiKey::AddPartitionsToTxn,
            ApiKey::AddOffsetsToTxn,
            ApiKey::EndTxn,
            ApiKey::DescribeTransactions,
            ApiKey::ListTransactions,
            ApiKey::DescribeProducers,
        ];
        for api in sluice_wire::versions::SUPPORTED_APIS {
            assert!(
                handled.contains(&api.api_key),
                "{:?} advertised, not handled",
                api.api_key
            );
        }
        assert_eq!(handled.len(), sluice_wire::versions::SUPPORTED_APIS.len());
    }
}
