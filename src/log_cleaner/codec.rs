//! The compression codecs the storage cleaner needs to look inside compressed batches:
//! bounded decompression from `sluice_wire` and kafka-protocol's compressors (what clients
//! write: xerial-framed Snappy, LZ4 frames, gzip, zstd).

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use kafka_protocol::records::Compression;
use sluice_storage::compaction::RecordsCodec;

pub struct KafkaCodecs;

fn compression(codec: i16) -> Result<Compression, String> {
    match codec {
        1 => Ok(Compression::Gzip),
        2 => Ok(Compression::Snappy),
        3 => Ok(Compression::Lz4),
        4 => Ok(Compression::Zstd),
        other => Err(format!("unknown compression codec {other}")),
    }
}

impl RecordsCodec for KafkaCodecs {
    fn decompress(&self, codec: i16, input: &[u8], bytes_max: usize) -> Result<Vec<u8>, String> {
        let codec = compression(codec)?;
        sluice_wire::legacy::compression::decompress(codec, input, false, bytes_max)
            .map_err(|error| error.to_string())
    }

    fn compress(&self, codec: i16, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        let write = |buffer: &mut BytesMut| {
            buffer.extend_from_slice(input);
            Ok(())
        };
        let written = match compression(codec)? {
            Compression::Gzip => Gzip::compress(&mut out, write),
            Compression::Snappy => Snappy::compress(&mut out, write),
            Compression::Lz4 => Lz4::compress(&mut out, write),
            Compression::Zstd => Zstd::compress(&mut out, write),
            Compression::None => return Ok(input.to_vec()),
        };
        written.map_err(|error| error.to_string())?;
        Ok(out.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..10_000u32)
            .flat_map(|n| (n % 251).to_be_bytes())
            .collect();
        for codec in 1..=4 {
            let compressed = KafkaCodecs.compress(codec, &input).unwrap();
            assert_ne!(compressed, input);
            let expanded = KafkaCodecs
                .decompress(codec, &compressed, input.len())
                .unwrap();
            assert_eq!(expanded, input, "codec {codec}");
            assert!(KafkaCodecs
                .decompress(codec, &compressed, input.len() - 1)
                .is_err());
        }
        assert!(KafkaCodecs.compress(5, &input).is_err());
    }
}
