//! Durable broker metadata in one redb file: topics, per-partition log start offsets
//! (DeleteRecords), the cluster id and the producer id counter.
//!
//! The API is deliberately small because this state will later move into the Raft state
//! machine. Values use our own versioned, length-prefixed binary encoding with a CRC-32C
//! trailer; decoding checks every length against a limit before using it, so a damaged record
//! is an error, never a panic or a huge allocation. Every write commits with redb's default
//! (immediate) durability: it is on disk when the call returns.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use thiserror::Error;

const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");
const LOG_START_OFFSETS: TableDefinition<&str, &[u8]> = TableDefinition::new("log_start_offsets");
const CLUSTER: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster");
const CLUSTER_ID_KEY: &str = "cluster_id";
const NEXT_PRODUCER_ID_KEY: &str = "next_producer_id";

const FORMAT_VERSION: u8 = 1;
/// Kafka's topic name limit.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
pub const TOPIC_CONFIGS_MAX: usize = 1024;
pub const CONFIG_KEY_BYTES_MAX: usize = 1024;
pub const CONFIG_VALUE_BYTES_MAX: usize = 1 << 20;
pub const PARTITIONS_MAX: usize = 1 << 20;
pub const CLUSTER_ID_BYTES_MAX: usize = 1024;
const CRC_BYTES: usize = 4;

/// A topic as the metadata store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partition_count: i32,
    pub configs: BTreeMap<String, String>,
}

/// Why a stored value could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("value truncated")]
    Truncated,
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("length above its limit")]
    LengthOverLimit,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("trailing bytes")]
    TrailingBytes,
}

#[derive(Debug, Error)]
pub enum MetadataStoreError {
    /// Boxed: redb's error is large and this is the cold path.
    #[error("metadata database: {0}")]
    Database(Box<redb::Error>),
    #[error("damaged metadata record {key:?}: {reason}")]
    Damaged { key: String, reason: DecodeError },
    #[error("invalid metadata: {0}")]
    Invalid(&'static str),
    #[error("producer id space exhausted")]
    ProducerIdsExhausted,
}

fn db<E: Into<redb::Error>>(error: E) -> MetadataStoreError {
    MetadataStoreError::Database(Box::new(error.into()))
}

fn damaged(key: &str) -> impl FnOnce(DecodeError) -> MetadataStoreError + '_ {
    move |reason| MetadataStoreError::Damaged {
        key: key.to_owned(),
        reason,
    }
}

pub struct MetadataStore {
    database: Database,
}

impl MetadataStore {
    /// Opens (or creates) the database file and makes sure all tables exist.
    pub fn open(path: &Path) -> Result<MetadataStore, MetadataStoreError> {
        let database = Database::create(path).map_err(db)?;
        let transaction = database.begin_write().map_err(db)?;
        for table in [TOPICS, LOG_START_OFFSETS, CLUSTER] {
            transaction.open_table(table).map_err(db)?;
        }
        transaction.commit().map_err(db)?;
        Ok(MetadataStore { database })
    }

