//! Timestamp lookups, LogAppendTime, retention by time and bytes, DeleteRecords and log start
//! offsets.

mod common;
mod support;

use common::*;
use sluice_storage::{
    validate_batches, BatchHeader, Log, LogConfig, RetentionOutcome, StorageError, TimestampType,
};
use support::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// Timestamps go up with some going back, like real producers.
fn timestamp_of(at: usize) -> i64 {
    let base = 10_000 + 100 * at as i64;
    if at % 5 == 3 {
        base - 450
    } else {
        base
    }
}

#[test]
fn find_batch_by_timestamp_matches_a_linear_scan() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let counts: Vec<usize> = (0..60).map(|at| 1 + at % 3).collect();
    let stored = append_many(&log, &counts, 20, timestamp_of);
    for target in (9_000..16_500).step_by(37) {
        let expected = stored.iter().find(|batch| batch.max_timestamp >= target);
        let found = log.find_batch_by_timestamp(target).unwrap();
        assert_eq!(
            found.as_deref(),
            expected.map(|batch| batch.bytes.as_slice()),
            "target {target}"
        );
    }
    let (max, batch) = log.max_timestamp().unwrap().unwrap();
    let expected = stored
        .iter()
        .max_by_key(|batch| (batch.max_timestamp, -batch.base_offset))
        .unwrap();
    assert_eq!(max, expected.max_timestamp);
    assert_eq!(batch.as_ref(), expected.bytes.as_slice());

    // The same answers after a clean restart (segment maxima come from the time indexes).
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert!(log.open_report().clean_shutdown);
    for target in (9_000..16_500).step_by(101) {
        let expected = stored.iter().find(|batch| batch.max_timestamp >= target);
        let found = log.find_batch_by_timestamp(target).unwrap();
        assert_eq!(
            found.as_deref(),
            expected.map(|batch| batch.bytes.as_slice()),
            "target {target}"
        );
    }
    assert_eq!(
        log.max_timestamp().unwrap().unwrap().0,
        expected.max_timestamp
    );
}

#[test]
fn empty_log_has_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(log.find_batch_by_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
}

#[test]
fn log_append_time_is_stamped_with_a_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..config()
    };
    let log = Log::open(dir.path(), config, 0, 0).unwrap();
    let mut batch = simple_batch(3, 10, 5);
    let outcome = log.append(&mut batch, 0, 123_456).unwrap();
    assert_eq!(outcome.log_append_time_ms, 123_456);
    let records = log.read(0, 1 << 20, false).unwrap().records;
    validate_batches(&records, 1 << 20).unwrap();
    let header = BatchHeader::parse(&records).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 123_456);
    assert_eq!(header.base_timestamp, 5);
    assert_eq!(
        log.find_batch_by_timestamp(123_456).unwrap().as_deref(),
        Some(records.as_ref())
    );
    assert_eq!(log.find_batch_by_timestamp(123_457).unwrap(), None);
}

#[test]
fn retention_by_bytes_deletes_oldest_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &[2; 40], 30, |_| 1_000_000);
    let files = segment_files(dir.path());
    assert!(files.len() >= 4);
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let retention_bytes = total - files[0].1 - files[1].1;
    log.update_config(LogConfig {
        retention_bytes: retention_bytes as i64,
        retention_ms: -1,
        ..config()
    });
    let outcome = log.enforce_retention(1_000_000).unwrap();
    let second_base: i64 = files[2].0.trim_end_matches(".log").parse().unwrap();
    assert_eq!(
        outcome,
        RetentionOutcome {
            deleted_segments: 2,
            log_start_offset: second_base
        }
    );
    assert_eq!(segment_files(dir.path()), files[2..].to_vec());
    assert_eq!(log.size_bytes(), retention_bytes);
    assert!(log.read(second_base - 1, 100, true).is_err());
    let first_kept = containing(&stored, second_base);
    assert_eq!(
        log.read(second_base, 1, true).unwrap().records.as_ref(),
        stored[first_kept].bytes.as_slice()
    );
    // Nothing more to delete.
    assert_eq!(
        log.enforce_retention(1_000_000).unwrap().deleted_segments,
        0
    );
}

