//! One partition's log: an ordered list of segments in one directory.
//!
//! Concurrency: every mutation is serialized by the writer `Mutex`. Readers lock the `view`
//! only to copy a snapshot (an `Arc` of the segment list plus the committed log end and the
//! active segment's committed size) and then read with positional reads, holding no lock
//! during I/O. The writer publishes a new committed end only after the bytes are written, so
//! a reader never sees a partially written batch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::active_segment::ActiveSegment;
use crate::batch::{
    stamp_batches, validate_batches, validate_batches_with, CountRule, TimestampType,
};
use crate::checkpoint;
use crate::control::{encode_marker_batch, TxnMarker};
use crate::error::{AppendError, IoContext, ReadError, StorageError};
use crate::fs_util;
use crate::leader_epoch_cache::LeaderEpochCache;
use crate::loader::{self, delete_segment_files, OpenReport};
use crate::lock::lock;
use crate::producer_recovery;
use crate::producer_snapshot;
use crate::producer_state::{
    AppendPlan, ProducerEntry, ProducerStateMap, PRODUCER_ID_EXPIRATION_MS_DEFAULT,
};
use crate::segment::{Segment, SEGMENT_BYTES_LIMIT};
use crate::transactions::Transactions;
use crate::txn_index::{AbortedTxn, TxnIndexEntry};
use crate::verification::{VerificationGuard, Verifications};

/// Per-log settings, named and defaulted like Kafka's topic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`; capped at `SEGMENT_BYTES_LIMIT`.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment this long after its first batch.
    pub segment_ms: i64,
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: the size limit of one batch.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// fsync before an append returns.
    pub flush_every_append: bool,
    /// `producer.id.expiration.ms`: an idempotent producer with no append for this long is
    /// forgotten.
    pub producer_id_expiration_ms: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush_every_append: false,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
        }
    }
}

impl LogConfig {
    fn segment_bytes_effective(&self) -> u64 {
        self.segment_bytes.clamp(1, SEGMENT_BYTES_LIMIT)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the log uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    pub record_count: i64,
    pub bytes: u64,
    /// Every batch was an idempotent producer's retry of batches already in the log: nothing
    /// was written, and the offsets (and `log_append_time_ms`) are the original ones.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Whole batches, exactly as stored.
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted_segments: u32,
    pub log_start_offset: i64,
}

/// What readers snapshot.
#[derive(Clone)]
struct View {
    segments: Arc<Vec<Arc<Segment>>>,
    log_start_offset: i64,
    log_end_offset: i64,
    /// Committed bytes of the last segment in `segments`.
    active_size_bytes: u64,
}

impl View {
    /// Committed end of `segments[at]`: older segments no longer change.
    fn committed_bytes(&self, at: usize) -> u64 {
        if at + 1 == self.segments.len() {
            self.active_size_bytes
        } else {
            self.segments[at].size_bytes()
        }
    }

    /// Index of the segment that may hold `offset` (the last one with base <= offset).
    fn segment_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset() <= offset)
            .saturating_sub(1)
    }

    fn size_bytes(&self) -> u64 {
        (0..self.segments.len())
            .map(|at| self.committed_bytes(at))
            .sum()
    }
}

struct Writer {
    config: LogConfig,
    /// Latest wall clock seen, for operations that take no `now_ms`.
    now_ms_latest: i64,
    active: ActiveSegment,
    closed: bool,
    /// Idempotent producers' sequences, as of the log end.
    producers: ProducerStateMap,
    /// Offset of the newest producer snapshot file.
    producer_snapshot_offset: Option<i64>,
    /// `producers` changed since the newest snapshot.
    producers_dirty: bool,
    /// KIP-890 verifications in progress (in memory only).
    verifications: Verifications,
    /// First offset of each leader epoch (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
    /// The high watermark last written to the `high-watermark` file.
    high_watermark_persisted: Option<i64>,
}

pub struct Log {
    dir: PathBuf,
    writer: Mutex<Writer>,
    view: Mutex<View>,
    /// Open and not yet replicated transactions (the LSO). Changed only under the writer
    /// lock, before the view publishes the batch that changed it; read by Fetch alone.
    transactions: Mutex<Transactions>,
    open_report: OpenReport,
    /// The persisted high watermark found at open, bounded by the log.
    high_watermark_at_open: i64,
    /// Where compaction stands (`compaction::cleaner`); changed by the cleaner and truncation.
    cleaner: Mutex<CleanerState>,
}

/// Compaction progress of this log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanerState {
    /// Offsets below it were cleaned (Kafka's cleaner checkpoint); persisted.
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a tombstone the last cleaning kept; persisted, so a
    /// restarted broker still cleans when it passes.
    pub tombstone_horizon_ms: Option<i64>,
    /// Bumped by every truncation: a cleaning that started before one is not installed (a
    /// truncated segment keeps its identity but not its contents).
    pub truncations: u64,
}

/// What the cleaner needs to know of the log, copied under the writer lock.
pub(crate) struct CleaningView {
    /// Every segment, the active one last.
    pub segments: Arc<Vec<Arc<Segment>>>,
    pub log_start_offset: i64,
    pub state: CleanerState,
    /// Last offset of each idempotent producer's last batch.
    pub producer_last_offsets: std::collections::HashMap<i64, i64>,
    pub segment_bytes: u64,
    pub index_interval_bytes: u32,
}

/// How many times a reader retries when the writer published a segment maximum timestamp
/// whose batch is not committed yet (it is committed right after).
const MAX_TIMESTAMP_READ_ATTEMPTS: u32 = 3;

/// Producer snapshots kept: the newest, and one older in case the newest is damaged.
const PRODUCER_SNAPSHOTS_RETAINED: usize = 2;

