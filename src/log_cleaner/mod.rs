//! The log cleaner task (Kafka's LogCleaner thread and LogCleanerManager): compaction of
//! the topics whose `cleanup.policy` includes "compact", one partition at a time.
//!
//! Each pass rolls compacted replicas whose active segment is older than `segment.ms` (or
//! `max.compaction.lag.ms`), so a quiet partition's last records become cleanable, then
//! cleans the dirtiest eligible replica: dirty ratio at least `min.cleanable.dirty.ratio`,
//! or dirty records older than `max.compaction.lag.ms`, or a kept tombstone's delete horizon
//! passed. The cleaning itself (`sluice_storage::Log::clean`) runs on the blocking pool,
//! throttled to `--log-cleaner-io-max-bytes-per-second`. Compaction is local to every
//! replica, as in Kafka: followers clean their own copy.

mod codec;

use std::sync::Arc;
use std::time::Duration;

use sluice_storage::compaction::filter::records_section;
use sluice_storage::compaction::records::parse_records;
use sluice_storage::compaction::{CleanerConfig, RECORDS_BYTES_MAX};
use sluice_storage::BatchIter;

use crate::broker::{now_ms, Broker, Replica};
use crate::topic_config::{self, CompactionSettings};

pub use codec::KafkaCodecs;

/// Runs cleaning passes until the broker stops: at once again after a cleaning, after
/// `--log-cleaner-backoff-ms` when nothing needed cleaning.
pub fn spawn(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let backoff = Duration::from_millis(broker.config.log_cleaner_backoff_ms);
        loop {
            let pass = broker.clone();
            let cleaned = tokio::task::spawn_blocking(move || clean_dirtiest(&pass))
                .await
                .unwrap_or_else(|error| {
                    tracing::error!(%error, "log cleaner pass failed");
                    false
                });
            if !cleaned {
                tokio::time::sleep(backoff).await;
            }
        }
    })
}

/// A replica the cleaner may clean now, and how urgently.
struct Candidate {
    replica: Arc<Replica>,
    settings: CompactionSettings,
    /// Overdue logs (max lag, tombstones) before the dirtiest.
    overdue: bool,
    dirty_ratio: f64,
}

/// One pass: returns whether a replica was cleaned.
fn clean_dirtiest(broker: &Broker) -> bool {
    let now = now_ms();
    let mut best: Option<Candidate> = None;
    let mut max_dirty_ratio: f64 = 0.0;
    let topics = broker.topics();
    for topic in topics.by_name.values() {
        let Some(settings) = topic_config::compaction_settings(&topic.overrides) else {
            continue;
        };
        let segment_ms = topic_config::log_config(&broker.config, &topic.overrides).segment_ms;
        for replica in topic.partitions.iter().filter_map(|p| p.replica.as_ref()) {
            let Some(candidate) = assess(replica, settings, segment_ms, now) else {
                continue;
            };
            max_dirty_ratio = max_dirty_ratio.max(candidate.dirty_ratio);
            if !eligible(&candidate) {
                continue;
            }
            let better = best.as_ref().is_none_or(|best| {
                (candidate.overdue, candidate.dirty_ratio) > (best.overdue, best.dirty_ratio)
            });
            if better {
                best = Some(candidate);
            }
        }
    }
    broker
        .metrics
        .log_cleaner_max_dirty_ratio
        .set(max_dirty_ratio);
    match best {
        Some(candidate) => clean(broker, &candidate, now),
        None => false,
    }
}

fn assess(
    replica: &Arc<Replica>,
    settings: CompactionSettings,
    segment_ms: i64,
    now: i64,
) -> Option<Candidate> {
    let log = &replica.log;
    let roll_age_ms = segment_ms.min(settings.max_compaction_lag_ms);
    if let Err(error) = log.roll_if_older(now, roll_age_ms) {
        tracing::warn!(%error, topic = %replica.topic, partition = replica.index, "cannot roll for the cleaner");
    }
    let stats = match log.dirty_stats(now, settings.min_compaction_lag_ms) {
        Ok(stats) => stats,
        Err(error) => {
            tracing::warn!(%error, topic = %replica.topic, partition = replica.index, "cannot measure dirty bytes");
            return None;
        }
    };
    let lag_passed = stats.dirty_bytes > 0
        && stats
            .first_dirty_timestamp_ms
            .is_some_and(|ms| now.saturating_sub(ms) >= settings.max_compaction_lag_ms);
    let tombstones_due = log.tombstone_horizon_ms().is_some_and(|ms| ms <= now);
    Some(Candidate {
        replica: replica.clone(),
        settings,
        overdue: lag_passed || tombstones_due,
        dirty_ratio: if stats.dirty_bytes > 0 {
            stats.dirty_ratio()
        } else {
            0.0
        },
    })
}

fn eligible(candidate: &Candidate) -> bool {
    candidate.overdue
        || (candidate.dirty_ratio > 0.0
            && candidate.dirty_ratio >= candidate.settings.min_cleanable_dirty_ratio)
}

fn clean(broker: &Broker, candidate: &Candidate, now: i64) -> bool {
    let replica = &candidate.replica;
    let config = CleanerConfig {
        dedupe_buffer_bytes: broker.config.log_cleaner_dedupe_buffer_size,
        delete_retention_ms: candidate.settings.delete_retention_ms,
        min_compaction_lag_ms: candidate.settings.min_compaction_lag_ms,
        io_bytes_per_second: broker.config.log_cleaner_io_max_bytes_per_second,
        // Never above the high watermark (what is above may still be truncated) nor into an
        // open transaction.
        stable_offset: replica.log.last_stable_offset(replica.high_watermark()),
    };
    match replica.log.clean(&config, &KafkaCodecs, now) {
        Ok(outcome) => {
            broker.metrics.log_cleaner_runs.inc();
            broker
                .metrics
                .log_cleaner_bytes_reclaimed
                .inc_by(outcome.bytes_reclaimed());
            tracing::info!(
                topic = %replica.topic,
                partition = replica.index,
                segments = outcome.segments_cleaned,
                bytes_before = outcome.bytes_before,
                bytes_after = outcome.bytes_after,
                records_removed = outcome.stats.records_removed,
                tombstones_removed = outcome.stats.tombstones_removed,
                first_dirty_offset = outcome.first_dirty_offset,
                "log cleaned"
            );
            outcome.segments_cleaned > 0
        }
        Err(error) => {
            tracing::error!(%error, topic = %replica.topic, partition = replica.index, "log cleaning failed");
            false
        }
    }
}

/// Whether a produce payload holds a record without a key (a compacted topic refuses it:
/// Kafka's "Compacted topic cannot accept message without key", INVALID_RECORD). Batches
/// that cannot be decoded are left to the append's own checks.
pub fn has_null_key(records: &[u8]) -> bool {
    for item in BatchIter::new(records) {
        let Ok((position, header)) = item else {
            return false;
        };
        if header.is_control() {
            continue;
        }
        let batch = &records[position..position + header.size_bytes()];
        let Some(section) = records_section(batch, &header, &KafkaCodecs, RECORDS_BYTES_MAX) else {
            continue;
        };
        let Ok(parsed) = parse_records(&section, header.record_count) else {
            continue;
        };
        if parsed.iter().any(|record| record.key.is_none()) {
            return true;
        }
    }
    false
}
