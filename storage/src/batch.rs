//! Kafka record batch v2 ("magic 2") headers: parsing, validation of produce payloads,
//! in-place stamping, and iteration over the batches in a byte slice.
//!
//! Storage never looks inside records: everything here works on the fixed 61-byte header, so
//! appends and reads do constant work per batch and none per record.

use thiserror::Error;

/// The only record format this broker stores.
pub const MAGIC_V2: i8 = 2;
/// Size of the fixed v2 batch header, up to and including `recordCount`.
pub const BATCH_HEADER_BYTES: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const BATCH_LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal `batchLength`: a header without records.
pub const BATCH_LENGTH_MIN: usize = BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD_BYTES;
/// Kafka's "no timestamp" value.
pub const NO_TIMESTAMP: i64 = -1;
/// Most offsets one produce payload may claim. Record counts are not checked against the
/// record bytes (that would be per-record work, and compressed records can be tiny), so this
/// bound keeps one append's offsets within a segment's u32 relative offsets.
pub const PAYLOAD_RECORDS_MAX: i64 = i32::MAX as i64;
/// Largest compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
const COMPRESSION_CODEC_MAX: i16 = 4;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
/// The CRC covers everything from the attributes to the end of the batch, so the base offset
/// and partition leader epoch can be stamped without recomputing it.
pub const CRC_COVERED_FROM: usize = ATTRIBUTES_AT;

pub const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
const ATTRIBUTE_TIMESTAMP_TYPE_BIT: i16 = 0x08;
const ATTRIBUTE_TRANSACTIONAL_BIT: i16 = 0x10;
const ATTRIBUTE_CONTROL_BIT: i16 = 0x20;
/// KIP-534: `baseTimestamp` holds the time after which the cleaner may remove tombstones.
pub const ATTRIBUTE_DELETE_HORIZON_BIT: i16 = 0x40;

/// How a topic's record timestamps are assigned (Kafka `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Producers' timestamps are kept.
    #[default]
    CreateTime,
    /// The broker stamps the append time into each batch's `maxTimestamp`.
    LogAppendTime,
}

/// Why a batch is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorruptReason {
    /// `batchLength` is smaller than a bare header.
    LengthTooSmall,
    /// The buffer ends before the batch (or its length prefix) does.
    Truncated,
    /// CRC-32C over attributes..end does not match the header.
    CrcMismatch,
    /// `recordCount` is zero or negative.
    RecordCountInvalid,
    /// `lastOffsetDelta` is not `recordCount - 1`.
    LastOffsetDeltaMismatch,
    /// Compression codec id outside 0..=4.
    CompressionInvalid,
}

impl std::fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            CorruptReason::LengthTooSmall => "batch length smaller than the header",
            CorruptReason::Truncated => "batch truncated",
            CorruptReason::CrcMismatch => "CRC-32C mismatch",
            CorruptReason::RecordCountInvalid => "record count not positive",
            CorruptReason::LastOffsetDeltaMismatch => "last offset delta is not record count - 1",
            CorruptReason::CompressionInvalid => "unknown compression codec",
        };
        f.write_str(text)
    }
}

/// A produce payload that cannot be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BatchError {
    /// Maps to Kafka CORRUPT_MESSAGE.
    #[error("corrupt record batch: {0}")]
    Corrupt(CorruptReason),
    /// Maps to Kafka MESSAGE_TOO_LARGE.
    #[error("record batch of {batch_bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { batch_bytes: usize, max: usize },
    /// The payload holds no batch at all.
    #[error("empty record set")]
    Empty,
    /// Only magic 2 is stored.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
}

