//! Append/read round trips over several segments, read limits, offsets out of range, failed
//! appends, and concurrent readers.

mod common;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use sluice_storage::{
    validate_batches, AppendError, BatchError, BatchIter, CorruptReason, Log, LogConfig, ReadError,
};
use support::*;

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

/// 40 batches of 1..=4 records, about 100-260 bytes each: several segments.
fn fill(log: &Log) -> Vec<Stored> {
    let counts: Vec<usize> = (0..40).map(|at| 1 + at % 4).collect();
    append_many(log, &counts, 20, |at| 1_000 + at as i64)
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
}

#[test]
fn every_offset_reads_from_the_batch_containing_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(), 0, 0).unwrap();
    let stored = fill(&log);
    let end = stored.last().unwrap().last_offset + 1;
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);
    let files = segment_files(dir.path());
    assert!(files.len() >= 5, "expected several segments, got {files:?}");
    assert!(files.iter().all(|(_, size)| *size <= 1_000));
    let total: u64 = stored.iter().map(|batch| batch.bytes.len() as u64).sum();
    assert_eq!(log.size_bytes(), total);
    assert_eq!(files.iter().map(|(_, size)| size).sum::<u64>(), total);

    for offset in 0..end {
        let outcome = log.read(offset, 1 << 20, false).unwrap();
        assert_eq!(outcome.high_watermark, end);
        let first = containing(&stored, offset);
        // Whole batches from the containing one to the end of its segment.
        let mut expected = Vec::new();
        for batch in &stored[first..] {
            if batch.base_offset != stored[first].base_offset
                && segment_starts_at(&files, batch.base_offset)
            {
                break;
            }
            expected.extend_from_slice(&batch.bytes);
        }
        assert_eq!(
            outcome.records.as_ref(),
            expected.as_slice(),
            "offset {offset}"
        );
    }
}

fn segment_starts_at(files: &[(String, u64)], offset: i64) -> bool {
    files
        .iter()
        .any(|(name, _)| name == &format!("{offset:020}.log"))
}

#[test]
fn max_bytes_and_min_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    let stored = fill(&log);
    let first = stored[0].bytes.len();
    let second = stored[1].bytes.len();

    let too_small = log.read(0, first - 1, false).unwrap();
    assert!(too_small.records.is_empty());
    let forced = log.read(0, first - 1, true).unwrap();
    assert_eq!(forced.records.as_ref(), stored[0].bytes.as_slice());
    let two = log.read(0, first + second, false).unwrap();
    assert_eq!(two.records.len(), first + second);
    let two_and_a_bit = log.read(0, first + second + 10, true).unwrap();
    assert_eq!(
        two_and_a_bit.records.len(),
        first + second,
        "never a partial batch"
    );
    validate_batches(&two_and_a_bit.records, 1 << 20).unwrap();
}