    pub fn load_topics(&self) -> Result<Vec<TopicRecord>, MetadataStoreError> {
        let transaction = self.database.begin_read().map_err(db)?;
        let table = transaction.open_table(TOPICS).map_err(db)?;
        let mut topics = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            topics.push(decode_topic(value.value()).map_err(damaged(key.value()))?);
        }
        Ok(topics)
    }

    /// Inserts or replaces; durable on return.
    pub fn put_topic(&self, topic: &TopicRecord) -> Result<(), MetadataStoreError> {
        let value = encode_topic(topic)?;
        let transaction = self.database.begin_write().map_err(db)?;
        {
            let mut table = transaction.open_table(TOPICS).map_err(db)?;
            table
                .insert(topic.name.as_str(), value.as_slice())
                .map_err(db)?;
        }
        transaction.commit().map_err(db)
    }

    /// Removes the topic and its log start offsets.
    pub fn delete_topic(&self, name: &str) -> Result<(), MetadataStoreError> {
        let transaction = self.database.begin_write().map_err(db)?;
        {
            let mut topics = transaction.open_table(TOPICS).map_err(db)?;
            topics.remove(name).map_err(db)?;
            let mut offsets = transaction.open_table(LOG_START_OFFSETS).map_err(db)?;
            offsets.remove(name).map_err(db)?;
        }
        transaction.commit().map_err(db)
    }

    pub fn set_log_start_offset(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), MetadataStoreError> {
        if partition < 0 || offset < 0 {
            return Err(MetadataStoreError::Invalid("negative partition or offset"));
        }
        let transaction = self.database.begin_write().map_err(db)?;
        {
            let mut table = transaction.open_table(LOG_START_OFFSETS).map_err(db)?;
            let mut offsets = match table.get(topic).map_err(db)? {
                Some(value) => decode_offsets(value.value()).map_err(damaged(topic))?,
                None => BTreeMap::new(),
            };
            offsets.insert(partition, offset);
            if offsets.len() > PARTITIONS_MAX {
                return Err(MetadataStoreError::Invalid("too many partitions"));
            }
            table
                .insert(topic, encode_offsets(&offsets).as_slice())
                .map_err(db)?;
        }
        transaction.commit().map_err(db)
    }

    pub fn log_start_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, MetadataStoreError> {
        let transaction = self.database.begin_read().map_err(db)?;
        let table = transaction.open_table(LOG_START_OFFSETS).map_err(db)?;
        match table.get(topic).map_err(db)? {
            Some(value) => decode_offsets(value.value()).map_err(damaged(topic)),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The stored cluster id, or `fresh()` stored durably on first use.
    pub fn get_or_init_cluster_id(
        &self,
        fresh: impl FnOnce() -> String,
    ) -> Result<String, MetadataStoreError> {
        let transaction = self.database.begin_write().map_err(db)?;
        let cluster_id = {
            let mut table = transaction.open_table(CLUSTER).map_err(db)?;
            let stored = match table.get(CLUSTER_ID_KEY).map_err(db)? {
                Some(value) => {
                    Some(decode_string_value(value.value()).map_err(damaged(CLUSTER_ID_KEY))?)
                }
                None => None,
            };
            match stored {
                Some(cluster_id) => cluster_id,
                None => {
                    let cluster_id = fresh();
                    if cluster_id.is_empty() || cluster_id.len() > CLUSTER_ID_BYTES_MAX {
                        return Err(MetadataStoreError::Invalid("cluster id length"));
                    }
                    let value = encode_string_value(&cluster_id);
                    table.insert(CLUSTER_ID_KEY, value.as_slice()).map_err(db)?;
                    cluster_id
                }
            }
        };
        transaction.commit().map_err(db)?;
        Ok(cluster_id)
    }

    /// Reserves `block_size` producer ids; returns the first. Durable before it returns, so
    /// ids are never handed out twice across restarts.
    pub fn next_producer_id_block(&self, block_size: i64) -> Result<i64, MetadataStoreError> {
        assert!(block_size > 0, "producer id block size must be positive");
        let transaction = self.database.begin_write().map_err(db)?;
        let first = {
            let mut table = transaction.open_table(CLUSTER).map_err(db)?;
            let first = match table.get(NEXT_PRODUCER_ID_KEY).map_err(db)? {
                Some(value) => {
                    decode_i64_value(value.value()).map_err(damaged(NEXT_PRODUCER_ID_KEY))?
                }
                None => 0,
            };
            let next = first
                .checked_add(block_size)
                .ok_or(MetadataStoreError::ProducerIdsExhausted)?;
            table
                .insert(NEXT_PRODUCER_ID_KEY, encode_i64_value(next).as_slice())
                .map_err(db)?;
            first
        };
        transaction.commit().map_err(db)?;
        Ok(first)
    }
}

/// Appends the version byte; `seal` appends the CRC.
fn begin_value() -> Vec<u8> {
    vec![FORMAT_VERSION]
}

fn seal(mut value: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&value);
    value.extend_from_slice(&crc.to_be_bytes());
    value
}

