//! Transaction metadata as records of `__transaction_state`, in Kafka's own schemas
//! (`TransactionLogKey` / `TransactionLogValue`), so Kafka's `TransactionLogMessageFormatter`
//! reads our partitions.
//!
//! Key (version 0): `i16 version, string transactional_id`. Value (version 0):
//! `i16 version, i64 producer_id, i16 producer_epoch, i32 transaction_timeout_ms,
//! i8 transaction_status, [string topic, [i32 partition]] partitions (nullable),
//! i64 last_update_timestamp_ms, i64 start_timestamp_ms`. A record without a value (a
//! tombstone) deletes the transactional id. Version 1 is the flexible form (compact strings
//! and arrays, tagged fields) with the transaction version 2 fields as tags: 0
//! previous_producer_id, 1 next_producer_id (i64, default -1), 2 client_transaction_version
//! (i16, default 0). Version 1 is written when any of them differs from its default, so a
//! coordinator at transaction version 1 writes exactly what it wrote before.

use std::collections::{BTreeSet, HashMap};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

use super::state::{TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
const VALUE_VERSION_FLEXIBLE: i16 = 1;
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;
/// Tagged fields one record may carry; more is a corrupt record.
const RECORD_TAGS_MAX: u32 = 64;
/// Partitions one transaction may hold in a record; more is a corrupt record.
const RECORD_PARTITIONS_MAX: usize = 100_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("truncated transaction log record")]
    Truncated,
    #[error("invalid UTF-8 in a transaction log record")]
    Utf8,
    #[error("unknown transaction log record version {0}")]
    Version(i16),
    #[error("unknown transaction status {0}")]
    Status(i8),
    #[error("undecodable record batch in the transaction log")]
    Batch,
    #[error("malformed varint in a transaction log record")]
    Varint,
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // Transactional ids and topic names are bounded below i16::MAX by the handlers.
    assert!(
        text.len() <= i16::MAX as usize,
        "string too long for the record schema"
    );
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&KEY_VERSION.to_be_bytes());
    push_string(&mut out, transactional_id);
    Bytes::from(out)
}

fn push_uvarint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn push_compact_string(out: &mut Vec<u8>, text: &str) {
    assert!(
        text.len() < i16::MAX as usize,
        "string too long for the record schema"
    );
    push_uvarint(out, text.len() as u32 + 1);
    out.extend_from_slice(text.as_bytes());
}

/// Whether the value needs version 1 to say everything (a transaction version 2 field).
fn needs_flexible(metadata: &TxnMetadata) -> bool {
    metadata.previous_producer_id != NO_PRODUCER_ID
        || metadata.next_producer_id != NO_PRODUCER_ID
        || metadata.client_transaction_version != 0
}

/// Kafka writes the partitions grouped by topic.
fn partitions_by_topic(metadata: &TxnMetadata) -> Vec<(&str, Vec<i32>)> {
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &metadata.partitions {
        match by_topic.last_mut() {
            Some((last, partitions)) if *last == topic.as_str() => partitions.push(*partition),
            _ => by_topic.push((topic.as_str(), vec![*partition])),
        }
    }
    by_topic
}

pub fn encode_value(metadata: &TxnMetadata) -> Bytes {
    let flexible = needs_flexible(metadata);
    let mut out = Vec::with_capacity(64);
    let version = if flexible {
        VALUE_VERSION_FLEXIBLE
    } else {
        VALUE_VERSION
    };
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&metadata.producer_id.to_be_bytes());
    out.extend_from_slice(&metadata.producer_epoch.to_be_bytes());
    out.extend_from_slice(&metadata.timeout_ms.to_be_bytes());
    out.push(metadata.state.code() as u8);
    let by_topic = partitions_by_topic(metadata);
    if flexible {
        push_uvarint(&mut out, by_topic.len() as u32 + 1);
    } else {
        out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    }
    for (topic, partitions) in by_topic {
        if flexible {
            push_compact_string(&mut out, topic);
            push_uvarint(&mut out, partitions.len() as u32 + 1);
        } else {
            push_string(&mut out, topic);
            out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        }
        for partition in partitions {
            out.extend_from_slice(&partition.to_be_bytes());
        }
        if flexible {
            push_uvarint(&mut out, 0);
        }
    }
    out.extend_from_slice(&metadata.last_update_ms.to_be_bytes());
    out.extend_from_slice(&metadata.start_ms.to_be_bytes());
    if flexible {
        push_tags(&mut out, metadata);
    }
    Bytes::from(out)
}

/// The value's tagged fields, only those off their defaults (as Kafka writes them).
fn push_tags(out: &mut Vec<u8>, metadata: &TxnMetadata) {
    let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
    if metadata.previous_producer_id != NO_PRODUCER_ID {
        let bytes = metadata.previous_producer_id.to_be_bytes().to_vec();
        tags.push((TAG_PREVIOUS_PRODUCER_ID, bytes));
    }
    if metadata.next_producer_id != NO_PRODUCER_ID {
        let bytes = metadata.next_producer_id.to_be_bytes().to_vec();
        tags.push((TAG_NEXT_PRODUCER_ID, bytes));
    }
    if metadata.client_transaction_version != 0 {
        let bytes = metadata.client_transaction_version.to_be_bytes().to_vec();
        tags.push((TAG_CLIENT_TRANSACTION_VERSION, bytes));
    }
    push_uvarint(out, tags.len() as u32);
    for (tag, bytes) in tags {
        push_uvarint(out, tag);
        push_uvarint(out, bytes.len() as u32);
        out.extend_from_slice(&bytes);
    }
}

