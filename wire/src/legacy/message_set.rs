//! Message formats v0 and v1 ("magic" 0 and 1): the `MessageSet` every Kafka before 0.11
//! wrote, parsed with every check Kafka makes and written for old readers.
//!
//! ```text
//! MessageSet: [offset i64, message_size i32, Message]...
//! Message:    crc u32 (CRC-32 of magic..end), magic i8, attributes i8,
//!             timestamp i64 (magic 1 only), key nullable bytes, value nullable bytes
//! ```
//!
//! Attributes bits 0-2 are the codec; bit 3 (magic 1) says the timestamp is LogAppendTime.
//! A compressed message is a *wrapper*: its value is a compressed MessageSet of plain messages.
//! Kafka allows exactly one level, so a compressed message inside a wrapper is corrupt.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, IEEE};
use thiserror::Error;

use super::codec::{put_nullable_bytes, LegacyDecodeError, Reader};
use super::compression::{decompress, DecompressError};

/// `offset` + `message_size`, in front of every message.
pub const LOG_OVERHEAD_BYTES: usize = 8 + 4;
const ATTRIBUTE_CODEC_MASK: i8 = 0x07;
const ATTRIBUTE_LOG_APPEND_TIME: i8 = 0x08;
/// Kafka's "no timestamp", what v0 messages become in formats that have one.
pub const NO_TIMESTAMP: i64 = -1;

/// Smallest message of `magic`: crc, magic, attributes, [timestamp], key and value lengths.
pub fn message_bytes_min(magic: i8) -> usize {
    4 + 1 + 1 + if magic >= 1 { 8 } else { 0 } + 4 + 4
}

/// One message of an old-format set, wrappers already expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    /// The timestamp (magic 1), or [`NO_TIMESTAMP`] (magic 0).
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
}

/// The messages of a set in order, and the codec the producer used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMessageSet {
    /// Every message, wrappers expanded, in producer order.
    pub messages: Vec<LegacyMessage>,
    /// The codec of the first wrapper, `None` when nothing was compressed.
    pub compression: Compression,
}

/// Why a message set is corrupt (Kafka answers every one with CORRUPT_MESSAGE).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageSetError {
    /// No message at all.
    #[error("empty message set")]
    Empty,
    /// A size or length points past the bytes present.
    #[error("message set truncated: {0}")]
    Truncated(LegacyDecodeError),
    /// `message_size` is smaller than the smallest message.
    #[error("message size {size} is smaller than a message")]
    SizeTooSmall {
        /// As sent.
        size: i32,
    },
    /// Key and value do not fill `message_size` exactly.
    #[error("message size {size} disagrees with its fields ({unread_bytes} bytes left over)")]
    SizeMismatch {
        /// As sent.
        size: usize,
        /// Bytes after the value.
        unread_bytes: usize,
    },
    /// The stored CRC-32 does not match.
    #[error("message CRC-32 {stored:#010x} does not match the computed {computed:#010x}")]
    CrcMismatch {
        /// As sent.
        stored: u32,
        /// Over magic..end.
        computed: u32,
    },
    /// Magic other than 0 or 1.
    #[error("message magic {0} is not 0 or 1")]
    UnsupportedMagic(i8),
    /// Codec id not valid for message formats v0/v1.
    #[error("codec {0} is not valid in message formats v0/v1")]
    UnknownCodec(i8),
    /// A compressed message inside a compressed message.
    #[error("compressed message nested inside a compressed message")]
    NestedCompression,
    /// A wrapper with a null value, or one that expands to nothing.
    #[error("compressed wrapper holds no messages")]
    EmptyWrapper,
    /// An inner message's magic differs from its wrapper's.
    #[error("inner message magic {inner} inside a magic {wrapper} wrapper")]
    InnerMagicMismatch {
        /// The wrapper's magic.
        wrapper: i8,
        /// The inner message's magic.
        inner: i8,
    },
    /// A wrapper would not decompress (or decompresses past the limit).
    #[error("{0}")]
    Decompress(DecompressError),
}

/// One message as read off the wire.
struct RawMessage {
    magic: i8,
    attributes: i8,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

impl RawMessage {
    fn codec(&self) -> Result<Compression, MessageSetError> {
        match self.attributes & ATTRIBUTE_CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            other => Err(MessageSetError::UnknownCodec(other)),
        }
    }
}

