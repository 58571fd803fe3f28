//! Bounded decompression of message-set wrappers and stored batches.
//!
//! The codecs of kafka-protocol grow their output without limit; a few hundred bytes of gzip
//! can claim gigabytes. Every function here stops at `bytes_max` decompressed bytes and says
//! so, before allocating more.
//!
//! Two historical formats are accepted: Snappy in the xerial-java framing Kafka's Java client
//! wrote (and raw Snappy, which librdkafka writes), and LZ4 frames whose descriptor checksum
//! was computed over the magic number too (Kafka before 0.10 and clients copying it, for
//! message format v0; KAFKA-3160).

use std::io::Read;

use kafka_protocol::records::Compression;
use thiserror::Error;

use super::xxhash32::xxh32;

/// The xerial-java Snappy stream header's magic (followed by two i32 versions).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
const LZ4_FLAG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLAG_DICTIONARY_ID: u8 = 0x01;

/// Why compressed bytes could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecompressError {
    /// The output would exceed the limit.
    #[error("decompressed data exceeds {bytes_max} bytes")]
    TooLarge {
        /// The limit.
        bytes_max: usize,
    },
    /// The input is not valid for its codec.
    #[error("invalid {codec:?} data: {reason}")]
    Invalid {
        /// The codec.
        codec: Compression,
        /// What the decoder said.
        reason: String,
    },
}

fn invalid(codec: Compression, reason: impl std::fmt::Display) -> DecompressError {
    DecompressError::Invalid {
        codec,
        reason: reason.to_string(),
    }
}

/// Decompresses `input`; at most `bytes_max` bytes come out. With `lz4_legacy_checksum`, an
/// LZ4 frame's descriptor checksum is not checked (Kafka does the same for magic 0).
pub fn decompress(
    codec: Compression,
    input: &[u8],
    lz4_legacy_checksum: bool,
    bytes_max: usize,
) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Compression::None => {
            if input.len() > bytes_max {
                return Err(DecompressError::TooLarge { bytes_max });
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => {
            // Java's GZIPInputStream reads concatenated members; so does MultiGzDecoder.
            let decoder = flate2::read::MultiGzDecoder::new(input);
            read_bounded(codec, decoder, bytes_max)
        }
        Compression::Snappy => snappy(input, bytes_max),
        Compression::Lz4 => lz4(input, lz4_legacy_checksum, bytes_max),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| invalid(codec, e))?;
            read_bounded(codec, decoder, bytes_max)
        }
    }
}

/// Reads at most `bytes_max + 1` bytes, so "exactly the limit" and "over it" differ.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    bytes_max: usize,
) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let limit = u64::try_from(bytes_max)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| invalid(codec, e))?;
    if out.len() > bytes_max {
        return Err(DecompressError::TooLarge { bytes_max });
    }
    Ok(out)
}

fn snappy(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Compression::Snappy;
    if !input.starts_with(XERIAL_MAGIC) {
        let mut out = Vec::new();
        snappy_block(input, bytes_max, &mut out)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER_BYTES..)
        .ok_or_else(|| invalid(codec, "xerial header truncated"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let Some(length) = rest.first_chunk::<4>() else {
            return Err(invalid(codec, "xerial block length truncated"));
        };
        let length = usize::try_from(u32::from_be_bytes(*length)).unwrap_or(usize::MAX);
        let block = rest
            .get(4..)
            .and_then(|after| after.get(..length))
            .ok_or_else(|| invalid(codec, "xerial block truncated"))?;
        snappy_block(block, bytes_max, &mut out)?;
        rest = &rest[4 + length..];
    }
    Ok(out)
}

/// Appends one raw Snappy block; its claimed length is checked before the buffer grows.
fn snappy_block(block: &[u8], bytes_max: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let codec = Compression::Snappy;
    let length = snap::raw::decompress_len(block).map_err(|e| invalid(codec, e))?;
    let start = out.len();
    if length > bytes_max - start {
        return Err(DecompressError::TooLarge { bytes_max });
    }
    out.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| invalid(codec, e))?;
    out.truncate(start + written);
    Ok(())
}

fn lz4(input: &[u8], legacy_checksum: bool, bytes_max: usize) -> Result<Vec<u8>, DecompressError> {
    let codec = Compression::Lz4;
    let checksum_at = lz4_descriptor_checksum_at(input)?;
    let repaired;
    let frame = if legacy_checksum {
        // Rewrite the checksum to the standard one instead of teaching the decoder to skip it.
        let mut copy = input.to_vec();
        copy[checksum_at] = lz4_descriptor_checksum(&input[4..checksum_at]);
        repaired = copy;
        &repaired[..]
    } else {
        input
    };
    let decoder = lz4::Decoder::new(frame).map_err(|e| invalid(codec, e))?;
    read_bounded(codec, decoder, bytes_max)
}