/// One batch holding one record: `metadata` for `transactional_id`, or a tombstone when the
/// id is Dead (expired), as Kafka writes it.
pub fn encode_batch(transactional_id: &str, metadata: &TxnMetadata, now_ms: i64) -> BytesMut {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(encode_key(transactional_id)),
        value: (metadata.state != TxnState::Dead).then(|| encode_value(metadata)),
        headers: Default::default(),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut out = BytesMut::new();
    // One uncompressed record with bounded fields: encoding cannot fail.
    let encoded = RecordBatchEncoder::encode(&mut out, [&record], &options);
    assert!(encoded.is_ok(), "encoding a transaction log record");
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < count {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        self.take(N)?.try_into().map_err(|_| RecordError::Truncated)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let length = usize::try_from(self.i16()?).map_err(|_| RecordError::Truncated)?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8)
    }

    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.array::<1>()?[0];
            value |= u32::from(byte & 0x7f)
                .checked_shl(shift)
                .ok_or(RecordError::Varint)?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Varint)
    }

    fn compact_string(&mut self) -> Result<String, RecordError> {
        let length = self
            .uvarint()?
            .checked_sub(1)
            .ok_or(RecordError::Truncated)?;
        let bytes = self.take(length as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8)
    }

    /// A compact array length: 0 (null) is empty; anything over the bytes left is truncated.
    fn compact_count(&mut self, element_bytes_min: usize) -> Result<usize, RecordError> {
        let Some(count) = self.uvarint()?.checked_sub(1) else {
            return Ok(0);
        };
        let count = count as usize;
        if count > RECORD_PARTITIONS_MAX || count * element_bytes_min > self.bytes.len() {
            return Err(RecordError::Truncated);
        }
        Ok(count)
    }

    /// Skips a tagged-field section.
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        if count > RECORD_TAGS_MAX {
            return Err(RecordError::Truncated);
        }
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()?;
            self.take(size as usize)?;
        }
        Ok(())
    }

    /// An array length: -1 (null) is empty; anything over the bytes left is truncated.
    fn count(&mut self, element_bytes_min: usize) -> Result<usize, RecordError> {
        let count = self.i32()?;
        if count < 0 {
            return Ok(0);
        }
        let count = count as usize;
        if count > RECORD_PARTITIONS_MAX || count * element_bytes_min > self.bytes.len() {
            return Err(RecordError::Truncated);
        }
        Ok(count)
    }
}

pub fn decode_key(bytes: &[u8]) -> Result<String, RecordError> {
    let mut reader = Reader { bytes };
    match reader.i16()? {
        KEY_VERSION => reader.string(),
        version => Err(RecordError::Version(version)),
    }
}

pub fn decode_value(bytes: &[u8]) -> Result<TxnMetadata, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16()?;
    let flexible = match version {
        VALUE_VERSION => false,
        VALUE_VERSION_FLEXIBLE => true,
        _ => return Err(RecordError::Version(version)),
    };
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let status = reader.i8()?;
    let state = TxnState::from_code(status).ok_or(RecordError::Status(status))?;
    let mut partitions = BTreeSet::new();
    let topics = if flexible {
        reader.compact_count(3)?
    } else {
        reader.count(6)?
    };
    for _ in 0..topics {
        let (topic, count) = if flexible {
            let topic = reader.compact_string()?;
            (topic, reader.compact_count(4)?)
        } else {
            let topic = reader.string()?;
            (topic, reader.count(4)?)
        };
        for _ in 0..count {
            partitions.insert((topic.clone(), reader.i32()?));
        }
        if flexible {
            reader.skip_tags()?;
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    let mut metadata = TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        client_transaction_version: 0,
        last_producer_epoch: NO_PRODUCER_EPOCH,
    };
    if flexible {
        read_tags(&mut reader, &mut metadata)?;
    }
    Ok(metadata)
}

/// The value's tagged fields; unknown tags are skipped (later Kafka versions add some).
fn read_tags(reader: &mut Reader<'_>, metadata: &mut TxnMetadata) -> Result<(), RecordError> {
    let count = reader.uvarint()?;
    if count > RECORD_TAGS_MAX {
        return Err(RecordError::Truncated);
    }
    for _ in 0..count {
        let tag = reader.uvarint()?;
        let size = reader.uvarint()? as usize;
        let mut field = Reader {
            bytes: reader.take(size)?,
        };
        match tag {
            TAG_PREVIOUS_PRODUCER_ID => metadata.previous_producer_id = field.i64()?,
            TAG_NEXT_PRODUCER_ID => metadata.next_producer_id = field.i64()?,
            TAG_CLIENT_TRANSACTION_VERSION => metadata.client_transaction_version = field.i16()?,
            _ => {}
        }
    }
    Ok(())
}

