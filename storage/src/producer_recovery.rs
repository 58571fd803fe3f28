//! Rebuilding a log's producer state (on open and after truncation): the newest usable
//! snapshot at or below the log end, then a replay of the batch headers after it.
//!
//! Like Kafka's `ProducerStateManager.truncateAndReload` + `loadProducersFromRecords`:
//! snapshots newer than the log end describe batches that are gone (the tail was cut after a
//! crash, or truncated) and are deleted; damaged snapshots are deleted and the next older one
//! is tried; with none, the whole log is replayed. Replay reads headers only.

use std::path::Path;
use std::sync::Arc;

use crate::error::{IoContext, StorageError};
use crate::fs_util;
use crate::producer_snapshot::{list_snapshots, read_snapshot, snapshot_path};
use crate::producer_state::ProducerStateMap;
use crate::segment::Segment;

pub(crate) struct Rebuilt {
    pub producers: ProducerStateMap,
    /// The snapshot the state started from.
    pub snapshot_offset: Option<i64>,
    pub batches_replayed: u64,
}

/// `segments` are the log's segments with their committed sizes; the log spans
/// `[log_start_offset, log_end_offset)`.
pub(crate) fn rebuild(
    dir: &Path,
    segments: &[Arc<Segment>],
    log_start_offset: i64,
    log_end_offset: i64,
    now_ms: i64,
) -> Result<Rebuilt, StorageError> {
    let offsets = list_snapshots(dir).context("list producer snapshots", dir)?;
    let mut removed_any = false;
    for &offset in offsets.iter().filter(|&&offset| offset > log_end_offset) {
        tracing::info!(dir = %dir.display(), offset, log_end_offset, "dropping producer snapshot beyond the log end");
        remove_snapshot(dir, offset)?;
        removed_any = true;
    }
    let mut loaded = None;
    for &offset in offsets
        .iter()
        .rev()
        .filter(|&&offset| offset <= log_end_offset)
    {
        let path = snapshot_path(dir, offset);
        match read_snapshot(dir, offset).context("read producer snapshot", &path)? {
            Ok(producers) => {
                loaded = Some((offset, producers));
                break;
            }
            Err(damage) => {
                tracing::warn!(path = %path.display(), ?damage, "damaged producer snapshot dropped");
                remove_snapshot(dir, offset)?;
                removed_any = true;
            }
        }
    }
    if removed_any {
        fs_util::fsync_dir(dir).context("fsync log directory", dir)?;
    }
    let (snapshot_offset, mut producers) = match loaded {
        Some((offset, producers)) => (Some(offset), producers),
        None => (None, ProducerStateMap::new()),
    };
    let replay_from = snapshot_offset.unwrap_or(log_start_offset);
    let batches_replayed = replay(segments, replay_from, &mut producers, now_ms)?;
    producers.remove_below(log_start_offset);
    Ok(Rebuilt {
        producers,
        snapshot_offset,
        batches_replayed,
    })
}

fn remove_snapshot(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let path = snapshot_path(dir, offset);
    fs_util::remove_file_if_exists(&path).context("remove producer snapshot", &path)
}

/// Applies every batch ending at or after `from` to `producers`; returns the batch count.
fn replay(
    segments: &[Arc<Segment>],
    from: i64,
    producers: &mut ProducerStateMap,
    now_ms: i64,
) -> Result<u64, StorageError> {
    let first = segments
        .partition_point(|segment| segment.base_offset() <= from)
        .saturating_sub(1);
    let mut batches = 0;
    for segment in segments.iter().skip(first) {
        let end = segment.size_bytes();
        let path = segment.log_path();
        let start = segment
            .translate_offset(from, end)
            .context("replay producer state", path)?;
        let Some(mut position) = start else { continue };
        while position < end {
            let header = segment
                .read_header_at(position, end)
                .context("replay producer state", path)?;
            if header.last_offset() >= from {
                producers.replay_batch(&header, now_ms);
                batches += 1;
            }
            position += header.size_bytes() as u64;
        }
    }
    Ok(batches)
}
