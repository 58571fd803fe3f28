//! OffsetFetch v0 (Kafka's `OffsetFetchRequest.json` v0, the ZooKeeper-era version
//! kafka-protocol 0.18 cannot decode; sluice serves it from the same committed offsets as
//! v1+).
//!
//! Request (header v1): `group_id string, [topic string, [partition i32]]`. Response
//! (header v0): `[topic string, [partition i32, committed_offset i64, metadata nullable string,
//! error_code i16]]`.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{put_count, put_nullable_string, put_string, LegacyDecodeError, Reader};
use super::LegacyTopic;

const TOPIC_BYTES_MIN: usize = 2 + 4;
const PARTITION_BYTES: usize = 4;

/// A decoded OffsetFetch v0 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOffsetFetchRequest {
    /// The group.
    pub group_id: String,
    /// Topics with their partition indexes, in request order.
    pub topics: Vec<LegacyTopic<i32>>,
}

/// The answer to an OffsetFetch v0 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyOffsetFetchResponse {
    /// One entry per requested topic, in request order.
    pub topics: Vec<LegacyTopic<LegacyOffsetFetchPartitionResponse>>,
}

/// One partition's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOffsetFetchPartitionResponse {
    /// The partition index.
    pub partition: i32,
    /// -1 when nothing is committed.
    pub committed_offset: i64,
    /// Client metadata stored with the commit.
    pub metadata: Option<String>,
    /// Kafka error code, 0 for success.
    pub error_code: i16,
}

/// Decodes an OffsetFetch v0 body.
pub fn decode_offset_fetch(body: Bytes) -> Result<LegacyOffsetFetchRequest, LegacyDecodeError> {
    let mut reader = Reader::new(body);
    let group_id = reader.string("group_id")?;
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string("topic name")?;
        let partition_count = reader.count("partitions", PARTITION_BYTES)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(reader.i32("partition")?);
        }
        topics.push(LegacyTopic { name, partitions });
    }
    Ok(LegacyOffsetFetchRequest { group_id, topics })
}

/// Appends the v0 response body.
pub fn encode_offset_fetch_response(response: &LegacyOffsetFetchResponse, out: &mut BytesMut) {
    put_count(out, response.topics.len());
    for topic in &response.topics {
        put_string(out, &topic.name);
        put_count(out, topic.partitions.len());
        for partition in &topic.partitions {
            out.put_i32(partition.partition);
            out.put_i64(partition.committed_offset);
            put_nullable_string(out, partition.metadata.as_deref());
            out.put_i16(partition.error_code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_bytes() {
        let body = vec![
            0, 1, b'g', 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let request = decode_offset_fetch(Bytes::from(body.clone())).unwrap();
        assert_eq!(
            request,
            LegacyOffsetFetchRequest {
                group_id: "g".into(),
                topics: vec![LegacyTopic {
                    name: "t".into(),
                    partitions: vec![0, 1],
                }],
            }
        );
        for cut in 0..body.len() {
            assert!(decode_offset_fetch(Bytes::copy_from_slice(&body[..cut])).is_err());
        }
        let response = LegacyOffsetFetchResponse {
            topics: vec![LegacyTopic {
                name: "t".into(),
                partitions: vec![LegacyOffsetFetchPartitionResponse {
                    partition: 1,
                    committed_offset: 8,
                    metadata: Some("m".into()),
                    error_code: 0,
                }],
            }],
        };
        let mut out = BytesMut::new();
        encode_offset_fetch_response(&response, &mut out);
        let mut expected = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 1];
        expected.extend_from_slice(&8_i64.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm', 0, 0]);
        assert_eq!(&out[..], &expected[..]);
    }
}