impl Log {
    /// Opens or creates. `log_start_offset_hint` comes from the metadata store
    /// (DeleteRecords); effective log start = max(hint, first segment's base offset).
    pub fn open(
        dir: &Path,
        config: LogConfig,
        log_start_offset_hint: i64,
        now_ms: i64,
    ) -> Result<Log, StorageError> {
        let loaded = loader::load(dir, config.index_interval_bytes)?;
        let mut segments = loaded.segments;
        let mut log_end_offset = loaded.log_end_offset;
        let hint = log_start_offset_hint.max(0);
        if segments.is_empty() || hint > log_end_offset {
            // Everything below the log start was deleted: start over at the log start.
            for segment in segments.iter().rev() {
                delete_segment_files(segment)?;
            }
            let base = if segments.is_empty() {
                hint
            } else {
                hint.max(log_end_offset)
            };
            segments = vec![Arc::new(
                Segment::create(dir, base).context("create segment", dir)?,
            )];
            log_end_offset = base;
        }
        let log_start_offset = hint.max(segments[0].base_offset());
        let active_segment = Arc::clone(&segments[segments.len() - 1]);
        let active = ActiveSegment::open(
            Arc::clone(&active_segment),
            config.index_interval_bytes,
            now_ms,
        )
        .context("open active segment", active_segment.log_path())?;
        fs_util::fsync_dir(dir).context("fsync log directory", dir)?;
        checkpoint::write_recovery_point(dir, log_end_offset)
            .context("write recovery point", dir)?;
        let rebuilt =
            producer_recovery::rebuild(dir, &segments, log_start_offset, log_end_offset, now_ms)?;
        let high_watermark_persisted =
            checkpoint::read_high_watermark(dir).context("read high watermark", dir)?;
        // A checkpoint above the log end (the tail was lost or cut) says nothing about it.
        let high_watermark_at_open = high_watermark_persisted
            .unwrap_or(log_start_offset)
            .clamp(log_start_offset, log_end_offset);
        let view = View {
            segments: Arc::new(segments),
            log_start_offset,
            log_end_offset,
            active_size_bytes: active_segment.size_bytes(),
        };
        tracing::debug!(
            dir = %dir.display(),
            log_start_offset,
            log_end_offset,
            report = ?loaded.report,
            producers = rebuilt.producers.len(),
            producer_batches_replayed = rebuilt.batches_replayed,
            "log opened"
        );
        let first_dirty_offset = checkpoint::read_cleaner_checkpoint(dir)
            .context("read cleaner checkpoint", dir)?
            .unwrap_or(log_start_offset);
        Ok(Log {
            cleaner: Mutex::new(CleanerState {
                first_dirty_offset,
                tombstone_horizon_ms: checkpoint::read_tombstone_horizon(dir)
                    .context("read tombstone horizon", dir)?,
                truncations: 0,
            }),
            dir: dir.to_path_buf(),
            writer: Mutex::new(Writer {
                config,
                now_ms_latest: now_ms,
                active,
                closed: false,
                producers_dirty: rebuilt.snapshot_offset != Some(log_end_offset),
                producers: rebuilt.producers,
                producer_snapshot_offset: rebuilt.snapshot_offset,
                verifications: Verifications::default(),
                epochs: LeaderEpochCache::load(dir, log_end_offset),
                high_watermark_persisted,
            }),
            view: Mutex::new(view),
            transactions: Mutex::new(rebuilt.transactions),
            open_report: loaded.report,
            high_watermark_at_open,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found (clean shutdown or recovery, bytes truncated, ...).
    pub fn open_report(&self) -> OpenReport {
        self.open_report
    }

    /// The high watermark persisted before this open (Kafka's
    /// `replication-offset-checkpoint`), at least the log start and at most the log end; the
    /// log start when none was persisted.
    pub fn high_watermark_at_open(&self) -> i64 {
        self.high_watermark_at_open
    }

    /// Persists `offset` as the high watermark, unless it already is the persisted one.
    pub fn checkpoint_high_watermark(&self, offset: i64) -> Result<(), StorageError> {
        assert!(offset >= 0, "a high watermark is an offset");
        let mut writer = self.writer()?;
        if writer.high_watermark_persisted == Some(offset) {
            return Ok(());
        }
        checkpoint::write_high_watermark(&self.dir, offset)
            .context("write high watermark", &self.dir)?;
        writer.high_watermark_persisted = Some(offset);
        Ok(())
    }

    fn snapshot(&self) -> View {
        lock(&self.view).clone()
    }

    fn writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>, StorageError> {
        let writer = lock(&self.writer);
        if writer.closed {
            return Err(StorageError::Closed);
        }
        Ok(writer)
    }

    /// Validates before writing anything (on error the log is untouched), checks idempotent
    /// producers' epochs and sequences, stamps offsets, leader epoch and LogAppendTime, rolls
    /// if needed, writes, indexes, and fsyncs if configured. A payload whose batches are all
    /// retries of batches in the log is not written: the outcome is `duplicate` with the
    /// original offsets.
    ///
    /// Transactional batches need no verification here (replication-free callers: the
    /// coordinators and tests); a client's produce uses [`Log::append_verified`].
    pub fn append(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_checked(batches, leader_epoch, now_ms, None)
    }

    /// [`Log::append`] of a client's produce under KIP-890 (Kafka's `AppendOrigin.CLIENT`
    /// with transaction verification): a transactional batch that would start a transaction
    /// is written only if `guard` (from [`Log::start_txn_verification`], before the
    /// coordinator was asked) is still its producer's guard, else `InvalidTxnState`; while a
    /// producer verifies, a batch with a sequence above the lowest one verifying is out of
    /// order.
    pub fn append_verified(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
        guard: VerificationGuard,
    ) -> Result<AppendOutcome, AppendError> {
        self.append_checked(batches, leader_epoch, now_ms, Some(guard))
    }

    /// Starts verifying `producer_id`'s first transactional batch here: the guard the
    /// verified append must present, or [`VerificationGuard::NONE`] when the producer has a
    /// transaction ongoing (no verification needed; if a marker ends it before the append,
    /// the append is refused). Kafka's `maybeStartTransactionVerification`.
    pub fn start_txn_verification(
        &self,
        producer_id: i64,
        sequence: i32,
        producer_epoch: i16,
        now_ms: i64,
    ) -> VerificationGuard {
        // The common case (a transaction's later batches) without waiting for the writer,
        // which may be fsyncing. Safe either way: without a transaction at append time, a
        // `NONE` guard is refused.
        if self.has_ongoing_txn(producer_id) {
            return VerificationGuard::NONE;
        }
        let mut writer = lock(&self.writer);
        if writer.producers.has_ongoing_txn(producer_id) {
            return VerificationGuard::NONE;
        }
        writer
            .verifications
            .start(producer_id, sequence, producer_epoch, now_ms)
    }

    /// The producer's verification guard in progress, if any (tests and operators).
    pub fn txn_verification_guard(&self, producer_id: i64) -> Option<VerificationGuard> {
        let writer = lock(&self.writer);
        writer
            .verifications
            .get(producer_id)
            .map(|entry| entry.guard)
    }

    fn append_checked(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
        guard: Option<VerificationGuard>,
    ) -> Result<AppendOutcome, AppendError> {
        let batch_bytes_max = lock(&self.writer).config.max_message_bytes as usize;
        // CRC work happens outside the writer lock.
        let summary = validate_batches(batches, batch_bytes_max)?;
        let mut writer = self.writer()?;
        writer.now_ms_latest = writer.now_ms_latest.max(now_ms);
        let config = writer.config.clone();
        let segment_bytes = config.segment_bytes_effective();
        if summary.total_bytes as u64 > segment_bytes {
            return Err(AppendError::LargerThanSegment {
                bytes: summary.total_bytes,
                segment_bytes,
            });
        }
        let base_offset = lock(&self.view).log_end_offset;
        if base_offset > i64::MAX - summary.record_count {
            // Offsets exhausted: the payload's offsets would pass i64::MAX.
            return Err(AppendError::Storage(StorageError::OffsetOutOfRange {
                offset: base_offset,
                log_start_offset: lock(&self.view).log_start_offset,
                log_end_offset: base_offset,
            }));
        }
        let plan = writer.producers.plan_append(
            batches,
            base_offset,
            now_ms,
            config.producer_id_expiration_ms,
        )?;
        let pending = match plan {
            AppendPlan::Write(pending) => pending,
            AppendPlan::Duplicate(original) => {
                let log_append_time_ms = match config.timestamp_type {
                    TimestampType::LogAppendTime => original.max_timestamp_ms,
                    TimestampType::CreateTime => -1,
                };
                return Ok(AppendOutcome {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms,
                    log_start_offset: lock(&self.view).log_start_offset,
                    record_count: 0,
                    bytes: 0,
                    duplicate: true,
                });
            }
        };
        if let Some(guard) = guard {
            check_verification(&writer.verifications, batches, &pending, guard)?;
        }
        if self.should_roll(
            &writer,
            summary.total_bytes as u64,
            base_offset + summary.record_count - 1,
            now_ms,
        ) {
            self.roll(&mut writer, now_ms)?;
        }
        let log_append_time_ms =
            (config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        // The epoch's entry is durable before its first batch is written.
        writer
            .epochs
            .assign(&self.dir, leader_epoch, base_offset)
            .context("write leader epochs", &self.dir)?;
        let next_offset = stamp_batches(batches, base_offset, leader_epoch, log_append_time_ms);
        assert_eq!(next_offset, base_offset + summary.record_count);
        let active = &mut writer.active;
        let path = active.segment.log_path().to_path_buf();
        let end = active.append(batches, now_ms).context("append", &path)?;
        if !pending.is_empty() {
            let mut transactions = lock(&self.transactions);
            for &(producer_id, first_offset) in pending.started_txns() {
                transactions.start(producer_id, first_offset);
                writer.verifications.clear(producer_id);
            }
            drop(transactions);
            writer.producers.apply(pending);
            writer.producers_dirty = true;
        }
        if config.flush_every_append {
            writer
                .active
                .segment
                .sync()
                .context("fsync segment", &path)?;
        }
        let log_start_offset = {
            let mut view = lock(&self.view);
            view.log_end_offset = next_offset;
            view.active_size_bytes = end;
            view.log_start_offset
        };
        Ok(AppendOutcome {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            log_start_offset,
            record_count: summary.record_count,
            bytes: batches.len() as u64,
            duplicate: false,
        })
    }

    fn should_roll(
        &self,
        writer: &Writer,
        append_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let segment = &writer.active.segment;
        let size = segment.size_bytes();
        if size == 0 {
            return false;
        }
        let full = size + append_bytes > writer.config.segment_bytes_effective();
        let aged = writer
            .active
            .rolling_base_ms
            .is_some_and(|base_ms| now_ms.saturating_sub(base_ms) >= writer.config.segment_ms);
        let offsets_overflow =
            last_offset - segment.base_offset() > crate::segment::RELATIVE_OFFSET_MAX;
        full || aged || offsets_overflow
    }

    /// Starts a new segment at the log end; the old one is finished and fsynced, then the
    /// recovery point moves to the new base, so later opens never scan the old segment.
    fn roll(&self, writer: &mut Writer, now_ms: i64) -> Result<(), StorageError> {
        let base_offset = lock(&self.view).log_end_offset;
        let segment =
            Arc::new(Segment::create(&self.dir, base_offset).context("create segment", &self.dir)?);
        let active = ActiveSegment::open(
            Arc::clone(&segment),
            writer.config.index_interval_bytes,
            now_ms,
        )
        .context("open segment", segment.log_path())?;
        fs_util::fsync_dir(&self.dir).context("fsync log directory", &self.dir)?;
        let mut old = std::mem::replace(&mut writer.active, active);
        {
            let mut view = lock(&self.view);
            let mut segments = Vec::with_capacity(view.segments.len() + 1);
            segments.extend(view.segments.iter().cloned());
            segments.push(segment);
            view.segments = Arc::new(segments);
            view.active_size_bytes = 0;
        }
        old.finish()
            .context("finish segment", old.segment.log_path())?;
        // Bounds the replay after a crash to the active segment, like the recovery point.
        self.snapshot_producers(writer, base_offset)?;
        checkpoint::write_recovery_point(&self.dir, base_offset)
            .context("write recovery point", &self.dir)
    }

    /// Writes the producer state as of `offset` (the log end; every batch below it is
    /// fsynced) and removes all but the newest snapshots.
    fn snapshot_producers(&self, writer: &mut Writer, offset: i64) -> Result<(), StorageError> {
        producer_snapshot::write_snapshot(&self.dir, offset, &writer.producers)
            .context("write producer snapshot", &self.dir)?;
        writer.producer_snapshot_offset = Some(offset);
        writer.producers_dirty = false;
        let offsets = producer_snapshot::list_snapshots(&self.dir)
            .context("list producer snapshots", &self.dir)?;
        let kept_from = offsets.len().saturating_sub(PRODUCER_SNAPSHOTS_RETAINED);
        for (at, &old) in offsets.iter().enumerate() {
            if at < kept_from || old > offset {
                let path = producer_snapshot::snapshot_path(&self.dir, old);
                fs_util::remove_file_if_exists(&path).context("remove producer snapshot", &path)?;
            }
        }
        Ok(())
    }

    /// Re-reads producer state from snapshots and the log (after the log was cut).
    fn reload_producers(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let view = self.snapshot();
        let rebuilt = producer_recovery::rebuild(
            &self.dir,
            &view.segments,
            view.log_start_offset,
            view.log_end_offset,
            writer.now_ms_latest,
        )?;
        writer.producers = rebuilt.producers;
        *lock(&self.transactions) = rebuilt.transactions;
        writer.producer_snapshot_offset = rebuilt.snapshot_offset;
        writer.producers_dirty = rebuilt.snapshot_offset != Some(view.log_end_offset);
        Ok(())
    }

    /// Forgets producers idle for `producer.id.expiration.ms` or whose batches are all below
    /// the log start.
    fn prune_producers(&self, writer: &mut Writer, now_ms: i64) {
        let expiration_ms = writer.config.producer_id_expiration_ms;
        let log_start_offset = self.log_start_offset();
        writer.verifications.remove_expired(now_ms, expiration_ms);
        let removed = writer.producers.remove_expired(now_ms, expiration_ms)
            + writer.producers.remove_below(log_start_offset);
        if removed > 0 {
            writer.producers_dirty = true;
        }
    }

    /// The state of one idempotent producer in this partition (for tests and operators).
    pub fn producer_entry(&self, producer_id: i64) -> Option<ProducerEntry> {
        lock(&self.writer).producers.get(producer_id).cloned()
    }

    /// Every producer this partition remembers, by producer id (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, ProducerEntry)> {
        let writer = lock(&self.writer);
        let entries = writer.producers.entries_sorted();
        entries
            .into_iter()
            .map(|(producer_id, entry)| (producer_id, entry.clone()))
            .collect()
    }

    /// How many idempotent producers this partition remembers.
    pub fn producer_count(&self) -> usize {
        lock(&self.writer).producers.len()
    }

    /// Whole batches starting with the one containing `fetch_offset`, up to `max_bytes`
    /// (or one whole larger batch if `min_one_batch`). Stops at a segment end.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadOutcome, ReadError> {
        let view = self.snapshot();
        if fetch_offset < view.log_start_offset || fetch_offset > view.log_end_offset {
            return Err(ReadError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: view.log_start_offset,
                log_end_offset: view.log_end_offset,
            });
        }
        let mut records = Bytes::new();
        if fetch_offset < view.log_end_offset {
            for at in view.segment_for(fetch_offset)..view.segments.len() {
                let segment = &view.segments[at];
                let end = view.committed_bytes(at);
                let position = segment
                    .translate_offset(fetch_offset, end)
                    .context("read", segment.log_path())?;
                if let Some(position) = position {
                    records = segment
                        .read_batches(position, end, max_bytes, min_one_batch)
                        .context("read", segment.log_path())?;
                    break;
                }
            }
        }
        Ok(ReadOutcome {
            records,
            high_watermark: view.log_end_offset,
            log_start_offset: view.log_start_offset,
        })
    }

    pub fn log_start_offset(&self) -> i64 {
        lock(&self.view).log_start_offset
    }

    /// Next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        lock(&self.view).log_end_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.snapshot().size_bytes()
    }