fn encode_topic(topic: &TopicRecord) -> Result<Vec<u8>, MetadataStoreError> {
    if topic.name.is_empty() || topic.name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(MetadataStoreError::Invalid("topic name length"));
    }
    if topic.configs.len() > TOPIC_CONFIGS_MAX {
        return Err(MetadataStoreError::Invalid("too many topic configs"));
    }
    let mut value = begin_value();
    put_u16_bytes(&mut value, topic.name.as_bytes());
    value.extend_from_slice(&topic.topic_id);
    value.extend_from_slice(&topic.partition_count.to_be_bytes());
    value.extend_from_slice(&(topic.configs.len() as u32).to_be_bytes());
    for (key, config_value) in &topic.configs {
        if key.len() > CONFIG_KEY_BYTES_MAX || config_value.len() > CONFIG_VALUE_BYTES_MAX {
            return Err(MetadataStoreError::Invalid("topic config length"));
        }
        put_u16_bytes(&mut value, key.as_bytes());
        value.extend_from_slice(&(config_value.len() as u32).to_be_bytes());
        value.extend_from_slice(config_value.as_bytes());
    }
    Ok(seal(value))
}

fn put_u16_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    assert!(bytes.len() <= usize::from(u16::MAX));
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn decode_topic(value: &[u8]) -> Result<TopicRecord, DecodeError> {
    let mut reader = ValueReader::open(value)?;
    let name = reader.string_u16(TOPIC_NAME_BYTES_MAX)?;
    let mut topic_id = [0u8; 16];
    topic_id.copy_from_slice(reader.take(16)?);
    let partition_count = reader.i32()?;
    let config_count = reader.u32()? as usize;
    if config_count > TOPIC_CONFIGS_MAX {
        return Err(DecodeError::LengthOverLimit);
    }
    let mut configs = BTreeMap::new();
    for _ in 0..config_count {
        let key = reader.string_u16(CONFIG_KEY_BYTES_MAX)?;
        let length = reader.u32()? as usize;
        if length > CONFIG_VALUE_BYTES_MAX {
            return Err(DecodeError::LengthOverLimit);
        }
        let config_value = utf8(reader.take(length)?)?;
        configs.insert(key, config_value);
    }
    reader.finish()?;
    Ok(TopicRecord {
        name,
        topic_id,
        partition_count,
        configs,
    })
}

fn encode_offsets(offsets: &BTreeMap<i32, i64>) -> Vec<u8> {
    let mut value = begin_value();
    value.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
    for (partition, offset) in offsets {
        value.extend_from_slice(&partition.to_be_bytes());
        value.extend_from_slice(&offset.to_be_bytes());
    }
    seal(value)
}

fn decode_offsets(value: &[u8]) -> Result<BTreeMap<i32, i64>, DecodeError> {
    let mut reader = ValueReader::open(value)?;
    let count = reader.u32()? as usize;
    if count > PARTITIONS_MAX {
        return Err(DecodeError::LengthOverLimit);
    }
    let mut offsets = BTreeMap::new();
    for _ in 0..count {
        let partition = reader.i32()?;
        let offset = reader.i64()?;
        offsets.insert(partition, offset);
    }
    reader.finish()?;
    Ok(offsets)
}

fn encode_string_value(text: &str) -> Vec<u8> {
    let mut value = begin_value();
    put_u16_bytes(&mut value, text.as_bytes());
    seal(value)
}

fn decode_string_value(value: &[u8]) -> Result<String, DecodeError> {
    let mut reader = ValueReader::open(value)?;
    let text = reader.string_u16(CLUSTER_ID_BYTES_MAX)?;
    reader.finish()?;
    Ok(text)
}

fn encode_i64_value(number: i64) -> Vec<u8> {
    let mut value = begin_value();
    value.extend_from_slice(&number.to_be_bytes());
    seal(value)
}

fn decode_i64_value(value: &[u8]) -> Result<i64, DecodeError> {
    let mut reader = ValueReader::open(value)?;
    let number = reader.i64()?;
    reader.finish()?;
    Ok(number)
}