/// Parses a produced message set, expanding wrappers. At most `decompressed_bytes_max` bytes
/// are decompressed in total, across every wrapper.
pub fn parse_message_set(
    bytes: Bytes,
    decompressed_bytes_max: usize,
) -> Result<ParsedMessageSet, MessageSetError> {
    let mut parsed = ParsedMessageSet {
        messages: Vec::new(),
        compression: Compression::None,
    };
    let mut budget_bytes = decompressed_bytes_max;
    for raw in entries(bytes) {
        let raw = raw?;
        match raw.codec()? {
            Compression::None => parsed.messages.push(plain(raw)),
            codec => {
                if parsed.compression == Compression::None {
                    parsed.compression = codec;
                }
                let inner = expand_wrapper(raw, codec, budget_bytes)?;
                budget_bytes -= inner.decompressed_bytes;
                parsed.messages.extend(inner.messages);
            }
        }
    }
    if parsed.messages.is_empty() {
        return Err(MessageSetError::Empty);
    }
    Ok(parsed)
}

fn plain(raw: RawMessage) -> LegacyMessage {
    LegacyMessage {
        timestamp_ms: raw.timestamp_ms,
        key: raw.key,
        value: raw.value,
    }
}

struct Expanded {
    messages: Vec<LegacyMessage>,
    decompressed_bytes: usize,
}

fn expand_wrapper(
    wrapper: RawMessage,
    codec: Compression,
    budget_bytes: usize,
) -> Result<Expanded, MessageSetError> {
    let Some(compressed) = &wrapper.value else {
        return Err(MessageSetError::EmptyWrapper);
    };
    // Kafka ignores the LZ4 descriptor checksum of magic 0 wrappers (KAFKA-3160).
    let lz4_legacy_checksum = wrapper.magic == 0;
    let inner = decompress(codec, compressed, lz4_legacy_checksum, budget_bytes)
        .map_err(MessageSetError::Decompress)?;
    let decompressed_bytes = inner.len();
    let log_append_time = wrapper.attributes & ATTRIBUTE_LOG_APPEND_TIME != 0;
    let mut messages = Vec::new();
    for raw in entries(Bytes::from(inner)) {
        let raw = raw?;
        if raw.codec()? != Compression::None {
            return Err(MessageSetError::NestedCompression);
        }
        if raw.magic != wrapper.magic {
            return Err(MessageSetError::InnerMagicMismatch {
                wrapper: wrapper.magic,
                inner: raw.magic,
            });
        }
        let mut message = plain(raw);
        if wrapper.magic >= 1 && log_append_time {
            // Inner timestamps of a LogAppendTime wrapper are meaningless (Kafka's rule).
            message.timestamp_ms = wrapper.timestamp_ms;
        }
        messages.push(message);
    }
    if messages.is_empty() {
        return Err(MessageSetError::EmptyWrapper);
    }
    Ok(Expanded {
        messages,
        decompressed_bytes,
    })
}

/// The messages of one set level, each checked; offsets are ignored (the broker assigns them).
fn entries(bytes: Bytes) -> impl Iterator<Item = Result<RawMessage, MessageSetError>> {
    let mut reader = Reader::new(bytes);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || reader.remaining_bytes() == 0 {
            return None;
        }
        let next = next_message(&mut reader);
        failed = next.is_err();
        Some(next)
    })
}

fn next_message(reader: &mut Reader) -> Result<RawMessage, MessageSetError> {
    let _offset = reader.i64("offset").map_err(MessageSetError::Truncated)?;
    let size = reader
        .i32("message_size")
        .map_err(MessageSetError::Truncated)?;
    let size_bytes = usize::try_from(size).unwrap_or(0);
    if size_bytes < message_bytes_min(0) {
        return Err(MessageSetError::SizeTooSmall { size });
    }
    let message = reader
        .take(size_bytes, "message")
        .map_err(MessageSetError::Truncated)?;
    parse_message(message)
}

