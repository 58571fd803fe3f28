//! Opening a log directory: cleanup of leftovers, trusting cleanly closed or flushed
//! segments, and recovering the unflushed tail after a crash.
//!
//! The idea follows Kafka's LogLoader: segments wholly below the recovery point were fsynced
//! before the point moved, so they are not read (only their small indexes are validated);
//! every segment from the one containing the recovery point on is scanned with CRC checks and
//! the log is cut at the first torn or damaged batch.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::batch::BATCH_HEADER_BYTES;
use crate::checkpoint;
use crate::error::{IoContext, StorageError};
use crate::fs_util::{
    self, DELETED_SUFFIX, LOG_EXTENSION, OFFSET_INDEX_EXTENSION, TEMP_SUFFIX, TIME_INDEX_EXTENSION,
};
use crate::index_file::{read_index_file, rewrite_index_file, IndexDamage};
use crate::offset_index::{OffsetIndex, OFFSET_INDEX_ENTRY_BYTES};
use crate::recovery::scan_segment;
use crate::segment::{Segment, TimestampOffset};
use crate::time_index::{TimeIndex, TIME_INDEX_ENTRY_BYTES};
use crate::txn_index::TXN_INDEX_EXTENSION;

/// What opening a log found and did (for logs, metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The clean-shutdown marker was present, so no segment was CRC-scanned.
    pub clean_shutdown: bool,
    pub segments_scanned: u32,
    pub batches_scanned: u64,
    pub bytes_truncated: u64,
    pub segments_deleted: u32,
    pub indexes_rebuilt: u32,
}

pub(crate) struct Loaded {
    pub segments: Vec<Arc<Segment>>,
    pub log_end_offset: i64,
    pub report: OpenReport,
}

pub(crate) fn load(dir: &Path, index_interval_bytes: u32) -> Result<Loaded, StorageError> {
    fs::create_dir_all(dir).context("create log directory", dir)?;
    crate::compaction::swap::recover(dir).context("recover log cleaning", dir)?;
    let bases = clean_directory(dir).context("clean log directory", dir)?;
    let clean =
        checkpoint::take_clean_shutdown_marker(dir).context("remove clean-shutdown marker", dir)?;
    let mut report = OpenReport {
        clean_shutdown: clean,
        ..OpenReport::default()
    };
    let mut segments = Vec::with_capacity(bases.len());
    for base in bases {
        let segment = Segment::open(dir, base).context("open segment", dir)?;
        segments.push(Arc::new(segment));
    }
    if segments.is_empty() {
        return Ok(Loaded {
            segments,
            log_end_offset: 0,
            report,
        });
    }
    let first_unsafe = if clean {
        segments.len() - 1
    } else {
        let recovery_point =
            checkpoint::read_recovery_point(dir).context("read recovery point", dir)?;
        let recovery_point = recovery_point.unwrap_or(0);
        segments
            .iter()
            .rposition(|segment| segment.base_offset() <= recovery_point)
            .unwrap_or(0)
    };
    for segment in &segments[..first_unsafe] {
        load_trusted_indexes(segment, index_interval_bytes, &mut report)?;
    }
    let log_end_offset = if clean {
        open_clean_active(&mut segments, index_interval_bytes, &mut report)?
    } else {
        recover_tail(
            &mut segments,
            first_unsafe,
            index_interval_bytes,
            &mut report,
        )?
    };
    Ok(Loaded {
        segments,
        log_end_offset,
        report,
    })
}

/// Removes temp files, `.deleted` files and index files without a segment; returns the
/// sorted base offsets of the segment files.
fn clean_directory(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = BTreeSet::new();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(TEMP_SUFFIX) || name.ends_with(DELETED_SUFFIX) {
            fs_util::remove_file_if_exists(&entry.path())?;
        } else if let Some(base) = fs_util::parse_segment_file_name(&name, LOG_EXTENSION) {
            bases.insert(base);
        } else if let Some(base) = fs_util::parse_segment_file_name(&name, OFFSET_INDEX_EXTENSION)
            .or_else(|| fs_util::parse_segment_file_name(&name, TIME_INDEX_EXTENSION))
            .or_else(|| fs_util::parse_segment_file_name(&name, TXN_INDEX_EXTENSION))
        {
            index_files.push((base, entry.path()));
        }
    }
    for (base, path) in index_files {
        if !bases.contains(&base) {
            fs_util::remove_file_if_exists(&path)?;
        }
    }
    Ok(bases.into_iter().collect())
}

/// Loads a trusted segment's indexes, rebuilding them (headers only) if missing or damaged.
pub(crate) fn load_trusted_indexes(
    segment: &Segment,
    interval_bytes: u32,
    report: &mut OpenReport,
) -> Result<(), StorageError> {
    match read_indexes(segment).context("read index", segment.log_path())? {
        Ok((offset_index, time_index)) => {
            let max = time_index.last().map(|entry| TimestampOffset {
                timestamp_ms: entry.timestamp_ms,
                offset: segment.base_offset() + i64::from(entry.relative_offset),
            });
            segment.replace_indexes(offset_index, time_index);
            segment.set_max_timestamp(max);
            Ok(())
        }
        Err(damage) => {
            tracing::warn!(path = %segment.log_path().display(), %damage, "rebuilding index");
            let outcome = scan_segment(segment, interval_bytes, false)
                .context("scan segment", segment.log_path())?;
            if let Some(damage) = outcome.damage {
                tracing::error!(path = %segment.log_path().display(), ?damage, "flushed segment is damaged");
            }
            segment.finish_time_index();
            persist_indexes(segment)?;
            report.indexes_rebuilt += 1;
            Ok(())
        }
    }
}

