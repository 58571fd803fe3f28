//! A follower's log: batches copied from a leader rebuild the idempotent producers' state, so
//! the follower dedups retries and checks sequences once it leads; the high watermark
//! checkpoint survives a reopen, bounded by the log.

mod common;

use common::*;
use sluice_storage::{AppendError, Log, LogConfig};

const NOW_MS: i64 = 1_000_000;
const PRODUCER_ID: i64 = 7;
const EPOCH: i16 = 0;

fn idempotent_batch(sequence: i32, count: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|at| format!("s{}", i64::from(sequence) + at as i64).into_bytes())
        .collect();
    let records = values
        .iter()
        .map(|value| TestRecord {
            timestamp_delta: 0,
            key: None,
            value: Some(value),
        })
        .collect();
    encode_batch(&TestBatch {
        base_offset: 0,
        base_timestamp: 5_000,
        max_timestamp: 5_000,
        attributes: 0,
        producer_id: PRODUCER_ID,
        producer_epoch: EPOCH,
        base_sequence: sequence,
        records,
    })
}

/// Every byte of `log` from its start (whole batches, as a follower's fetch returns them).
fn all_batches(log: &Log) -> Vec<u8> {
    log.read(log.log_start_offset(), 1 << 20, true)
        .unwrap()
        .records
        .to_vec()
}

#[test]
fn a_follower_that_becomes_leader_dedups_retries_and_checks_sequences() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Log::open(leader_dir.path(), LogConfig::default(), 0, 0).unwrap();
    leader
        .append(&mut idempotent_batch(0, 3), 4, NOW_MS)
        .unwrap();
    leader
        .append(&mut idempotent_batch(3, 2), 4, NOW_MS)
        .unwrap();

    let follower_dir = tempfile::tempdir().unwrap();
    let follower = Log::open(follower_dir.path(), LogConfig::default(), 0, 0).unwrap();
    let end = follower.append_replicated(&all_batches(&leader), NOW_MS);
    assert_eq!(end.unwrap(), 5);
    let entry = follower
        .producer_entry(PRODUCER_ID)
        .expect("producer known");
    assert_eq!((entry.producer_epoch, entry.last_sequence()), (EPOCH, 4));

    // Leading now: the producer retries its last batch, which the old leader had answered
    // or not; it is found at its original offsets and not written again.
    let retry = follower
        .append(&mut idempotent_batch(3, 2), 5, NOW_MS)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.last_offset), (3, 4));
    assert_eq!(follower.log_end_offset(), 5);
    // A gap is out of order, against the replicated state.
    let gap = follower.append(&mut idempotent_batch(9, 1), 5, NOW_MS);
    assert!(
        matches!(
            gap,
            Err(AppendError::OutOfOrderSequence {
                expected_sequence: 5,
                ..
            })
        ),
        "{gap:?}"
    );
    let next = follower
        .append(&mut idempotent_batch(5, 1), 5, NOW_MS)
        .unwrap();
    assert_eq!((next.base_offset, next.duplicate), (5, false));
}

#[test]
fn the_high_watermark_checkpoint_is_restored_within_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    // Nothing persisted yet: the log start.
    assert_eq!(log.high_watermark_at_open(), 0);
    log.append(&mut simple_batch(5, 10, 1_000), 0, NOW_MS)
        .unwrap();
    log.append(&mut simple_batch(3, 10, 1_000), 0, NOW_MS)
        .unwrap();
    log.checkpoint_high_watermark(3).unwrap();
    drop(log);

    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    assert_eq!(log.high_watermark_at_open(), 3);
    // A checkpoint above the log end (a tail cut since) is bounded by the log end.
    log.checkpoint_high_watermark(8).unwrap();
    log.truncate_to(5).unwrap();
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.high_watermark_at_open(), 5);
}
