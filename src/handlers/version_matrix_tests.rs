//! Every handler, at every advertised version, with requests that name a real topic: the
//! response must encode. kafka-protocol refuses to encode a field the version lacks, so this
//! catches a handler setting (say) a topic id in a response older than topic ids.

use bytes::BytesMut;
use clap::Parser;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;

use super::{dispatch, RequestContext};
use crate::broker::Endpoint;
use crate::config::Config;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

fn one_batch() -> bytes::Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(bytes::Bytes::from_static(b"key")),
        value: Some(bytes::Bytes::from_static(b"value")),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, [&record], &options).expect("encode batch");
    out.freeze()
}

fn requests(api: ApiKey, version: i16, topic: &str, id: Uuid) -> Vec<RequestKind> {
    match api {
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            r.client_software_name = text("test");
            r.client_software_version = text("1.0");
            vec![RequestKind::ApiVersions(r)]
        }
        ApiKey::Metadata => {
            let mut wanted = metadata_request::MetadataRequestTopic::default();
            wanted.name = Some(topic_name(topic));
            wanted.topic_id = id;
            let mut missing = metadata_request::MetadataRequestTopic::default();
            missing.name = Some(topic_name("bad/name"));
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![wanted, missing]);
            r.include_topic_authorized_operations = version >= 8;
            let all = MetadataRequest::default();
            vec![RequestKind::Metadata(r), RequestKind::Metadata(all)]
        }
        ApiKey::Produce => {
            let mut partition = produce_request::PartitionProduceData::default();
            partition.index = 0;
            partition.records = Some(one_batch());
            let mut bad = produce_request::PartitionProduceData::default();
            bad.index = 7;
            bad.records = Some(one_batch());
            let mut data = produce_request::TopicProduceData::default();
            data.name = if version < 13 {
                topic_name(topic)
            } else {
                topic_name("")
            };
            data.topic_id = if version >= 13 { id } else { Uuid::nil() };
            data.partition_data = vec![partition, bad];
            let mut r = ProduceRequest::default();
            r.acks = 1;
            r.timeout_ms = 1000;
            r.topic_data = vec![data];
            vec![RequestKind::Produce(r)]
        }
        ApiKey::Fetch => {
            let fetch = |offset: i64| {
                let mut partition = fetch_request::FetchPartition::default();
                partition.partition = 0;
                partition.fetch_offset = offset;
                partition.partition_max_bytes = 1 << 20;
                let mut wanted = fetch_request::FetchTopic::default();
                wanted.topic = if version < 13 {
                    topic_name(topic)
                } else {
                    topic_name("")
                };
                wanted.topic_id = if version >= 13 { id } else { Uuid::nil() };
                wanted.partitions = vec![partition];
                let mut r = FetchRequest::default();
                r.max_bytes = 1 << 20;
                r.max_wait_ms = 0;
                r.isolation_level = 1;
                r.topics = vec![wanted];
                RequestKind::Fetch(r)
            };
            vec![fetch(0), fetch(1_000_000)]
        }
        ApiKey::ListOffsets => {
            let partitions = [-1i64, -2, -3, 0, 1_700_000_000_000]
                .into_iter()
                .map(|timestamp| {
                    let mut p = list_offsets_request::ListOffsetsPartition::default();
                    p.partition_index = 0;
                    p.timestamp = timestamp;
                    p
                })
                .collect();
            let mut wanted = list_offsets_request::ListOffsetsTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = partitions;
            let mut r = ListOffsetsRequest::default();
            r.topics = vec![wanted];
            vec![RequestKind::ListOffsets(r)]
        }
        ApiKey::CreateTopics => {
            let mut good = create_topics_request::CreatableTopic::default();
            good.name = topic_name(&format!("created-{version}"));
            good.num_partitions = 1;
            good.replication_factor = 1;
            let mut bad = create_topics_request::CreatableTopic::default();
            bad.name = topic_name("..");
            bad.num_partitions = 1;
            bad.replication_factor = 1;
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![good, bad];
            vec![RequestKind::CreateTopics(r)]
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default();
            if version >= 6 {
                let mut state = delete_topics_request::DeleteTopicState::default();
                state.name = Some(topic_name("created-7"));
                let mut by_id = delete_topics_request::DeleteTopicState::default();
                by_id.topic_id = Uuid::new_v4();
                r.topics = vec![state, by_id];
            } else {
                r.topic_names = vec![topic_name("created-7"), topic_name("missing")];
            }
            vec![RequestKind::DeleteTopics(r)]
        }
        ApiKey::CreatePartitions => {
            let mut wanted = create_partitions_request::CreatePartitionsTopic::default();
            wanted.name = topic_name(topic);
            wanted.count = 1;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![wanted];
            r.validate_only = true;
            vec![RequestKind::CreatePartitions(r)]
        }
        ApiKey::DescribeConfigs => {
            let mut topic_resource = describe_configs_request::DescribeConfigsResource::default();
            topic_resource.resource_type = 2;
            topic_resource.resource_name = text(topic);
            let mut broker_resource = describe_configs_request::DescribeConfigsResource::default();
            broker_resource.resource_type = 4;
            broker_resource.resource_name = text("1");
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![topic_resource, broker_resource];
            r.include_synonyms = true;
            vec![RequestKind::DescribeConfigs(r)]
        }
        ApiKey::AlterConfigs => {
            let mut config = alter_configs_request::AlterableConfig::default();
            config.name = text("retention.ms");
            config.value = Some(text("600000"));
            let mut resource = alter_configs_request::AlterConfigsResource::default();
            resource.resource_type = 2;
            resource.resource_name = text(topic);
            resource.configs = vec![config];
            let mut r = AlterConfigsRequest::default();
            r.resources = vec![resource];
            vec![RequestKind::AlterConfigs(r)]
        }
        ApiKey::IncrementalAlterConfigs => {
            let mut config = incremental_alter_configs_request::AlterableConfig::default();
            config.name = text("retention.ms");
            config.value = Some(text("700000"));
            let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
            resource.resource_type = 2;
            resource.resource_name = text(topic);
            resource.configs = vec![config];
            let mut r = IncrementalAlterConfigsRequest::default();
            r.resources = vec![resource];
            vec![RequestKind::IncrementalAlterConfigs(r)]
        }
        ApiKey::DescribeClientQuotas => {
            let mut component = describe_client_quotas_request::ComponentData::default();
            component.entity_type = text("client-id");
            component.match_type = 0;
            component._match = Some(text("slow"));
            let mut r = DescribeClientQuotasRequest::default();
            r.components = vec![component];
            vec![RequestKind::DescribeClientQuotas(r)]
        }
        ApiKey::AlterClientQuotas => {
            let mut entity = alter_client_quotas_request::EntityData::default();
            entity.entity_type = text("client-id");
            entity.entity_name = Some(text("slow"));
            let mut op = alter_client_quotas_request::OpData::default();
            op.key = text("producer_byte_rate");
            op.value = 1024.0;
            let mut entry = alter_client_quotas_request::EntryData::default();
            entry.entity = vec![entity];
            entry.ops = vec![op];
            let mut r = AlterClientQuotasRequest::default();
            r.entries = vec![entry];
            r.validate_only = true;
            vec![RequestKind::AlterClientQuotas(r)]
        }
        ApiKey::DeleteRecords => {
            let mut partition = delete_records_request::DeleteRecordsPartition::default();
            partition.partition_index = 0;
            partition.offset = 0;
            let mut wanted = delete_records_request::DeleteRecordsTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = vec![partition];
            let mut r = DeleteRecordsRequest::default();
            r.topics = vec![wanted];
            vec![RequestKind::DeleteRecords(r)]
        }
        ApiKey::UnregisterBroker => {
            // An id nobody registered: answered BROKER_ID_NOT_REGISTERED at every version.
            let mut r = kafka_protocol::messages::UnregisterBrokerRequest::default();
            r.broker_id = kafka_protocol::messages::BrokerId(4242);
            vec![RequestKind::UnregisterBroker(r)]
        }
        ApiKey::DescribeCluster => {
            let mut r = DescribeClusterRequest::default();
            r.include_cluster_authorized_operations = true;
            vec![RequestKind::DescribeCluster(r)]
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut partition =
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            partition.partition = 0;
            partition.leader_epoch = 0;
            partition.current_leader_epoch = -1;
            let mut wanted = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            wanted.topic = topic_name(topic);
            wanted.partitions = vec![partition];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.topics = vec![wanted];
            vec![RequestKind::OffsetForLeaderEpoch(r)]
        }
        ApiKey::InitProducerId => vec![RequestKind::InitProducerId(Default::default())],
        ApiKey::WriteTxnMarkers => {
            let mut wanted = write_txn_markers_request::WritableTxnMarkerTopic::default();
            wanted.name = topic_name(topic);
            wanted.partition_indexes = vec![0, 7];
            let mut missing = write_txn_markers_request::WritableTxnMarkerTopic::default();
            missing.name = topic_name("missing");
            missing.partition_indexes = vec![0];
            let mut marker = write_txn_markers_request::WritableTxnMarker::default();
            marker.producer_id = ProducerId(77);
            marker.transaction_result = false;
            marker.topics = vec![wanted, missing];
            let mut r = WriteTxnMarkersRequest::default();
            r.markers = vec![marker];
            vec![RequestKind::WriteTxnMarkers(r)]
        }
        ApiKey::DescribeLogDirs => vec![RequestKind::DescribeLogDirs(Default::default())],
        other => reassignment_requests(other, version, topic),
    }
}