fn utf8(bytes: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// Bounded reader over a sealed value (version byte .. body .. CRC).
struct ValueReader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> ValueReader<'a> {
    fn open(value: &'a [u8]) -> Result<ValueReader<'a>, DecodeError> {
        if value.len() < 1 + CRC_BYTES {
            return Err(DecodeError::Truncated);
        }
        let (content, crc) = value.split_at(value.len() - CRC_BYTES);
        let mut stored = [0u8; CRC_BYTES];
        stored.copy_from_slice(crc);
        if crc32c::crc32c(content) != u32::from_be_bytes(stored) {
            return Err(DecodeError::ChecksumMismatch);
        }
        if content[0] != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(content[0]));
        }
        Ok(ValueReader {
            body: &content[1..],
            at: 0,
        })
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeError> {
        if self.body.len() - self.at < length {
            return Err(DecodeError::Truncated);
        }
        let bytes = &self.body[self.at..self.at + length];
        self.at += length;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_be_bytes)
    }

    fn string_u16(&mut self, bytes_max: usize) -> Result<String, DecodeError> {
        let length = usize::from(u16::from_be_bytes(self.array()?));
        if length > bytes_max {
            return Err(DecodeError::LengthOverLimit);
        }
        utf8(self.take(length)?)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.at != self.body.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> TopicRecord {
        TopicRecord {
            name: "orders".to_owned(),
            topic_id: [7; 16],
            partition_count: 3,
            configs: BTreeMap::from([
                ("retention.ms".to_owned(), "1000".to_owned()),
                ("cleanup.policy".to_owned(), "delete".to_owned()),
            ]),
        }
    }

    #[test]
    fn topic_encoding_round_trips() {
        let encoded = encode_topic(&topic()).unwrap();
        assert_eq!(decode_topic(&encoded).unwrap(), topic());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let encoded = encode_topic(&topic()).unwrap();
        for length in 0..encoded.len() {
            assert!(decode_topic(&encoded[..length]).is_err(), "length {length}");
        }
        for at in 0..encoded.len() {
            let mut damaged = encoded.clone();
            damaged[at] ^= 0x10;
            assert!(decode_topic(&damaged).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn lengths_over_limits_are_rejected_before_allocation() {
        let mut value = begin_value();
        value.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_offsets(&seal(value)),
            Err(DecodeError::LengthOverLimit)
        );
        let mut value = begin_value();
        value.extend_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            decode_string_value(&seal(value)),
            Err(DecodeError::LengthOverLimit)
        );
        let mut wrong_version = encode_i64_value(5);
        wrong_version[0] = 9;
        let crc_at = wrong_version.len() - CRC_BYTES;
        let crc = crc32c::crc32c(&wrong_version[..crc_at]);
        wrong_version[crc_at..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode_i64_value(&wrong_version),
            Err(DecodeError::UnknownVersion(9))
        );
    }

    #[test]
    fn damaged_stored_topic_is_reported_not_panicked() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(&dir.path().join("metadata.redb")).unwrap();
        store.put_topic(&topic()).unwrap();
        let transaction = store.database.begin_write().unwrap();
        {
            let mut table = transaction.open_table(TOPICS).unwrap();
            table
                .insert("broken", [1u8, 2, 3, 4, 5, 6].as_slice())
                .unwrap();
        }
        transaction.commit().unwrap();
        match store.load_topics() {
            Err(MetadataStoreError::Damaged { key, reason }) => {
                assert_eq!(key, "broken");
                assert_eq!(reason, DecodeError::ChecksumMismatch);
            }
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn invalid_topics_are_refused() {
        let mut long_name = topic();
        long_name.name = "x".repeat(TOPIC_NAME_BYTES_MAX + 1);
        assert!(matches!(
            encode_topic(&long_name),
            Err(MetadataStoreError::Invalid(_))
        ));
        let mut empty_name = topic();
        empty_name.name.clear();
        assert!(matches!(
            encode_topic(&empty_name),
            Err(MetadataStoreError::Invalid(_))
        ));
    }
}
