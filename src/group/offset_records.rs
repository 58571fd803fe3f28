//! Committed offsets as records of `__consumer_offsets`, in Kafka's own schemas, so that
//! Kafka's `OffsetsMessageFormatter` reads our partitions and we could read Kafka's.
//!
//! Key (`OffsetCommitKey`, version 1; version 0 has the same fields): `i16 version, string
//! group, string topic, i32 partition`. Value (`OffsetCommitValue`, version 3): `i16 version,
//! i64 offset, i32 leader_epoch, string metadata, i64 commit_timestamp`. A record without a
//! value (a tombstone) deletes the key. Strings are an `i16` length then UTF-8 bytes. Keys of
//! other kinds: version 2 (classic group metadata, not persisted) is skipped on replay; 3 to 8
//! are KIP-848 consumer group records (`consumer_records`), kept per group for the loader.
//!
//! A transactional commit (TxnOffsetCommit) is the same records in a transactional batch of
//! the committing producer; it stays pending until a control batch of that producer (Kafka's
//! `EndTransactionMarker`, key `i16 version, i16 type`: 0 abort, 1 commit) ends it.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use thiserror::Error;

use super::consumer_records::{self, ConsumerKey};
use super::offsets::{CommittedOffset, GroupOffsets};

pub const KEY_VERSION_OFFSET_COMMIT: i16 = 1;
pub const VALUE_VERSION: i16 = 3;
/// Key versions 0 and 1 are offset commits; 2 is group metadata.
const KEY_VERSION_GROUP_METADATA: i16 = 2;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("truncated offsets record")]
    Truncated,
    #[error("invalid UTF-8 in an offsets record")]
    Utf8,
    #[error("unknown offsets record version {0}")]
    Version(i16),
    #[error("undecodable record batch in the offsets topic")]
    Batch,
}

/// Which committed offset a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// One record to append: a commit, or (`None`) a tombstone deleting the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub key: OffsetKey,
    pub value: Option<CommittedOffset>,
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    // Group ids, topic names and metadata are bounded below i16::MAX by the handlers; a
    // longer one would be cut by the length, so assert it never happens.
    assert!(
        text.len() <= i16::MAX as usize,
        "string too long for the record schema"
    );
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub fn encode_key(key: &OffsetKey) -> Bytes {
    let mut out = Vec::with_capacity(10 + key.group.len() + key.topic.len());
    out.extend_from_slice(&KEY_VERSION_OFFSET_COMMIT.to_be_bytes());
    push_string(&mut out, &key.group);
    push_string(&mut out, &key.topic);
    out.extend_from_slice(&key.partition.to_be_bytes());
    Bytes::from(out)
}

pub fn encode_value(value: &CommittedOffset) -> Bytes {
    let mut out = Vec::with_capacity(24 + value.metadata.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    push_string(&mut out, &value.metadata);
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    Bytes::from(out)
}

/// Kafka's control record types (`ControlRecordType`).
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;

/// The producer a transactional batch is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The sequence the log expects next from the producer on this partition.
    pub base_sequence: i32,
}

/// One uncompressed v2 batch holding `records` (offsets 0.., stamped by the log).
#[cfg(test)]
pub fn encode_batch(records: &[OffsetRecord], now_ms: i64) -> Result<BytesMut, RecordError> {
    encode(&raw(records), None, now_ms)
}

/// A record as bytes: its key and its value (`None`: a tombstone).
pub type RawRecord = (Bytes, Option<Bytes>);

/// Offset records as raw records.
pub fn raw(records: &[OffsetRecord]) -> Vec<RawRecord> {
    records
        .iter()
        .map(|record| {
            (
                encode_key(&record.key),
                record.value.as_ref().map(encode_value),
            )
        })
        .collect()
}

/// One uncompressed v2 batch of the coordinator's own records of any kind.
pub fn encode_raw_batch(records: &[RawRecord], now_ms: i64) -> Result<BytesMut, RecordError> {
    encode(records, None, now_ms)
}

/// One transactional batch of `producer` holding `records` (TxnOffsetCommit).
pub fn encode_txn_batch(
    records: &[OffsetRecord],
    producer: TxnProducer,
    now_ms: i64,
) -> Result<BytesMut, RecordError> {
    assert!(producer.producer_id >= 0 && producer.base_sequence >= 0);
    encode(&raw(records), Some(producer), now_ms)
}

