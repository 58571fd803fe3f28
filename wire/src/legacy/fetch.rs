//! Fetch v0-v3 (Kafka's `FetchRequest.json`, versions kafka-protocol 0.18 cannot decode).
//!
//! Request (header v1): `replica_id i32, max_wait_ms i32, min_bytes i32, max_bytes i32 (v3+),
//! [topic string, [partition i32, fetch_offset i64, partition_max_bytes i32]]`.
//! Response (header v0): `throttle_time_ms i32 (v1+), [topic string, [partition i32,
//! error_code i16, high_watermark i64, records bytes]]`. Readers of v0-v1 understand message
//! format v0 only, readers of v2-v3 format v1 (see [`fetch_message_magic`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{put_count, put_nullable_bytes, put_string, LegacyDecodeError, Reader};
use super::LegacyTopic;

/// Smallest encoding of one topic: name length (i16) + partition count (i32).
const TOPIC_BYTES_MIN: usize = 2 + 4;
/// One partition: index (i32) + fetch offset (i64) + max bytes (i32).
const PARTITION_BYTES: usize = 4 + 8 + 4;

/// A decoded Fetch v0-v3 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyFetchRequest {
    /// -1 for consumers.
    pub replica_id: i32,
    /// Longest wait for `min_bytes`.
    pub max_wait_ms: i32,
    /// Bytes to wait for.
    pub min_bytes: i32,
    /// Response size limit (v3+; `None` before: only per-partition limits exist).
    pub max_bytes: Option<i32>,
    /// Topics with their partitions, in request order.
    pub topics: Vec<LegacyTopic<LegacyFetchPartition>>,
}

/// One partition to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyFetchPartition {
    /// The partition index.
    pub partition: i32,
    /// First offset wanted.
    pub fetch_offset: i64,
    /// Most bytes wanted from this partition.
    pub partition_max_bytes: i32,
}

/// The answer to a Fetch v0-v3 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyFetchResponse {
    /// v1+.
    pub throttle_time_ms: i32,
    /// One entry per requested topic, in request order.
    pub topics: Vec<LegacyTopic<LegacyFetchPartitionResponse>>,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyFetchPartitionResponse {
    /// The partition index.
    pub partition: i32,
    /// Kafka error code, 0 for success.
    pub error_code: i16,
    /// The partition's high watermark, -1 when unknown.
    pub high_watermark: i64,
    /// A message set in the reader's format (see [`fetch_message_magic`]).
    pub message_set: Bytes,
}

/// The message format a Fetch `api_version` reader understands: 0 for v0-v1, 1 for v2-v3.
pub fn fetch_message_magic(api_version: i16) -> i8 {
    assert!((0..=3).contains(&api_version), "fetch v{api_version}");
    if api_version >= 2 {
        1
    } else {
        0
    }
}

/// Decodes a Fetch v0-v3 body (the bytes after the request header).
pub fn decode_fetch(
    api_version: i16,
    body: Bytes,
) -> Result<LegacyFetchRequest, LegacyDecodeError> {
    assert!((0..=3).contains(&api_version), "fetch v{api_version}");
    let mut reader = Reader::new(body);
    let replica_id = reader.i32("replica_id")?;
    let max_wait_ms = reader.i32("max_wait_ms")?;
    let min_bytes = reader.i32("min_bytes")?;
    let max_bytes = if api_version >= 3 {
        Some(reader.i32("max_bytes")?)
    } else {
        None
    };
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string("topic name")?;
        let partition_count = reader.count("partitions", PARTITION_BYTES)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(LegacyFetchPartition {
                partition: reader.i32("partition")?,
                fetch_offset: reader.i64("fetch_offset")?,
                partition_max_bytes: reader.i32("partition_max_bytes")?,
            });
        }
        topics.push(LegacyTopic { name, partitions });
    }
    Ok(LegacyFetchRequest {
        replica_id,
        max_wait_ms,
        min_bytes,
        max_bytes,
        topics,
    })
}

/// Appends the response body for `api_version` (0-3).
pub fn encode_fetch_response(api_version: i16, response: &LegacyFetchResponse, out: &mut BytesMut) {
    assert!((0..=3).contains(&api_version), "fetch v{api_version}");
    if api_version >= 1 {
        out.put_i32(response.throttle_time_ms);
    }
    put_count(out, response.topics.len());
    for topic in &response.topics {
        put_string(out, &topic.name);
        put_count(out, topic.partitions.len());
        for partition in &topic.partitions {
            out.put_i32(partition.partition);
            out.put_i16(partition.error_code);
            out.put_i64(partition.high_watermark);
            put_nullable_bytes(out, Some(&partition.message_set));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(api_version: i16) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(-1_i32).to_be_bytes());
        body.extend_from_slice(&500_i32.to_be_bytes());
        body.extend_from_slice(&1_i32.to_be_bytes());
        if api_version >= 3 {
            body.extend_from_slice(&65536_i32.to_be_bytes());
        }
        body.extend_from_slice(&1_i32.to_be_bytes());
        body.extend_from_slice(&[0, 1, b't']);
        body.extend_from_slice(&1_i32.to_be_bytes());
        body.extend_from_slice(&4_i32.to_be_bytes());
        body.extend_from_slice(&42_i64.to_be_bytes());
        body.extend_from_slice(&1024_i32.to_be_bytes());
        body
    }

    #[test]
    fn decodes_every_version() {
        for api_version in 0..=3 {
            let decoded = decode_fetch(api_version, Bytes::from(body(api_version))).unwrap();
            assert_eq!(
                decoded,
                LegacyFetchRequest {
                    replica_id: -1,
                    max_wait_ms: 500,
                    min_bytes: 1,
                    max_bytes: (api_version >= 3).then_some(65536),
                    topics: vec![LegacyTopic {
                        name: "t".into(),
                        partitions: vec![LegacyFetchPartition {
                            partition: 4,
                            fetch_offset: 42,
                            partition_max_bytes: 1024,
                        }],
                    }],
                }
            );
            let whole = body(api_version);
            for cut in 0..whole.len() {
                let truncated = Bytes::copy_from_slice(&whole[..cut]);
                assert!(decode_fetch(api_version, truncated).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn responses_match_hand_computed_bytes() {
        let response = LegacyFetchResponse {
            throttle_time_ms: 0,
            topics: vec![LegacyTopic {
                name: "t".into(),
                partitions: vec![LegacyFetchPartitionResponse {
                    partition: 4,
                    error_code: 1,
                    high_watermark: 9,
                    message_set: Bytes::from_static(b"xyz"),
                }],
            }],
        };
        let mut common = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 4, 0, 1];
        common.extend_from_slice(&9_i64.to_be_bytes());
        common.extend_from_slice(&[0, 0, 0, 3, b'x', b'y', b'z']);
        for api_version in 0..=3 {
            let mut out = BytesMut::new();
            encode_fetch_response(api_version, &response, &mut out);
            let mut expected = if api_version >= 1 { vec![0; 4] } else { vec![] };
            expected.extend_from_slice(&common);
            assert_eq!(&out[..], &expected[..], "v{api_version}");
        }
        assert_eq!(fetch_message_magic(0), 0);
        assert_eq!(fetch_message_magic(1), 0);
        assert_eq!(fetch_message_magic(2), 1);
        assert_eq!(fetch_message_magic(3), 1);
    }
}