/// Parsed view of a batch's fixed 61-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the first 61 bytes of `bytes`. Checks only what is needed to walk batches
    /// safely: the length is at least a header, and the magic is 2.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Corrupt(CorruptReason::Truncated));
        }
        let batch_length = read_i32(bytes, BATCH_LENGTH_AT);
        if batch_length < 0 || (batch_length as usize) < BATCH_LENGTH_MIN {
            return Err(BatchError::Corrupt(CorruptReason::LengthTooSmall));
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: read_i64(bytes, BASE_OFFSET_AT),
            batch_length,
            partition_leader_epoch: read_i32(bytes, PARTITION_LEADER_EPOCH_AT),
            magic,
            crc: read_i32(bytes, CRC_AT) as u32,
            attributes: read_i16(bytes, ATTRIBUTES_AT),
            last_offset_delta: read_i32(bytes, LAST_OFFSET_DELTA_AT),
            base_timestamp: read_i64(bytes, BASE_TIMESTAMP_AT),
            max_timestamp: read_i64(bytes, MAX_TIMESTAMP_AT),
            producer_id: read_i64(bytes, PRODUCER_ID_AT),
            producer_epoch: read_i16(bytes, PRODUCER_EPOCH_AT),
            base_sequence: read_i32(bytes, BASE_SEQUENCE_AT),
            record_count: read_i32(bytes, RECORD_COUNT_AT),
        })
    }

    /// Whole batch size on disk and on the wire.
    pub fn size_bytes(&self) -> usize {
        BATCH_LOG_OVERHEAD_BYTES + self.batch_length as usize
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes & ATTRIBUTE_COMPRESSION_MASK
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTRIBUTE_TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL_BIT != 0
    }

    /// Checks the fields that define the batch's offsets and codec (not the CRC), as a
    /// producer must send them: every offset of the batch holds a record.
    pub fn check_counts(&self) -> Result<(), BatchError> {
        if self.record_count <= 0 {
            return Err(BatchError::Corrupt(CorruptReason::RecordCountInvalid));
        }
        if i64::from(self.last_offset_delta) != i64::from(self.record_count) - 1 {
            return Err(BatchError::Corrupt(CorruptReason::LastOffsetDeltaMismatch));
        }
        if self.compression_codec() > COMPRESSION_CODEC_MAX {
            return Err(BatchError::Corrupt(CorruptReason::CompressionInvalid));
        }
        Ok(())
    }

    /// Checks a batch as a log may hold it: a compacted batch keeps its base and last offset
    /// but fewer records (gaps), down to none (Kafka keeps an empty batch for the producer
    /// state of its last sequence).
    pub fn check_stored_counts(&self) -> Result<(), BatchError> {
        if self.record_count < 0 || self.last_offset_delta < 0 {
            return Err(BatchError::Corrupt(CorruptReason::RecordCountInvalid));
        }
        if i64::from(self.record_count) > i64::from(self.last_offset_delta) + 1 {
            return Err(BatchError::Corrupt(CorruptReason::LastOffsetDeltaMismatch));
        }
        if self.compression_codec() > COMPRESSION_CODEC_MAX {
            return Err(BatchError::Corrupt(CorruptReason::CompressionInvalid));
        }
        Ok(())
    }

    /// Whether the batch carries Kafka's delete horizon (KIP-534) in `baseTimestamp`.
    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTRIBUTE_DELETE_HORIZON_BIT != 0
    }
}

/// Which offsets rule `validate_batches_with` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRule {
    /// A producer's batch: one record per offset.
    Produced,
    /// A batch from a log (replication): compacted batches may have gaps or no record.
    Stored,
}

/// What a validated produce payload contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchesSummary {
    pub batch_count: u32,
    /// Sum of `recordCount`; also the number of offsets the payload occupies.
    pub record_count: i64,
    pub total_bytes: usize,
    /// Largest `maxTimestamp`, or `NO_TIMESTAMP`.
    pub max_timestamp: i64,
    /// Offset of the last record of the batch holding `max_timestamp`, relative to the offset
    /// the payload's first record will get; -1 when there is no timestamp.
    pub max_timestamp_offset_delta: i64,
    pub first_producer_id: i64,
    pub first_producer_epoch: i16,
    pub first_base_sequence: i32,
    pub has_transactional: bool,
    pub has_control: bool,
}

/// Walks every batch of a produce payload and checks it completely (structure, magic, CRC,
/// counts, size limit). Nothing is modified.
pub fn validate_batches(
    bytes: &[u8],
    batch_bytes_max: usize,
) -> Result<BatchesSummary, BatchError> {
    validate_batches_with(bytes, batch_bytes_max, CountRule::Produced)
}

