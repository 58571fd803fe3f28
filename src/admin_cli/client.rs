//! A tiny blocking Kafka client: one TCP connection, one request at a time, with timeouts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, GroupId, ListGroupsRequest,
    ListOffsetsRequest, OffsetFetchRequest, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use kafka_protocol::ResponseError;
use sluice_wire::client::{encode_request, request_header};

use super::CommittedOffsets;

const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted; a larger length prefix means the peer is not a Kafka broker.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
const CLIENT_ID: &str = "sluice-groups";
const LIST_GROUPS_VERSION: i16 = 4;
const OFFSET_FETCH_VERSION: i16 = 8;
const LIST_OFFSETS_VERSION: i16 = 7;
/// v2: fenced brokers on request (KIP-1073).
const DESCRIBE_CLUSTER_VERSION: i16 = 2;

const LATEST_TIMESTAMP: i64 = -1;

pub struct AdminClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl AdminClient {
    pub fn connect(address: &str) -> anyhow::Result<AdminClient> {
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
                refusal: broker
                    .unknown_tagged_fields
                    .get(&crate::admission::REFUSAL_TAG)
                    .map(|reason| String::from_utf8_lossy(reason).into_owned()),
            })
            .collect();
        Ok((response.controller_id.0, rows))
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

fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    use kafka_protocol::messages as m;
    match api_key {
        ApiKey::ListGroups => m::ListGroupsResponse::header_version(version),
        ApiKey::OffsetFetch => m::OffsetFetchResponse::header_version(version),
        ApiKey::DescribeCluster => m::DescribeClusterResponse::header_version(version),
        _ => m::ListOffsetsResponse::header_version(version),
    }
}

fn check(error_code: i16, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(error_code) {
        None => Ok(()),
        Some(error) => bail!("{what}: {error}"),
    }
}
