//! The cleaner's key → last offset map over the dirty section (Kafka's `OffsetMap`), bounded
//! by `log.cleaner.dedupe.buffer.size`.
//!
//! Kafka stores a 16-byte hash per key; this map stores the keys themselves (no collision can
//! ever drop a live record) and charges each entry its key length plus a fixed overhead
//! against the budget.

use std::collections::{HashMap, HashSet};

/// What one entry costs besides its key bytes (offset, hash table slot, allocation).
pub const ENTRY_OVERHEAD_BYTES: usize = 48;

pub struct OffsetMap {
    offsets: HashMap<Box<[u8]>, i64>,
    bytes_used: usize,
    bytes_max: usize,
}

impl OffsetMap {
    pub fn new(bytes_max: usize) -> OffsetMap {
        OffsetMap {
            offsets: HashMap::new(),
            bytes_used: 0,
            bytes_max,
        }
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.offsets.get(key).copied()
    }

    /// Bytes that inserting these keys would add (keys already present cost nothing).
    pub fn bytes_to_add<'a>(&self, keys: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut added: HashSet<&[u8]> = HashSet::new();
        let mut bytes = 0;
        for key in keys {
            if !self.offsets.contains_key(key) && added.insert(key) {
                bytes += entry_bytes(key);
            }
        }
        bytes
    }

    /// Whether `bytes` more fit in the budget.
    pub fn fits(&self, bytes: usize) -> bool {
        self.bytes_used.saturating_add(bytes) <= self.bytes_max
    }

    /// Records `offset` as `key`'s latest (offsets are put in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        match self.offsets.get_mut(key) {
            Some(latest) => {
                assert!(offset > *latest, "offsets are put in increasing order");
                *latest = offset;
            }
            None => {
                self.bytes_used += entry_bytes(key);
                self.offsets.insert(key.into(), offset);
            }
        }
    }
}

fn entry_bytes(key: &[u8]) -> usize {
    key.len() + ENTRY_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_new_keys_only() {
        let mut map = OffsetMap::new(2 * (1 + ENTRY_OVERHEAD_BYTES));
        let keys: [&[u8]; 3] = [b"a", b"b", b"a"];
        assert_eq!(
            map.bytes_to_add(keys.iter().copied()),
            2 * (1 + ENTRY_OVERHEAD_BYTES)
        );
        map.put(b"a", 1);
        map.put(b"b", 2);
        map.put(b"a", 3);
        assert_eq!(map.get(b"a"), Some(3));
        assert_eq!(map.len(), 2);
        assert!(map.fits(0));
        assert!(!map.fits(1));
        assert_eq!(map.bytes_to_add([b"a".as_slice()].into_iter()), 0);
    }
}