    /// First batch (from the log start) whose maxTimestamp >= target; the caller picks the
    /// record inside it.
    pub fn find_batch_by_timestamp(
        &self,
        target_timestamp_ms: i64,
    ) -> Result<Option<Bytes>, ReadError> {
        let view = self.snapshot();
        for at in view.segment_for(view.log_start_offset)..view.segments.len() {
            let segment = &view.segments[at];
            let newer = segment
                .max_timestamp()
                .is_some_and(|max| max.timestamp_ms >= target_timestamp_ms);
            if !newer {
                continue;
            }
            let end = view.committed_bytes(at);
            let found = segment
                .find_batch_by_timestamp(target_timestamp_ms, view.log_start_offset, end)
                .context("read", segment.log_path())?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The largest batch maxTimestamp in the log and the (first) batch carrying it, for
    /// ListOffsets MAX_TIMESTAMP; the caller finds the record inside the batch.
    pub fn max_timestamp(&self) -> Result<Option<(i64, Bytes)>, ReadError> {
        for _ in 0..MAX_TIMESTAMP_READ_ATTEMPTS {
            let view = self.snapshot();
            let mut best: Option<(usize, i64, i64)> = None;
            for (at, segment) in view.segments.iter().enumerate() {
                if let Some(max) = segment.max_timestamp() {
                    if best.is_none_or(|(_, timestamp_ms, _)| max.timestamp_ms > timestamp_ms) {
                        best = Some((at, max.timestamp_ms, max.offset));
                    }
                }
            }
            let Some((at, timestamp_ms, offset)) = best else {
                return Ok(None);
            };
            let segment = &view.segments[at];
            let end = view.committed_bytes(at);
            let path = segment.log_path();
            if offset < view.log_end_offset {
                if let Some(position) = segment
                    .translate_offset(offset, end)
                    .context("read", path)?
                {
                    let batch = segment.read_batch(position, end).context("read", path)?;
                    return Ok(Some((timestamp_ms, batch)));
                }
            }
        }
        Ok(None)
    }

    /// DeleteRecords: moves the log start to `offset` (<= log end) and deletes the segments
    /// wholly below it. The caller persists the returned log start (metadata store) before
    /// acknowledging.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, StorageError> {
        let mut writer = self.writer()?;
        let view = self.snapshot();
        if offset > view.log_end_offset || offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: view.log_start_offset,
                log_end_offset: view.log_end_offset,
            });
        }
        if offset <= view.log_start_offset {
            return Ok(view.log_start_offset);
        }
        lock(&self.view).log_start_offset = offset;
        let deletable = view
            .segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset() <= offset)
            .count();
        self.delete_oldest_segments(&mut writer, deletable)?;
        let now_ms = writer.now_ms_latest;
        self.prune_producers(&mut writer, now_ms);
        Ok(self.log_start_offset())
    }

    /// Retention: deletes the oldest segments that are below the log start, older than
    /// `retention_ms`, or beyond `retention_bytes`. The active segment is rolled first when it
    /// is expired too, so it is never deleted while active.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, StorageError> {
        let mut writer = self.writer()?;
        writer.now_ms_latest = writer.now_ms_latest.max(now_ms);
        let config = writer.config.clone();
        let view = self.snapshot();
        let mut remaining_bytes = view.size_bytes();
        let mut deletable = 0;
        for (at, segment) in view.segments.iter().enumerate() {
            let size = view.committed_bytes(at);
            let below_start = view
                .segments
                .get(at + 1)
                .is_some_and(|next| next.base_offset() <= view.log_start_offset);
            let expired = config.retention_ms >= 0
                && segment
                    .largest_timestamp_ms()
                    .context("stat segment", segment.log_path())?
                    < now_ms.saturating_sub(config.retention_ms);
            let oversized = config.retention_bytes >= 0
                && remaining_bytes.saturating_sub(size) >= config.retention_bytes as u64;
            let active = at + 1 == view.segments.len();
            if (active && size == 0) || !(below_start || expired || oversized) {
                break;
            }
            remaining_bytes -= size;
            deletable += 1;
        }
        if deletable == view.segments.len() {
            self.roll(&mut writer, now_ms)?;
        }
        let deleted_segments = self.delete_oldest_segments(&mut writer, deletable)?;
        self.prune_producers(&mut writer, now_ms);
        Ok(RetentionOutcome {
            deleted_segments,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Unpublishes and deletes the `count` oldest segments (never the active one), then moves
    /// the log start to at least the new first segment's base.
    fn delete_oldest_segments(
        &self,
        _writer: &mut Writer,
        count: usize,
    ) -> Result<u32, StorageError> {
        if count == 0 {
            return Ok(0);
        }
        let doomed: Vec<Arc<Segment>> = {
            let mut view = lock(&self.view);
            assert!(
                count < view.segments.len(),
                "the active segment is never deleted"
            );
            let doomed = view.segments[..count].to_vec();
            let kept = view.segments[count..].to_vec();
            view.log_start_offset = view.log_start_offset.max(kept[0].base_offset());
            view.segments = Arc::new(kept);
            doomed
        };
        // Readers holding an older snapshot keep their open file handles; unlinking is safe.
        for segment in &doomed {
            delete_segment_files(segment)?;
        }
        fs_util::fsync_dir(&self.dir).context("fsync log directory", &self.dir)?;
        Ok(count as u32)
    }

    /// Rolls a non-empty active segment whose first batch is `max_age_ms` old or older, so a
    /// quiet partition's last records become cleanable (the cleaner calls this; appends roll
    /// by `segment.ms` themselves). Returns whether it rolled.
    pub fn roll_if_older(&self, now_ms: i64, max_age_ms: i64) -> Result<bool, StorageError> {
        let mut writer = self.writer()?;
        writer.now_ms_latest = writer.now_ms_latest.max(now_ms);
        let aged = writer.active.segment.size_bytes() > 0
            && writer
                .active
                .rolling_base_ms
                .is_some_and(|base_ms| now_ms.saturating_sub(base_ms) >= max_age_ms);
        if aged {
            self.roll(&mut writer, now_ms)?;
        }
        Ok(aged)
    }

    pub fn update_config(&self, config: LogConfig) {
        let mut writer = lock(&self.writer);
        writer
            .active
            .set_index_interval_bytes(config.index_interval_bytes);
        writer.config = config;
    }

    /// fsyncs the active segment and its indexes, then persists the recovery point.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut writer = self.writer()?;
        self.flush_locked(&mut writer)
    }

    fn flush_locked(&self, writer: &mut Writer) -> Result<(), StorageError> {
        let log_end_offset = lock(&self.view).log_end_offset;
        let path = writer.active.segment.log_path().to_path_buf();
        writer.active.sync().context("fsync segment", &path)?;
        checkpoint::write_recovery_point(&self.dir, log_end_offset)
            .context("write recovery point", &self.dir)?;
        if writer.producers_dirty {
            self.snapshot_producers(writer, log_end_offset)?;
        }
        Ok(())
    }

    /// Flushes, finishes the active segment's time index and writes the clean-shutdown
    /// marker. Later mutations fail with `StorageError::Closed`; reads keep working.
    pub fn close(&self) -> Result<(), StorageError> {
        let mut writer = self.writer()?;
        let path = writer.active.segment.log_path().to_path_buf();
        writer.active.finish().context("finish segment", &path)?;
        self.flush_locked(&mut writer)?;
        let log_end_offset = self.log_end_offset();
        if writer.producer_snapshot_offset != Some(log_end_offset) {
            // The next open then replays nothing.
            self.snapshot_producers(&mut writer, log_end_offset)?;
        }
        checkpoint::write_clean_shutdown_marker(&self.dir)
            .context("write clean-shutdown marker", &self.dir)?;
        writer.closed = true;
        Ok(())
    }

    /// Appends batches a partition leader already stamped (a follower replicating): offsets
    /// and leader epochs are kept as they are. The first batch must start at or after the log
    /// end and the offsets must increase (a compacted leader's batches have gaps, and may hold
    /// fewer records than offsets); each new epoch among them enters the epoch cache.
    pub fn append_replicated(&self, batches: &[u8], now_ms: i64) -> Result<i64, AppendError> {
        let batch_bytes_max = lock(&self.writer).config.max_message_bytes as usize;
        let summary = validate_batches_with(
            batches,
            batch_bytes_max.max(REPLICATED_BATCH_BYTES_MIN),
            CountRule::Stored,
        )?;
        let mut writer = self.writer()?;
        writer.now_ms_latest = writer.now_ms_latest.max(now_ms);
        let config = writer.config.clone();
        let base_offset = lock(&self.view).log_end_offset;
        let epoch_starts = replicated_epoch_starts(batches, base_offset)?;
        let next_offset = epoch_starts.next_offset;
        if self.should_roll(&writer, summary.total_bytes as u64, next_offset - 1, now_ms) {
            self.roll(&mut writer, now_ms)?;
        }
        for (epoch, start) in &epoch_starts.epochs {
            writer
                .epochs
                .assign(&self.dir, *epoch, *start)
                .context("write leader epochs", &self.dir)?;
        }
        let path = writer.active.segment.log_path().to_path_buf();
        let end = writer
            .active
            .append(batches, now_ms)
            .context("append", &path)?;
        // The leader checked these batches: record them unchecked (Kafka's replication
        // origin), so that this replica dedups retries and checks sequences exactly as the
        // leader would once it leads, and keeps the same transactions and aborted index.
        let mut aborted = Vec::new();
        {
            let mut transactions = lock(&self.transactions);
            for item in crate::batch::BatchIter::new(batches) {
                let (position, header) = item?;
                let batch = &batches[position..position + header.size_bytes()];
                let control_batch = header.is_control().then_some(batch);
                let event = writer.producers.replay(&header, control_batch, now_ms);
                producer_recovery::record_event(&mut transactions, event, &mut aborted);
                if header.is_control() {
                    transactions.end(header.producer_id);
                }
                if header.is_transactional() {
                    writer.verifications.clear(header.producer_id);
                }
            }
        }
        for entry in aborted {
            writer
                .active
                .segment
                .push_aborted_txn(entry)
                .context("append transaction index", &path)?;
        }
        writer.producers_dirty = true;
        if config.flush_every_append {
            writer
                .active
                .segment
                .sync()
                .context("fsync segment", &path)?;
        }
        {
            let mut view = lock(&self.view);
            view.log_end_offset = next_offset;
            view.active_size_bytes = end;
        }
        Ok(next_offset)
    }

    /// Writes a transaction marker (WriteTxnMarkers) as the partition leader: Kafka's
    /// control batch ending `marker.producer_id`'s transaction. An older producer epoch
    /// (`InvalidProducerEpoch`) or coordinator epoch (`CoordinatorFenced`) than the
    /// producer's is refused with nothing written. An abort of a transaction with batches
    /// here is recorded in the active segment's transaction index.
    pub fn append_txn_marker(
        &self,
        marker: TxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, AppendError> {
        let mut writer = self.writer()?;
        writer.now_ms_latest = writer.now_ms_latest.max(now_ms);
        let config = writer.config.clone();
        let base_offset = lock(&self.view).log_end_offset;
        let pending = writer
            .producers
            .plan_marker(&marker, base_offset, now_ms, true)?;
        let mut batch = encode_marker_batch(&marker, now_ms);
        if self.should_roll(&writer, batch.len() as u64, base_offset, now_ms) {
            self.roll(&mut writer, now_ms)?;
        }
        let log_append_time_ms =
            (config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        writer
            .epochs
            .assign(&self.dir, leader_epoch, base_offset)
            .context("write leader epochs", &self.dir)?;
        let next_offset = stamp_batches(&mut batch, base_offset, leader_epoch, log_append_time_ms);
        assert_eq!(next_offset, base_offset + 1);
        let path = writer.active.segment.log_path().to_path_buf();
        let end = writer
            .active
            .append(&batch, now_ms)
            .context("append", &path)?;
        let completed = pending.completed;
        writer.producers.apply_marker(pending);
        // The transaction is over: a verification answered before this marker is stale.
        writer.verifications.clear(marker.producer_id);
        writer.producers_dirty = true;
        {
            let mut transactions = lock(&self.transactions);
            if let Some(completed) = completed {
                if completed.aborted {
                    let entry = TxnIndexEntry {
                        producer_id: completed.producer_id,
                        first_offset: completed.first_offset,
                        last_offset: completed.last_offset,
                        last_stable_offset: transactions.index_last_stable_offset(&completed),
                    };
                    writer
                        .active
                        .segment
                        .push_aborted_txn(entry)
                        .context("append transaction index", &path)?;
                }
                transactions.complete(&completed);
            }
            transactions.end(marker.producer_id);
        }
        if config.flush_every_append {
            writer
                .active
                .segment
                .sync()
                .context("fsync segment", &path)?;
        }
        let log_start_offset = {
            let mut view = lock(&self.view);
            view.log_end_offset = next_offset;
            view.active_size_bytes = end;
            view.log_start_offset
        };
        Ok(AppendOutcome {
            base_offset,
            last_offset: base_offset,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            log_start_offset,
            record_count: 1,
            bytes: batch.len() as u64,
            duplicate: false,
        })
    }

    /// Whether `producer_id` has a transaction open in this partition (KIP-890 verification).
    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        lock(&self.transactions).is_ongoing(producer_id)
    }

    /// The last stable offset given the replica's `high_watermark`: no read_committed
    /// consumer sees an offset at or above it. Transactions whose markers the high watermark
    /// passed are forgotten here. Never below the log start (Kafka's
    /// `updateFirstUnstableOffset`): a transaction whose start was deleted (DeleteRecords,
    /// retention) holds back only what is still in the log.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let last_stable = lock(&self.transactions).last_stable_offset(high_watermark);
        let log_start_offset = self.log_start_offset();
        if last_stable < log_start_offset {
            log_start_offset.min(high_watermark)
        } else {
            last_stable
        }
    }

    /// The aborted transactions overlapping `[from, to)` (Kafka's
    /// `collectAbortedTransactions`), from the transaction indexes of the segments from the
    /// one holding `from` on, stopping at the first entry whose LSO reaches `to`.
    pub fn aborted_transactions(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let view = self.snapshot();
        let mut found = Vec::new();
        for segment in &view.segments[view.segment_for(from)..] {
            for entry in segment.aborted_txns() {
                if entry.last_offset >= from && entry.first_offset < to {
                    found.push(AbortedTxn {
                        producer_id: entry.producer_id,
                        first_offset: entry.first_offset,
                    });
                }
                if entry.last_stable_offset >= to {
                    return found;
                }
            }
        }
        found
    }

    /// Starts `epoch` at the log end (a replica becoming leader), before it appends anything.
    pub fn assign_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let mut writer = self.writer()?;
        let log_end_offset = lock(&self.view).log_end_offset;
        writer
            .epochs
            .assign(&self.dir, epoch, log_end_offset)
            .context("write leader epochs", &self.dir)?;
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `requested` and the end offset of it.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let writer = lock(&self.writer);
        let log_end_offset = lock(&self.view).log_end_offset;
        writer.epochs.end_offset_for(requested, log_end_offset)
    }

    /// The newest leader epoch with a batch or an assignment in this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        lock(&self.writer).epochs.latest_epoch()
    }

    /// Drops every batch containing an offset >= `offset`, and the leader epochs starting
    /// there or later; the log end becomes the base offset of the first dropped batch (equal
    /// to `offset` when it is a batch boundary).
    /// Truncating below the log start empties the log and restarts it at `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut writer = self.writer()?;
        let view = self.snapshot();
        if offset == view.log_end_offset {
            // No batch to drop, but an epoch that started here and wrote nothing goes too:
            // the batches replicated next carry their own (possibly older) epochs.
            return writer
                .epochs
                .truncate_from(&self.dir, offset)
                .context("write leader epochs", &self.dir);
        }
        if offset > view.log_end_offset {
            return Ok(());
        }
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: view.log_start_offset,
                log_end_offset: view.log_end_offset,
            });
        }
        if offset < view.log_start_offset || offset <= view.segments[0].base_offset() {
            return self.truncate_fully(&mut writer, &view, offset);
        }
        let keep_at = view.segment_for(offset);
        let segment = Arc::clone(&view.segments[keep_at]);
        let path = segment.log_path().to_path_buf();
        let end = view.committed_bytes(keep_at);
        let position = segment
            .translate_offset(offset, end)
            .context("truncate", &path)?
            .unwrap_or(end);
        if position < end {
            let cut_offset = segment
                .read_header_at(position, end)
                .context("truncate", &path)?
                .base_offset;
            segment.truncate_time_index(cut_offset);
        }
        for doomed in view.segments[keep_at + 1..].iter().rev() {
            delete_segment_files(doomed)?;
        }
        segment
            .truncate_to_position(position)
            .context("truncate", &path)?;
        let tail = ActiveSegment::walk_tail(&segment).context("truncate", &path)?;
        let Some(tail) = tail.filter(|tail| tail.end_position == position) else {
            return Err(StorageError::Io {
                operation: "truncate",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "segment inconsistent",
                ),
            });
        };
        segment.sync().context("fsync segment", &path)?;
        writer.active = ActiveSegment::open(
            Arc::clone(&segment),
            writer.config.index_interval_bytes,
            writer.now_ms_latest,
        )
        .context("open segment", &path)?;
        fs_util::fsync_dir(&self.dir).context("fsync log directory", &self.dir)?;
        checkpoint::write_recovery_point(&self.dir, tail.next_offset)
            .context("write recovery point", &self.dir)?;
        {
            let mut shared = lock(&self.view);
            shared.segments = Arc::new(view.segments[..=keep_at].to_vec());
            shared.log_end_offset = tail.next_offset;
            shared.active_size_bytes = position;
            shared.log_start_offset = shared.log_start_offset.min(tail.next_offset);
        }
        writer
            .epochs
            .truncate_from(&self.dir, tail.next_offset)
            .context("write leader epochs", &self.dir)?;
        self.clamp_first_dirty_offset(tail.next_offset)?;
        self.reload_producers(&mut writer)
    }

    fn truncate_fully(
        &self,
        writer: &mut Writer,
        view: &View,
        offset: i64,
    ) -> Result<(), StorageError> {
        for doomed in view.segments.iter().rev() {
            delete_segment_files(doomed)?;
        }
        let segment =
            Arc::new(Segment::create(&self.dir, offset).context("create segment", &self.dir)?);
        writer.active = ActiveSegment::open(
            Arc::clone(&segment),
            writer.config.index_interval_bytes,
            writer.now_ms_latest,
        )
        .context("open segment", segment.log_path())?;
        fs_util::fsync_dir(&self.dir).context("fsync log directory", &self.dir)?;
        checkpoint::write_recovery_point(&self.dir, offset)
            .context("write recovery point", &self.dir)?;
        {
            let mut shared = lock(&self.view);
            shared.segments = Arc::new(vec![segment]);
            shared.log_start_offset = offset;
            shared.log_end_offset = offset;
            shared.active_size_bytes = 0;
        }
        writer
            .epochs
            .truncate_from(&self.dir, offset)
            .context("write leader epochs", &self.dir)?;
        self.clamp_first_dirty_offset(offset)?;
        self.reload_producers(writer)
    }

    /// The log was cut at `log_end_offset`: what comes next is dirty.
    fn clamp_first_dirty_offset(&self, log_end_offset: i64) -> Result<(), StorageError> {
        let mut cleaner = lock(&self.cleaner);
        cleaner.truncations += 1;
        if cleaner.first_dirty_offset > log_end_offset {
            cleaner.first_dirty_offset = log_end_offset;
            checkpoint::write_cleaner_checkpoint(&self.dir, log_end_offset)
                .context("write cleaner checkpoint", &self.dir)?;
        }
        Ok(())
    }

    /// A consistent copy of what the cleaner reads; the producers' last offsets only when
    /// `with_producers` (a cleaning needs them, measuring dirtiness does not).
    pub(crate) fn cleaning_view(&self, with_producers: bool) -> Result<CleaningView, StorageError> {
        let writer = self.writer()?;
        let view = self.snapshot();
        let producer_last_offsets = if with_producers {
            writer
                .producers
                .entries_sorted()
                .into_iter()
                .filter(|(_, entry)| !entry.batches.is_empty())
                .map(|(producer_id, entry)| (producer_id, entry.last_offset()))
                .collect()
        } else {
            std::collections::HashMap::new()
        };
        Ok(CleaningView {
            segments: view.segments,
            log_start_offset: view.log_start_offset,
            state: *lock(&self.cleaner),
            producer_last_offsets,
            segment_bytes: writer.config.segment_bytes_effective(),
            index_interval_bytes: writer.config.index_interval_bytes,
        })
    }

    /// Replaces `group` (consecutive segments, still in the log) by the cleaned segment in
    /// the cleaner's work directory, which covers offsets up to `end_offset` (the next
    /// segment's base). Returns false, changing nothing, when the log changed since
    /// `cleaning` was taken (truncation, retention).
    pub(crate) fn install_cleaned(
        &self,
        cleaning: &CleaningView,
        group: &[Arc<Segment>],
        end_offset: i64,
    ) -> Result<bool, StorageError> {
        assert!(!group.is_empty());
        let writer = self.writer()?;
        if lock(&self.cleaner).truncations != cleaning.state.truncations {
            return Ok(false);
        }
        let view = self.snapshot();
        let first = group[0].base_offset();
        let Some(at) = view
            .segments
            .iter()
            .position(|segment| Arc::ptr_eq(segment, &group[0]))
        else {
            return Ok(false);
        };
        let still_there = view.segments.len() > at + group.len()
            && group
                .iter()
                .zip(&view.segments[at..])
                .all(|(old, now)| Arc::ptr_eq(old, now))
            && view.segments[at + group.len()].base_offset() == end_offset;
        if !still_there {
            return Ok(false);
        }
        crate::compaction::swap::commit(&self.dir, first, end_offset)
            .context("commit cleaned segment", &self.dir)?;
        crate::compaction::swap::finish(&self.dir).context("swap cleaned segment", &self.dir)?;
        let segment = Segment::open(&self.dir, first).context("open segment", &self.dir)?;
        let mut report = OpenReport::default();
        loader::load_trusted_indexes(&segment, writer.config.index_interval_bytes, &mut report)?;
        let mut segments = Vec::with_capacity(view.segments.len() - group.len() + 1);
        segments.extend(view.segments[..at].iter().cloned());
        segments.push(Arc::new(segment));
        segments.extend(view.segments[at + group.len()..].iter().cloned());
        lock(&self.view).segments = Arc::new(segments);
        Ok(true)
    }

    /// Records a finished cleaning: offsets below `first_dirty_offset` are clean (persisted).
    pub(crate) fn finish_cleaning(
        &self,
        first_dirty_offset: i64,
        tombstone_horizon_ms: Option<i64>,
    ) -> Result<(), StorageError> {
        let _writer = self.writer()?;
        let log_end_offset = self.log_end_offset();
        let mut cleaner = lock(&self.cleaner);
        cleaner.first_dirty_offset = first_dirty_offset.min(log_end_offset);
        cleaner.tombstone_horizon_ms = tombstone_horizon_ms;
        checkpoint::write_tombstone_horizon(&self.dir, tombstone_horizon_ms)
            .context("write tombstone horizon", &self.dir)?;
        checkpoint::write_cleaner_checkpoint(&self.dir, cleaner.first_dirty_offset)
            .context("write cleaner checkpoint", &self.dir)
    }

    /// Whether `close` ran (a long cleaning stops then).
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.writer).closed
    }

    /// The earliest delete horizon of a tombstone the last cleaning kept, if any.
    pub fn tombstone_horizon_ms(&self) -> Option<i64> {
        lock(&self.cleaner).tombstone_horizon_ms
    }

    /// Removes the whole directory (topic deletion). It is first renamed to
    /// `<dir>.deleted` so a crash never leaves a half-deleted log under the original name.
    pub fn delete_files(self) -> Result<(), StorageError> {
        let mut deleted = self.dir.as_os_str().to_owned();
        deleted.push(fs_util::DELETED_SUFFIX);
        let deleted = PathBuf::from(deleted);
        if fs_util::file_exists(&deleted).context("stat", &deleted)? {
            std::fs::remove_dir_all(&deleted).context("remove directory", &deleted)?;
        }
        std::fs::rename(&self.dir, &deleted).context("rename log directory", &self.dir)?;
        if let Some(parent) = self
            .dir
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs_util::fsync_dir(parent).context("fsync directory", parent)?;
        }
        std::fs::remove_dir_all(&deleted).context("remove directory", &deleted)
    }
}