fn read_indexes(segment: &Segment) -> io::Result<Result<(OffsetIndex, TimeIndex), IndexDamage>> {
    let size = segment.size_bytes();
    // An index has at most one entry per batch (plus a final time entry).
    let entries_max = size / BATCH_HEADER_BYTES as u64 + 1;
    let offset_bytes = read_index_file(
        &segment.offset_index_path(),
        entries_max * OFFSET_INDEX_ENTRY_BYTES as u64,
    )?;
    let time_bytes = read_index_file(
        &segment.time_index_path(),
        entries_max * TIME_INDEX_ENTRY_BYTES as u64,
    )?;
    let decoded = offset_bytes
        .and_then(|bytes| OffsetIndex::decode(&bytes, size))
        .and_then(|offset_index| {
            let time_index = time_bytes.and_then(|bytes| TimeIndex::decode(&bytes))?;
            Ok((offset_index, time_index))
        });
    Ok(decoded)
}

pub(crate) fn persist_indexes(segment: &Segment) -> Result<(), StorageError> {
    rewrite_index_file(
        &segment.offset_index_path(),
        &segment.offset_index().encode(),
    )
    .context("write offset index", &segment.offset_index_path())?;
    rewrite_index_file(&segment.time_index_path(), &segment.time_index().encode())
        .context("write time index", &segment.time_index_path())
}

/// After a clean shutdown only the active segment's index is sanity-checked: its entries must
/// point at batches and a header walk from the last entry must end exactly at the file end.
fn open_clean_active(
    segments: &mut Vec<Arc<Segment>>,
    interval_bytes: u32,
    report: &mut OpenReport,
) -> Result<i64, StorageError> {
    let active_at = segments.len() - 1;
    let active = Arc::clone(&segments[active_at]);
    load_trusted_indexes(&active, interval_bytes, report)?;
    let walk = crate::active_segment::ActiveSegment::walk_tail(&active);
    match walk {
        Ok(Some(walk)) if walk.end_position == active.size_bytes() => Ok(walk.next_offset),
        Ok(_) | Err(_) => {
            tracing::warn!(path = %active.log_path().display(), "active segment inconsistent after clean shutdown; recovering");
            recover_tail(segments, active_at, interval_bytes, report)
        }
    }
}

/// CRC-scans `segments[first..]`, cuts the log at the first damage (dropping later segments)
/// and makes the result durable. Returns the log end offset.
fn recover_tail(
    segments: &mut Vec<Arc<Segment>>,
    first: usize,
    interval_bytes: u32,
    report: &mut OpenReport,
) -> Result<i64, StorageError> {
    let mut log_end_offset = segments[first].base_offset();
    let mut at = first;
    while at < segments.len() {
        let segment = Arc::clone(&segments[at]);
        let path = segment.log_path();
        let outcome = scan_segment(&segment, interval_bytes, true).context("scan segment", path)?;
        report.segments_scanned += 1;
        report.batches_scanned += outcome.batch_count;
        log_end_offset = outcome.next_offset;
        let damaged = outcome.valid_bytes < outcome.file_bytes;
        if damaged {
            tracing::warn!(path = %path.display(), valid_bytes = outcome.valid_bytes, damage = ?outcome.damage, "truncating log");
            report.bytes_truncated += outcome.file_bytes - outcome.valid_bytes;
            segment
                .truncate_to_position(outcome.valid_bytes)
                .context("truncate segment", path)?;
            report.bytes_truncated += delete_segments_after(segments, at, report)?;
        }
        segment.set_size_bytes(outcome.valid_bytes);
        if at + 1 < segments.len() {
            segment.finish_time_index();
        }
        persist_indexes(&segment)?;
        segment.sync().context("fsync segment", path)?;
        at += 1;
    }
    Ok(log_end_offset)
}

/// Deletes every segment after `segments[keep_through]`, newest first so a crash leaves a
/// contiguous log. Returns the bytes removed.
fn delete_segments_after(
    segments: &mut Vec<Arc<Segment>>,
    keep_through: usize,
    report: &mut OpenReport,
) -> Result<u64, StorageError> {
    let mut bytes = 0;
    while segments.len() > keep_through + 1 {
        let Some(segment) = segments.pop() else { break };
        bytes += segment.size_bytes();
        delete_segment_files(&segment)?;
        report.segments_deleted += 1;
    }
    Ok(bytes)
}

/// Renames the segment's files to `.deleted` (log first, so a crash leaves at most orphan
/// indexes, which open removes), then removes them.
pub(crate) fn delete_segment_files(segment: &Segment) -> Result<(), StorageError> {
    let paths = [
        segment.log_path().to_path_buf(),
        segment.offset_index_path(),
        segment.time_index_path(),
        segment.txn_index_path(),
    ];
    let mut renamed = Vec::with_capacity(paths.len());
    for path in &paths {
        if let Some(deleted) =
            fs_util::rename_to_deleted(path).context("rename segment file", path)?
        {
            renamed.push(deleted);
        }
    }
    for path in renamed {
        if let Err(error) = fs_util::remove_file_if_exists(&path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove deleted segment file; removed on next open");
        }
    }
    Ok(())
}
