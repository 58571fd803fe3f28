//! OffsetCommit v0-v1 (Kafka's `OffsetCommitRequest.json`, versions kafka-protocol 0.18 cannot
//! decode).
//!
//! Request (header v1): `group_id string, generation_id i32 (v1+), member_id string (v1+),
//! [topic string, [partition i32, committed_offset i64, commit_timestamp i64 (v1 only),
//! committed_metadata nullable string]]`. Response (header v0): `[topic string,
//! [partition i32, error_code i16]]`.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{put_count, put_string, LegacyDecodeError, Reader};
use super::LegacyTopic;

const TOPIC_BYTES_MIN: usize = 2 + 4;
/// Smallest partition: index (i32) + offset (i64) + metadata length (i16).
const PARTITION_BYTES_MIN: usize = 4 + 8 + 2;

/// A decoded OffsetCommit v0-v1 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOffsetCommitRequest {
    /// The group.
    pub group_id: String,
    /// v1+; -1 in v0 (a commit outside group membership).
    pub generation_id: i32,
    /// v1+; empty in v0.
    pub member_id: String,
    /// Topics with their partitions, in request order.
    pub topics: Vec<LegacyTopic<LegacyOffsetCommitPartition>>,
}

/// One partition's commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOffsetCommitPartition {
    /// The partition index.
    pub partition: i32,
    /// The offset to commit.
    pub committed_offset: i64,
    /// v1 only (the client's commit time); -1 in v0.
    pub commit_timestamp_ms: i64,
    /// Client metadata.
    pub committed_metadata: Option<String>,
}

/// The answer to an OffsetCommit v0-v1 request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegacyOffsetCommitResponse {
    /// One entry per requested topic, in request order.
    pub topics: Vec<LegacyTopic<(i32, i16)>>,
}

/// Decodes an OffsetCommit v0-v1 body.
pub fn decode_offset_commit(
    api_version: i16,
    body: Bytes,
) -> Result<LegacyOffsetCommitRequest, LegacyDecodeError> {
    assert!(
        (0..=1).contains(&api_version),
        "offset commit v{api_version}"
    );
    let mut reader = Reader::new(body);
    let group_id = reader.string("group_id")?;
    let (generation_id, member_id) = if api_version >= 1 {
        (reader.i32("generation_id")?, reader.string("member_id")?)
    } else {
        (-1, String::new())
    };
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.string("topic name")?;
        let partition_count = reader.count("partitions", PARTITION_BYTES_MIN)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            let partition = reader.i32("partition")?;
            let committed_offset = reader.i64("committed_offset")?;
            let commit_timestamp_ms = if api_version == 1 {
                reader.i64("commit_timestamp")?
            } else {
                -1
            };
            let committed_metadata = reader.nullable_string("committed_metadata")?;
            partitions.push(LegacyOffsetCommitPartition {
                partition,
                committed_offset,
                commit_timestamp_ms,
                committed_metadata,
            });
        }
        topics.push(LegacyTopic { name, partitions });
    }
    Ok(LegacyOffsetCommitRequest {
        group_id,
        generation_id,
        member_id,
        topics,
    })
}

/// Appends the v0-v1 response body (both versions have the same layout).
pub fn encode_offset_commit_response(response: &LegacyOffsetCommitResponse, out: &mut BytesMut) {
    put_count(out, response.topics.len());
    for topic in &response.topics {
        put_string(out, &topic.name);
        put_count(out, topic.partitions.len());
        for &(partition, error_code) in &topic.partitions {
            out.put_i32(partition);
            out.put_i16(error_code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(api_version: i16) -> Vec<u8> {
        let mut body = vec![0, 1, b'g'];
        if api_version >= 1 {
            body.extend_from_slice(&3_i32.to_be_bytes());
            body.extend_from_slice(&[0, 2, b'm', b'1']);
        }
        body.extend_from_slice(&[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0]);
        body.extend_from_slice(&17_i64.to_be_bytes());
        if api_version >= 1 {
            body.extend_from_slice(&1000_i64.to_be_bytes());
        }
        body.extend_from_slice(&[0xff, 0xff]);
        body
    }

    #[test]
    fn decodes_v0_and_v1() {
        for api_version in 0..=1 {
            let request = decode_offset_commit(api_version, Bytes::from(body(api_version)));
            let request = request.unwrap();
            assert_eq!(request.group_id, "g");
            let v1 = api_version == 1;
            assert_eq!(request.generation_id, if v1 { 3 } else { -1 });
            assert_eq!(request.member_id, if v1 { "m1" } else { "" });
            assert_eq!(
                request.topics,
                vec![LegacyTopic {
                    name: "t".into(),
                    partitions: vec![LegacyOffsetCommitPartition {
                        partition: 0,
                        committed_offset: 17,
                        commit_timestamp_ms: if v1 { 1000 } else { -1 },
                        committed_metadata: None,
                    }],
                }]
            );
            let whole = body(api_version);
            for cut in 0..whole.len() {
                let truncated = Bytes::copy_from_slice(&whole[..cut]);
                assert!(decode_offset_commit(api_version, truncated).is_err());
            }
        }
    }

    #[test]
    fn response_bytes() {
        let response = LegacyOffsetCommitResponse {
            topics: vec![LegacyTopic {
                name: "t".into(),
                partitions: vec![(0, 25)],
            }],
        };
        let mut out = BytesMut::new();
        encode_offset_commit_response(&response, &mut out);
        assert_eq!(
            &out[..],
            &[0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0, 0, 25]
        );
    }
}
