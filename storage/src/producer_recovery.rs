//! Rebuilding a log's producer state (on open and after truncation): the newest usable
//! snapshot at or below the log end, then a replay of the batch headers after it.
//!
//! Like Kafka's `ProducerStateManager.truncateAndReload` + `loadProducersFromRecords`:
//! snapshots newer than the log end describe batches that are gone (the tail was cut after a
//! crash, or truncated) and are deleted; damaged snapshots are deleted and the next older one
//! is tried; with none, the whole log is replayed. Replay reads headers only, plus the one
//! record of each control batch (commit or abort). Transactions aborted in the replayed
//! range are written again to their segments' transaction indexes (entries there from
//! before the crash or truncation are replaced), so the indexes always match the log.

use std::path::Path;
use std::sync::Arc;

use crate::error::{IoContext, StorageError};
use crate::fs_util;
use crate::producer_snapshot::{list_snapshots, read_snapshot, snapshot_path};
use crate::producer_state::{ProducerStateMap, TxnEvent};
use crate::segment::Segment;
use crate::transactions::Transactions;
use crate::txn_index::TxnIndexEntry;

pub(crate) struct Rebuilt {
    pub producers: ProducerStateMap,
    /// The snapshot the state started from.
    pub snapshot_offset: Option<i64>,
    pub batches_replayed: u64,
    /// Open transactions, and those the replay saw completed (their markers may not be
    /// replicated yet).
    pub transactions: Transactions,
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
    let mut transactions = Transactions::from_ongoing(&producers.ongoing_txns());
    let batches_replayed = replay(
        segments,
        replay_from,
        &mut producers,
        &mut transactions,
        now_ms,
    )?;
    producers.remove_below(log_start_offset);
    Ok(Rebuilt {
        producers,
        snapshot_offset,
        batches_replayed,
        transactions,
    })
}

fn remove_snapshot(dir: &Path, offset: i64) -> Result<(), StorageError> {
    let path = snapshot_path(dir, offset);
    fs_util::remove_file_if_exists(&path).context("remove producer snapshot", &path)
}

/// Applies every batch ending at or after `from` to `producers` and `transactions`, and
/// rewrites the transaction index entries from `from` on; returns the batch count.
fn replay(
    segments: &[Arc<Segment>],
    from: i64,
    producers: &mut ProducerStateMap,
    transactions: &mut Transactions,
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
        let mut aborted = Vec::new();
        let mut position = start.unwrap_or(end);
        while position < end {
            let header = segment
                .read_header_at(position, end)
                .context("replay producer state", path)?;
            if header.last_offset() >= from {
                let control_batch = if header.is_control() {
                    Some(
                        segment
                            .read_batch(position, end)
                            .context("replay producer state", path)?,
                    )
                } else {
                    None
                };
                let event = producers.replay(&header, control_batch.as_deref(), now_ms);
                record_event(transactions, event, &mut aborted);
                if header.is_control() {
                    transactions.end(header.producer_id);
                }
                batches += 1;
            }
            position += header.size_bytes() as u64;
        }
        segment
            .replace_aborted_txns_from(from, &aborted)
            .context("rewrite transaction index", &segment.txn_index_path())?;
    }
    Ok(batches)
}

/// Applies a replayed batch's transaction event; an abort becomes an index entry.
pub(crate) fn record_event(
    transactions: &mut Transactions,
    event: Option<TxnEvent>,
    aborted: &mut Vec<TxnIndexEntry>,
) {
    match event {
        Some(TxnEvent::Started {
            producer_id,
            first_offset,
        }) => transactions.start(producer_id, first_offset),
        Some(TxnEvent::Completed(completed)) => {
            if completed.aborted {
                aborted.push(TxnIndexEntry {
                    producer_id: completed.producer_id,
                    first_offset: completed.first_offset,
                    last_offset: completed.last_offset,
                    last_stable_offset: transactions.index_last_stable_offset(&completed),
                });
            }
            transactions.complete(&completed);
        }
        None => {}
    }
}