/// Position of the header-checksum byte of an LZ4 frame: after magic, FLG, BD and the optional
/// content size and dictionary id.
fn lz4_descriptor_checksum_at(input: &[u8]) -> Result<usize, DecompressError> {
    let codec = Compression::Lz4;
    let Some(&[m0, m1, m2, m3, flags, _block_descriptor]) = input.first_chunk::<6>() else {
        return Err(invalid(codec, "frame header truncated"));
    };
    if u32::from_le_bytes([m0, m1, m2, m3]) != LZ4_FRAME_MAGIC {
        return Err(invalid(codec, "not an LZ4 frame"));
    }
    let mut checksum_at = 6;
    if flags & LZ4_FLAG_CONTENT_SIZE != 0 {
        checksum_at += 8;
    }
    if flags & LZ4_FLAG_DICTIONARY_ID != 0 {
        checksum_at += 4;
    }
    if input.len() <= checksum_at {
        return Err(invalid(codec, "frame header truncated"));
    }
    Ok(checksum_at)
}

/// The LZ4 frame format's descriptor checksum: second byte of XXH32 over FLG..dictionary id.
pub fn lz4_descriptor_checksum(descriptor: &[u8]) -> u8 {
    (xxh32(descriptor, 0) >> 8) as u8
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// xerial-java framing, as Kafka's Java producer wrote it, in blocks of `block_bytes`.
    pub(crate) fn snappy_xerial(data: &[u8], block_bytes: usize) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1_i32.to_be_bytes());
        out.extend_from_slice(&1_i32.to_be_bytes());
        for block in data.chunks(block_bytes) {
            let compressed = snap::raw::Encoder::new().compress_vec(block).unwrap();
            out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
            out.extend_from_slice(&compressed);
        }
        out
    }

    /// A standard LZ4 frame; with `broken_checksum`, the descriptor checksum Kafka 0.8-0.9
    /// wrote (XXH32 over the magic number too).
    pub(crate) fn lz4_frame(data: &[u8], broken_checksum: bool) -> Vec<u8> {
        let mut encoder = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        let (mut frame, result) = encoder.finish();
        result.unwrap();
        if broken_checksum {
            let at = lz4_descriptor_checksum_at(&frame).unwrap();
            frame[at] = (xxh32(&frame[..at], 0) >> 8) as u8;
        }
        frame
    }

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_within_the_limit() {
        let data = sample();
        let cases = [
            (Compression::Gzip, gzip(&data)),
            (Compression::Snappy, snappy_xerial(&data, 32 * 1024)),
            (
                Compression::Snappy,
                snap::raw::Encoder::new().compress_vec(&data).unwrap(),
            ),
            (Compression::Lz4, lz4_frame(&data, false)),
            (Compression::Zstd, zstd::encode_all(&data[..], 1).unwrap()),
        ];
        for (codec, compressed) in cases {
            let out = decompress(codec, &compressed, false, data.len()).unwrap();
            assert!(out == data, "{codec:?}");
            assert_eq!(
                decompress(codec, &compressed, false, data.len() - 1),
                Err(DecompressError::TooLarge {
                    bytes_max: data.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn lz4_legacy_checksum_is_repaired_only_when_asked() {
        let data = sample();
        assert_eq!(
            lz4_descriptor_checksum(&lz4_frame(&data, false)[4..6]),
            lz4_frame(&data, false)[6],
            "our XXH32 agrees with liblz4"
        );
        let broken = lz4_frame(&data, true);
        assert_ne!(broken, lz4_frame(&data, false));
        assert!(decompress(Compression::Lz4, &broken, true, data.len()).unwrap() == data);
        assert!(decompress(Compression::Lz4, &broken, false, data.len()).is_err());
    }

    #[test]
    fn garbage_is_invalid_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for input in [
                &b""[..],
                b"\x82SNAPPY\x00",
                b"\x04\x22\x4d\x18",
                b"garbage!",
            ] {
                assert!(decompress(codec, input, true, 1024).is_err(), "{codec:?}");
            }
        }
        // A xerial block claiming more bytes than follow.
        let mut lying = snappy_xerial(b"hello", 64);
        lying[XERIAL_HEADER_BYTES + 3] = 0xff;
        assert!(decompress(Compression::Snappy, &lying, false, 1024).is_err());
    }
}