fn parse_message(message: Bytes) -> Result<RawMessage, MessageSetError> {
    let size = message.len();
    let computed = IEEE.checksum(&message[4..]);
    let mut reader = Reader::new(message);
    let truncated = MessageSetError::Truncated;
    let stored = reader.u32("crc").map_err(truncated)?;
    if stored != computed {
        return Err(MessageSetError::CrcMismatch { stored, computed });
    }
    let magic = reader.i8("magic").map_err(truncated)?;
    if !(0..=1).contains(&magic) {
        return Err(MessageSetError::UnsupportedMagic(magic));
    }
    let attributes = reader.i8("attributes").map_err(truncated)?;
    let timestamp_ms = if magic >= 1 {
        reader.i64("timestamp").map_err(truncated)?
    } else {
        NO_TIMESTAMP
    };
    let key = reader.nullable_bytes("key").map_err(truncated)?;
    let value = reader.nullable_bytes("value").map_err(truncated)?;
    if reader.remaining_bytes() != 0 {
        return Err(MessageSetError::SizeMismatch {
            size,
            unread_bytes: reader.remaining_bytes(),
        });
    }
    Ok(RawMessage {
        magic,
        attributes,
        timestamp_ms,
        key,
        value,
    })
}

/// One message to write in an old format.
#[derive(Debug, Clone, Copy)]
pub struct MessageToWrite<'a> {
    /// Its offset in the log (or relative offset inside a wrapper).
    pub offset: i64,
    /// 0 or 1.
    pub magic: i8,
    /// Codec bits, non-zero only for wrappers.
    pub codec: Compression,
    /// Sets attribute bit 3 (magic 1 only).
    pub log_append_time: bool,
    /// Written for magic 1 only.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: Option<&'a [u8]>,
}

