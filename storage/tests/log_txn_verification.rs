//! KIP-890's verification guard at the log: a marker landing between the coordinator's
//! answer and the verified append makes the append fail (no hanging transaction), a stale
//! guard never starts a later transaction, and a producer with an ongoing transaction of the
//! same epoch needs no verification (transaction version 2: one of an older epoch does).

mod common;

use common::*;
use sluice_storage::{AppendError, Log, LogConfig, TxnMarker, VerificationGuard};

const NOW_MS: i64 = 1_000_000;
const TRANSACTIONAL: i16 = 0x10;
const PRODUCER: i64 = 42;

fn transactional_batch(epoch: i16, sequence: i32) -> Vec<u8> {
    let value = format!("s{sequence}").into_bytes();
    encode_batch(&TestBatch {
        base_offset: 0,
        base_timestamp: 5_000,
        max_timestamp: 5_000,
        attributes: TRANSACTIONAL,
        producer_id: PRODUCER,
        producer_epoch: epoch,
        base_sequence: sequence,
        records: vec![TestRecord {
            timestamp_delta: 0,
            key: None,
            value: Some(&value),
        }],
    })
}

fn abort(epoch: i16) -> TxnMarker {
    TxnMarker {
        producer_id: PRODUCER,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        commit: false,
    }
}

fn open_log(dir: &std::path::Path) -> Log {
    Log::open(dir, LogConfig::default(), 0, NOW_MS).unwrap()
}

fn append_verified(log: &Log, sequence: i32, guard: VerificationGuard) -> Result<i64, AppendError> {
    let mut payload = transactional_batch(0, sequence);
    log.append_verified(&mut payload, 0, NOW_MS, guard)
        .map(|outcome| outcome.base_offset)
}

#[test]
fn a_marker_between_verification_and_append_refuses_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    // The leader records its guard, then asks the coordinator ("yes, added").
    let guard = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    assert!(!guard.is_none());
    assert_eq!(log.txn_verification_guard(PRODUCER), Some(guard));
    // Meanwhile the coordinator times the transaction out and its abort marker lands.
    let marker_offset = log
        .append_txn_marker(abort(0), 0, NOW_MS)
        .unwrap()
        .base_offset;
    assert_eq!(marker_offset, 0);
    assert_eq!(log.txn_verification_guard(PRODUCER), None);
    // The verified batch arrives late: without the guard it would open a transaction no
    // coordinator will end, holding the last stable offset at 1 forever.
    assert!(matches!(
        append_verified(&log, 0, guard),
        Err(AppendError::InvalidTxnState {
            producer_id: PRODUCER
        })
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert!(!log.has_ongoing_txn(PRODUCER));
    assert_eq!(log.last_stable_offset(1), 1);
    // The producer's retry verifies again and gets a fresh guard, which works.
    let retry = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    assert_ne!(retry, guard);
    assert_eq!(append_verified(&log, 0, retry).unwrap(), 1);
    assert!(log.has_ongoing_txn(PRODUCER));
    assert_eq!(log.txn_verification_guard(PRODUCER), None);
    assert_eq!(log.last_stable_offset(2), 1);
}

#[test]
fn a_stale_guard_never_starts_a_later_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let stale = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    log.append_txn_marker(abort(0), 0, NOW_MS).unwrap();
    // A new verification begins (the ABA case): the first answer must not count for it.
    let fresh = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    assert_ne!(fresh, stale);
    assert!(matches!(
        append_verified(&log, 0, stale),
        Err(AppendError::InvalidTxnState { .. })
    ));
    assert!(matches!(
        append_verified(&log, 0, VerificationGuard::NONE),
        Err(AppendError::InvalidTxnState { .. })
    ));
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(append_verified(&log, 0, fresh).unwrap(), 1);
}