/// ElectLeaders and the reassignment APIs: a real partition, a missing one, and everything.
fn reassignment_requests(api: ApiKey, version: i16, topic: &str) -> Vec<RequestKind> {
    match api {
        ApiKey::ElectLeaders => {
            let mut named = elect_leaders_request::TopicPartitions::default();
            named.topic = topic_name(topic);
            named.partitions = vec![0, 5];
            let mut missing = elect_leaders_request::TopicPartitions::default();
            missing.topic = topic_name("missing");
            missing.partitions = vec![0];
            let mut r = ElectLeadersRequest::default();
            r.topic_partitions = Some(vec![named, missing]);
            let all = ElectLeadersRequest::default();
            vec![RequestKind::ElectLeaders(r), RequestKind::ElectLeaders(all)]
        }
        ApiKey::AlterPartitionReassignments => {
            let partition = |index: i32, replicas: Option<Vec<i32>>| {
                let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
                p.partition_index = index;
                p.replicas = replicas.map(|ids| ids.into_iter().map(BrokerId).collect());
                p
            };
            let mut wanted = alter_partition_reassignments_request::ReassignableTopic::default();
            wanted.name = topic_name(topic);
            // Cancel with nothing running, an unknown broker, a missing partition.
            wanted.partitions = vec![
                partition(0, None),
                partition(0, Some(vec![99])),
                partition(9, Some(vec![1])),
            ];
            let mut r = AlterPartitionReassignmentsRequest::default();
            r.allow_replication_factor_change = version >= 1;
            r.topics = vec![wanted];
            vec![RequestKind::AlterPartitionReassignments(r)]
        }
        ApiKey::ListPartitionReassignments => {
            let mut wanted =
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
            wanted.name = topic_name(topic);
            wanted.partition_indexes = vec![0];
            let mut r = ListPartitionReassignmentsRequest::default();
            r.topics = Some(vec![wanted]);
            let all = ListPartitionReassignmentsRequest::default();
            vec![
                RequestKind::ListPartitionReassignments(r),
                RequestKind::ListPartitionReassignments(all),
            ]
        }
        other => group_requests(other, version, topic),
    }
}

