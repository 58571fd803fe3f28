//! Conversion between old message sets and v2 record batches, the only format stored.
//!
//! Up (produce): one v2 batch per message set, records in the producer's order with offset
//! deltas 0..n, the producer's timestamps (v0 messages have none: -1), keys and values, and
//! the producer's codec. Down (fetch by an old reader): the stored batches' records from the
//! fetch offset on, as plain (uncompressed) messages of the reader's magic; headers, which old
//! formats cannot carry, are dropped, as Kafka does.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};
use thiserror::Error;

use super::compression::decompress;
use super::message_set::{parse_message_set, MessageSetError, MessageToWrite, ParsedMessageSet};

const V2_LENGTH_AT: usize = 8;
const V2_MAGIC_AT: usize = 16;
const V2_ATTRIBUTES_AT: usize = 21;
const V2_MAX_TIMESTAMP_AT: usize = 35;
const V2_HEADER_BYTES: usize = 61;
const V2_LOG_OVERHEAD_BYTES: usize = 12;
const V2_ATTRIBUTE_LOG_APPEND_TIME: u8 = 0x08;
const V2_ATTRIBUTE_CONTROL: u8 = 0x20;

/// Why an old message set could not become a v2 batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UpConvertError {
    /// Kafka answers CORRUPT_MESSAGE.
    #[error("corrupt message set: {0}")]
    Corrupt(#[from] MessageSetError),
    /// The batch encoder refused the records (a bug, or a codec not compiled in).
    #[error("encoding the v2 batch failed: {0}")]
    Encode(String),
}

/// Why stored batches could not be converted down.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DownConvertError {
    /// A stored batch does not decode (or decompresses past the limit).
    #[error("stored batch at offset {base_offset} does not decode: {reason}")]
    Batch {
        /// Its base offset.
        base_offset: i64,
        /// What failed.
        reason: String,
    },
}

/// Converts a produced v0/v1 message set into one v2 batch (offsets from 0, to be stamped by
/// the log). Returns the batch and the number of records in it.
pub fn up_convert(
    message_set: Bytes,
    decompressed_bytes_max: usize,
) -> Result<(BytesMut, usize), UpConvertError> {
    let parsed = parse_message_set(message_set, decompressed_bytes_max)?;
    let count = parsed.messages.len();
    let batch = encode_v2(&parsed)?;
    Ok((batch, count))
}

fn encode_v2(parsed: &ParsedMessageSet) -> Result<BytesMut, UpConvertError> {
    assert!(!parsed.messages.is_empty());
    let records: Vec<Record> = parsed
        .messages
        .iter()
        .enumerate()
        .map(|(index, message)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder starts a new batch when `offset - sequence` changes; keeping it
            // constant (1) gives one batch whose base sequence is -1 (no producer id).
            sequence: (index as i32).wrapping_sub(1),
            timestamp: message.timestamp_ms,
            key: message.key.clone(),
            value: message.value.clone(),
            headers: Default::default(),
        })
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression: parsed.compression,
    };
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(&mut batch, &records, &options)
        .map_err(|error| UpConvertError::Encode(format!("{error:#}")))?;
    Ok(batch)
}

/// Limits of one partition's down-conversion.
#[derive(Debug, Clone, Copy)]
pub struct DownConvertLimits {
    /// Most bytes of output, unless `at_least_one` lets a single larger message through.
    pub output_bytes_max: usize,
    /// Return the first message even when it alone is larger than `output_bytes_max`.
    pub at_least_one: bool,
    /// Most bytes one stored batch may decompress to.
    pub batch_decompressed_bytes_max: usize,
}

/// A down-converted message set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownConverted {
    /// Plain messages of the reader's magic.
    pub message_set: BytesMut,
    /// How many messages it holds.
    pub message_count: usize,
}

