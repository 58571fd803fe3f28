//! Produce v0-v2, which the broker advertises (see
//! [`LEGACY_PRODUCE_VERSION_MAX`](crate::versions::LEGACY_PRODUCE_VERSION_MAX)) but kafka-protocol
//! cannot decode. Only what is needed to answer every partition with an error is read: the
//! record sets are skipped, not parsed.
//!
//! Body (non-flexible, request header v1): `acks i16, timeout_ms i32,
//! [topic string, [partition i32, record_set nullable bytes]]`.

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use crate::frame::LENGTH_PREFIX_BYTES;
use crate::versions::LEGACY_PRODUCE_VERSION_MAX;

/// Smallest encoding of one topic: name length (i16) + partition count (i32).
const TOPIC_BYTES_MIN: usize = 2 + 4;
/// Smallest encoding of one partition: index (i32) + record set length (i32).
const PARTITION_BYTES_MIN: usize = 4 + 4;

/// The parts of a legacy Produce request the broker needs to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyProduceBody {
    /// 0 means the client expects no response.
    pub acks: i16,
    /// Unused: the request is refused without waiting.
    pub timeout_ms: i32,
    /// Topic names with their partition indexes, in request order.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// Why a legacy Produce body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegacyProduceError {
    /// The body ends inside `field`.
    #[error("legacy produce body ends inside {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A length or count is negative where it cannot be.
    #[error("legacy produce {field} is negative ({value})")]
    Negative {
        /// The field being read.
        field: &'static str,
        /// The value read.
        value: i32,
    },
    /// A count claims more elements than the remaining bytes could hold.
    #[error("legacy produce {field} count {count} exceeds what {remaining_bytes} bytes can hold")]
    CountTooLarge {
        /// The field being read.
        field: &'static str,
        /// The count read.
        count: usize,
        /// Bytes left in the body.
        remaining_bytes: usize,
    },
    /// A topic name is not UTF-8.
    #[error("legacy produce topic name is not UTF-8")]
    TopicNameNotUtf8,
}