fn group_id(s: &str) -> GroupId {
    GroupId(text(s))
}

/// Requests of the group APIs. JoinGroup without member id completes at once (the matrix
/// broker has no initial rebalance delay), so its response carries the member list.
fn group_requests(api: ApiKey, version: i16, topic: &str) -> Vec<RequestKind> {
    match api {
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            r.key = text("group");
            r.coordinator_keys = vec![text("a"), text("b")];
            let mut bad = FindCoordinatorRequest::default();
            bad.key_type = 9;
            bad.coordinator_keys = vec![text("a")];
            let bad_type = if version >= 1 {
                vec![RequestKind::FindCoordinator(bad)]
            } else {
                vec![]
            };
            [vec![RequestKind::FindCoordinator(r)], bad_type].concat()
        }
        ApiKey::JoinGroup => {
            let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
            protocol.name = text("range");
            protocol.metadata = bytes::Bytes::from_static(b"subscription");
            let mut r = JoinGroupRequest::default();
            r.group_id = group_id(&format!("join-{version}"));
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = 10_000;
            r.protocol_type = text("consumer");
            r.protocols = vec![protocol];
            if version >= 5 {
                r.group_instance_id = Some(text("instance"));
            }
            let mut bad = r.clone();
            bad.session_timeout_ms = 1;
            vec![RequestKind::JoinGroup(r), RequestKind::JoinGroup(bad)]
        }
        ApiKey::SyncGroup => {
            let mut assignment = sync_group_request::SyncGroupRequestAssignment::default();
            assignment.member_id = text("m");
            assignment.assignment = bytes::Bytes::from_static(b"assignment");
            let mut r = SyncGroupRequest::default();
            r.group_id = group_id("join-5");
            r.member_id = text("unknown");
            r.assignments = vec![assignment];
            vec![RequestKind::SyncGroup(r)]
        }
        ApiKey::Heartbeat => {
            let mut r = HeartbeatRequest::default();
            r.group_id = group_id("join-5");
            r.member_id = text("unknown");
            vec![RequestKind::Heartbeat(r)]
        }
        ApiKey::LeaveGroup => {
            let mut r = LeaveGroupRequest::default();
            r.group_id = group_id("join-5");
            if version >= 3 {
                let mut member = leave_group_request::MemberIdentity::default();
                member.member_id = text("unknown");
                r.members = vec![member];
            } else {
                r.member_id = text("unknown");
            }
            vec![RequestKind::LeaveGroup(r)]
        }
        ApiKey::OffsetCommit => {
            let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
            partition.partition_index = 0;
            partition.committed_offset = 1;
            partition.committed_metadata = Some(text("meta"));
            let mut missing = partition.clone();
            missing.partition_index = 9;
            let mut wanted = offset_commit_request::OffsetCommitRequestTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = vec![partition, missing];
            let mut r = OffsetCommitRequest::default();
            r.group_id = group_id("simple");
            r.topics = vec![wanted];
            vec![RequestKind::OffsetCommit(r)]
        }
        ApiKey::TxnOffsetCommit => {
            let mut partition =
                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
            partition.partition_index = 0;
            partition.committed_offset = 1;
            partition.committed_metadata = Some(text("meta"));
            let mut missing = partition.clone();
            missing.partition_index = 9;
            let mut wanted = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = vec![partition, missing];
            let mut r = TxnOffsetCommitRequest::default();
            r.transactional_id = TransactionalId(text("txn"));
            r.group_id = group_id("simple");
            r.producer_id = ProducerId(7);
            r.producer_epoch = 0;
            r.topics = vec![wanted];
            vec![RequestKind::TxnOffsetCommit(r)]
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            let all = OffsetFetchRequest::default();
            if version >= 8 {
                let mut wanted = offset_fetch_request::OffsetFetchRequestTopics::default();
                wanted.name = topic_name(topic);
                wanted.partition_indexes = vec![0, 1];
                let mut group = offset_fetch_request::OffsetFetchRequestGroup::default();
                group.group_id = group_id("simple");
                group.topics = Some(vec![wanted]);
                let mut everything = offset_fetch_request::OffsetFetchRequestGroup::default();
                everything.group_id = group_id("simple");
                r.groups = vec![group, everything];
                r.require_stable = true;
                return vec![RequestKind::OffsetFetch(r)];
            }
            let mut wanted = offset_fetch_request::OffsetFetchRequestTopic::default();
            wanted.name = topic_name(topic);
            wanted.partition_indexes = vec![0, 1];
            r.group_id = group_id("simple");
            r.topics = Some(vec![wanted]);
            let mut all = all;
            all.group_id = group_id("simple");
            all.topics = if version >= 2 { None } else { Some(vec![]) };
            let mut empty = r.clone();
            empty.group_id = group_id("");
            vec![
                RequestKind::OffsetFetch(r),
                RequestKind::OffsetFetch(all),
                RequestKind::OffsetFetch(empty),
            ]
        }
        ApiKey::DescribeGroups => {
            let mut r = DescribeGroupsRequest::default();
            r.groups = vec![group_id("join-5"), group_id("simple"), group_id("missing")];
            r.include_authorized_operations = version >= 3;
            vec![RequestKind::DescribeGroups(r)]
        }
        ApiKey::ListGroups => {
            let mut r = ListGroupsRequest::default();
            if version >= 4 {
                r.states_filter = vec![text("stable"), text("Empty")];
            }
            if version >= 5 {
                r.types_filter = vec![text("classic")];
            }
            vec![
                RequestKind::ListGroups(r),
                RequestKind::ListGroups(Default::default()),
            ]
        }
        ApiKey::DeleteGroups => {
            let mut r = DeleteGroupsRequest::default();
            r.groups_names = vec![group_id("missing"), group_id("join-5"), group_id("")];
            vec![RequestKind::DeleteGroups(r)]
        }
        ApiKey::OffsetDelete => {
            let mut partition = offset_delete_request::OffsetDeleteRequestPartition::default();
            partition.partition_index = 0;
            let mut wanted = offset_delete_request::OffsetDeleteRequestTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = vec![partition];
            let mut r = OffsetDeleteRequest::default();
            r.group_id = group_id("simple");
            r.topics = vec![wanted];
            vec![RequestKind::OffsetDelete(r)]
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let mut join = ConsumerGroupHeartbeatRequest::default();
            join.group_id = group_id(&format!("consumer-{version}"));
            // v0: the broker makes the member id up; v1: the client brings one.
            join.member_id = if version >= 1 {
                text("member")
            } else {
                text("")
            };
            join.member_epoch = 0;
            join.rebalance_timeout_ms = 10_000;
            join.subscribed_topic_names = Some(vec![topic_name(topic)]);
            join.server_assignor = Some(text("range"));
            join.topic_partitions = Some(vec![]);
            let mut unknown = ConsumerGroupHeartbeatRequest::default();
            unknown.group_id = group_id(&format!("consumer-{version}"));
            unknown.member_id = text("unknown");
            unknown.member_epoch = 3;
            let mut bad = join.clone();
            bad.server_assignor = Some(text("sticky"));
            vec![
                RequestKind::ConsumerGroupHeartbeat(join),
                RequestKind::ConsumerGroupHeartbeat(unknown),
                RequestKind::ConsumerGroupHeartbeat(bad),
            ]
        }
        ApiKey::ConsumerGroupDescribe => {
            let mut r = ConsumerGroupDescribeRequest::default();
            r.group_ids = vec![
                group_id("consumer-1"),
                group_id("join-5"),
                group_id("missing"),
                group_id(""),
            ];
            r.include_authorized_operations = true;
            vec![RequestKind::ConsumerGroupDescribe(r)]
        }
        other => security_requests(other, version, topic),
    }
}

