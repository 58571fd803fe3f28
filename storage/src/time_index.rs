//! Sparse time index: maps a timestamp to the first batch that reached it.
//!
//! File format (like Kafka's `.timeindex`): 12-byte entries, `timestamp_ms: i64` then
//! `relative_offset: u32`, big-endian. Entries are the segment's running maximum of batch
//! `maxTimestamp`s, so timestamps strictly increase; `relative_offset` is the base offset of
//! the batch that first reached that maximum, so every earlier batch in the segment has a
//! smaller `maxTimestamp`. When a segment stops being active a final entry holding the
//! segment's maximum is appended, which makes the last entry the segment's largest timestamp.

use crate::index_file::IndexDamage;

pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

impl TimeIndexEntry {
    pub fn encode(&self) -> [u8; TIME_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; TIME_INDEX_ENTRY_BYTES];
        out[0..8].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> TimeIndexEntry {
        let mut timestamp = [0u8; 8];
        let mut offset = [0u8; 4];
        timestamp.copy_from_slice(&bytes[0..8]);
        offset.copy_from_slice(&bytes[8..12]);
        TimeIndexEntry {
            timestamp_ms: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes(offset),
        }
    }
}

/// In-memory copy of one segment's time index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
}

impl TimeIndex {
    pub fn new() -> TimeIndex {
        TimeIndex::default()
    }

    /// Decodes and validates a file's contents.
    pub fn decode(bytes: &[u8]) -> Result<TimeIndex, IndexDamage> {
        if !bytes.len().is_multiple_of(TIME_INDEX_ENTRY_BYTES) {
            return Err(IndexDamage::SizeNotMultiple);
        }
        let mut index = TimeIndex {
            entries: Vec::with_capacity(bytes.len() / TIME_INDEX_ENTRY_BYTES),
        };
        for chunk in bytes.chunks_exact(TIME_INDEX_ENTRY_BYTES) {
            let entry = TimeIndexEntry::decode(chunk);
            if entry.timestamp_ms < 0 || !index.accepts(entry) {
                return Err(IndexDamage::NotMonotonic);
            }
            index.entries.push(entry);
        }
        Ok(index)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.extend_from_slice(&entry.encode());
        }
        out
    }

    pub fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    fn accepts(&self, entry: TimeIndexEntry) -> bool {
        self.entries.last().is_none_or(|last| {
            entry.timestamp_ms > last.timestamp_ms && entry.relative_offset >= last.relative_offset
        })
    }

    /// Appends the entry if it raises the maximum timestamp; returns whether it did.
    pub fn maybe_push(&mut self, entry: TimeIndexEntry) -> bool {
        if entry.timestamp_ms < 0 || !self.accepts(entry) {
            return false;
        }
        self.entries.push(entry);
        true
    }

    /// First entry with `timestamp_ms >= target`.
    pub fn lookup_first_at_or_after(&self, target_ms: i64) -> Option<TimeIndexEntry> {
        let at = self
            .entries
            .partition_point(|entry| entry.timestamp_ms < target_ms);
        self.entries.get(at).copied()
    }

    /// Last entry with `timestamp_ms < target`: every batch up to and including the one it
    /// names has a smaller timestamp, so a search for `target` may start scanning there.
    pub fn lookup_last_before(&self, target_ms: i64) -> Option<TimeIndexEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.timestamp_ms < target_ms);
        after.checked_sub(1).map(|at| self.entries[at])
    }

    /// Drops entries naming batches at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|entry| entry.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(entries: &[(i64, u32)]) -> TimeIndex {
        let mut index = TimeIndex::new();
        for &(timestamp_ms, relative_offset) in entries {
            assert!(index.maybe_push(TimeIndexEntry {
                timestamp_ms,
                relative_offset
            }));
        }
        index
    }

    #[test]
    fn lookups_match_linear_scans() {
        let index = index_of(&[(100, 0), (250, 4), (900, 4), (1_000, 30)]);
        for target in (0..1_100).step_by(25) {
            let first = index
                .entries()
                .iter()
                .find(|entry| entry.timestamp_ms >= target)
                .copied();
            let last_before = index
                .entries()
                .iter()
                .rev()
                .find(|entry| entry.timestamp_ms < target)
                .copied();
            assert_eq!(
                index.lookup_first_at_or_after(target),
                first,
                "target {target}"
            );
            assert_eq!(
                index.lookup_last_before(target),
                last_before,
                "target {target}"
            );
        }
    }

    #[test]
    fn only_increasing_timestamps_are_pushed() {
        let mut index = index_of(&[(100, 0)]);
        assert!(!index.maybe_push(TimeIndexEntry {
            timestamp_ms: 100,
            relative_offset: 5
        }));
        assert!(!index.maybe_push(TimeIndexEntry {
            timestamp_ms: -1,
            relative_offset: 5
        }));
        assert!(index.maybe_push(TimeIndexEntry {
            timestamp_ms: 101,
            relative_offset: 5
        }));
        assert_eq!(index.entries().len(), 2);
    }

    #[test]
    fn decode_validates() {
        let index = index_of(&[(100, 0), (250, 4)]);
        let bytes = index.encode();
        assert_eq!(TimeIndex::decode(&bytes), Ok(index.clone()));
        assert_eq!(
            TimeIndex::decode(&bytes[..13]),
            Err(IndexDamage::SizeNotMultiple)
        );
        let mut swapped = bytes[12..].to_vec();
        swapped.extend_from_slice(&bytes[..12]);
        assert_eq!(TimeIndex::decode(&swapped), Err(IndexDamage::NotMonotonic));
        let mut truncated = index;
        truncated.truncate_to_offset(4);
        assert_eq!(truncated, index_of(&[(100, 0)]));
    }
}
