//! A tiny blocking Kafka client: one TCP connection, one request at a time, with timeouts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    GroupId, ListGroupsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    MetadataRequest, OffsetFetchRequest, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;
use sluice_wire::client::{encode_request, request_header};

use super::CommittedOffsets;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted; a larger length prefix means the peer is not a Kafka broker.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
const CLIENT_ID: &str = "sluice-admin";
const LIST_GROUPS_VERSION: i16 = 4;
const OFFSET_FETCH_VERSION: i16 = 8;
const LIST_OFFSETS_VERSION: i16 = 7;
/// v2: fenced brokers on request (KIP-1073).
const DESCRIBE_CLUSTER_VERSION: i16 = 2;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
/// Kafka's ConfigResource.Type.BROKER.
const BROKER_RESOURCE: i8 = 4;
const DRAIN_CONFIG: &str = "sluice.drain";

const LATEST_TIMESTAMP: i64 = -1;
const LIST_REASSIGNMENTS_VERSION: i16 = 0;
const METADATA_VERSION: i16 = 12;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;

pub struct AdminClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl AdminClient {
    /// Connects to the first answering address of a comma-separated bootstrap list.
    pub fn connect(bootstrap: &str) -> anyhow::Result<AdminClient> {
        let mut failure = anyhow::anyhow!("no address in '{bootstrap}'");
        for address in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match AdminClient::connect_one(address) {
                Ok(client) => return Ok(client),
                Err(error) => failure = error.context(format!("connecting to {address}")),
            }
        }
        Err(failure)
    }

    fn connect_one(address: &str) -> anyhow::Result<AdminClient> {
        let target = address
            .to_socket_addrs()
            .with_context(|| format!("resolving {address}"))?
            .next()
            .with_context(|| format!("{address} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(AdminClient {
            stream,
            correlation_id: 0,
        })
    }

    /// Sends `body` as `api_key` at `version` and returns the response body bytes.
    fn call(&mut self, api_key: ApiKey, version: i16, body: RequestKind) -> anyhow::Result<Bytes> {
        self.correlation_id += 1;
        let header = request_header(api_key, version, self.correlation_id, CLIENT_ID);
        let mut frame = BytesMut::new();
        encode_request(&header, &body, &mut frame).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.stream.write_all(&frame)?;
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix)?;
        let length = usize::try_from(i32::from_be_bytes(prefix))
            .ok()
            .filter(|&length| length <= RESPONSE_BYTES_MAX)
            .context("bad response length")?;
        let mut payload = vec![0u8; length];
        self.stream.read_exact(&mut payload)?;
        let mut payload = Bytes::from(payload);
        let header_version = response_header_version(api_key, version);
        let header = ResponseHeader::decode(&mut payload, header_version)?;
        if header.correlation_id != self.correlation_id {
            bail!("response to another request ({})", header.correlation_id);
        }
        Ok(payload)
    }

    /// The controller id and every registered broker, fenced ones included (DescribeCluster v2).
    pub fn describe_brokers(&mut self) -> anyhow::Result<(i32, Vec<super::BrokerRow>)> {
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(true);
        let mut body = self.call(
            ApiKey::DescribeCluster,
            DESCRIBE_CLUSTER_VERSION,
            RequestKind::DescribeCluster(request),
        )?;
        let response = DescribeClusterResponse::decode(&mut body, DESCRIBE_CLUSTER_VERSION)?;
        check(response.error_code, "DescribeCluster")?;
        let rows = response
            .brokers
            .iter()
            .map(|broker| super::BrokerRow {
                broker_id: broker.broker_id.0,
                address: format!("{}:{}", broker.host.as_str(), broker.port),
                rack: broker.rack.as_ref().map(|rack| rack.to_string()),
                fenced: broker.is_fenced,
                draining: broker
                    .unknown_tagged_fields
                    .contains_key(&crate::admission::DRAINING_TAG),
                refusal: broker
                    .unknown_tagged_fields
                    .get(&crate::admission::REFUSAL_TAG)
                    .map(|reason| String::from_utf8_lossy(reason).into_owned()),
            })
            .collect();
        Ok((response.controller_id.0, rows))
    }

    /// Sets `sluice.drain` on a broker (IncrementalAlterConfigs).
    pub fn set_draining(&mut self, broker_id: i32, draining: bool) -> anyhow::Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use kafka_protocol::messages::{
            IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        };
        let config = AlterableConfig::default()
            .with_name(StrBytes::from_static_str(DRAIN_CONFIG))
            .with_config_operation(0)
            .with_value(Some(StrBytes::from_static_str(if draining {
                "true"
            } else {
                "false"
            })));
        let resource = AlterConfigsResource::default()
            .with_resource_type(BROKER_RESOURCE)
            .with_resource_name(StrBytes::from_string(broker_id.to_string()))
            .with_configs(vec![config]);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        let mut body = self.call(
            ApiKey::IncrementalAlterConfigs,
            INCREMENTAL_ALTER_CONFIGS_VERSION,
            RequestKind::IncrementalAlterConfigs(request),
        )?;
        let response =
            IncrementalAlterConfigsResponse::decode(&mut body, INCREMENTAL_ALTER_CONFIGS_VERSION)?;
        for result in &response.responses {
            if result.error_code != 0 {
                bail!(
                    "IncrementalAlterConfigs: error {} {}",
                    result.error_code,
                    result.error_message.as_deref().unwrap_or("")
                );
            }
        }
        Ok(())
    }

    pub fn list_groups(&mut self) -> anyhow::Result<Vec<String>> {
        let request = ListGroupsRequest::default();
        let mut body = self.call(
            ApiKey::ListGroups,
            LIST_GROUPS_VERSION,
            RequestKind::ListGroups(request),
        )?;
        let response =
            kafka_protocol::messages::ListGroupsResponse::decode(&mut body, LIST_GROUPS_VERSION)?;
        check(response.error_code, "ListGroups")?;
        let mut groups: Vec<String> = response
            .groups
            .into_iter()
            .map(|g| g.group_id.0.to_string())
            .collect();
        groups.sort();
        Ok(groups)
    }

    /// Every committed offset of `group`.
    pub fn committed_offsets(&mut self, group: &str) -> anyhow::Result<CommittedOffsets> {
        let mut wanted = OffsetFetchRequestGroup::default();
        wanted.group_id = GroupId(StrBytes::from_string(group.to_string()));
        wanted.topics = None;
        let mut request = OffsetFetchRequest::default();
        request.groups = vec![wanted];
        let mut body = self.call(
            ApiKey::OffsetFetch,
            OFFSET_FETCH_VERSION,
            RequestKind::OffsetFetch(request),
        )?;
        let response =
            kafka_protocol::messages::OffsetFetchResponse::decode(&mut body, OFFSET_FETCH_VERSION)?;
        let mut offsets = CommittedOffsets::new();
        for found in response.groups {
            check(found.error_code, "OffsetFetch")?;
            for topic in found.topics {
                for partition in topic.partitions {
                    if partition.committed_offset >= 0 {
                        let key = (topic.name.0.to_string(), partition.partition_index);
                        offsets.insert(key, partition.committed_offset);
                    }
                }
            }
        }
        Ok(offsets)
    }

    /// Log end offsets of `partitions`; partitions that do not exist are left out.
    pub fn log_end_offsets(
        &mut self,
        partitions: &[(String, i32)],
    ) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        if by_topic.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut request = ListOffsetsRequest::default();
        request.replica_id = kafka_protocol::messages::BrokerId(-1);
        request.topics = by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                let mut entry = ListOffsetsTopic::default();
                entry.name = TopicName(StrBytes::from_string(topic.to_string()));
                entry.partitions = indexes
                    .into_iter()
                    .map(|index| {
                        let mut partition = ListOffsetsPartition::default();
                        partition.partition_index = index;
                        partition.timestamp = LATEST_TIMESTAMP;
                        partition
                    })
                    .collect();
                entry
            })
            .collect();
        let mut body = self.call(
            ApiKey::ListOffsets,
            LIST_OFFSETS_VERSION,
            RequestKind::ListOffsets(request),
        )?;
        let response =
            kafka_protocol::messages::ListOffsetsResponse::decode(&mut body, LIST_OFFSETS_VERSION)?;
        let mut ends = BTreeMap::new();
        for topic in response.topics {
            for partition in topic.partitions {
                if partition.error_code == 0 {
                    ends.insert(
                        (topic.name.0.to_string(), partition.partition_index),
                        partition.offset,
                    );
                }
            }
        }
        Ok(ends)
    }
}