#[test]
fn retention_by_time_deletes_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: 10_000,
            ..config()
        },
        0,
        0,
    )
    .unwrap();
    let old = append_many(&log, &[2; 20], 30, |_| 1_000);
    let boundary = log.log_end_offset();
    // Make sure the new batches start a new segment so the expired ones are whole segments.
    log.update_config(LogConfig {
        segment_ms: 0,
        retention_ms: 10_000,
        ..config()
    });
    let new = append_many(&log, &[2; 10], 30, |_| 50_000);
    assert!(segment_files(dir.path())
        .iter()
        .any(|(name, _)| name == &format!("{boundary:020}.log")));
    let outcome = log.enforce_retention(55_000).unwrap();
    assert_eq!(outcome.log_start_offset, boundary);
    assert!(outcome.deleted_segments >= 2);
    assert_eq!(log.log_start_offset(), boundary);
    assert_eq!(
        log.read(boundary, 1, true).unwrap().records.as_ref(),
        new[0].bytes.as_slice()
    );
    assert!(old.iter().all(|batch| batch.last_offset < boundary));
}

#[test]
fn fully_expired_log_rolls_the_active_segment_and_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: 10,
            ..config()
        },
        0,
        0,
    )
    .unwrap();
    append_many(&log, &[3; 15], 30, |_| 100);
    let end = log.log_end_offset();
    let outcome = log.enforce_retention(10_000).unwrap();
    assert_eq!(outcome.log_start_offset, end);
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        segment_files(dir.path()),
        vec![(format!("{end:020}.log"), 0)]
    );
    assert!(log.read(end, 100, true).unwrap().records.is_empty());
    let mut next = simple_batch(1, 1, 20_000);
    assert_eq!(log.append(&mut next, 0, 20_000).unwrap().base_offset, end);
    drop(log);
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end, end + 1)
    );
}

#[test]
fn delete_records_moves_the_log_start_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &[3; 40], 30, |_| 7);
    let files = segment_files(dir.path());
    let third_base: i64 = files[2].0.trim_end_matches(".log").parse().unwrap();
    let target = third_base + 4;
    assert_eq!(log.delete_records_before(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(segment_files(dir.path()), files[2..].to_vec());
    assert!(log.read(target - 1, 100, true).is_err());
    let read = log.read(target, 1, true).unwrap();
    assert_eq!(read.log_start_offset, target);
    assert_eq!(
        read.records.as_ref(),
        stored[containing(&stored, target)].bytes.as_slice()
    );
    // Moving backwards is a no-op; beyond the end is an error.
    assert_eq!(log.delete_records_before(3).unwrap(), target);
    let end = log.log_end_offset();
    assert!(matches!(
        log.delete_records_before(end + 1),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Timestamp lookups ignore batches wholly below the log start.
    assert_eq!(
        log.find_batch_by_timestamp(0).unwrap().as_deref(),
        Some(stored[containing(&stored, target)].bytes.as_slice())
    );
    drop(log);

    // The caller persists the log start and passes it back as a hint.
    let log = Log::open(dir.path(), config(), target, 0).unwrap();
    assert_eq!(log.log_start_offset(), target);
    let log_without_hint = {
        drop(log);
        Log::open(dir.path(), config(), 0, 0).unwrap()
    };
    assert_eq!(log_without_hint.log_start_offset(), third_base);
    assert_eq!(log_without_hint.delete_records_before(end).unwrap(), end);
    assert_eq!(
        log_without_hint.size_bytes(),
        segment_files(dir.path())
            .iter()
            .map(|(_, size)| size)
            .sum::<u64>()
    );
}

#[test]
fn hint_beyond_the_log_end_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append_many(&log, &[2; 5], 10, |_| 0);
    drop(log);
    let log = Log::open(dir.path(), config(), 500, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(
        segment_files(dir.path()),
        vec![(format!("{:020}.log", 500), 0)]
    );
    let fresh = tempfile::tempdir().unwrap();
    let log = Log::open(fresh.path(), config(), 42, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (42, 42));
}

#[test]
fn delete_files_removes_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let log = Log::open(&dir, config(), 0, 0).unwrap();
    append_many(&log, &[2; 5], 10, |_| 0);
    log.delete_files().unwrap();
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}