#[test]
fn out_of_range_and_end_of_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(), 0, 0).unwrap();
    assert!(log.read(0, 100, true).unwrap().records.is_empty());
    let stored = fill(&log);
    let end = stored.last().unwrap().last_offset + 1;
    assert!(log.read(end, 100, true).unwrap().records.is_empty());
    match log.read(end + 1, 100, true) {
        Err(ReadError::OffsetOutOfRange {
            offset,
            log_start_offset,
            log_end_offset,
        }) => {
            assert_eq!(
                (offset, log_start_offset, log_end_offset),
                (end + 1, 0, end)
            );
        }
        other => panic!("expected out of range, got {other:?}"),
    }
    assert!(matches!(
        log.read(-1, 100, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn failed_appends_leave_the_log_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 500,
        ..small_config()
    };
    let log = Log::open(dir.path(), config, 0, 0).unwrap();
    let stored = append_many(&log, &[2, 3], 10, |_| 5);
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let files = segment_files(dir.path());

    let good = simple_batch(2, 10, 5);
    let mut bad_crc = good.clone();
    bad_crc[70] ^= 0xff;
    let mut payload = good.clone();
    payload.extend_from_slice(&bad_crc);
    let payload_before = payload.clone();
    assert!(matches!(
        log.append(&mut payload, 1, 0),
        Err(AppendError::Batch(BatchError::Corrupt(
            CorruptReason::CrcMismatch
        )))
    ));
    assert_eq!(
        payload, payload_before,
        "nothing is stamped before validation passes"
    );
    let mut too_large = simple_batch(1, 600, 5);
    assert!(matches!(
        log.append(&mut too_large, 1, 0),
        Err(AppendError::Batch(BatchError::TooLarge { .. }))
    ));
    let mut torn = good[..good.len() - 3].to_vec();
    assert!(matches!(
        log.append(&mut torn, 1, 0),
        Err(AppendError::Batch(BatchError::Corrupt(_)))
    ));
    assert!(matches!(
        log.append(&mut [], 1, 0),
        Err(AppendError::Batch(BatchError::Empty))
    ));

    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(segment_files(dir.path()), files);
    let mut next = simple_batch(1, 10, 5);
    let outcome = log.append(&mut next, 1, 0).unwrap();
    assert_eq!(outcome.base_offset, stored[1].last_offset + 1);
}

#[test]
fn append_larger_than_a_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 300,
            ..LogConfig::default()
        },
        0,
        0,
    )
    .unwrap();
    let mut big = simple_batch(1, 400, 0);
    assert!(matches!(
        log.append(&mut big, 0, 0),
        Err(AppendError::LargerThanSegment { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn append_outcome_and_stamped_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    let mut first = simple_batch(3, 4, 10);
    first.extend_from_slice(&simple_batch(2, 4, 10));
    let bytes = first.len() as u64;
    let outcome = log.append(&mut first, 7, 99).unwrap();
    assert_eq!(outcome.base_offset, 0);
    assert_eq!(outcome.last_offset, 4);
    assert_eq!(outcome.record_count, 5);
    assert_eq!(outcome.bytes, bytes);
    assert_eq!(outcome.log_append_time_ms, -1);
    assert_eq!(outcome.log_start_offset, 0);
    let read = log.read(3, 1 << 20, false).unwrap();
    let headers: Vec<_> = BatchIter::new(&read.records)
        .map(|item| item.unwrap().1)
        .collect();
    assert_eq!(headers.len(), 1);
    assert_eq!((headers[0].base_offset, headers[0].last_offset()), (3, 4));
    assert_eq!(headers[0].partition_leader_epoch, 7);
}

#[test]
fn segment_ms_rolls_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config, 0, 0).unwrap();
    for now_ms in [10_000, 10_500, 11_000, 11_200] {
        let mut batch = simple_batch(1, 1, now_ms);
        log.append(&mut batch, 0, now_ms).unwrap();
    }
    let names: Vec<String> = segment_files(dir.path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names,
        vec![format!("{:020}.log", 0), format!("{:020}.log", 2)]
    );
}

#[test]
fn concurrent_readers_only_see_whole_committed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_config(), 0, 0).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let mut offset = 0;
                    loop {
                        let outcome = log.read(offset, 700, true).unwrap();
                        if outcome.records.is_empty() {
                            assert_eq!(offset, outcome.high_watermark);
                            break;
                        }
                        validate_batches(&outcome.records, 1 << 20).unwrap();
                        for item in BatchIter::new(&outcome.records) {
                            let header = item.unwrap().1;
                            assert!(
                                header.base_offset <= offset && offset <= header.last_offset() + 1
                            );
                            assert!(header.last_offset() < outcome.high_watermark);
                            offset = header.last_offset() + 1;
                        }
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    for at in 0..300 {
        let mut batch = simple_batch(1 + at % 5, 30, at as i64);
        log.append(&mut batch, 0, 0).unwrap();
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
    assert_eq!(
        log.log_end_offset(),
        (0..300).map(|at| 1 + at % 5).sum::<usize>() as i64
    );
}

#[test]
fn huge_record_counts_roll_instead_of_overflowing_relative_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    let mut huge = simple_batch(1, 1, 0);
    huge[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    huge[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    fix_crc(&mut huge);
    for round in 0..3i64 {
        let mut payload = huge.clone();
        let outcome = log.append(&mut payload, 0, 0).unwrap();
        assert_eq!(outcome.base_offset, round * i64::from(i32::MAX));
    }
    // Three batches of 2^31-1 offsets cannot share one segment's u32 relative offsets.
    assert_eq!(segment_files(dir.path()).len(), 2);
    let last = log
        .read(2 * i64::from(i32::MAX) + 5, 1 << 20, false)
        .unwrap();
    assert_eq!(last.records.len(), huge.len());
}