/// Converts stored v2 batches into a message set of `magic` (0 or 1), skipping records before
/// `fetch_offset` and control batches. A trailing partial batch is ignored.
pub fn down_convert(
    batches: &Bytes,
    magic: i8,
    fetch_offset: i64,
    limits: DownConvertLimits,
) -> Result<DownConverted, DownConvertError> {
    assert!((0..=1).contains(&magic), "magic {magic}");
    let mut out = DownConverted::default();
    let mut rest = batches.clone();
    while let Some(batch) = split_batch(&mut rest) {
        if batch[V2_MAGIC_AT] != 2 || batch[V2_ATTRIBUTES_AT + 1] & V2_ATTRIBUTE_CONTROL != 0 {
            continue; // storage holds only magic 2; control records are not for consumers
        }
        let log_append_time = batch[V2_ATTRIBUTES_AT + 1] & V2_ATTRIBUTE_LOG_APPEND_TIME != 0;
        let max_timestamp = i64::from_be_bytes(
            batch[V2_MAX_TIMESTAMP_AT..V2_MAX_TIMESTAMP_AT + 8]
                .try_into()
                .unwrap_or_default(),
        );
        for record in decode_batch(batch, limits.batch_decompressed_bytes_max)? {
            if record.offset < fetch_offset {
                continue;
            }
            let message = MessageToWrite {
                offset: record.offset,
                magic,
                codec: Compression::None,
                log_append_time,
                timestamp_ms: if log_append_time {
                    max_timestamp
                } else {
                    record.timestamp
                },
                key: record.key.as_deref(),
                value: record.value.as_deref(),
            };
            let fits = out.message_set.len() + message.set_bytes() <= limits.output_bytes_max;
            let first_allowed = limits.at_least_one && out.message_count == 0;
            if !(fits || first_allowed) {
                return Ok(out);
            }
            message.write(&mut out.message_set);
            out.message_count += 1;
        }
    }
    Ok(out)
}

/// Splits the next whole batch (at least a header) off `rest`.
fn split_batch(rest: &mut Bytes) -> Option<Bytes> {
    let length = rest.get(V2_LENGTH_AT..V2_LOG_OVERHEAD_BYTES)?;
    let length = i32::from_be_bytes(length.try_into().ok()?);
    let batch_bytes = V2_LOG_OVERHEAD_BYTES.checked_add(usize::try_from(length).ok()?)?;
    if batch_bytes < V2_HEADER_BYTES || batch_bytes > rest.len() {
        return None;
    }
    Some(rest.split_to(batch_bytes))
}

fn decode_batch(
    mut batch: Bytes,
    decompressed_bytes_max: usize,
) -> Result<Vec<Record>, DownConvertError> {
    let base_offset = i64::from_be_bytes(batch[..8].try_into().unwrap_or_default());
    let bounded = |compressed: &mut Bytes, codec: Compression| {
        if codec == Compression::None {
            // Already in memory, bounded by the read: nothing to expand.
            return Ok(compressed.clone());
        }
        decompress(codec, compressed, false, decompressed_bytes_max)
            .map(Bytes::from)
            .map_err(Into::into)
    };
    RecordBatchDecoder::decode_with_custom_compression(&mut batch, Some(bounded))
        .map(|set| set.records)
        .map_err(|error| DownConvertError::Batch {
            base_offset,
            reason: format!("{error:#}"),
        })
}

#[cfg(test)]
mod tests {
    use super::super::message_set::tests::{message, set_of, wrapper};
    use super::*;

    const LIMITS: DownConvertLimits = DownConvertLimits {
        output_bytes_max: 1 << 20,
        at_least_one: true,
        batch_decompressed_bytes_max: 1 << 20,
    };