impl MessageToWrite<'_> {
    /// Bytes this message takes in a set, log overhead included.
    pub fn set_bytes(&self) -> usize {
        let key_bytes = self.key.map_or(0, <[u8]>::len);
        let value_bytes = self.value.map_or(0, <[u8]>::len);
        LOG_OVERHEAD_BYTES + message_bytes_min(self.magic) + key_bytes + value_bytes
    }

    /// Appends offset, size and the message, CRC-32 included.
    pub fn write(&self, out: &mut BytesMut) {
        assert!((0..=1).contains(&self.magic), "magic {}", self.magic);
        let start = out.len();
        out.reserve(self.set_bytes());
        out.put_i64(self.offset);
        out.put_i32(0); // message_size, patched below
        out.put_u32(0); // crc, patched below
        out.put_i8(self.magic);
        let mut attributes = self.codec as i8;
        if self.magic >= 1 && self.log_append_time {
            attributes |= ATTRIBUTE_LOG_APPEND_TIME;
        }
        out.put_i8(attributes);
        if self.magic >= 1 {
            out.put_i64(self.timestamp_ms);
        }
        put_nullable_bytes(out, self.key);
        put_nullable_bytes(out, self.value);
        assert_eq!(out.len() - start, self.set_bytes());
        let message_at = start + LOG_OVERHEAD_BYTES;
        let size = super::codec::wire_i32(out.len() - message_at);
        out[start + 8..message_at].copy_from_slice(&size.to_be_bytes());
        let crc = IEEE.checksum(&out[message_at + 4..]);
        out[message_at..message_at + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::compression::tests::{gzip, lz4_frame, snappy_xerial};
    use super::*;

    pub(crate) fn message<'a>(magic: i8, key: &'a [u8], value: &'a [u8]) -> MessageToWrite<'a> {
        MessageToWrite {
            offset: 0,
            magic,
            codec: Compression::None,
            log_append_time: false,
            timestamp_ms: 1_600_000_000_000,
            key: Some(key),
            value: Some(value),
        }
    }

    pub(crate) fn set_of(messages: &[MessageToWrite<'_>]) -> BytesMut {
        let mut out = BytesMut::new();
        for (index, message) in messages.iter().enumerate() {
            MessageToWrite {
                offset: index as i64,
                ..*message
            }
            .write(&mut out);
        }
        out
    }

    /// A wrapper around `inner` compressed with `codec` (LZ4 with the checksum a client of
    /// that magic writes).
    pub(crate) fn wrapper(magic: i8, codec: Compression, inner: &[u8]) -> BytesMut {
        let compressed = match codec {
            Compression::Gzip => gzip(inner),
            Compression::Snappy => snappy_xerial(inner, 32 * 1024),
            Compression::Lz4 => lz4_frame(inner, magic == 0),
            other => panic!("{other:?}"),
        };
        let mut out = BytesMut::new();
        MessageToWrite {
            offset: 1,
            magic,
            codec,
            log_append_time: false,
            timestamp_ms: 1_600_000_000_999,
            key: None,
            value: Some(&compressed),
        }
        .write(&mut out);
        out
    }

    #[test]
    fn plain_sets_of_both_magics_parse() {
        for magic in 0..=1 {
            let mut null_key = message(magic, b"", b"v2");
            null_key.key = None;
            let set = set_of(&[message(magic, b"k1", b"v1"), null_key]);
            let parsed = parse_message_set(set.freeze(), 1024).unwrap();
            let timestamp_ms = if magic == 1 { 1_600_000_000_000 } else { -1 };
            assert_eq!(parsed.compression, Compression::None);
            assert_eq!(
                parsed.messages,
                vec![
                    LegacyMessage {
                        timestamp_ms,
                        key: Some(Bytes::from_static(b"k1")),
                        value: Some(Bytes::from_static(b"v1")),
                    },
                    LegacyMessage {
                        timestamp_ms,
                        key: None,
                        value: Some(Bytes::from_static(b"v2")),
                    },
                ]
            );
        }
    }

    #[test]
    fn wrappers_of_every_codec_expand() {
        for magic in 0..=1 {
            let inner = set_of(&[message(magic, b"a", b"1"), message(magic, b"b", b"2")]);
            for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
                let set = wrapper(magic, codec, &inner);
                let parsed = parse_message_set(set.freeze(), 1024).unwrap();
                assert_eq!(parsed.compression, codec);
                let values: Vec<_> = parsed.messages.iter().map(|m| m.value.clone()).collect();
                assert_eq!(
                    values,
                    vec![Some(Bytes::from("1")), Some(Bytes::from("2"))],
                    "magic {magic} {codec:?}"
                );
            }
        }
    }

    #[test]
    fn bad_crc_lying_sizes_and_nesting_are_corrupt() {
        for magic in 0..=1 {
            let good = set_of(&[message(magic, b"k", b"v")]);
            let mut bad_crc = good.clone();
            let last = bad_crc.len() - 1;
            bad_crc[last] ^= 1;
            assert!(matches!(
                parse_message_set(bad_crc.freeze(), 1024),
                Err(MessageSetError::CrcMismatch { .. })
            ));
            let mut too_long = good.clone();
            too_long[8..12].copy_from_slice(&1000_i32.to_be_bytes());
            assert!(matches!(
                parse_message_set(too_long.freeze(), 1024),
                Err(MessageSetError::Truncated(_))
            ));
            let mut too_short = good.clone();
            too_short[8..12].copy_from_slice(&3_i32.to_be_bytes());
            assert_eq!(
                parse_message_set(too_short.freeze(), 1024),
                Err(MessageSetError::SizeTooSmall { size: 3 })
            );
            let inner = wrapper(magic, Compression::Gzip, &good);
            let nested = wrapper(magic, Compression::Snappy, &inner);
            assert_eq!(
                parse_message_set(nested.freeze(), 1 << 20),
                Err(MessageSetError::NestedCompression)
            );
        }
        assert_eq!(
            parse_message_set(Bytes::new(), 1024),
            Err(MessageSetError::Empty)
        );
    }

    #[test]
    fn decompression_is_bounded_across_wrappers() {
        let zeros = vec![0u8; 4096];
        let inner = set_of(&[message(1, b"", &zeros)]);
        let mut set = wrapper(1, Compression::Gzip, &inner);
        set.extend_from_slice(&wrapper(1, Compression::Gzip, &inner));
        let one = inner.len();
        assert!(parse_message_set(set.clone().freeze(), 2 * one).is_ok());
        assert!(matches!(
            parse_message_set(set.freeze(), 2 * one - 1),
            Err(MessageSetError::Decompress(
                DecompressError::TooLarge { .. }
            ))
        ));
    }
}