#[test]
fn an_ongoing_transaction_needs_no_guard_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let guard = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    assert_eq!(append_verified(&log, 0, guard).unwrap(), 0);
    // Ongoing: no verification, the next batch needs no guard.
    let none = log.start_txn_verification(PRODUCER, 1, 0, NOW_MS);
    assert!(none.is_none());
    assert_eq!(log.txn_verification_guard(PRODUCER), None);
    // A marker ends it before that batch is appended: now it is refused.
    log.append_txn_marker(abort(0), 0, NOW_MS).unwrap();
    assert!(matches!(
        append_verified(&log, 1, none),
        Err(AppendError::InvalidTxnState { .. })
    ));
    assert_eq!(log.log_end_offset(), 2);
    // Idempotent (non-transactional) appends never need a guard.
    let mut plain = simple_batch(1, 10, 5_000);
    let outcome = log
        .append_verified(&mut plain, 0, NOW_MS, VerificationGuard::NONE)
        .unwrap();
    assert_eq!(outcome.base_offset, 2);
}

#[test]
fn the_next_epochs_first_batch_is_verified_while_the_previous_transaction_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let guard = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    assert_eq!(append_verified(&log, 0, guard).unwrap(), 0);
    // Transaction version 2: EndTxn answered epoch 1 before the marker (epoch 1) landed
    // here. The next transaction's first batch must not join the ending one unverified.
    let next = log.start_txn_verification(PRODUCER, 0, 1, NOW_MS);
    assert!(!next.is_none());
    assert_eq!(log.txn_verification_guard(PRODUCER), Some(next));
    // Once the marker is written, a fresh verification starts the new transaction.
    log.append_txn_marker(abort(1), 0, NOW_MS).unwrap();
    assert!(!log.has_ongoing_txn(PRODUCER));
    let fresh = log.start_txn_verification(PRODUCER, 0, 1, NOW_MS);
    assert!(!fresh.is_none());
    let mut payload = transactional_batch(1, 0);
    let outcome = log.append_verified(&mut payload, 0, NOW_MS, fresh).unwrap();
    assert_eq!(outcome.base_offset, 2);
    assert!(log.has_ongoing_txn(PRODUCER));
    assert!(log.start_txn_verification(PRODUCER, 1, 1, NOW_MS).is_none());
}

#[test]
fn a_verifying_producer_cannot_skip_its_lowest_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let guard = log.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    // A retry of sequence 1 racing ahead of the verification of sequence 0.
    assert_eq!(log.start_txn_verification(PRODUCER, 1, 0, NOW_MS), guard);
    assert!(matches!(
        append_verified(&log, 1, guard),
        Err(AppendError::OutOfOrderSequence {
            sequence: 1,
            expected_sequence: 0,
            ..
        })
    ));
    assert_eq!(append_verified(&log, 0, guard).unwrap(), 0);
    assert_eq!(
        append_verified(&log, 1, VerificationGuard::NONE).unwrap(),
        1
    );
}

#[test]
fn a_replicated_marker_clears_the_guard_too() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = open_log(leader_dir.path());
    let follower = open_log(follower_dir.path());
    // The follower verifies while still leader in its own eyes; the new leader's marker
    // arrives by replication.
    let guard = follower.start_txn_verification(PRODUCER, 0, 0, NOW_MS);
    leader.append_txn_marker(abort(0), 0, NOW_MS).unwrap();
    let read = leader.read(0, 1 << 20, true).unwrap();
    follower.append_replicated(&read.records, NOW_MS).unwrap();
    assert_eq!(follower.txn_verification_guard(PRODUCER), None);
    assert!(matches!(
        append_verified(&follower, 0, guard),
        Err(AppendError::InvalidTxnState { .. })
    ));
}

#[test]
fn a_verification_without_a_sequence_orders_nothing() {
    // The group coordinator's (TxnOffsetCommit): it numbers its batches itself.
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path());
    let guard = log.start_txn_verification(PRODUCER, -1, 0, NOW_MS);
    assert_eq!(append_verified(&log, 4, guard).unwrap(), 0);
    assert!(log.has_ongoing_txn(PRODUCER));
}
