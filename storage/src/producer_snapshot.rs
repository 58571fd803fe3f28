//! Producer state snapshot files: `<offset 20 digits>.snapshot` in the log directory (Kafka's
//! naming), holding every producer's state as of the log end `offset`.
//!
//! Format (big-endian): version u8, offset i64, producer count u32, then per producer:
//! producer id i64, epoch i16, last append ms i64, coordinator epoch i32, ongoing
//! transaction's first offset i64 (-1: none), batch count u8 (0..=5), and per batch
//! first sequence i32, last sequence i32, first offset i64, last offset i64, max timestamp
//! i64; then CRC-32C of everything before it (u32). Version 1 files (before transactions)
//! lack the two transaction fields and are still read. Written via temp file + fsync + rename +
//! directory fsync, so a file is either whole or absent; a damaged one is reported, never
//! trusted.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::fs_util::{self, parse_segment_file_name, write_file_atomically};
use crate::producer_state::{
    BatchMetadata, ProducerEntry, ProducerStateMap, BATCHES_RETAINED, NO_COORDINATOR_EPOCH,
    PRODUCERS_MAX,
};

pub const SNAPSHOT_EXTENSION: &str = "snapshot";
const SNAPSHOT_VERSION: u8 = 2;
const SNAPSHOT_VERSION_BEFORE_TXNS: u8 = 1;
const HEADER_BYTES: usize = 1 + 8 + 4;
const CRC_BYTES: usize = 4;
const PRODUCER_HEADER_BYTES: usize = 8 + 2 + 8 + 4 + 8 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;
const PRODUCER_BYTES_MAX: usize = PRODUCER_HEADER_BYTES + BATCHES_RETAINED * BATCH_BYTES;
/// The largest well-formed snapshot; a longer file is damaged and is not read.
pub const SNAPSHOT_BYTES_MAX: u64 =
    (HEADER_BYTES + PRODUCERS_MAX * PRODUCER_BYTES_MAX + CRC_BYTES) as u64;

/// Why a snapshot file cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotDamage {
    TooLarge,
    Truncated,
    CrcMismatch,
    UnknownVersion,
    OffsetMismatch,
    BadEntry,
}

pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    fs_util::segment_file_path(dir, offset, SNAPSHOT_EXTENSION)
}

/// Offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            if let Some(offset) = parse_segment_file_name(name, SNAPSHOT_EXTENSION) {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

pub fn write_snapshot(dir: &Path, offset: i64, producers: &ProducerStateMap) -> io::Result<()> {
    write_file_atomically(&snapshot_path(dir, offset), &encode(offset, producers))
}