fn encode(
    records: &[RawRecord],
    producer: Option<TxnProducer>,
    now_ms: i64,
) -> Result<BytesMut, RecordError> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.producer_id),
            producer_epoch: producer.map_or(-1, |p| p.producer_epoch),
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // The encoder keeps records in one batch only while `offset - sequence` stays
            // constant; starting at -1 leaves the batch's base sequence -1 (no producer),
            // as Kafka's coordinator writes it.
            sequence: match producer {
                // Near i32::MAX this would wrap inside the batch, which the encoder splits
                // into two batches; `encode` refuses that below.
                Some(p) => p.base_sequence.saturating_add(index as i32),
                None => index as i32 - 1,
            },
            timestamp: now_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, &records, &options).map_err(|_| RecordError::Batch)?;
    let batch_count = sluice_storage::BatchIter::new(&out).count();
    if producer.is_some_and(|p| p.base_sequence > i32::MAX - records.len() as i32) {
        // The sequence wraps inside the batch: the client's producer id has run that long;
        // it gets an error and starts over with a new epoch (sequence 0).
        return Err(RecordError::Batch);
    }
    assert_eq!(batch_count, 1, "offset records must go in one batch");
    Ok(out)
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

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A non-null string; its length is bounded by the bytes left (`take` checks).
    fn string(&mut self) -> Result<String, RecordError> {
        let length = usize::try_from(self.i16()?).map_err(|_| RecordError::Truncated)?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8)
    }
}

/// The offset commit key, or `None` for keys of other kinds (group metadata).
pub fn decode_key(bytes: &[u8]) -> Result<Option<OffsetKey>, RecordError> {
    let mut reader = Reader { bytes };
    match reader.i16()? {
        0 | KEY_VERSION_OFFSET_COMMIT => Ok(Some(OffsetKey {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        })),
        KEY_VERSION_GROUP_METADATA => Ok(None),
        version => Err(RecordError::Version(version)),
    }
}

/// Values of versions 0 to 3 (what Kafka wrote before flexible versions, and what we write).
pub fn decode_value(bytes: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut reader = Reader { bytes };
    let version = reader.i16()?;
    let offset = reader.i64()?;
    let (leader_epoch, metadata, commit_timestamp_ms) = match version {
        0..=2 => {
            let metadata = reader.string()?;
            let timestamp = reader.i64()?;
            (-1, metadata, timestamp)
        }
        VALUE_VERSION => {
            let epoch = reader.i32()?;
            let metadata = reader.string()?;
            (epoch, metadata, reader.i64()?)
        }
        other => return Err(RecordError::Version(other)),
    };
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// Replays every record of `batches` into `groups` (last write wins, tombstones delete).
/// Returns the offset after the last batch (`None`: no whole batch in `batches`).
#[cfg(test)]
pub fn replay(
    batches: Bytes,
    groups: &mut HashMap<String, GroupOffsets>,
) -> Result<Option<i64>, RecordError> {
    replay_all(batches, groups, &mut HashMap::new())
}

/// A consumer group's membership records as replayed: each key's latest value.
pub type ConsumerRecords = BTreeMap<ConsumerKey, Bytes>;

/// As [`replay`], and KIP-848 membership records into `consumer` (by group).
pub fn replay_all(
    batches: Bytes,
    groups: &mut HashMap<String, GroupOffsets>,
    consumer: &mut HashMap<String, ConsumerRecords>,
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
            replay_control(record, groups);
            continue;
        }
        let Some(key) = record.key.as_deref() else {
            continue;
        };
        let key_type = key.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
        if key_type.is_some_and(consumer_records::is_consumer_key) {
            replay_consumer(record, key, consumer);
            continue;
        }
        let key = match decode_key(key) {
            Ok(Some(key)) => key,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, offset = record.offset, "skipping an offsets record");
                continue;
            }
        };
        match record.value.as_deref().map(decode_value) {
            None => {
                if let Some(offsets) = groups.get_mut(&key.group) {
                    offsets.remove(&key.topic, key.partition);
                    if offsets.is_empty() {
                        groups.remove(&key.group);
                    }
                }
            }
            Some(Ok(value)) if record.transactional => {
                groups.entry(key.group).or_default().put_pending(
                    record.producer_id,
                    key.topic,
                    key.partition,
                    value,
                    record.offset,
                );
            }
            Some(Ok(value)) => {
                groups.entry(key.group).or_default().put(
                    key.topic,
                    key.partition,
                    value,
                    record.offset,
                );
            }
            Some(Err(error)) => {
                tracing::warn!(%error, offset = record.offset, "skipping an offsets record");
            }
        }
    }
    Ok(next_offset)
}