/// SASL (outside a SASL exchange: ILLEGAL_SASL_STATE), SCRAM credentials and client quotas.
fn security_requests(api: ApiKey, version: i16, topic: &str) -> Vec<RequestKind> {
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    match api {
        ApiKey::SaslHandshake => vec![RequestKind::SaslHandshake(Default::default())],
        ApiKey::SaslAuthenticate => vec![RequestKind::SaslAuthenticate(Default::default())],
        ApiKey::DescribeClientQuotas => vec![RequestKind::DescribeClientQuotas(Default::default())],
        ApiKey::DescribeUserScramCredentials => {
            let mut named =
                kafka_protocol::messages::DescribeUserScramCredentialsRequest::default();
            named.users = Some(vec![UserName::default().with_name(text("alice"))]);
            vec![
                RequestKind::DescribeUserScramCredentials(Default::default()),
                RequestKind::DescribeUserScramCredentials(named),
            ]
        }
        ApiKey::AlterUserScramCredentials => {
            let mut r = kafka_protocol::messages::AlterUserScramCredentialsRequest::default();
            r.upsertions = vec![ScramCredentialUpsertion::default()
                .with_name(text("alice"))
                .with_mechanism(2)
                .with_iterations(4096)
                .with_salt(bytes::Bytes::from_static(b"salt"))
                .with_salted_password(bytes::Bytes::from_static(&[7; 64]))];
            r.deletions = vec![ScramCredentialDeletion::default()
                .with_name(text("bob"))
                .with_mechanism(1)];
            vec![RequestKind::AlterUserScramCredentials(r)]
        }
        // No authoriser here: SECURITY_DISABLED answers, encoded at every version.
        ApiKey::DescribeAcls => vec![RequestKind::DescribeAcls(Default::default())],
        ApiKey::CreateAcls => {
            let mut r = kafka_protocol::messages::CreateAclsRequest::default();
            r.creations = vec![Default::default()];
            vec![RequestKind::CreateAcls(r)]
        }
        ApiKey::DeleteAcls => {
            let mut r = kafka_protocol::messages::DeleteAclsRequest::default();
            r.filters = vec![Default::default()];
            vec![RequestKind::DeleteAcls(r)]
        }
        other => transaction_requests(other, version, topic),
    }
}

