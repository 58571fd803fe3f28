//! The leader-epoch cache of one partition: for each leader epoch, the first offset written in
//! it (Kafka's `leader-epoch-checkpoint`). It answers OffsetForLeaderEpoch, which a follower
//! asks after a leader change to find where its log diverges from the new leader's.
//!
//! File: `leader-epoch-checkpoint`, text like Kafka's (`0` version line, entry count line, then
//! `epoch start_offset` lines), replaced atomically. It changes only when an epoch starts or the
//! log is truncated, so it is rewritten rarely. An entry is written before the first batch of
//! its epoch, so a crash can leave an entry beyond the log end, never a batch without an entry;
//! entries at or beyond the log end are dropped on open.

use std::io;
use std::path::{Path, PathBuf};

use crate::fs_util::write_file_atomically;

pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
/// Most epochs remembered; the oldest are forgotten first (a follower that far behind
/// truncates to the log start anyway).
pub const LEADER_EPOCH_ENTRIES_MAX: usize = 10_000;
const FILE_VERSION: &str = "0";
/// Largest file read back: version, count, and `ENTRIES_MAX` lines of two numbers.
const FILE_BYTES_MAX: u64 = 64 + LEADER_EPOCH_ENTRIES_MAX as u64 * 32;

/// `(epoch, start_offset)` pairs, both strictly increasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

pub fn cache_path(dir: &Path) -> PathBuf {
    dir.join(LEADER_EPOCH_FILE)
}

impl LeaderEpochCache {
    /// Loads the cache, keeping only entries that start below `log_end_offset`. A missing or
    /// unreadable file gives an empty cache.
    pub fn load(dir: &Path, log_end_offset: i64) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        let path = cache_path(dir);
        let fits = std::fs::metadata(&path).is_ok_and(|m| m.len() <= FILE_BYTES_MAX);
        let Ok(text) = std::fs::read_to_string(&path)
            .map_err(|_| ())
            .and_then(|text| if fits { Ok(text) } else { Err(()) })
        else {
            return cache;
        };
        let mut lines = text.lines();
        if lines.next() != Some(FILE_VERSION) {
            return cache;
        }
        let _count = lines.next();
        for line in lines.take(LEADER_EPOCH_ENTRIES_MAX) {
            let mut parts = line.split_whitespace();
            let parsed = (
                parts.next().and_then(|p| p.parse::<i32>().ok()),
                parts.next().and_then(|p| p.parse::<i64>().ok()),
            );
            let (Some(epoch), Some(start)) = parsed else {
                return LeaderEpochCache::default();
            };
            if start < log_end_offset && cache.is_newer(epoch, start) {
                cache.entries.push((epoch, start));
            }
        }
        cache
    }

    fn is_newer(&self, epoch: i32, start_offset: i64) -> bool {
        self.entries.last().is_none_or(|(last_epoch, last_start)| {
            epoch > *last_epoch && start_offset >= *last_start
        })
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|(epoch, _)| *epoch)
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset`, persisting before returning. An epoch
    /// not newer than the latest is ignored (`Ok(false)`). An entry for the same start offset
    /// (an epoch that wrote nothing) is replaced.
    pub fn assign(&mut self, dir: &Path, epoch: i32, start_offset: i64) -> io::Result<bool> {
        if epoch < 0 || !self.is_newer(epoch, start_offset) {
            return Ok(false);
        }
        if self
            .entries
            .last()
            .is_some_and(|(_, start)| *start == start_offset)
        {
            self.entries.pop();
        }
        self.entries.push((epoch, start_offset));
        if self.entries.len() > LEADER_EPOCH_ENTRIES_MAX {
            self.entries.remove(0);
        }
        self.write(dir)?;
        Ok(true)
    }

    /// Drops entries starting at or after `offset` (the log was cut there).
    pub fn truncate_from(&mut self, dir: &Path, offset: i64) -> io::Result<()> {
        let kept = self.entries.partition_point(|(_, start)| *start < offset);
        if kept == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(kept);
        self.write(dir)
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch not above `requested`
    /// and the offset where the epoch after it starts (the log end for the latest epoch);
    /// `(-1, -1)` when nothing is known.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher_at = self
            .entries
            .partition_point(|(epoch, _)| *epoch <= requested);
        let Some((_, higher_start)) = self.entries.get(higher_at) else {
            return UNDEFINED;
        };
        match higher_at.checked_sub(1).map(|at| self.entries[at]) {
            Some((floor_epoch, _)) => (floor_epoch, *higher_start),
            None => (requested, *higher_start),
        }
    }

    fn write(&self, dir: &Path) -> io::Result<()> {
        let mut text = format!("{FILE_VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        write_file_atomically(&cache_path(dir), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::default();
        assert_eq!(cache.end_offset_for(0, 0), (-1, -1));
        assert!(cache.assign(dir.path(), 1, 0).unwrap());
        assert!(cache.assign(dir.path(), 3, 10).unwrap());
        assert!(!cache.assign(dir.path(), 2, 12).unwrap());
        assert_eq!(cache.end_offset_for(3, 15), (3, 15));
        assert_eq!(cache.end_offset_for(2, 15), (1, 10));
        assert_eq!(cache.end_offset_for(1, 15), (1, 10));
        assert_eq!(cache.end_offset_for(0, 15), (0, 0));
        assert_eq!(cache.end_offset_for(4, 15), (-1, -1));
        let loaded = LeaderEpochCache::load(dir.path(), 15);
        assert_eq!(loaded, cache);
        let cut = LeaderEpochCache::load(dir.path(), 10);
        assert_eq!(cut.entries(), &[(1, 0)]);
        cache.truncate_from(dir.path(), 5).unwrap();
        assert_eq!(cache.entries(), &[(1, 0)]);
        assert_eq!(LeaderEpochCache::load(dir.path(), 15).entries(), &[(1, 0)]);
    }

    #[test]
    fn an_epoch_that_wrote_nothing_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::default();
        cache.assign(dir.path(), 1, 5).unwrap();
        cache.assign(dir.path(), 2, 5).unwrap();
        assert_eq!(cache.entries(), &[(2, 5)]);
    }
}
