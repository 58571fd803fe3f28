//! Cleaning one partition log (Kafka's `Cleaner.clean`): map the dirty section's keys to
//! their last offsets, then rewrite every cleanable segment, in groups, keeping only each
//! key's last record (and tombstones until their delete horizon).
//!
//! The cleaner reads segments that no longer change (never the active one) without the
//! writer lock; each group is swapped in under the lock only if the log still holds it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::BatchHeader;
use crate::compaction::codec::RecordsCodec;
use crate::compaction::filter::{
    filter_batch, is_cleanable, records_section, Fate, FilterRules, FilterStats,
};
use crate::compaction::offset_map::OffsetMap;
use crate::compaction::records::parse_records;
use crate::compaction::swap;
use crate::error::{IoContext, StorageError};
use crate::log::{CleaningView, Log};
use crate::segment::{Segment, RELATIVE_OFFSET_MAX, SEGMENT_BYTES_LIMIT};

/// A batch whose records expand beyond this is kept untouched (and its keys unmapped).
pub const RECORDS_BYTES_MAX: usize = 64 << 20;

/// Settings of one cleaning (Kafka's topic and `log.cleaner.*` configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: memory of the key → offset map.
    pub dedupe_buffer_bytes: usize,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: segments with newer records stay dirty.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.io.max.bytes.per.second` (reads plus writes); 0 = unlimited.
    pub io_bytes_per_second: u64,
    /// Batches at or above this offset are not cleaned: the partition's last stable offset
    /// (never above the high watermark), as in Kafka. Records above the high watermark may
    /// still be truncated, so they must not make older records go; transactions still open
    /// are not decided yet.
    pub stable_offset: i64,
}

impl Default for CleanerConfig {
    fn default() -> CleanerConfig {
        CleanerConfig {
            dedupe_buffer_bytes: 128 << 20,
            delete_retention_ms: 24 * 60 * 60 * 1000,
            min_compaction_lag_ms: 0,
            io_bytes_per_second: 0,
            stable_offset: i64::MAX,
        }
    }
}

/// How dirty a log is (Kafka's `LogToClean`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirtyStats {
    pub first_dirty_offset: i64,
    /// Dirty records end here: the active segment, or the first segment younger than
    /// `min.compaction.lag.ms`.
    pub cleanable_end_offset: i64,
    pub clean_bytes: u64,
    pub dirty_bytes: u64,
    /// Largest timestamp of the first dirty segment (for `max.compaction.lag.ms`).
    pub first_dirty_timestamp_ms: Option<i64>,
}

impl DirtyStats {
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            return 0.0;
        }
        self.dirty_bytes as f64 / total as f64
    }
}

/// What one cleaning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    pub segments_cleaned: u32,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub keys_mapped: usize,
    pub first_dirty_offset: i64,
    pub stats: FilterStats,
}

impl CleanOutcome {
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl Log {
    /// The dirty and clean bytes (segments below the active one) as of `now_ms`.
    pub fn dirty_stats(
        &self,
        now_ms: i64,
        min_compaction_lag_ms: i64,
    ) -> Result<DirtyStats, StorageError> {
        let view = self.cleaning_view(false)?;
        dirty_stats(&view, now_ms, min_compaction_lag_ms)
    }

    /// Cleans the log once: maps the dirty section (as far as the map budget allows) and
    /// rewrites the segments below the mapped end. Does nothing when nothing is dirty and no
    /// tombstone's horizon has passed.
    pub fn clean(
        &self,
        config: &CleanerConfig,
        codec: &dyn RecordsCodec,
        now_ms: i64,
    ) -> Result<CleanOutcome, StorageError> {
        let view = self.cleaning_view(true)?;
        let mut dirty = dirty_stats(&view, now_ms, config.min_compaction_lag_ms)?;
        dirty.cleanable_end_offset = dirty
            .cleanable_end_offset
            .min(config.stable_offset)
            .max(dirty.first_dirty_offset);
        let tombstones_due = view
            .state
            .tombstone_horizon_ms
            .is_some_and(|horizon| horizon <= now_ms);
        let mut outcome = CleanOutcome {
            first_dirty_offset: dirty.first_dirty_offset,
            ..CleanOutcome::default()
        };
        if dirty.first_dirty_offset >= dirty.cleanable_end_offset && !tombstones_due {
            return Ok(outcome);
        }
        let mut throttle = Throttle::new(self, config.io_bytes_per_second);
        let aborted = AbortedIndex::new(&view);
        let (map, map_end) =
            build_offset_map(&view, &dirty, config, codec, &aborted, &mut throttle)?;
        outcome.keys_mapped = map.len();
        let rules = FilterRules {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            codec,
            records_bytes_max: RECORDS_BYTES_MAX,
        };
        let active_at = view.segments.len() - 1;
        let cleanable = view.segments[..active_at]
            .iter()
            .take_while(|segment| segment.base_offset() < map_end)
            .count();
        for (start, end) in groups(&view, cleanable) {
            let group = &view.segments[start..end];
            let end_offset = view.segments[end].base_offset();
            let cleaned = clean_group(
                self,
                &view,
                group,
                &rules,
                &aborted,
                &mut throttle,
                &mut outcome,
            )?;
            if !cleaned || !self.install_cleaned(&view, group, end_offset)? {
                swap::abandon(self.dir()).context("remove cleaner work", self.dir())?;
                tracing::info!(dir = %self.dir().display(), "log changed during cleaning; stopped");
                return Ok(outcome);
            }
            outcome.segments_cleaned += group.len() as u32;
        }
        outcome.first_dirty_offset = map_end.max(dirty.first_dirty_offset);
        self.finish_cleaning(
            outcome.first_dirty_offset,
            outcome.stats.tombstone_horizon_ms,
        )?;
        Ok(outcome)
    }
}

fn dirty_stats(
    view: &CleaningView,
    now_ms: i64,
    min_compaction_lag_ms: i64,
) -> Result<DirtyStats, StorageError> {
    let active = &view.segments[view.segments.len() - 1];
    let first_dirty_offset = view
        .state
        .first_dirty_offset
        .clamp(view.log_start_offset, active.base_offset());
    let mut stats = DirtyStats {
        first_dirty_offset,
        cleanable_end_offset: active.base_offset(),
        clean_bytes: 0,
        dirty_bytes: 0,
        first_dirty_timestamp_ms: None,
    };
    let lag_bound_ms = now_ms.saturating_sub(min_compaction_lag_ms.max(0));
    for (at, segment) in view.segments[..view.segments.len() - 1].iter().enumerate() {
        let next_base = view.segments[at + 1].base_offset();
        if next_base <= first_dirty_offset {
            stats.clean_bytes += segment.size_bytes();
            continue;
        }
        let largest_ms = segment
            .largest_timestamp_ms()
            .context("stat segment", segment.log_path())?;
        if stats.first_dirty_timestamp_ms.is_none() {
            stats.first_dirty_timestamp_ms = Some(largest_ms);
        }
        if largest_ms > lag_bound_ms {
            stats.cleanable_end_offset = segment.base_offset().max(first_dirty_offset);
            break;
        }
        stats.dirty_bytes += segment.size_bytes();
    }
    Ok(stats)
}

/// Maps keys of the batches in `[first dirty, cleanable end)` to their last offsets until
/// the budget is spent; returns the map and the offset it covers up to.
fn build_offset_map(
    view: &CleaningView,
    dirty: &DirtyStats,
    config: &CleanerConfig,
    codec: &dyn RecordsCodec,
    aborted: &AbortedIndex,
    throttle: &mut Throttle<'_>,
) -> Result<(OffsetMap, i64), StorageError> {
    let mut map = OffsetMap::new(config.dedupe_buffer_bytes);
    let mut map_end = dirty.first_dirty_offset;
    let active_at = view.segments.len() - 1;
    for segment in &view.segments[..active_at] {
        if segment.base_offset() >= dirty.cleanable_end_offset {
            break;
        }
        let end = segment.size_bytes();
        let path = segment.log_path();
        let mut position = 0;
        while position < end {
            let header = segment
                .read_header_at(position, end)
                .context("clean", path)?;
            position += header.size_bytes() as u64;
            if header.last_offset() < dirty.first_dirty_offset {
                continue;
            }
            if header.last_offset() >= dirty.cleanable_end_offset {
                return Ok((map, map_end));
            }
            if !is_cleanable(&header) || aborted.contains(&header) {
                map_end = header.last_offset() + 1;
                continue;
            }
            let batch = segment
                .read_batch(position - header.size_bytes() as u64, end)
                .context("clean", path)?;
            throttle.charge(batch.len() as u64)?;
            if !map_batch(&mut map, &batch, &header, codec) {
                return Ok((map, map_end));
            }
            map_end = header.last_offset() + 1;
        }
        map_end = map_end.max(next_base(view, segment));
    }
    Ok((map, map_end.min(dirty.cleanable_end_offset)))
}

fn next_base(view: &CleaningView, segment: &Arc<Segment>) -> i64 {
    let at = view
        .segments
        .iter()
        .position(|candidate| Arc::ptr_eq(candidate, segment))
        .map_or(view.segments.len() - 1, |at| at + 1);
    view.segments[at.min(view.segments.len() - 1)].base_offset()
}

/// Adds the batch's keys; false (nothing added) when they do not fit and the map is not
/// empty. An undecodable batch adds nothing (the filter keeps it whole).
fn map_batch(
    map: &mut OffsetMap,
    batch: &[u8],
    header: &BatchHeader,
    codec: &dyn RecordsCodec,
) -> bool {
    let Some(section) = records_section(batch, header, codec, RECORDS_BYTES_MAX) else {
        return true;
    };
    let Ok(records) = parse_records(&section, header.record_count) else {
        return true;
    };
    let keys = records.iter().filter_map(|record| record.key);
    if !map.is_empty() && !map.fits(map.bytes_to_add(keys)) {
        return false;
    }
    for record in &records {
        if let Some(key) = record.key {
            map.put(key, header.base_offset + i64::from(record.offset_delta));
        }
    }
    true
}

/// Consecutive runs of `segments[..count]` whose sizes sum to at most `segment.bytes` and
/// whose offsets fit one segment; as `(start, end)` index ranges.
fn groups(view: &CleaningView, count: usize) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < count {
        let base = view.segments[start].base_offset();
        let mut bytes = view.segments[start].size_bytes();
        let mut end = start + 1;
        while end < count {
            let next = &view.segments[end];
            let span = view.segments[end + 1].base_offset() - 1 - base;
            if bytes + next.size_bytes() > view.segment_bytes || span > RELATIVE_OFFSET_MAX {
                break;
            }
            bytes += next.size_bytes();
            end += 1;
        }
        groups.push((start, end));
        start = end;
    }
    groups
}

/// Writes the cleaned copy of `group` (with indexes) into the work directory. False when it
/// would not fit one segment file.
fn clean_group(
    log: &Log,
    view: &CleaningView,
    group: &[Arc<Segment>],
    rules: &FilterRules<'_>,
    aborted_txns: &AbortedIndex,
    throttle: &mut Throttle<'_>,
    outcome: &mut CleanOutcome,
) -> Result<bool, StorageError> {
    let dir = log.dir();
    let work = swap::prepare_work_dir(dir).context("create cleaner work directory", dir)?;
    let cleaned = Segment::create(&work, group[0].base_offset()).context("create", &work)?;
    let mut written: u64 = 0;
    let mut aborted = Vec::new();
    for segment in group {
        let end = segment.size_bytes();
        let path = segment.log_path();
        outcome.bytes_before += end;
        aborted.extend(segment.aborted_txns());
        let mut position = 0;
        while position < end {
            let header = segment
                .read_header_at(position, end)
                .context("clean", path)?;
            let batch = segment.read_batch(position, end).context("clean", path)?;
            position += batch.len() as u64;
            let keep_empty =
                view.producer_last_offsets.get(&header.producer_id) == Some(&header.last_offset());
            let aborted = aborted_txns.contains(&header);
            let fate = filter_batch(
                &batch,
                &header,
                rules,
                aborted,
                keep_empty,
                &mut outcome.stats,
            );
            let bytes: &[u8] = match &fate {
                Fate::Keep => &batch,
                Fate::Rewrite(rewritten) => rewritten,
                Fate::Drop => &[],
            };
            if written + bytes.len() as u64 > SEGMENT_BYTES_LIMIT {
                return Ok(false);
            }
            cleaned
                .write_at(bytes, written)
                .context("write cleaned segment", cleaned.log_path())?;
            written += bytes.len() as u64;
            throttle.charge((batch.len() + bytes.len()) as u64)?;
        }
    }
    outcome.bytes_after += written;
    finish_cleaned_segment(&cleaned, group, view.index_interval_bytes, &aborted)?;
    crate::fs_util::fsync_dir(&work).context("fsync cleaner work directory", &work)?;
    Ok(true)
}

/// Indexes, transaction index and modification time of the new segment, all fsynced.
fn finish_cleaned_segment(
    cleaned: &Segment,
    group: &[Arc<Segment>],
    index_interval_bytes: u32,
    aborted: &[crate::txn_index::TxnIndexEntry],
) -> Result<(), StorageError> {
    let path = cleaned.log_path();
    cleaned.sync().context("fsync cleaned segment", path)?;
    cleaned.set_size_bytes(cleaned.file_len().context("stat", path)?);
    crate::recovery::scan_segment(cleaned, index_interval_bytes, false)
        .context("index cleaned segment", path)?;
    cleaned.finish_time_index();
    crate::loader::persist_indexes(cleaned)?;
    crate::txn_index::rewrite(&cleaned.txn_index_path(), aborted)
        .context("write transaction index", &cleaned.txn_index_path())?;
    // Retention of a segment without timestamps uses its modification time: keep the
    // newest of the group's.
    let mut modified = None;
    for segment in group {
        let time = std::fs::metadata(segment.log_path())
            .and_then(|metadata| metadata.modified())
            .ok();
        modified = modified.max(time);
    }
    if let Some(time) = modified {
        let file = std::fs::File::options()
            .write(true)
            .open(path)
            .context("open cleaned segment", path)?;
        file.set_modified(time)
            .context("set modification time", path)?;
    }
    Ok(())
}

/// The aborted transactions of the log (from every segment's `.txnindex`), to tell an
/// aborted transactional batch from a committed one below the last stable offset.
struct AbortedIndex {
    /// Producer id → `(first offset, marker offset)` of each aborted transaction.
    by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedIndex {
    fn new(view: &CleaningView) -> AbortedIndex {
        let mut by_producer: std::collections::HashMap<i64, Vec<(i64, i64)>> =
            std::collections::HashMap::new();
        for segment in view.segments.iter() {
            for entry in segment.aborted_txns() {
                by_producer
                    .entry(entry.producer_id)
                    .or_default()
                    .push((entry.first_offset, entry.last_offset));
            }
        }
        AbortedIndex { by_producer }
    }

    /// Whether `header` is a data batch of an aborted transaction.
    fn contains(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self
                .by_producer
                .get(&header.producer_id)
                .is_some_and(|spans| {
                    spans.iter().any(|&(first, last)| {
                        first <= header.base_offset && header.base_offset <= last
                    })
                })
    }
}

/// Bounds the cleaner's I/O rate by sleeping (it runs on its own thread), and stops the
/// cleaning once the log is closed (shutdown must not wait for a throttled cleaning).
struct Throttle<'a> {
    log: &'a Log,
    bytes_per_second: u64,
    started: Instant,
    bytes: u64,
}

/// Longest sleep between two looks at whether the log closed.
const THROTTLE_SLEEP_MAX: Duration = Duration::from_millis(100);

impl Throttle<'_> {
    fn new(log: &Log, bytes_per_second: u64) -> Throttle<'_> {
        Throttle {
            log,
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn charge(&mut self, bytes: u64) -> Result<(), StorageError> {
        if self.log.is_closed() {
            return Err(StorageError::Closed);
        }
        if self.bytes_per_second == 0 {
            return Ok(());
        }
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second as f64);
        loop {
            let elapsed = self.started.elapsed();
            if due <= elapsed {
                return Ok(());
            }
            std::thread::sleep((due - elapsed).min(THROTTLE_SLEEP_MAX));
            if self.log.is_closed() {
                return Err(StorageError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compaction::UncompressedOnly;
    use crate::test_encoder::simple_batch;
    use crate::LogConfig;

    #[test]
    fn a_cleaning_that_saw_the_log_before_a_truncation_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 400,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config, 0, 0).unwrap();
        for at in 0..20 {
            log.append(&mut simple_batch(2, 20, at), 0, 1).unwrap();
        }
        let view = log.cleaning_view(true).unwrap();
        assert!(view.segments.len() > 3);
        // A follower cutting its tail into the first segment keeps that segment's identity.
        let cut = view.segments[0].base_offset() + 2;
        log.truncate_to(cut).unwrap();
        assert_eq!(log.log_end_offset(), cut);
        // New batches of the same size roll at the same offset: the segment list looks as
        // before, but the first segment holds other records now.
        while log.cleaning_view(true).unwrap().segments.len() < 2 {
            log.append(&mut simple_batch(2, 20, 99), 0, 1).unwrap();
        }
        let now = log.cleaning_view(true).unwrap();
        assert!(Arc::ptr_eq(&now.segments[0], &view.segments[0]));
        assert_eq!(
            now.segments[1].base_offset(),
            view.segments[1].base_offset()
        );
        let group = &view.segments[..1];
        let installed = log
            .install_cleaned(&view, group, view.segments[1].base_offset())
            .unwrap();
        assert!(!installed);
        log.clean(&CleanerConfig::default(), &UncompressedOnly, 10)
            .unwrap();
    }
}