/// A membership record: the latest value of each key is kept (decoded when the group is
/// rebuilt), a tombstone deletes it.
fn replay_consumer(record: &Record, key: &[u8], consumer: &mut HashMap<String, ConsumerRecords>) {
    let (group, key) = match consumer_records::decode_key(key) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, offset = record.offset, "skipping a consumer group record");
            return;
        }
    };
    match &record.value {
        Some(value) => {
            consumer
                .entry(group)
                .or_default()
                .insert(key, value.clone());
        }
        None => {
            if let Some(records) = consumer.get_mut(&group) {
                records.remove(&key);
                if records.is_empty() {
                    consumer.remove(&group);
                }
            }
        }
    }
}

/// The outcome a control record (transaction marker) carries: `Some(true)` commit,
/// `Some(false)` abort, `None` for other control records.
pub fn decode_control_key(bytes: &[u8]) -> Result<Option<bool>, RecordError> {
    let mut reader = Reader { bytes };
    let _version = reader.i16()?;
    match reader.i16()? {
        CONTROL_TYPE_ABORT => Ok(Some(false)),
        CONTROL_TYPE_COMMIT => Ok(Some(true)),
        _ => Ok(None),
    }
}

/// A transaction marker ends its producer's pending offsets in every group.
fn replay_control(record: &Record, groups: &mut HashMap<String, GroupOffsets>) {
    let outcome = record.key.as_deref().map(decode_control_key);
    let commit = match outcome {
        Some(Ok(Some(commit))) => commit,
        Some(Ok(None)) => return,
        Some(Err(error)) => {
            tracing::warn!(%error, offset = record.offset, "skipping a control record");
            return;
        }
        None => return,
    };
    groups.retain(|_, offsets| {
        if offsets.has_pending_of(record.producer_id) {
            offsets.complete_transaction(record.producer_id, commit, record.offset);
        }
        !offsets.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, partition: i32) -> OffsetKey {
        OffsetKey {
            group: group.into(),
            topic: "t".into(),
            partition,
        }
    }

    fn value(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 4,
            metadata: format!("m{offset}"),
            commit_timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn keys_and_values_use_kafkas_bytes() {
        let encoded = encode_key(&key("g", 7));
        assert_eq!(
            &encoded[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7][..]
        );
        assert_eq!(decode_key(&encoded), Ok(Some(key("g", 7))));
        let encoded = encode_value(&value(9));
        let mut expected = vec![0, 3, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 4, 0, 2, b'm', b'9'];
        expected.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&encoded[..], &expected[..]);
        assert_eq!(decode_value(&encoded), Ok(value(9)));
        // Version 1 (Kafka 0.10-era): offset, metadata, commit and expire timestamps.
        let mut old = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0];
        old.extend_from_slice(&3i64.to_be_bytes());
        old.extend_from_slice(&4i64.to_be_bytes());
        let decoded = decode_value(&old).unwrap();
        assert_eq!((decoded.offset, decoded.leader_epoch), (5, -1));
        assert_eq!(decoded.commit_timestamp_ms, 3);
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), Ok(None));
        assert_eq!(decode_key(&[0, 1, 0, 9, b'g']), Err(RecordError::Truncated));
        assert_eq!(decode_value(&[0, 9]), Err(RecordError::Truncated));
        assert_eq!(decode_key(&[0, 7]), Err(RecordError::Version(7)));
    }

    #[test]
    fn replay_keeps_the_last_write_and_applies_tombstones() {
        let first = [
            OffsetRecord {
                key: key("a", 0),
                value: Some(value(1)),
            },
            OffsetRecord {
                key: key("a", 1),
                value: Some(value(2)),
            },
            OffsetRecord {
                key: key("b", 0),
                value: Some(value(3)),
            },
        ];
        let second = [
            OffsetRecord {
                key: key("a", 0),
                value: Some(value(10)),
            },
            OffsetRecord {
                key: key("a", 1),
                value: None,
            },
            OffsetRecord {
                key: key("b", 0),
                value: None,
            },
        ];
        let mut log = BytesMut::new();
        let mut batch = encode_batch(&first, 1).unwrap();
        sluice_storage::batch::set_base_offset(&mut batch, 0);
        log.extend_from_slice(&batch);
        let mut batch = encode_batch(&second, 2).unwrap();
        sluice_storage::batch::set_base_offset(&mut batch, 3);
        log.extend_from_slice(&batch);
        let mut groups = HashMap::new();
        assert_eq!(replay(log.freeze(), &mut groups), Ok(Some(6)));
        assert_eq!(groups.len(), 1);
        let a = &groups["a"];
        let entries: Vec<_> = a
            .iter()
            .map(|(t, p, c)| (t.to_string(), p, c.offset))
            .collect();
        assert_eq!(entries, [("t".to_string(), 0, 10)]);
        assert_eq!(replay(Bytes::new(), &mut groups), Ok(None));
    }
}
