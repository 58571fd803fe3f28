//! Sparse offset index: maps a segment-relative offset to the byte position of a batch.
//!
//! File format (like Kafka's `.index`): 8-byte entries, `relative_offset: u32` then
//! `position: u32`, both big-endian, strictly increasing. An entry points at the start of a
//! batch whose base offset is `segment base + relative_offset`. Never checksummed: the file is
//! rebuilt from the segment whenever it fails validation.

use crate::index_file::IndexDamage;

pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl OffsetIndexEntry {
    pub fn encode(&self) -> [u8; OFFSET_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        out[0..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> OffsetIndexEntry {
        let mut offset = [0u8; 4];
        let mut position = [0u8; 4];
        offset.copy_from_slice(&bytes[0..4]);
        position.copy_from_slice(&bytes[4..8]);
        OffsetIndexEntry {
            relative_offset: u32::from_be_bytes(offset),
            position: u32::from_be_bytes(position),
        }
    }
}

/// In-memory copy of one segment's offset index.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
}

impl OffsetIndex {
    pub fn new() -> OffsetIndex {
        OffsetIndex::default()
    }

    /// Decodes and validates a file's contents against the segment's size.
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Result<OffsetIndex, IndexDamage> {
        if !bytes.len().is_multiple_of(OFFSET_INDEX_ENTRY_BYTES) {
            return Err(IndexDamage::SizeNotMultiple);
        }
        let mut index = OffsetIndex {
            entries: Vec::with_capacity(bytes.len() / OFFSET_INDEX_ENTRY_BYTES),
        };
        for chunk in bytes.chunks_exact(OFFSET_INDEX_ENTRY_BYTES) {
            let entry = OffsetIndexEntry::decode(chunk);
            if u64::from(entry.position) >= segment_bytes {
                return Err(IndexDamage::PositionBeyondSegment);
            }
            if !index.accepts(entry) {
                return Err(IndexDamage::NotMonotonic);
            }
            index.entries.push(entry);
        }
        Ok(index)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_INDEX_ENTRY_BYTES);
        for entry in &self.entries {
            out.extend_from_slice(&entry.encode());
        }
        out
    }

    pub fn entries(&self) -> &[OffsetIndexEntry] {
        &self.entries
    }

    pub fn last(&self) -> Option<OffsetIndexEntry> {
        self.entries.last().copied()
    }

    fn accepts(&self, entry: OffsetIndexEntry) -> bool {
        self.entries.last().is_none_or(|last| {
            entry.relative_offset > last.relative_offset && entry.position > last.position
        })
    }

    /// Appends an entry; entries must strictly increase (the writer guarantees it).
    pub fn push(&mut self, entry: OffsetIndexEntry) {
        assert!(self.accepts(entry), "offset index entries must increase");
        self.entries.push(entry);
    }

    /// Largest entry with `relative_offset <= target`.
    pub fn lookup(&self, target_relative_offset: u32) -> Option<OffsetIndexEntry> {
        let after = self
            .entries
            .partition_point(|entry| entry.relative_offset <= target_relative_offset);
        after.checked_sub(1).map(|at| self.entries[at])
    }

    /// Drops entries whose batch starts at or after `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.position) < position);
        self.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::new();
        for &(relative_offset, position) in entries {
            index.push(OffsetIndexEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_matches_a_linear_scan() {
        let index = index_of(&[(3, 100), (10, 400), (11, 480), (50, 9_000)]);
        for target in 0..60u32 {
            let linear = index
                .entries()
                .iter()
                .rev()
                .find(|entry| entry.relative_offset <= target)
                .copied();
            assert_eq!(index.lookup(target), linear, "target {target}");
        }
        assert_eq!(OffsetIndex::new().lookup(5), None);
    }

    #[test]
    fn decode_validates_size_order_and_positions() {
        let index = index_of(&[(3, 100), (10, 400)]);
        let bytes = index.encode();
        assert_eq!(OffsetIndex::decode(&bytes, 1_000), Ok(index));
        assert_eq!(
            OffsetIndex::decode(&bytes[..7], 1_000),
            Err(IndexDamage::SizeNotMultiple)
        );
        assert_eq!(
            OffsetIndex::decode(&bytes, 400),
            Err(IndexDamage::PositionBeyondSegment)
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(
            OffsetIndex::decode(&swapped, 1_000),
            Err(IndexDamage::NotMonotonic)
        );
    }

    #[test]
    fn truncate_drops_entries_at_or_after_position() {
        let mut index = index_of(&[(3, 100), (10, 400), (11, 480)]);
        index.truncate_to_position(400);
        assert_eq!(index, index_of(&[(3, 100)]));
    }
}