impl AdminClient {
    /// Every running reassignment: (topic, partition) → (replicas, adding, removing).
    pub fn list_reassignments(&mut self) -> anyhow::Result<Reassignments> {
        let request = ListPartitionReassignmentsRequest::default();
        let mut body = self.call(
            ApiKey::ListPartitionReassignments,
            LIST_REASSIGNMENTS_VERSION,
            RequestKind::ListPartitionReassignments(request),
        )?;
        let response = kafka_protocol::messages::ListPartitionReassignmentsResponse::decode(
            &mut body,
            LIST_REASSIGNMENTS_VERSION,
        )?;
        check(response.error_code, "ListPartitionReassignments")?;
        let ids = |ids: Vec<BrokerId>| ids.into_iter().map(|id| id.0).collect::<Vec<i32>>();
        let mut found = Reassignments::new();
        for topic in response.topics {
            for partition in topic.partitions {
                found.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    Reassignment {
                        replicas: ids(partition.replicas),
                        adding: ids(partition.adding_replicas),
                        removing: ids(partition.removing_replicas),
                    },
                );
            }
        }
        Ok(found)
    }

    /// Broker addresses (`host:port` by node id) and each partition's leader, from Metadata.
    pub fn brokers_and_leaders(
        &mut self,
        topics: &[String],
    ) -> anyhow::Result<(BrokerAddresses, PartitionLeaders)> {
        let mut request = MetadataRequest::default();
        request.topics = Some(
            topics
                .iter()
                .map(|name| {
                    let mut topic = MetadataRequestTopic::default();
                    topic.name = Some(TopicName(StrBytes::from_string(name.clone())));
                    topic
                })
                .collect(),
        );
        let mut body = self.call(
            ApiKey::Metadata,
            METADATA_VERSION,
            RequestKind::Metadata(request),
        )?;
        let response =
            kafka_protocol::messages::MetadataResponse::decode(&mut body, METADATA_VERSION)?;
        let brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        let mut leaders = BTreeMap::new();
        for topic in response.topics {
            let Some(name) = topic.name else { continue };
            for partition in topic.partitions {
                leaders.insert(
                    (name.0.to_string(), partition.partition_index),
                    partition.leader_id.0,
                );
            }
        }
        Ok((brokers, leaders))
    }

    /// Bytes of `topic`-`partition` on the broker this client is connected to, if it has it.
    pub fn partition_bytes(&mut self, topic: &str, partition: i32) -> anyhow::Result<Option<i64>> {
        let mut wanted = DescribableLogDirTopic::default();
        wanted.topic = TopicName(StrBytes::from_string(topic.to_string()));
        wanted.partitions = vec![partition];
        let mut request = DescribeLogDirsRequest::default();
        request.topics = Some(vec![wanted]);
        let mut body = self.call(
            ApiKey::DescribeLogDirs,
            DESCRIBE_LOG_DIRS_VERSION,
            RequestKind::DescribeLogDirs(request),
        )?;
        let response = kafka_protocol::messages::DescribeLogDirsResponse::decode(
            &mut body,
            DESCRIBE_LOG_DIRS_VERSION,
        )?;
        let size = response
            .results
            .iter()
            .flat_map(|dir| dir.topics.iter())
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition && !p.is_future_key)
            .map(|p| p.partition_size);
        Ok(size)
    }
}

/// One running reassignment, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

pub type Reassignments = BTreeMap<(String, i32), Reassignment>;
/// `host:port` by node id.
pub type BrokerAddresses = BTreeMap<i32, String>;
/// Leader node id by (topic, partition).
pub type PartitionLeaders = BTreeMap<(String, i32), i32>;

fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    use kafka_protocol::messages as m;
    match api_key {
        ApiKey::ListPartitionReassignments => {
            m::ListPartitionReassignmentsResponse::header_version(version)
        }
        ApiKey::Metadata => m::MetadataResponse::header_version(version),
        ApiKey::DescribeLogDirs => m::DescribeLogDirsResponse::header_version(version),
        ApiKey::ListGroups => m::ListGroupsResponse::header_version(version),
        ApiKey::OffsetFetch => m::OffsetFetchResponse::header_version(version),
        ApiKey::DescribeCluster => m::DescribeClusterResponse::header_version(version),
        ApiKey::IncrementalAlterConfigs => {
            m::IncrementalAlterConfigsResponse::header_version(version)
        }
        _ => m::ListOffsetsResponse::header_version(version),
    }
}

fn check(error_code: i16, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(error_code) {
        None => Ok(()),
        Some(error) => bail!("{what}: {error}"),
    }
}
