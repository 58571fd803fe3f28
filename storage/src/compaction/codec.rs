//! How the cleaner gets at compressed records: storage knows no compression codec, so the
//! caller (the broker) passes one in.

/// Compression codec ids of the batch attributes.
pub const CODEC_NONE: i16 = 0;

/// Expands and compresses batch record sections for a codec id (1 gzip, 2 snappy, 3 lz4,
/// 4 zstd). A batch whose codec fails is kept untouched by the cleaner.
pub trait RecordsCodec: Send + Sync {
    /// At most `bytes_max` decompressed bytes, or an error.
    fn decompress(&self, codec: i16, input: &[u8], bytes_max: usize) -> Result<Vec<u8>, String>;

    fn compress(&self, codec: i16, input: &[u8]) -> Result<Vec<u8>, String>;
}

/// Knows no codec: compressed batches are never cleaned (storage's own tests).
pub struct UncompressedOnly;

impl RecordsCodec for UncompressedOnly {
    fn decompress(&self, codec: i16, _: &[u8], _: usize) -> Result<Vec<u8>, String> {
        Err(format!("compression codec {codec} not available"))
    }

    fn compress(&self, codec: i16, _: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!("compression codec {codec} not available"))
    }
}