/// Replays every record of `batches` into `txns` (last write wins, tombstones delete).
/// Returns the offset after the last batch (`None`: no whole batch in `batches`).
pub fn replay(
    batches: Bytes,
    txns: &mut HashMap<String, TxnMetadata>,
) -> Result<Option<i64>, RecordError> {
    let mut next_offset = None;
    for entry in sluice_storage::BatchIter::new(&batches) {
        let (_, header) = entry.map_err(|_| RecordError::Batch)?;
        next_offset = Some(header.last_offset() + 1);
    }
    if next_offset.is_none() {
        return Ok(None);
    }
    let mut buffer = batches;
    let sets = RecordBatchDecoder::decode_all(&mut buffer).map_err(|_| RecordError::Batch)?;
    for record in sets.iter().flat_map(|set| &set.records) {
        if record.control {
            continue;
        }
        let Some(key) = record.key.as_deref() else {
            continue;
        };
        let decoded = decode_key(key).and_then(|id| {
            let value = record.value.as_deref().map(decode_value).transpose()?;
            Ok((id, value))
        });
        match decoded {
            Ok((id, Some(value))) => {
                txns.insert(id, value);
            }
            Ok((id, None)) => {
                txns.remove(&id);
            }
            Err(error) => {
                tracing::warn!(%error, offset = record.offset, "skipping a transaction log record");
            }
        }
    }
    Ok(next_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> TxnMetadata {
        TxnMetadata {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]),
            start_ms: 1_000,
            last_update_ms: 2_000,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: 0,
            last_producer_epoch: NO_PRODUCER_EPOCH,
        }
    }

    #[test]
    fn version_2_fields_make_a_flexible_value_that_round_trips() {
        let mut tv2 = metadata();
        tv2.client_transaction_version = 2;
        tv2.next_producer_id = 11;
        let value = encode_value(&tv2);
        let mut want = vec![0, 1];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.push(3);
        want.extend_from_slice(&[2, b'a', 3, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
        want.extend_from_slice(&[2, b'b', 2, 0, 0, 0, 1, 0]);
        want.extend_from_slice(&2_000i64.to_be_bytes());
        want.extend_from_slice(&1_000i64.to_be_bytes());
        want.extend_from_slice(&[2, 1, 8]);
        want.extend_from_slice(&11i64.to_be_bytes());
        want.extend_from_slice(&[2, 2, 0, 2]);
        assert_eq!(&value[..], &want[..]);
        assert_eq!(decode_value(&value), Ok(tv2.clone()));
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        tv2.previous_producer_id = 6;
        tv2.partitions.clear();
        assert_eq!(decode_value(&encode_value(&tv2)), Ok(tv2));
    }

    #[test]
    fn keys_and_values_use_kafkas_bytes() {
        assert_eq!(&encode_key("tx")[..], &[0, 0, 0, 2, b't', b'x']);
        let value = encode_value(&metadata());
        let mut want = vec![0, 0];
        want.extend_from_slice(&7i64.to_be_bytes());
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&60_000i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 1, b'b', 0, 0, 0, 1, 0, 0, 0, 1]);
        want.extend_from_slice(&2_000i64.to_be_bytes());
        want.extend_from_slice(&1_000i64.to_be_bytes());
        assert_eq!(&value[..], &want[..]);
        assert_eq!(decode_value(&value), Ok(metadata()));
        assert_eq!(decode_key(&encode_key("tx")), Ok("tx".to_string()));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        let value = encode_value(&metadata());
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_status = value.to_vec();
        bad_status[16] = 42;
        assert_eq!(decode_value(&bad_status), Err(RecordError::Status(42)));
        assert_eq!(decode_key(&[0, 1, 0, 0]), Err(RecordError::Version(1)));
    }

    #[test]
    fn a_dead_id_is_a_tombstone_that_replay_forgets() {
        let mut dead = metadata();
        dead.state = TxnState::Dead;
        let mut batches = BytesMut::new();
        batches.extend_from_slice(&encode_batch("tx", &metadata(), 1));
        let mut tombstone = encode_batch("tx", &dead, 2);
        sluice_storage::batch::set_base_offset(&mut tombstone, 1);
        batches.extend_from_slice(&tombstone);
        let mut txns = HashMap::new();
        assert_eq!(replay(batches.freeze(), &mut txns), Ok(Some(2)));
        assert!(txns.is_empty());
    }

    #[test]
    fn replay_keeps_the_last_write() {
        let mut first = metadata();
        first.state = TxnState::Empty;
        let mut batches = BytesMut::new();
        batches.extend_from_slice(&encode_batch("tx", &first, 1));
        let mut second = encode_batch("tx", &metadata(), 2);
        sluice_storage::batch::set_base_offset(&mut second, 1);
        batches.extend_from_slice(&second);
        let mut txns = HashMap::new();
        assert_eq!(replay(batches.freeze(), &mut txns), Ok(Some(2)));
        assert_eq!(txns.get("tx"), Some(&metadata()));
    }
}