/// Reads big-endian fields off a slice, never past its end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, field: &'static str) -> Result<&'a [u8], LegacyProduceError> {
        if self.bytes.len() < count {
            return Err(LegacyProduceError::Truncated { field });
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, LegacyProduceError> {
        let bytes = self.take(2, field)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, LegacyProduceError> {
        let bytes = self.take(4, field)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// An array count, bounded by the bytes left so a hostile count cannot make us allocate.
    fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, LegacyProduceError> {
        let value = self.i32(field)?;
        let count =
            usize::try_from(value).map_err(|_| LegacyProduceError::Negative { field, value })?;
        let remaining_bytes = self.bytes.len();
        if count > remaining_bytes / element_bytes_min {
            return Err(LegacyProduceError::CountTooLarge {
                field,
                count,
                remaining_bytes,
            });
        }
        Ok(count)
    }

    fn topic_name(&mut self) -> Result<String, LegacyProduceError> {
        let field = "topic name";
        let value = i32::from(self.i16(field)?);
        let length =
            usize::try_from(value).map_err(|_| LegacyProduceError::Negative { field, value })?;
        let bytes = self.take(length, field)?;
        let name = std::str::from_utf8(bytes).map_err(|_| LegacyProduceError::TopicNameNotUtf8)?;
        Ok(name.to_owned())
    }

    /// Skips a nullable record set (length -1 is null).
    fn skip_record_set(&mut self) -> Result<(), LegacyProduceError> {
        let field = "record set";
        let value = self.i32(field)?;
        if value == -1 {
            return Ok(());
        }
        let length =
            usize::try_from(value).map_err(|_| LegacyProduceError::Negative { field, value })?;
        self.take(length, field)?;
        Ok(())
    }
}

/// Decodes a Produce v0-v2 body (the bytes after the request header). Trailing bytes are
/// tolerated, as for every other request (see `request::decode_request`).
pub fn decode_legacy_produce_body(body: &[u8]) -> Result<LegacyProduceBody, LegacyProduceError> {
    let mut reader = Reader { bytes: body };
    let acks = reader.i16("acks")?;
    let timeout_ms = reader.i32("timeout_ms")?;
    let topic_count = reader.count("topics", TOPIC_BYTES_MIN)?;
    let mut topics = Vec::with_capacity(topic_count);
    for _ in 0..topic_count {
        let name = reader.topic_name()?;
        let partition_count = reader.count("partitions", PARTITION_BYTES_MIN)?;
        let mut partitions = Vec::with_capacity(partition_count);
        for _ in 0..partition_count {
            partitions.push(reader.i32("partition")?);
            reader.skip_record_set()?;
        }
        topics.push((name, partitions));
    }
    Ok(LegacyProduceBody {
        acks,
        timeout_ms,
        topics,
    })
}

/// Appends a complete Produce v0-v2 response (length prefix, response header v0, body) that
/// gives every partition `error_code` and base offset -1.
///
/// v0: `[topic string, [partition i32, error_code i16, base_offset i64]]`; v1 appends
/// `throttle_time_ms i32`; v2 adds `log_append_time i64` (-1) after `base_offset`.
///
/// `topics` comes from a decoded request, so sizes that do not fit the wire format are
/// programmer errors.
pub fn encode_legacy_produce_response(
    correlation_id: i32,
    api_version: i16,
    topics: &[(String, Vec<i32>)],
    error_code: i16,
    out: &mut BytesMut,
) {
    assert!(
        (0..=LEGACY_PRODUCE_VERSION_MAX).contains(&api_version),
        "legacy produce version {api_version}"
    );
    let frame_bytes = legacy_response_bytes(api_version, topics);
    out.reserve(LENGTH_PREFIX_BYTES + frame_bytes);
    let start = out.len();
    out.put_i32(wire_i32(frame_bytes));
    out.put_i32(correlation_id);
    out.put_i32(wire_i32(topics.len()));
    for (name, partitions) in topics {
        let name_bytes = i16::try_from(name.len());
        assert!(name_bytes.is_ok(), "topic name of {} bytes", name.len());
        out.put_i16(name_bytes.unwrap_or_default());
        out.put_slice(name.as_bytes());
        out.put_i32(wire_i32(partitions.len()));
        for &partition in partitions {
            out.put_i32(partition);
            out.put_i16(error_code);
            out.put_i64(-1); // base_offset
            if api_version >= 2 {
                out.put_i64(-1); // log_append_time
            }
        }
    }
    if api_version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    assert_eq!(out.len() - start, LENGTH_PREFIX_BYTES + frame_bytes);
}

/// Size of the response without its length prefix.
fn legacy_response_bytes(api_version: i16, topics: &[(String, Vec<i32>)]) -> usize {
    let partition_bytes = 4 + 2 + 8 + if api_version >= 2 { 8 } else { 0 };
    let topics_bytes: usize = topics
        .iter()
        .map(|(name, partitions)| 2 + name.len() + 4 + partitions.len() * partition_bytes)
        .sum();
    let throttle_bytes = if api_version >= 1 { 4 } else { 0 };
    4 + 4 + topics_bytes + throttle_bytes
}

fn wire_i32(value: usize) -> i32 {
    let converted = i32::try_from(value);
    assert!(converted.is_ok(), "{value} does not fit an i32 on the wire");
    converted.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built v0-v2 body: acks 1, timeout 1500, topics "ab" [0 (3 record bytes), 7 (null)]
    /// and "c" [] .
    fn sample_body() -> Vec<u8> {
        let mut body = vec![0x00, 0x01]; // acks
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
    fn decodes_topics_and_partitions() {
        let decoded = decode_legacy_produce_body(&sample_body()).unwrap();
        assert_eq!(
            decoded,
            LegacyProduceBody {
                acks: 1,
                timeout_ms: 1500,
                topics: vec![("ab".to_owned(), vec![0, 7]), ("c".to_owned(), vec![])],
            }
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let body = sample_body();
        for cut in 0..body.len() {
            assert!(
                decode_legacy_produce_body(&body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut body = vec![0x00, 0x01];
        body.extend_from_slice(&0_i32.to_be_bytes());
        body.extend_from_slice(&0x7fff_ffff_i32.to_be_bytes());
        assert_eq!(
            decode_legacy_produce_body(&body),
            Err(LegacyProduceError::CountTooLarge {
                field: "topics",
                count: 0x7fff_ffff,
                remaining_bytes: 0
            })
        );
        body.truncate(6);
        body.extend_from_slice(&(-2_i32).to_be_bytes());
        assert_eq!(
            decode_legacy_produce_body(&body),
            Err(LegacyProduceError::Negative {
                field: "topics",
                value: -2
            })
        );
    }

    #[test]
    fn negative_record_set_length_other_than_null_is_an_error() {
        let mut body = sample_body();
        // The null record set of partition 7 (4 bytes) is followed only by topic "c" (7 bytes).
        let null_at = body.len() - 3 - 4 - 4;
        body[null_at..null_at + 4].copy_from_slice(&(-2_i32).to_be_bytes());
        assert_eq!(
            decode_legacy_produce_body(&body),
            Err(LegacyProduceError::Negative {
                field: "record set",
                value: -2
            })
        );
    }

    fn sample_topics() -> Vec<(String, Vec<i32>)> {
        vec![("ab".to_owned(), vec![0, 7]), ("c".to_owned(), vec![])]
    }

    /// Response bytes after the length prefix and correlation id, up to the partitions.
    fn expected_partition(partition: i32, log_append_time: bool) -> Vec<u8> {
        let mut bytes = partition.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x00, 0x23]); // UNSUPPORTED_VERSION (35)
        bytes.extend_from_slice(&[0xff; 8]); // base_offset -1
        if log_append_time {
            bytes.extend_from_slice(&[0xff; 8]);
        }
        bytes
    }

    fn expected_response(api_version: i16) -> Vec<u8> {
        let mut body = 0x0102_0304_i32.to_be_bytes().to_vec(); // correlation id
        body.extend_from_slice(&[0, 0, 0, 2, 0, 2, b'a', b'b', 0, 0, 0, 2]);
        body.extend(expected_partition(0, api_version >= 2));
        body.extend(expected_partition(7, api_version >= 2));
        body.extend_from_slice(&[0, 1, b'c', 0, 0, 0, 0]);
        if api_version >= 1 {
            body.extend_from_slice(&[0, 0, 0, 0]);
        }
        let mut framed = (body.len() as i32).to_be_bytes().to_vec();
        framed.extend(body);
        framed
    }

    #[test]
    fn responses_match_hand_computed_bytes() {
        for api_version in 0..=2 {
            let mut out = BytesMut::from(&b"xy"[..]);
            encode_legacy_produce_response(
                0x0102_0304,
                api_version,
                &sample_topics(),
                35,
                &mut out,
            );
            assert_eq!(&out[..2], b"xy", "existing bytes are kept");
            assert_eq!(
                &out[2..],
                &expected_response(api_version)[..],
                "v{api_version}"
            );
        }
        // Sizes spelled out once, so the expectation itself is checked: prefix + correlation id
        // + topic count + "ab" (2 + 2 + 4) + 2 partitions + "c" (2 + 1 + 4) + throttle.
        assert_eq!(expected_response(0).len(), 4 + 4 + 4 + 8 + 2 * 14 + 7);
        assert_eq!(expected_response(1).len(), 4 + 4 + 4 + 8 + 2 * 14 + 7 + 4);
        assert_eq!(expected_response(2).len(), 4 + 4 + 4 + 8 + 2 * 22 + 7 + 4);
    }

    #[test]
    #[should_panic(expected = "legacy produce version 3")]
    fn encoding_a_modern_version_is_a_programmer_error() {
        encode_legacy_produce_response(1, 3, &[], 35, &mut BytesMut::new());
    }
}