    #[test]
    fn up_convert_keeps_order_timestamps_keys_values_and_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
        ] {
            for magic in 0..=1 {
                let mut second = message(magic, b"", b"two");
                second.key = None;
                second.timestamp_ms = 1_600_000_000_005;
                let inner = set_of(&[message(magic, b"k1", b"one"), second]);
                let set = match codec {
                    Compression::None => inner,
                    codec => wrapper(magic, codec, &inner),
                };
                let (batch, count) = up_convert(set.freeze(), 1 << 20).unwrap();
                assert_eq!(count, 2);
                let decoded = RecordBatchDecoder::decode(&mut batch.freeze()).unwrap();
                assert_eq!(decoded.compression, codec);
                let seen: Vec<_> = decoded
                    .records
                    .iter()
                    .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                    .collect();
                let (first_ms, second_ms) = if magic == 1 {
                    (1_600_000_000_000, 1_600_000_000_005)
                } else {
                    (-1, -1)
                };
                assert_eq!(
                    seen,
                    vec![
                        (
                            0,
                            first_ms,
                            Some(Bytes::from("k1")),
                            Some(Bytes::from("one"))
                        ),
                        (1, second_ms, None, Some(Bytes::from("two"))),
                    ],
                    "{codec:?} magic {magic}"
                );
                assert_eq!(decoded.records[0].producer_id, -1);
                assert_eq!(decoded.records[0].sequence, -1, "no base sequence");
            }
        }
    }

    /// Stored batches at offsets 10.. (two batches) as the log would hold them.
    fn stored() -> Bytes {
        let mut out = BytesMut::new();
        for (base, codec) in [(10_i64, Compression::None), (12, Compression::Gzip)] {
            let set = set_of(&[message(1, b"a", b"x"), message(1, b"b", b"y")]);
            let (mut batch, _) = up_convert(set.freeze(), 1 << 20).unwrap();
            if codec != Compression::None {
                let inner = set_of(&[message(1, b"a", b"x"), message(1, b"b", b"y")]);
                batch = up_convert(wrapper(1, codec, &inner).freeze(), 1 << 20)
                    .unwrap()
                    .0;
            }
            batch[..8].copy_from_slice(&base.to_be_bytes());
            out.extend_from_slice(&batch);
        }
        out.freeze()
    }

    #[test]
    fn down_convert_writes_messages_from_the_fetch_offset() {
        let stored = stored();
        for magic in 0..=1 {
            let converted = down_convert(&stored, magic, 11, LIMITS).unwrap();
            assert_eq!(converted.message_count, 3);
            let mut expected = BytesMut::new();
            for (offset, key, value) in [(11, b"b", b"y"), (12, b"a", b"x"), (13, b"b", b"y")] {
                MessageToWrite {
                    offset,
                    ..message(magic, key, value)
                }
                .write(&mut expected);
            }
            assert_eq!(converted.message_set, expected, "magic {magic}");
            // The result is itself a valid old set.
            let parsed = parse_message_set(converted.message_set.freeze(), 1 << 20).unwrap();
            assert_eq!(parsed.messages.len(), 3);
        }
    }

    #[test]
    fn down_convert_respects_the_byte_limit_but_returns_one() {
        let stored = stored();
        let one = message(0, b"a", b"x").set_bytes();
        let limits = DownConvertLimits {
            output_bytes_max: 2 * one,
            ..LIMITS
        };
        assert_eq!(
            down_convert(&stored, 0, 0, limits).unwrap().message_count,
            2
        );
        let tiny = DownConvertLimits {
            output_bytes_max: 1,
            ..LIMITS
        };
        assert_eq!(down_convert(&stored, 0, 0, tiny).unwrap().message_count, 1);
        let strict = DownConvertLimits {
            at_least_one: false,
            ..tiny
        };
        assert_eq!(
            down_convert(&stored, 0, 0, strict).unwrap().message_count,
            0
        );
        // A partial trailing batch is left out, as a client would.
        let cut = stored.slice(..stored.len() - 1);
        assert_eq!(down_convert(&cut, 0, 0, LIMITS).unwrap().message_count, 2);
    }

    #[test]
    fn down_convert_bounds_decompression() {
        let stored = stored();
        let limits = DownConvertLimits {
            batch_decompressed_bytes_max: 8,
            ..LIMITS
        };
        assert!(matches!(
            down_convert(&stored, 1, 12, limits),
            Err(DownConvertError::Batch {
                base_offset: 12,
                ..
            })
        ));
    }
}
