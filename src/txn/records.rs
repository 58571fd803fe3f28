//! Transaction metadata as records of `__transaction_state`, in Kafka's own schemas
//! (`TransactionLogKey` / `TransactionLogValue`), so Kafka's `TransactionLogMessageFormatter`
//! reads our partitions.
//!
//! Key (version 0): `i16 version, string transactional_id`. Value (version 0):
//! `i16 version, i64 producer_id, i16 producer_epoch, i32 transaction_timeout_ms,
//! i8 transaction_status, [string topic, [i32 partition]] partitions (nullable),
//! i64 last_update_timestamp_ms, i64 start_timestamp_ms`. A record without a value (a
//! tombstone) deletes the transactional id. Version 1 (flexible, with the transaction
//! version 2 fields) is neither written nor read: we never advertise transaction version 2.

use std::collections::{BTreeSet, HashMap};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
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

pub fn encode_value(metadata: &TxnMetadata) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&metadata.producer_id.to_be_bytes());
    out.extend_from_slice(&metadata.producer_epoch.to_be_bytes());
    out.extend_from_slice(&metadata.timeout_ms.to_be_bytes());
    out.push(metadata.state.code() as u8);
    // Kafka writes the partitions grouped by topic.
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &metadata.partitions {
        match by_topic.last_mut() {
            Some((last, partitions)) if *last == topic.as_str() => partitions.push(*partition),
            _ => by_topic.push((topic.as_str(), vec![*partition])),
        }
    }
    out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    for (topic, partitions) in by_topic {
        push_string(&mut out, topic);
        out.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for partition in partitions {
            out.extend_from_slice(&partition.to_be_bytes());
        }
    }
    out.extend_from_slice(&metadata.last_update_ms.to_be_bytes());
    out.extend_from_slice(&metadata.start_ms.to_be_bytes());
    Bytes::from(out)
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
    if version != VALUE_VERSION {
        return Err(RecordError::Version(version));
    }
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let status = reader.i8()?;
    let state = TxnState::from_code(status).ok_or(RecordError::Status(status))?;
    let mut partitions = BTreeSet::new();
    for _ in 0..reader.count(6)? {
        let topic = reader.string()?;
        for _ in 0..reader.count(4)? {
            partitions.insert((topic.clone(), reader.i32()?));
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    Ok(TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
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
        }
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
