//! ListOffsets v0 (Kafka's `ListOffsetsRequest.json` v0, the "offsets before a time" form).
//!
//! Request (header v1): `replica_id i32, [topic string, [partition i32, timestamp i64,
//! max_num_offsets i32]]`. Response (header v0): `[topic string, [partition i32,
//! error_code i16, old_style_offsets [i64]]]`.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{put_count, put_string, LegacyDecodeError, Reader};
use super::LegacyTopic;

const TOPIC_BYTES_MIN: usize = 2 + 4;
/// One partition: index (i32) + timestamp (i64) + max offsets (i32).
const PARTITION_BYTES: usize = 4 + 8 + 4;

/// A decoded ListOffsets v0 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyListOffsetsRequest {
    /// -1 for consumers.
    pub replica_id: i32,
    /// Topics with their partitions, in request order.
    pub topics: Vec<LegacyTopic<LegacyListOffsetsPartition>>,
}

/// One partition to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyListOffsetsPartition {
    /// The partition index.
    pub partition: i32,
    /// -1 latest, -2 earliest, else a time in milliseconds.
    pub timestamp: i64,
    /// Most offsets wanted.
    pub max_num_offsets: i32,
}

/// The answer to a ListOffsets v0 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyListOffsetsResponse {
    /// One entry per requested topic, in request order.
    pub topics: Vec<LegacyTopic<LegacyListOffsetsPartitionResponse>>,
}

/// One partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyListOffsetsPartitionResponse {
    /// The partition index.
    pub partition: i32,
    /// Kafka error code, 0 for success.
    pub error_code: i16,
    /// Offsets, newest first (at most `max_num_offsets`).
    pub offsets: Vec<i64>,
}

/// Decodes a ListOffsets v0 body.
pub fn decode_list_offsets(body: Bytes) -> Result<LegacyListOffsetsRequest, LegacyDecodeError> {
    let mut reader = Reader::new(body);
    let replica_id = reader.i32("replica_id")?;
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string("topic name")?;
        let partition_count = reader.count("partitions", PARTITION_BYTES)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(LegacyListOffsetsPartition {
                partition: reader.i32("partition")?,
                timestamp: reader.i64("timestamp")?,
                max_num_offsets: reader.i32("max_num_offsets")?,
            });
        }
        topics.push(LegacyTopic { name, partitions });
    }
    Ok(LegacyListOffsetsRequest { replica_id, topics })
}

/// Appends the v0 response body.
pub fn encode_list_offsets_response(response: &LegacyListOffsetsResponse, out: &mut BytesMut) {
    put_count(out, response.topics.len());
    for topic in &response.topics {
        put_string(out, &topic.name);
        put_count(out, topic.partitions.len());
        for partition in &topic.partitions {
            out.put_i32(partition.partition);
            out.put_i16(partition.error_code);
            put_count(out, partition.offsets.len());
            for &offset in &partition.offsets {
                out.put_i64(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_response_bytes() {
        let mut body = (-1_i32).to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b'q', 0, 0, 0, 1, 0, 0, 0, 2]);
        body.extend_from_slice(&(-2_i64).to_be_bytes());
        body.extend_from_slice(&1_i32.to_be_bytes());
        let request = decode_list_offsets(Bytes::from(body.clone())).unwrap();
        assert_eq!(request.replica_id, -1);
        assert_eq!(request.topics[0].name, "q");
        assert_eq!(
            request.topics[0].partitions,
            vec![LegacyListOffsetsPartition {
                partition: 2,
                timestamp: -2,
                max_num_offsets: 1
            }]
        );
        for cut in 0..body.len() {
            assert!(decode_list_offsets(Bytes::copy_from_slice(&body[..cut])).is_err());
        }

        let response = LegacyListOffsetsResponse {
            topics: vec![LegacyTopic {
                name: "q".into(),
                partitions: vec![LegacyListOffsetsPartitionResponse {
                    partition: 2,
                    error_code: 0,
                    offsets: vec![5],
                }],
            }],
        };
        let mut out = BytesMut::new();
        encode_list_offsets_response(&response, &mut out);
        let mut expected = vec![
            0, 0, 0, 1, 0, 1, b'q', 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1,
        ];
        expected.extend_from_slice(&5_i64.to_be_bytes());
        assert_eq!(&out[..], &expected[..]);
    }
}