/// The transaction coordinator's APIs: a transactional id, a real and a missing partition.
fn transaction_requests(api: ApiKey, version: i16, topic: &str) -> Vec<RequestKind> {
    use kafka_protocol::messages::{
        add_partitions_to_txn_request, AddOffsetsToTxnRequest, AddPartitionsToTxnRequest,
        DescribeTransactionsRequest, EndTxnRequest, ListTransactionsRequest,
    };
    let id = kafka_protocol::messages::TransactionalId(text("tx"));
    match api {
        ApiKey::AddPartitionsToTxn => {
            let mut wanted = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
            wanted.name = topic_name(topic);
            wanted.partitions = vec![0, 9];
            let mut r = AddPartitionsToTxnRequest::default();
            if version < 4 {
                r.v3_and_below_transactional_id = id;
                r.v3_and_below_topics = vec![wanted];
            } else {
                let mut transaction =
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
                transaction.transactional_id = id;
                transaction.topics = vec![wanted];
                let mut verify = transaction.clone();
                verify.verify_only = true;
                r.transactions = vec![transaction, verify];
            }
            vec![RequestKind::AddPartitionsToTxn(r)]
        }
        ApiKey::AddOffsetsToTxn => {
            let mut r = AddOffsetsToTxnRequest::default();
            r.transactional_id = id;
            r.group_id = kafka_protocol::messages::GroupId(text("g"));
            vec![RequestKind::AddOffsetsToTxn(r)]
        }
        ApiKey::EndTxn => {
            let mut r = EndTxnRequest::default();
            r.transactional_id = id;
            vec![RequestKind::EndTxn(r)]
        }
        ApiKey::DescribeTransactions => {
            let mut r = DescribeTransactionsRequest::default();
            r.transactional_ids = vec![id, kafka_protocol::messages::TransactionalId(text(""))];
            vec![RequestKind::DescribeTransactions(r)]
        }
        ApiKey::DescribeProducers => {
            use kafka_protocol::messages::describe_producers_request::TopicRequest;
            let mut wanted = TopicRequest::default();
            wanted.name = topic_name(topic);
            wanted.partition_indexes = vec![0, 9];
            let mut r = kafka_protocol::messages::DescribeProducersRequest::default();
            r.topics = vec![wanted];
            vec![RequestKind::DescribeProducers(r)]
        }
        ApiKey::ListTransactions => {
            let mut r = ListTransactionsRequest::default();
            r.state_filters = vec![text("Ongoing"), text("Bogus")];
            let mut filtered = ListTransactionsRequest::default();
            filtered.duration_filter = 0;
            filtered.transactional_id_pattern = Some(text("txn-.*"));
            vec![
                RequestKind::ListTransactions(r),
                RequestKind::ListTransactions(Default::default()),
                RequestKind::ListTransactions(filtered),
            ]
        }
        other => panic!("no test request for {other:?}"),
    }
}

