//! The aborted-transaction index of one segment: `<base offset>.txnindex`, Kafka's
//! `TransactionIndex` format. One 34-byte entry per transaction aborted by a marker in the
//! segment: version i16 (0), producer id i64, first offset i64, last offset i64 (the abort
//! marker), last stable offset i64 (the first offset still unstable right after the abort),
//! big-endian, in marker order.
//!
//! Aborts are rare, so a segment's entries live in memory (loaded at open) and every new
//! entry is appended to the file and fsynced at once; a rebuilt list replaces the file
//! atomically. The file has no checksum (Kafka's has none either): on load, a tail that is not
//! a whole entry, or entries after the first malformed one, are dropped with a warning.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::fs_util::{remove_file_if_exists, write_file_atomically};

pub const TXN_INDEX_EXTENSION: &str = "txnindex";
pub const TXN_INDEX_ENTRY_BYTES: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// An aborted transaction as a read_committed Fetch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// One aborted transaction as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnIndexEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl TxnIndexEntry {
    pub fn encode(&self) -> [u8; TXN_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; TXN_INDEX_ENTRY_BYTES];
        out[0..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// `None` for an entry of an unknown version or with impossible offsets.
    pub fn decode(raw: &[u8]) -> Option<TxnIndexEntry> {
        let raw: &[u8; TXN_INDEX_ENTRY_BYTES] = raw.try_into().ok()?;
        let i64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&raw[at..at + 8]);
            i64::from_be_bytes(bytes)
        };
        if i16::from_be_bytes([raw[0], raw[1]]) != ENTRY_VERSION {
            return None;
        }
        let entry = TxnIndexEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        let sane = entry.producer_id >= 0
            && entry.first_offset >= 0
            && entry.first_offset <= entry.last_offset;
        sane.then_some(entry)
    }
}

/// Reads the entries of `path` (none if it does not exist), reading at most `bytes_max`.
pub fn read_entries(path: &Path, bytes_max: u64) -> io::Result<Vec<TxnIndexEntry>> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut bytes = Vec::new();
    file.take(bytes_max).read_to_end(&mut bytes)?;
    let mut entries = Vec::with_capacity(bytes.len() / TXN_INDEX_ENTRY_BYTES);
    for raw in bytes.chunks(TXN_INDEX_ENTRY_BYTES) {
        match TxnIndexEntry::decode(raw) {
            Some(entry) => entries.push(entry),
            None => {
                tracing::warn!(path = %path.display(), kept = entries.len(), "damaged transaction index; later entries dropped");
                break;
            }
        }
    }
    Ok(entries)
}

/// Appends one entry and fsyncs it.
pub fn append_entry(path: &Path, entry: &TxnIndexEntry) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&entry.encode())?;
    file.sync_data()
}

/// Replaces the file with `entries` (removes it when there are none).
pub fn rewrite(path: &Path, entries: &[TxnIndexEntry]) -> io::Result<()> {
    if entries.is_empty() {
        return remove_file_if_exists(path);
    }
    let mut bytes = Vec::with_capacity(entries.len() * TXN_INDEX_ENTRY_BYTES);
    for entry in entries {
        bytes.extend_from_slice(&entry.encode());
    }
    write_file_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64) -> TxnIndexEntry {
        TxnIndexEntry {
            producer_id: 1000 + at,
            first_offset: at * 10,
            last_offset: at * 10 + 5,
            last_stable_offset: at * 10 + 6,
        }
    }

    #[test]
    fn the_layout_is_kafkas() {
        let raw = entry(1).encode();
        assert_eq!(&raw[0..2], &[0, 0]);
        assert_eq!(&raw[2..10], &1001i64.to_be_bytes());
        assert_eq!(&raw[10..18], &10i64.to_be_bytes());
        assert_eq!(&raw[18..26], &15i64.to_be_bytes());
        assert_eq!(&raw[26..34], &16i64.to_be_bytes());
        assert_eq!(TxnIndexEntry::decode(&raw), Some(entry(1)));
    }

    #[test]
    fn appends_rewrites_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        assert!(read_entries(&path, 1 << 20).unwrap().is_empty());
        append_entry(&path, &entry(1)).unwrap();
        append_entry(&path, &entry(2)).unwrap();
        assert_eq!(
            read_entries(&path, 1 << 20).unwrap(),
            vec![entry(1), entry(2)]
        );
        // A torn tail and a bad version are dropped, whole entries before them kept.
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0, 0, 1]);
        fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_entries(&path, 1 << 20).unwrap(),
            vec![entry(1), entry(2)]
        );
        bytes[TXN_INDEX_ENTRY_BYTES + 1] = 9;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(read_entries(&path, 1 << 20).unwrap(), vec![entry(1)]);
        rewrite(&path, &[entry(3)]).unwrap();
        assert_eq!(read_entries(&path, 1 << 20).unwrap(), vec![entry(3)]);
        rewrite(&path, &[]).unwrap();
        assert!(!path.exists());
    }
}