/// `validate_batches` with the offsets rule of `rule`.
pub fn validate_batches_with(
    bytes: &[u8],
    batch_bytes_max: usize,
    rule: CountRule,
) -> Result<BatchesSummary, BatchError> {
    if bytes.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut summary = BatchesSummary {
        batch_count: 0,
        record_count: 0,
        total_bytes: bytes.len(),
        max_timestamp: NO_TIMESTAMP,
        max_timestamp_offset_delta: -1,
        first_producer_id: -1,
        first_producer_epoch: -1,
        first_base_sequence: -1,
        has_transactional: false,
        has_control: false,
    };
    for item in BatchIter::new(bytes) {
        let (position, header) = item?;
        let batch = &bytes[position..position + header.size_bytes()];
        if batch.len() > batch_bytes_max {
            return Err(BatchError::TooLarge {
                batch_bytes: batch.len(),
                max: batch_bytes_max,
            });
        }
        if batch_crc(batch) != header.crc {
            return Err(BatchError::Corrupt(CorruptReason::CrcMismatch));
        }
        match rule {
            CountRule::Produced => header.check_counts()?,
            CountRule::Stored => header.check_stored_counts()?,
        }
        if summary.batch_count == 0 {
            summary.first_producer_id = header.producer_id;
            summary.first_producer_epoch = header.producer_epoch;
            summary.first_base_sequence = header.base_sequence;
        }
        if header.max_timestamp > summary.max_timestamp {
            summary.max_timestamp = header.max_timestamp;
            summary.max_timestamp_offset_delta =
                summary.record_count + i64::from(header.last_offset_delta);
        }
        summary.batch_count += 1;
        summary.record_count += i64::from(header.record_count);
        if summary.record_count > PAYLOAD_RECORDS_MAX {
            return Err(BatchError::Corrupt(CorruptReason::RecordCountInvalid));
        }
        summary.has_transactional |= header.is_transactional();
        summary.has_control |= header.is_control();
    }
    Ok(summary)
}

/// CRC-32C of one whole batch as stored in its header.
pub fn batch_crc(batch: &[u8]) -> u32 {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    crc32c::crc32c(&batch[CRC_COVERED_FROM..])
}

