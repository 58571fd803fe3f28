//! Reads the committed offsets of `offsets.redb`, where single-node brokers kept them before
//! they became records of the replicated `__consumer_offsets` topic. Read-only and used once:
//! the broker imports the rows into the topic at start, then renames the file.
//!
//! Format (as written then): table `committed_offsets`; key `u16 len | group | u16 len |
//! topic | i32 partition`; value `u8 version (1) | i64 offset | i32 leader epoch | i64 commit
//! timestamp | u32 len | metadata | CRC-32C of everything before it`. Every length is checked
//! against the bytes left and a limit before use.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use thiserror::Error;

const OFFSETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("committed_offsets");
const FORMAT_VERSION: u8 = 1;
const CRC_BYTES: usize = 4;
/// version + offset + leader epoch + commit timestamp + metadata length.
const FIXED_VALUE_BYTES: usize = 1 + 8 + 4 + 8 + 4;
/// Longest group id or topic name (Kafka strings have an i16 length).
const NAME_BYTES_MAX: usize = i16::MAX as usize;
/// Longest commit metadata the old store accepted.
const METADATA_BYTES_MAX: usize = 1 << 20;
/// Rows read at most: a bound on memory for a file we did not just write.
pub const ROWS_MAX: usize = 10_000_000;

/// One committed offset of the old store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Error)]
pub enum LegacyOffsetsError {
    #[error("offsets.redb: {0}")]
    Database(String),
    #[error("damaged row in offsets.redb: {0}")]
    Damaged(&'static str),
    #[error("offsets.redb holds more than {ROWS_MAX} rows")]
    TooManyRows,
}

fn db<E: Into<redb::Error>>(error: E) -> LegacyOffsetsError {
    LegacyOffsetsError::Database(error.into().to_string())
}

/// Every row of the store at `path`, in key order; damaged rows are errors.
pub fn read_legacy_offsets(path: &Path) -> Result<Vec<LegacyOffset>, LegacyOffsetsError> {
    let database = Database::open(path).map_err(db)?;
    let transaction = database.begin_read().map_err(db)?;
    let table = match transaction.open_table(OFFSETS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(error) => return Err(db(error)),
    };
    let mut rows = Vec::new();
    for entry in table.iter().map_err(db)? {
        if rows.len() >= ROWS_MAX {
            return Err(LegacyOffsetsError::TooManyRows);
        }
        let (key, value) = entry.map_err(db)?;
        rows.push(decode_row(key.value(), value.value())?);
    }
    Ok(rows)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], LegacyOffsetsError> {
        if self.bytes.len() < count {
            return Err(LegacyOffsetsError::Damaged("truncated"));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LegacyOffsetsError> {
        self.take(N)?
            .try_into()
            .map_err(|_| LegacyOffsetsError::Damaged("truncated"))
    }

    fn string(&mut self, length: usize, max: usize) -> Result<String, LegacyOffsetsError> {
        if length > max {
            return Err(LegacyOffsetsError::Damaged("length above its limit"));
        }
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LegacyOffsetsError::Damaged("invalid UTF-8"))
    }

    fn name(&mut self) -> Result<String, LegacyOffsetsError> {
        let length = usize::from(u16::from_be_bytes(self.array()?));
        self.string(length, NAME_BYTES_MAX)
    }
}

fn decode_row(key: &[u8], value: &[u8]) -> Result<LegacyOffset, LegacyOffsetsError> {
    let mut reader = Reader { bytes: key };
    let group = reader.name()?;
    let topic = reader.name()?;
    let partition = i32::from_be_bytes(reader.array()?);
    if !reader.bytes.is_empty() {
        return Err(LegacyOffsetsError::Damaged("trailing key bytes"));
    }
    if value.len() < FIXED_VALUE_BYTES + CRC_BYTES {
        return Err(LegacyOffsetsError::Damaged("truncated"));
    }
    let (body, crc) = value.split_at(value.len() - CRC_BYTES);
    let stored_crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored_crc {
        return Err(LegacyOffsetsError::Damaged("checksum mismatch"));
    }
    let mut reader = Reader { bytes: body };
    let [version] = reader.array()?;
    if version != FORMAT_VERSION {
        return Err(LegacyOffsetsError::Damaged("unknown format version"));
    }
    let offset = i64::from_be_bytes(reader.array()?);
    let leader_epoch = i32::from_be_bytes(reader.array()?);
    let commit_timestamp_ms = i64::from_be_bytes(reader.array()?);
    let length = usize::try_from(u32::from_be_bytes(reader.array()?)).unwrap_or(usize::MAX);
    let metadata = reader.string(length, METADATA_BYTES_MAX)?;
    if !reader.bytes.is_empty() {
        return Err(LegacyOffsetsError::Damaged("trailing value bytes"));
    }
    Ok(LegacyOffset {
        group,
        topic,
        partition,
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The old store's encoding, to write a file as an older broker did.
    fn encode(row: &LegacyOffset) -> (Vec<u8>, Vec<u8>) {
        let mut key = Vec::new();
        for name in [&row.group, &row.topic] {
            key.extend_from_slice(&(name.len() as u16).to_be_bytes());
            key.extend_from_slice(name.as_bytes());
        }
        key.extend_from_slice(&row.partition.to_be_bytes());
        let mut value = vec![FORMAT_VERSION];
        value.extend_from_slice(&row.offset.to_be_bytes());
        value.extend_from_slice(&row.leader_epoch.to_be_bytes());
        value.extend_from_slice(&row.commit_timestamp_ms.to_be_bytes());
        value.extend_from_slice(&(row.metadata.len() as u32).to_be_bytes());
        value.extend_from_slice(row.metadata.as_bytes());
        let crc = crc32c::crc32c(&value);
        value.extend_from_slice(&crc.to_be_bytes());
        (key, value)
    }

    fn row(group: &str, partition: i32, offset: i64) -> LegacyOffset {
        LegacyOffset {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: 3,
            metadata: format!("m{offset}"),
            commit_timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn rows_written_by_the_old_store_are_read_back_and_damage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.redb");
        let rows = vec![row("g1", 0, 10), row("g1", 1, 11), row("g2", 0, 12)];
        {
            let database = Database::create(&path).unwrap();
            let transaction = database.begin_write().unwrap();
            {
                let mut table = transaction.open_table(OFFSETS).unwrap();
                for row in &rows {
                    let (key, value) = encode(row);
                    table.insert(key.as_slice(), value.as_slice()).unwrap();
                }
            }
            transaction.commit().unwrap();
        }
        assert_eq!(read_legacy_offsets(&path).unwrap(), rows);

        let (key, mut value) = encode(&row("g3", 0, 1));
        assert_eq!(decode_row(&key, &value).unwrap(), row("g3", 0, 1));
        value[3] ^= 1;
        assert!(matches!(
            decode_row(&key, &value),
            Err(LegacyOffsetsError::Damaged("checksum mismatch"))
        ));
        assert!(decode_row(&[0, 200, b'a'], &value).is_err());
        assert!(decode_row(&key, &value[..5]).is_err());
    }
}