#[tokio::test]
async fn every_response_encodes_at_every_advertised_version() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let data_dir_text = data_dir.path().to_str().expect("utf-8 path").to_string();
    let config = Config::try_parse_from([
        "sluice",
        "--data-dir",
        &data_dir_text,
        "--group-initial-rebalance-delay-ms",
        "0",
        "--raft-listen-address",
        "127.0.0.1:0",
        "--admission-check",
        "false",
    ])
    .expect("config");
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9092,
    };
    let (broker, _publisher) = crate::start_broker(config, endpoint)
        .await
        .expect("start broker");
    let topic = broker
        .create_topic(
            "matrix",
            1,
            -1,
            Default::default(),
            Default::default(),
            false,
        )
        .await
        .expect("topic");
    // Group APIs answer from the coordinator, not NOT_COORDINATOR.
    crate::offsets_topic::coordinate_all_for_test(&broker).await;
    let mut encoded = 0;
    for api in sluice_wire::versions::SUPPORTED_APIS {
        // Versions below kafka-protocol's floor go through `handlers::legacy` (tested there).
        let first = sluice_wire::legacy::legacy_version_max(api.api_key)
            .map_or(api.min_version, |legacy_max| legacy_max + 1);
        for version in first..=api.max_version {
            for request in requests(api.api_key, version, "matrix", topic.id) {
                let context = RequestContext {
                    broker: &broker,
                    api_version: version,
                    peer: "127.0.0.1:1".parse().expect("address"),
                    client_id: None,
                    listener_name: "PLAINTEXT",
                    connection: &Default::default(),
                    principal: crate::security::ANONYMOUS,
                    authorizer: None,
                };
                let Some(response) = dispatch(&context, request).await else {
                    panic!("{:?} v{version} gave no response", api.api_key);
                };
                let mut out = BytesMut::new();
                sluice_wire::response::encode_response(
                    api.api_key,
                    version,
                    7,
                    &response,
                    &mut out,
                )
                .unwrap_or_else(|e| panic!("{:?} v{version}: {e:?}", api.api_key));
                assert!(out.len() > 8);
                encoded += 1;
            }
        }
    }
    assert!(encoded > 100, "only {encoded} responses checked");
    // The produces above landed: one record per Produce version, plus the abort marker of
    // WriteTxnMarkers.
    let partition = topic.partition(0).expect("partition 0");
    let replica = partition.replica.as_ref().expect("local replica");
    assert_eq!(replica.log.log_end_offset(), 12);
}