/// Builds a batch from `header` (its `batch_length` and `crc` are ignored) and the encoded
/// `records` (compressed when the header's codec says so), computing length and CRC-32C.
pub fn encode_batch(header: &BatchHeader, records: &[u8]) -> Vec<u8> {
    let length = BATCH_LENGTH_MIN + records.len();
    assert!(length <= i32::MAX as usize, "batch too large");
    let mut out = Vec::with_capacity(BATCH_LOG_OVERHEAD_BYTES + length);
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&(length as i32).to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&header.attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&header.base_timestamp.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&header.record_count.to_be_bytes());
    assert_eq!(out.len(), BATCH_HEADER_BYTES);
    out.extend_from_slice(records);
    let crc = batch_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Sets `baseOffset` (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets `partitionLeaderEpoch` (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `maxTimestamp = now_ms` and recomputes the CRC, as
/// Kafka's `setMaxTimestamp(LOG_APPEND_TIME, now)` does (baseTimestamp stays; consumers use
/// maxTimestamp for every record of a LogAppendTime batch).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    assert!(batch.len() >= BATCH_HEADER_BYTES);
    let attributes = read_i16(batch, ATTRIBUTES_AT) | ATTRIBUTE_TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = batch_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Stamps every batch of an already validated payload: consecutive offsets from
/// `base_offset`, the leader epoch, and the append time when given. Returns the offset after
/// the last record.
pub fn stamp_batches(
    bytes: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time_ms: Option<i64>,
) -> i64 {
    let mut position = 0;
    let mut next_offset = base_offset;
    while position < bytes.len() {
        let length = read_i32(bytes, position + BATCH_LENGTH_AT);
        assert!(
            length >= 0 && length as usize >= BATCH_LENGTH_MIN,
            "payload not validated"
        );
        let end = position + BATCH_LOG_OVERHEAD_BYTES + length as usize;
        let batch = &mut bytes[position..end];
        set_base_offset(batch, next_offset);
        set_partition_leader_epoch(batch, leader_epoch);
        if let Some(now_ms) = log_append_time_ms {
            set_log_append_time(batch, now_ms);
        }
        next_offset += i64::from(read_i32(batch, LAST_OFFSET_DELTA_AT)) + 1;
        position = end;
    }
    next_offset
}

/// Iterates `(position, header)` over the batches in a byte slice. Yields an error (once,
/// then stops) for a batch whose length prefix is short, insane, or runs past the slice.
/// CRCs are not checked here.
pub struct BatchIter<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> BatchIter<'a> {
    pub fn new(bytes: &'a [u8]) -> BatchIter<'a> {
        BatchIter { bytes, position: 0 }
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(usize, BatchHeader), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position >= self.bytes.len() {
            return None;
        }
        let position = self.position;
        let rest = &self.bytes[position..];
        let result = next_batch_header(rest);
        match &result {
            Ok(header) => self.position += header.size_bytes(),
            Err(_) => self.position = self.bytes.len(),
        }
        Some(result.map(|header| (position, header)))
    }
}

fn next_batch_header(rest: &[u8]) -> Result<BatchHeader, BatchError> {
    if rest.len() < BATCH_LOG_OVERHEAD_BYTES {
        return Err(BatchError::Corrupt(CorruptReason::Truncated));
    }
    let length = read_i32(rest, BATCH_LENGTH_AT);
    if length < 0 || (length as usize) < BATCH_LENGTH_MIN {
        return Err(BatchError::Corrupt(CorruptReason::LengthTooSmall));
    }
    if rest.len() - BATCH_LOG_OVERHEAD_BYTES < length as usize {
        return Err(BatchError::Corrupt(CorruptReason::Truncated));
    }
    BatchHeader::parse(rest)
}

/// Reads the `batchLength` prefix of a batch starting at `bytes[0]`, returning the whole
/// batch size if it is sane. `bytes` must hold at least 12 bytes.
pub fn batch_size_from_prefix(bytes: &[u8]) -> Option<usize> {
    assert!(bytes.len() >= BATCH_LOG_OVERHEAD_BYTES);
    let length = read_i32(bytes, BATCH_LENGTH_AT);
    if length < 0 || (length as usize) < BATCH_LENGTH_MIN {
        return None;
    }
    Some(BATCH_LOG_OVERHEAD_BYTES + length as usize)
}

/// Base offset from a 12-byte (or longer) batch prefix.
pub fn base_offset_from_prefix(bytes: &[u8]) -> i64 {
    read_i64(bytes, BASE_OFFSET_AT)
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    let mut raw = [0u8; 2];
    raw.copy_from_slice(&bytes[at..at + 2]);
    i16::from_be_bytes(raw)
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_encoder::{
        encode_batch, fix_crc, read_i64_at, simple_batch, TestBatch, TestRecord,
    };

    const LIMIT: usize = 1 << 20;

    fn two_batches() -> Vec<u8> {
        let mut bytes = simple_batch(3, 10, 1_000);
        bytes.extend_from_slice(&simple_batch(2, 10, 5_000));
        bytes
    }

    #[test]
    fn good_batches_are_summarized() {
        let mut first = encode_batch(&TestBatch {
            base_offset: 0,
            base_timestamp: 100,
            max_timestamp: 200,
            attributes: 0x10,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 7,
            records: vec![
                TestRecord {
                    timestamp_delta: 0,
                    key: None,
                    value: Some(b"a"),
                },
                TestRecord {
                    timestamp_delta: 100,
                    key: Some(b"k"),
                    value: None,
                },
            ],
        });
        let second = simple_batch(4, 5, 150);
        first.extend_from_slice(&second);
        let summary = validate_batches(&first, LIMIT).unwrap();
        assert_eq!(
            summary,
            BatchesSummary {
                batch_count: 2,
                record_count: 6,
                total_bytes: first.len(),
                max_timestamp: 200,
                max_timestamp_offset_delta: 1,
                first_producer_id: 42,
                first_producer_epoch: 3,
                first_base_sequence: 7,
                has_transactional: true,
                has_control: false,
            }
        );
    }

    #[test]
    fn each_corruption_has_its_error() {
        let good = two_batches();
        let first_len = simple_batch(3, 10, 1_000).len();
        assert_eq!(validate_batches(&[], LIMIT), Err(BatchError::Empty));

        let mut bad_crc = good.clone();
        bad_crc[first_len - 1] ^= 1;
        assert_eq!(
            validate_batches(&bad_crc, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::CrcMismatch))
        );

        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert_eq!(
            validate_batches(&bad_magic, LIMIT),
            Err(BatchError::UnsupportedMagic(1))
        );

        let mut long_length = good.clone();
        long_length[8..12].copy_from_slice(&(good.len() as i32).to_be_bytes());
        assert_eq!(
            validate_batches(&long_length, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::Truncated))
        );

        let mut tiny_length = good.clone();
        tiny_length[8..12].copy_from_slice(&48i32.to_be_bytes());
        assert_eq!(
            validate_batches(&tiny_length, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::LengthTooSmall))
        );

        let mut negative_length = good.clone();
        negative_length[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            validate_batches(&negative_length, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::LengthTooSmall))
        );

        let truncated = &good[..good.len() - 1];
        assert_eq!(
            validate_batches(truncated, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::Truncated))
        );

        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0u8; 5]);
        assert_eq!(
            validate_batches(&trailing, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::Truncated))
        );

        let mut count_mismatch = simple_batch(3, 10, 0);
        count_mismatch[57..61].copy_from_slice(&4i32.to_be_bytes());
        fix_crc(&mut count_mismatch);
        assert_eq!(
            validate_batches(&count_mismatch, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::LastOffsetDeltaMismatch))
        );

        let mut zero_count = simple_batch(1, 10, 0);
        zero_count[57..61].copy_from_slice(&0i32.to_be_bytes());
        fix_crc(&mut zero_count);
        assert_eq!(
            validate_batches(&zero_count, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::RecordCountInvalid))
        );

        let mut bad_codec = simple_batch(1, 10, 0);
        bad_codec[22] |= 0x07;
        fix_crc(&mut bad_codec);
        assert_eq!(
            validate_batches(&bad_codec, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::CompressionInvalid))
        );

        let big = simple_batch(1, 200, 0);
        assert_eq!(
            validate_batches(&big, 100),
            Err(BatchError::TooLarge {
                batch_bytes: big.len(),
                max: 100
            })
        );
        assert!(validate_batches(&big, big.len()).is_ok());
    }

    #[test]
    fn payload_record_count_is_bounded() {
        let mut huge = simple_batch(1, 1, 0);
        huge[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        fix_crc(&mut huge);
        assert_eq!(
            validate_batches(&huge, LIMIT).unwrap().record_count,
            i64::from(i32::MAX)
        );
        let mut two = huge.clone();
        two.extend_from_slice(&huge);
        assert_eq!(
            validate_batches(&two, LIMIT),
            Err(BatchError::Corrupt(CorruptReason::RecordCountInvalid))
        );
    }

    #[test]
    fn stamping_sets_offsets_epoch_and_keeps_crc_valid() {
        let mut bytes = two_batches();
        let next = stamp_batches(&mut bytes, 100, 9, None);
        assert_eq!(next, 105);
        let headers: Vec<BatchHeader> =
            BatchIter::new(&bytes).map(|item| item.unwrap().1).collect();
        assert_eq!(headers.len(), 2);
        assert_eq!(
            (headers[0].base_offset, headers[0].last_offset()),
            (100, 102)
        );
        assert_eq!(
            (headers[1].base_offset, headers[1].last_offset()),
            (103, 104)
        );
        assert!(headers
            .iter()
            .all(|header| header.partition_leader_epoch == 9));
        assert!(headers
            .iter()
            .all(|header| header.timestamp_type() == TimestampType::CreateTime));
        assert!(
            validate_batches(&bytes, LIMIT).is_ok(),
            "offset and epoch are not under the CRC"
        );
    }

    #[test]
    fn log_append_time_sets_max_timestamp_and_type_and_fixes_crc() {
        let mut bytes = two_batches();
        let crc_before = BatchHeader::parse(&bytes).unwrap().crc;
        stamp_batches(&mut bytes, 0, 0, Some(77_000));
        let summary = validate_batches(&bytes, LIMIT).unwrap();
        assert_eq!(summary.max_timestamp, 77_000);
        for item in BatchIter::new(&bytes) {
            let (position, header) = item.unwrap();
            assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!(header.max_timestamp, 77_000);
            assert_eq!(read_i64_at(&bytes, position + 35), 77_000);
            assert_eq!(header.compression_codec(), 0);
        }
        assert_eq!(BatchHeader::parse(&bytes).unwrap().base_timestamp, 1_000);
        assert_ne!(BatchHeader::parse(&bytes).unwrap().crc, crc_before);
    }

    #[test]
    fn batch_iter_reports_positions_and_stops_after_an_error() {
        let mut bytes = two_batches();
        let first_len = simple_batch(3, 10, 1_000).len();
        let positions: Vec<usize> = BatchIter::new(&bytes).map(|item| item.unwrap().0).collect();
        assert_eq!(positions, vec![0, first_len]);
        bytes.extend_from_slice(&[1, 2, 3]);
        let items: Vec<_> = BatchIter::new(&bytes).collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2], Err(BatchError::Corrupt(CorruptReason::Truncated)));
    }
}