/// A replicated batch may exceed this node's `max.message.bytes` (the leader's config may have
/// been larger when it was written); replication never refuses a batch under this size.
const REPLICATED_BATCH_BYTES_MIN: usize = 64 << 20;

struct ReplicatedEpochs {
    /// `(epoch, first offset)` of each epoch change, in order.
    epochs: Vec<(i32, i64)>,
    next_offset: i64,
}

/// KIP-890 for a planned client append (Kafka's `analyzeAndValidateProducerState` with
/// verification): a producer still verifying may not append above its lowest verifying
/// sequence, and every transaction the payload starts needs that producer's current guard.
fn check_verification(
    verifications: &Verifications,
    payload: &[u8],
    pending: &crate::producer_state::PendingProducers,
    guard: VerificationGuard,
) -> Result<(), AppendError> {
    for item in crate::batch::BatchIter::new(payload) {
        let (_, header) = item?;
        let Some(entry) = verifications.get(header.producer_id) else {
            continue;
        };
        // A verification without a sequence (the group coordinator's, which numbers its
        // batches itself) orders nothing.
        if entry.lowest_sequence >= 0 && header.base_sequence > entry.lowest_sequence {
            return Err(AppendError::OutOfOrderSequence {
                producer_id: header.producer_id,
                producer_epoch: header.producer_epoch,
                sequence: header.base_sequence,
                expected_sequence: entry.lowest_sequence,
            });
        }
    }
    for &(producer_id, _) in pending.started_txns() {
        if !verifications.verifies(producer_id, guard) {
            return Err(AppendError::InvalidTxnState { producer_id });
        }
    }
    Ok(())
}

/// Checks that replicated batches start at or after `log_end_offset` and follow each other
/// in increasing offsets (a compacted leader's log has gaps), and lists where their leader
/// epochs change.
fn replicated_epoch_starts(
    batches: &[u8],
    log_end_offset: i64,
) -> Result<ReplicatedEpochs, AppendError> {
    let mut next_offset = log_end_offset;
    let mut epochs: Vec<(i32, i64)> = Vec::new();
    for item in crate::batch::BatchIter::new(batches) {
        let (_, header) = item?;
        // A compacted leader's log has gaps: a batch may start after the log end.
        if header.base_offset < next_offset {
            return Err(AppendError::Storage(StorageError::OffsetOutOfRange {
                offset: header.base_offset,
                log_start_offset: log_end_offset,
                log_end_offset: next_offset,
            }));
        }
        if epochs
            .last()
            .is_none_or(|(epoch, _)| header.partition_leader_epoch > *epoch)
        {
            epochs.push((header.partition_leader_epoch, header.base_offset));
        }
        next_offset = header.last_offset();
        next_offset += 1;
    }
    Ok(ReplicatedEpochs {
        epochs,
        next_offset,
    })
}
