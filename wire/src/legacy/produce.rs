//! Produce v0-v2 (Kafka's `ProduceRequest.json`, versions kafka-protocol 0.18 cannot decode).
//!
//! Request (header v1): `acks i16, timeout_ms i32, [topic string, [partition i32,
//! records nullable bytes]]`. The records are a v0 (Produce v0-v1) or v1 (v2) message set.
//! Response (header v0): `[topic string, [partition i32, error_code i16, base_offset i64,
//! log_append_time_ms i64 (v2+)]], throttle_time_ms i32 (v1+)`.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{put_count, put_string, LegacyDecodeError, Reader};
use super::LegacyTopic;

/// Smallest encoding of one topic: name length (i16) + partition count (i32).
const TOPIC_BYTES_MIN: usize = 2 + 4;
/// Smallest encoding of one partition: index (i32) + record set length (i32).
const PARTITION_BYTES_MIN: usize = 4 + 4;

/// A decoded Produce v0-v2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProduceRequest {
    /// 0 means the client expects no response.
    pub acks: i16,
    /// How long the broker may wait for acknowledgements.
    pub timeout_ms: i32,
    /// Topics with their partitions' message sets, in request order.
    pub topics: Vec<LegacyTopic<LegacyProducePartition>>,
}

/// One partition's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProducePartition {
    /// The partition index.
    pub partition: i32,
    /// The message set, a slice of the request frame; `None` when sent as null.
    pub message_set: Option<Bytes>,
}

/// The answer to a Produce v0-v2 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyProduceResponse {
    /// One entry per requested topic, in request order.
    pub topics: Vec<LegacyTopic<LegacyProducePartitionResponse>>,
}

/// One partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyProducePartitionResponse {
    /// The partition index.
    pub partition: i32,
    /// Kafka error code, 0 for success.
    pub error_code: i16,
    /// Offset of the first appended message, -1 on error.
    pub base_offset: i64,
    /// The append time for LogAppendTime topics, else -1 (v2+ only).
    pub log_append_time_ms: i64,
}

/// Decodes a Produce v0-v2 body (the bytes after the request header).
pub fn decode_produce(body: Bytes) -> Result<LegacyProduceRequest, LegacyDecodeError> {
    let mut reader = Reader::new(body);
    let acks = reader.i16("acks")?;
    let timeout_ms = reader.i32("timeout_ms")?;
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string("topic name")?;
        let partition_count = reader.count("partitions", PARTITION_BYTES_MIN)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition = reader.i32("partition")?;
            let message_set = reader.nullable_bytes("record set")?;
            partitions.push(LegacyProducePartition {
                partition,
                message_set,
            });
        }
        topics.push(LegacyTopic { name, partitions });
    }
    Ok(LegacyProduceRequest {
        acks,
        timeout_ms,
        topics,
    })
}

/// Appends the response body for `api_version` (0-2).
pub fn encode_produce_response(
    api_version: i16,
    response: &LegacyProduceResponse,
    out: &mut BytesMut,
) {
    assert!((0..=2).contains(&api_version), "produce v{api_version}");
    put_count(out, response.topics.len());
    for topic in &response.topics {
        put_string(out, &topic.name);
        put_count(out, topic.partitions.len());
        for partition in &topic.partitions {
            out.put_i32(partition.partition);
            out.put_i16(partition.error_code);
            out.put_i64(partition.base_offset);
            if api_version >= 2 {
                out.put_i64(partition.log_append_time_ms);
            }
        }
    }
    if api_version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built body: acks 1, timeout 1500, topics "ab" [0 (3 record bytes), 7 (null)] and
    /// "c" [].
    fn sample_body() -> Vec<u8> {
        let mut body = vec![0x00, 0x01];
        body.extend_from_slice(&1500_i32.to_be_bytes());
        body.extend_from_slice(&2_i32.to_be_bytes());
        body.extend_from_slice(&[0x00, 0x02, b'a', b'b']);
        body.extend_from_slice(&2_i32.to_be_bytes());
        body.extend_from_slice(&0_i32.to_be_bytes());
        body.extend_from_slice(&3_i32.to_be_bytes());
        body.extend_from_slice(&[9, 9, 9]);
        body.extend_from_slice(&7_i32.to_be_bytes());
        body.extend_from_slice(&(-1_i32).to_be_bytes());
        body.extend_from_slice(&[0x00, 0x01, b'c']);
        body.extend_from_slice(&0_i32.to_be_bytes());
        body
    }

    #[test]
    fn decodes_topics_partitions_and_message_sets() {
        let decoded = decode_produce(Bytes::from(sample_body())).unwrap();
        let partition = |partition, message_set: Option<&'static [u8]>| LegacyProducePartition {
            partition,
            message_set: message_set.map(Bytes::from_static),
        };
        assert_eq!(
            decoded,
            LegacyProduceRequest {
                acks: 1,
                timeout_ms: 1500,
                topics: vec![
                    LegacyTopic {
                        name: "ab".into(),
                        partitions: vec![partition(0, Some(&[9, 9, 9])), partition(7, None)],
                    },
                    LegacyTopic {
                        name: "c".into(),
                        partitions: vec![],
                    },
                ],
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let body = sample_body();
        for cut in 0..body.len() {
            let truncated = Bytes::copy_from_slice(&body[..cut]);
            assert!(decode_produce(truncated).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn responses_match_hand_computed_bytes() {
        let response = LegacyProduceResponse {
            topics: vec![LegacyTopic {
                name: "ab".into(),
                partitions: vec![LegacyProducePartitionResponse {
                    partition: 7,
                    error_code: 2,
                    base_offset: 0x0102,
                    log_append_time_ms: -1,
                }],
            }],
        };
        let mut common = vec![0, 0, 0, 1, 0, 2, b'a', b'b', 0, 0, 0, 1, 0, 0, 0, 7, 0, 2];
        common.extend_from_slice(&0x0102_i64.to_be_bytes());
        for api_version in 0..=2 {
            let mut out = BytesMut::new();
            encode_produce_response(api_version, &response, &mut out);
            let mut expected = common.clone();
            if api_version >= 2 {
                expected.extend_from_slice(&[0xff; 8]);
            }
            if api_version >= 1 {
                expected.extend_from_slice(&[0; 4]);
            }
            assert_eq!(&out[..], &expected[..], "v{api_version}");
        }
    }
}
