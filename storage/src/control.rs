//! Transaction markers: the control batches (Kafka's `EndTransactionMarker`) that end a
//! producer's transaction in a partition.
//!
//! The one place storage looks inside a record: a control batch is written by the broker,
//! uncompressed, with exactly one record whose key says commit or abort and whose value
//! carries the coordinator epoch. Producer state needs both, on append and on replay.
//!
//! Record layout (Kafka's `ControlRecordType` key and `EndTransactionMarker` value, version 0):
//! key = version i16, type i16 (0 abort, 1 commit); value = version i16, coordinator epoch i32.

use crate::batch::{batch_crc, BatchHeader, BATCH_HEADER_BYTES, MAGIC_V2};

/// What a transaction coordinator asks a partition to write (WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

const CONTROL_KEY_VERSION: i16 = 0;
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
const MARKER_VALUE_VERSION: i16 = 0;
const KEY_BYTES: usize = 4;
const VALUE_BYTES: usize = 6;
/// Transactional + control attribute bits, no compression, CreateTime.
const CONTROL_BATCH_ATTRIBUTES: i16 = 0x10 | 0x20;
/// Kafka's `RecordBatch.NO_SEQUENCE`: control batches carry no sequence.
const NO_SEQUENCE: i32 = -1;

/// One whole control batch for `marker` (base offset 0 and leader epoch 0, stamped by the
/// append), with both timestamps `timestamp_ms`, as Kafka's
/// `MemoryRecords.withEndTransactionMarker`.
pub fn encode_marker_batch(marker: &TxnMarker, timestamp_ms: i64) -> Vec<u8> {
    let mut record = Vec::with_capacity(16);
    record.push(0u8); // record attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, KEY_BYTES as i64);
    record.extend_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    let control_type = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    record.extend_from_slice(&control_type.to_be_bytes());
    put_varint(&mut record, VALUE_BYTES as i64);
    record.extend_from_slice(&MARKER_VALUE_VERSION.to_be_bytes());
    record.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    put_varint(&mut record, 0); // header count
    let mut records = Vec::with_capacity(record.len() + 2);
    put_varint(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = (BATCH_HEADER_BYTES - 12 + records.len()) as i32;
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // CRC, set below
    out.extend_from_slice(&CONTROL_BATCH_ATTRIBUTES.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&marker.producer_id.to_be_bytes());
    out.extend_from_slice(&marker.producer_epoch.to_be_bytes());
    out.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes()); // record count
    out.extend_from_slice(&records);
    let crc = batch_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The marker a stored control batch carries, or `None` when it is not a transaction marker
/// (another control type, compressed, or malformed: Kafka ignores those for transactions).
pub fn parse_marker(header: &BatchHeader, batch: &[u8]) -> Option<TxnMarker> {
    if !header.is_control() || header.compression_codec() != 0 || header.record_count < 1 {
        return None;
    }
    let mut reader = VarReader {
        bytes: batch.get(BATCH_HEADER_BYTES..)?,
        at: 0,
    };
    let _length = reader.varint()?;
    let _attributes = reader.take(1)?;
    let _timestamp_delta = reader.varint()?;
    let _offset_delta = reader.varint()?;
    let key_length = reader.varint()?;
    if key_length < KEY_BYTES as i64 {
        return None;
    }
    let key = reader.take(key_length as usize)?;
    let control_type = i16::from_be_bytes([key[2], key[3]]);
    let commit = match control_type {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    let value_length = reader.varint()?;
    if value_length < VALUE_BYTES as i64 {
        return None;
    }
    let value = reader.take(value_length as usize)?;
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Some(TxnMarker {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        coordinator_epoch,
        commit,
    })
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Bounds-checked reads of zigzag varints and byte runs.
struct VarReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A varint of an i64 takes at most 10 bytes.
const VARINT_BYTES_MAX: u32 = 10;

impl<'a> VarReader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(count)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn varint(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in 0..VARINT_BYTES_MAX {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            raw |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_batches;

    #[test]
    fn markers_round_trip_through_a_valid_batch() {
        for commit in [true, false] {
            let marker = TxnMarker {
                producer_id: 4_000_000_000,
                producer_epoch: 7,
                coordinator_epoch: 300,
                commit,
            };
            let batch = encode_marker_batch(&marker, 1_700_000_000_000);
            let summary = validate_batches(&batch, 1 << 20).unwrap();
            assert!(summary.has_control && summary.has_transactional);
            assert_eq!(summary.record_count, 1);
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.max_timestamp, 1_700_000_000_000);
            assert_eq!(parse_marker(&header, &batch), Some(marker));
        }
    }

    #[test]
    fn truncated_or_foreign_control_batches_are_not_markers() {
        let marker = TxnMarker {
            producer_id: 1,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: true,
        };
        let batch = encode_marker_batch(&marker, 0);
        let header = BatchHeader::parse(&batch).unwrap();
        // Everything up to the value is needed (the trailing header count is not read).
        for cut in BATCH_HEADER_BYTES..batch.len() - 1 {
            assert_eq!(parse_marker(&header, &batch[..cut]), None, "cut at {cut}");
        }
        let mut other_type = batch.clone();
        // The control type's low byte: record length, attributes, two deltas, key length,
        // key version (2 bytes), then the type.
        other_type[BATCH_HEADER_BYTES + 1 + 1 + 1 + 1 + 1 + 2 + 1] = 5;
        assert_eq!(parse_marker(&header, &other_type), None);
    }
}