pub fn encode(offset: i64, producers: &ProducerStateMap) -> Vec<u8> {
    let entries = producers.entries_sorted();
    assert!(entries.len() <= PRODUCERS_MAX);
    let mut out = Vec::with_capacity(HEADER_BYTES + entries.len() * PRODUCER_BYTES_MAX + 4);
    out.push(SNAPSHOT_VERSION);
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (producer_id, entry) in entries {
        out.extend_from_slice(&producer_id.to_be_bytes());
        out.extend_from_slice(&entry.producer_epoch.to_be_bytes());
        out.extend_from_slice(&entry.last_append_ms.to_be_bytes());
        out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
        let txn_first_offset = entry.current_txn_first_offset.unwrap_or(-1);
        out.extend_from_slice(&txn_first_offset.to_be_bytes());
        out.push(entry.batches.len() as u8);
        for batch in &entry.batches {
            out.extend_from_slice(&batch.first_sequence.to_be_bytes());
            out.extend_from_slice(&batch.last_sequence.to_be_bytes());
            out.extend_from_slice(&batch.first_offset.to_be_bytes());
            out.extend_from_slice(&batch.last_offset.to_be_bytes());
            out.extend_from_slice(&batch.max_timestamp_ms.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Reads the snapshot at `offset`; the inner error says why it is unusable.
pub fn read_snapshot(
    dir: &Path,
    offset: i64,
) -> io::Result<Result<ProducerStateMap, SnapshotDamage>> {
    let path = snapshot_path(dir, offset);
    let file = fs::File::open(&path)?;
    if file.metadata()?.len() > SNAPSHOT_BYTES_MAX {
        return Ok(Err(SnapshotDamage::TooLarge));
    }
    let mut bytes = Vec::new();
    // The bound holds even if the file grows after the metadata call.
    file.take(SNAPSHOT_BYTES_MAX + 1).read_to_end(&mut bytes)?;
    Ok(decode(&bytes, offset))
}

pub fn decode(bytes: &[u8], offset: i64) -> Result<ProducerStateMap, SnapshotDamage> {
    if bytes.len() as u64 > SNAPSHOT_BYTES_MAX {
        return Err(SnapshotDamage::TooLarge);
    }
    if bytes.len() < HEADER_BYTES + CRC_BYTES {
        return Err(SnapshotDamage::Truncated);
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    if crc32c::crc32c(body) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(SnapshotDamage::CrcMismatch);
    }
    let mut reader = Reader { bytes: body, at: 0 };
    let version = reader.u8()?;
    if version != SNAPSHOT_VERSION && version != SNAPSHOT_VERSION_BEFORE_TXNS {
        return Err(SnapshotDamage::UnknownVersion);
    }
    if reader.i64()? != offset {
        return Err(SnapshotDamage::OffsetMismatch);
    }
    let count = reader.u32()? as usize;
    if count > PRODUCERS_MAX {
        return Err(SnapshotDamage::BadEntry);
    }
    let mut producers = ProducerStateMap::new();
    for _ in 0..count {
        let (producer_id, entry) = decode_entry(&mut reader, version)?;
        if producers.get(producer_id).is_some() {
            return Err(SnapshotDamage::BadEntry);
        }
        producers.insert(producer_id, entry);
    }
    if reader.at != body.len() {
        return Err(SnapshotDamage::BadEntry);
    }
    Ok(producers)
}

fn decode_entry(
    reader: &mut Reader<'_>,
    version: u8,
) -> Result<(i64, ProducerEntry), SnapshotDamage> {
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let last_append_ms = reader.i64()?;
    let (coordinator_epoch, txn_first_offset) = if version == SNAPSHOT_VERSION_BEFORE_TXNS {
        (NO_COORDINATOR_EPOCH, -1)
    } else {
        (reader.i32()?, reader.i64()?)
    };
    let batch_count = usize::from(reader.u8()?);
    let batches_min = usize::from(version == SNAPSHOT_VERSION_BEFORE_TXNS);
    if producer_id < 0
        || batch_count < batches_min
        || batch_count > BATCHES_RETAINED
        || txn_first_offset < -1
    {
        return Err(SnapshotDamage::BadEntry);
    }
    let mut batches = VecDeque::with_capacity(batch_count);
    for _ in 0..batch_count {
        let batch = BatchMetadata {
            first_sequence: reader.i32()?,
            last_sequence: reader.i32()?,
            first_offset: reader.i64()?,
            last_offset: reader.i64()?,
            max_timestamp_ms: reader.i64()?,
        };
        if batch.first_sequence < 0
            || batch.last_sequence < 0
            || batch.last_offset < batch.first_offset
        {
            return Err(SnapshotDamage::BadEntry);
        }
        batches.push_back(batch);
    }
    let entry = ProducerEntry {
        producer_epoch,
        batches,
        last_append_ms,
        coordinator_epoch,
        current_txn_first_offset: (txn_first_offset >= 0).then_some(txn_first_offset),
    };
    Ok((producer_id, entry))
}

/// Bounds-checked big-endian reads.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotDamage> {
        let end = self.at.checked_add(N).ok_or(SnapshotDamage::Truncated)?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or(SnapshotDamage::Truncated)?;
        self.at = end;
        let mut raw = [0u8; N];
        raw.copy_from_slice(slice);
        Ok(raw)
    }

    fn u8(&mut self) -> Result<u8, SnapshotDamage> {
        Ok(self.take::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, SnapshotDamage> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, SnapshotDamage> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, SnapshotDamage> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, SnapshotDamage> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> ProducerStateMap {
        let mut producers = ProducerStateMap::new();
        for producer_id in [3i64, 1, 2] {
            let batches = (0..producer_id)
                .map(|at| BatchMetadata {
                    first_sequence: (at * 10) as i32,
                    last_sequence: (at * 10 + 9) as i32,
                    first_offset: at * 100,
                    last_offset: at * 100 + 9,
                    max_timestamp_ms: 7_000 + at,
                })
                .collect();
            let entry = ProducerEntry {
                producer_epoch: producer_id as i16,
                batches,
                last_append_ms: 42 + producer_id,
                coordinator_epoch: producer_id as i32 - 2,
                current_txn_first_offset: (producer_id == 2).then_some(100),
            };
            producers.insert(producer_id, entry);
        }
        producers
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let producers = sample();
        let bytes = encode(77, &producers);
        assert_eq!(bytes, encode(77, &producers.clone()));
        assert_eq!(decode(&bytes, 77), Ok(producers));
        assert_eq!(decode(&bytes, 78), Err(SnapshotDamage::OffsetMismatch));
        // A producer known from a marker alone has no batch.
        let mut marker_only = ProducerStateMap::new();
        marker_only.insert(9, ProducerEntry::new(4, 1));
        assert_eq!(decode(&encode(3, &marker_only), 3), Ok(marker_only));
        let empty = encode(0, &ProducerStateMap::new());
        assert_eq!(empty.len(), HEADER_BYTES + CRC_BYTES);
        assert_eq!(decode(&empty, 0), Ok(ProducerStateMap::new()));
    }

    #[test]
    fn version_1_snapshots_from_before_transactions_are_read() {
        let mut v1 = vec![SNAPSHOT_VERSION_BEFORE_TXNS];
        v1.extend_from_slice(&12i64.to_be_bytes());
        v1.extend_from_slice(&1u32.to_be_bytes());
        v1.extend_from_slice(&5i64.to_be_bytes()); // producer id
        v1.extend_from_slice(&3i16.to_be_bytes()); // epoch
        v1.extend_from_slice(&99i64.to_be_bytes()); // last append ms
        v1.push(1);
        for value in [0i32, 1] {
            v1.extend_from_slice(&value.to_be_bytes());
        }
        for value in [10i64, 11, 7_000] {
            v1.extend_from_slice(&value.to_be_bytes());
        }
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        let producers = decode(&v1, 12).unwrap();
        let entry = producers.get(5).unwrap();
        assert_eq!(entry.producer_epoch, 3);
        assert_eq!((entry.last_sequence(), entry.last_offset()), (1, 11));
        assert_eq!(entry.coordinator_epoch, NO_COORDINATOR_EPOCH);
        assert_eq!(entry.current_txn_first_offset, None);
    }

    #[test]
    fn files_are_named_like_kafkas_and_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for offset in [20, 3, 100] {
            write_snapshot(dir.path(), offset, &sample()).unwrap();
        }
        std::fs::write(dir.path().join("junk.snapshot"), b"x").unwrap();
        assert_eq!(list_snapshots(dir.path()).unwrap(), vec![3, 20, 100]);
        assert!(dir.path().join("00000000000000000020.snapshot").is_file());
        assert_eq!(read_snapshot(dir.path(), 20).unwrap(), Ok(sample()));
    }

    #[test]
    fn oversized_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(snapshot_path(dir.path(), 5)).unwrap();
        file.set_len(SNAPSHOT_BYTES_MAX + 1).unwrap();
        assert_eq!(
            read_snapshot(dir.path(), 5).unwrap(),
            Err(SnapshotDamage::TooLarge)
        );
    }

    proptest! {
        #[test]
        fn any_damage_is_detected(at in 0usize..1000, flip in 1u8..=255, cut in 0usize..1000) {
            let bytes = encode(9, &sample());
            let mut flipped = bytes.clone();
            let at = at % bytes.len();
            flipped[at] ^= flip;
            prop_assert!(decode(&flipped, 9).is_err());
            let cut = cut % bytes.len();
            prop_assert!(decode(&bytes[..cut], 9).is_err());
        }
    }
}
