//! Idempotent producers at the log: duplicates, gaps, epochs, unknown producers, sequence
//! wrap-around, multi-batch payloads, snapshots and replay across restarts, crash-cut tails,
//! expiry, and a property test of retries against a model of what the log must hold.

mod common;

use std::fs::OpenOptions;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use sluice_storage::producer_snapshot::{list_snapshots, snapshot_path};
use sluice_storage::{AppendError, AppendOutcome, BatchIter, Log, LogConfig};

const NOW_MS: i64 = 1_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// A batch of `count` records from producer `producer_id`, epoch `epoch`, first sequence
/// `sequence`; the values name the sequence so stored copies can be told apart.
fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|at| format!("p{producer_id}-e{epoch}-s{}", sequence as i64 + at as i64).into_bytes())
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
        base_timestamp: 5_000 + i64::from(sequence),
        max_timestamp: 5_000 + i64::from(sequence),
        attributes: 0,
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
        records,
    })
}

fn append(log: &Log, mut payload: Vec<u8>) -> Result<AppendOutcome, AppendError> {
    log.append(&mut payload, 0, NOW_MS)
}

fn append_at(log: &Log, mut payload: Vec<u8>, now_ms: i64) -> Result<AppendOutcome, AppendError> {
    log.append(&mut payload, 0, now_ms)
}

/// Every stored batch's (producer id, epoch, first sequence, base offset, last offset).
fn stored_batches(log: &Log) -> Vec<(i64, i16, i32, i64, i64)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        for item in BatchIter::new(&records) {
            let header = item.unwrap().1;
            out.push((
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.base_offset,
                header.last_offset(),
            ));
            offset = header.last_offset() + 1;
        }
    }
    out
}

fn expect_out_of_order(result: Result<AppendOutcome, AppendError>, expected: i32) {
    match result {
        Err(AppendError::OutOfOrderSequence {
            expected_sequence, ..
        }) => assert_eq!(expected_sequence, expected),
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
}

#[test]
fn each_of_the_last_five_batches_is_a_duplicate_with_its_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let mut originals = Vec::new();
    for at in 0..7 {
        let outcome = append(&log, idempotent_batch(7, 0, at * 2, 2)).unwrap();
        assert!(!outcome.duplicate);
        assert_eq!(outcome.base_offset, i64::from(at) * 2);
        originals.push(outcome);
    }
    let end = log.log_end_offset();
    for at in 2..7 {
        let outcome = append(&log, idempotent_batch(7, 0, at * 2, 2)).unwrap();
        let original = originals[at as usize];
        assert!(outcome.duplicate);
        assert_eq!(
            (
                outcome.base_offset,
                outcome.last_offset,
                outcome.record_count
            ),
            (original.base_offset, original.last_offset, 0)
        );
        assert_eq!(log.log_end_offset(), end, "nothing written");
    }
    // Older than the five retained: Kafka answers out of order.
    expect_out_of_order(append(&log, idempotent_batch(7, 0, 2, 2)), 14);
    // Same first sequence but a different last sequence is not a duplicate.
    expect_out_of_order(append(&log, idempotent_batch(7, 0, 12, 1)), 14);
    assert_eq!(stored_batches(&log).len(), 7);
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn a_gap_is_out_of_order_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(1, 0, 0, 3)).unwrap();
    expect_out_of_order(append(&log, idempotent_batch(1, 0, 4, 1)), 3);
    expect_out_of_order(append(&log, idempotent_batch(1, 0, 1, 1)), 3);
    assert_eq!(log.log_end_offset(), 3);
    let outcome = append(&log, idempotent_batch(1, 0, 3, 1)).unwrap();
    assert_eq!(outcome.base_offset, 3);
    assert_eq!(log.producer_entry(1).unwrap().last_sequence(), 3);
}

#[test]
fn epochs_bump_from_sequence_zero_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(3, 0, 0, 2)).unwrap();
    // A new epoch must start at 0.
    expect_out_of_order(append(&log, idempotent_batch(3, 1, 2, 1)), 0);
    let bumped = append(&log, idempotent_batch(3, 1, 0, 1)).unwrap();
    assert_eq!(bumped.base_offset, 2);
    let entry = log.producer_entry(3).unwrap();
    assert_eq!(entry.producer_epoch, 1);
    assert_eq!(
        entry.batches.len(),
        1,
        "the old epoch's batches are forgotten"
    );
    // The old epoch, even a retry of an appended batch, is a zombie.
    for payload in [idempotent_batch(3, 0, 0, 2), idempotent_batch(3, 0, 2, 1)] {
        match append(&log, payload) {
            Err(AppendError::InvalidProducerEpoch {
                producer_id: 3,
                producer_epoch: 0,
                current_epoch: 1,
            }) => {}
            other => panic!("expected InvalidProducerEpoch, got {other:?}"),
        }
    }
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn unknown_producers_are_accepted_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(9, 4, 42, 2)).unwrap();
    expect_out_of_order(append(&log, idempotent_batch(9, 4, 45, 1)), 44);
    append(&log, idempotent_batch(9, 4, 44, 1)).unwrap();
    // Non-idempotent batches are never checked.
    append(&log, simple_batch(2, 5, 0)).unwrap();
    append(&log, simple_batch(2, 5, 0)).unwrap();
    assert_eq!(log.producer_count(), 1);
    assert_eq!(log.log_end_offset(), 7);
}

#[test]
fn negative_sequences_are_invalid_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    match append(&log, idempotent_batch(9, 0, -1, 1)) {
        Err(AppendError::InvalidSequence {
            producer_id: 9,
            sequence: -1,
        }) => {}
        other => panic!("expected InvalidSequence, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn sequences_wrap_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    // MAX-1, MAX, 0: the last sequence is 0.
    append(&log, idempotent_batch(5, 0, i32::MAX - 1, 3)).unwrap();
    assert_eq!(log.producer_entry(5).unwrap().last_sequence(), 0);
    let retry = append(&log, idempotent_batch(5, 0, i32::MAX - 1, 3)).unwrap();
    assert!(retry.duplicate);
    expect_out_of_order(append(&log, idempotent_batch(5, 0, 0, 1)), 1);
    append(&log, idempotent_batch(5, 0, 1, 1)).unwrap();
    // A batch ending exactly at MAX is followed by 0.
    append(&log, idempotent_batch(6, 0, i32::MAX, 1)).unwrap();
    append(&log, idempotent_batch(6, 0, 0, 1)).unwrap();
    assert_eq!(log.producer_entry(6).unwrap().last_sequence(), 0);
}

#[test]
fn multi_batch_payloads_are_checked_in_order_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let mut payload = idempotent_batch(1, 0, 0, 2);
    payload.extend(idempotent_batch(2, 0, 0, 1));
    payload.extend(idempotent_batch(1, 0, 2, 1));
    let outcome = append(&log, payload.clone()).unwrap();
    assert_eq!((outcome.base_offset, outcome.last_offset), (0, 3));
    assert_eq!(log.producer_entry(1).unwrap().batches.len(), 2);

    // The whole payload again: every batch is a duplicate.
    let again = append(&log, payload).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (0, 3));

    // The second batch has a gap: the first is not written either.
    let mut gapped = idempotent_batch(1, 0, 3, 1);
    gapped.extend(idempotent_batch(1, 0, 9, 1));
    expect_out_of_order(append(&log, gapped), 4);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.producer_entry(1).unwrap().last_sequence(), 2);

    // A duplicate mixed with a new batch is refused whole.
    let mut mixed = idempotent_batch(2, 0, 0, 1);
    mixed.extend(idempotent_batch(2, 0, 1, 1));
    assert!(matches!(
        append(&log, mixed),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    // The same new batch twice in one payload: the second copy is out of order.
    let mut twice = idempotent_batch(1, 0, 3, 1);
    twice.extend(idempotent_batch(1, 0, 3, 1));
    assert!(matches!(
        append(&log, twice),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(stored_batches(&log).len(), 3);
}

#[test]
fn state_survives_a_clean_restart_through_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    for at in 0..6 {
        append(&log, idempotent_batch(1, 2, at * 3, 3)).unwrap();
    }
    append(&log, idempotent_batch(8, 0, 100, 1)).unwrap();
    let before = (log.producer_entry(1), log.producer_entry(8));
    log.close().unwrap();
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![19]);
    drop(log);

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert!(log.open_report().clean_shutdown);
    assert_eq!((log.producer_entry(1), log.producer_entry(8)), before);
    let retry = append(&log, idempotent_batch(1, 2, 12, 3)).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, 12);
    expect_out_of_order(append(&log, idempotent_batch(1, 2, 19, 1)), 18);
    append(&log, idempotent_batch(8, 0, 101, 1)).unwrap();
}

#[test]
fn state_is_replayed_from_the_log_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    for at in 0..40 {
        append(&log, idempotent_batch(at % 3, 0, (at / 3) as i32 * 2, 2)).unwrap();
    }
    let before: Vec<_> = (0..3).map(|id| log.producer_entry(id)).collect();
    log.close().unwrap();
    drop(log);
    for offset in list_snapshots(dir.path()).unwrap() {
        std::fs::remove_file(snapshot_path(dir.path(), offset)).unwrap();
    }

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let after: Vec<_> = (0..3).map(|id| log.producer_entry(id)).collect();
    // Replay cannot know append times; everything else is rebuilt exactly.
    for (old, new) in before.iter().zip(&after) {
        let (old, new) = (old.as_ref().unwrap(), new.as_ref().unwrap());
        assert_eq!(
            (old.producer_epoch, &old.batches),
            (new.producer_epoch, &new.batches)
        );
    }
    let retry = append(&log, idempotent_batch(0, 0, 24, 2)).unwrap();
    assert!(retry.duplicate);
}

#[test]
fn a_crash_replays_the_tail_after_the_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(1, 0, 0, 2)).unwrap();
    log.flush().unwrap();
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![2]);
    append(&log, idempotent_batch(1, 0, 2, 2)).unwrap();
    append(&log, idempotent_batch(1, 0, 4, 2)).unwrap();
    drop(log); // no flush, no close: a crash

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert!(!log.open_report().clean_shutdown);
    let entry = log.producer_entry(1).unwrap();
    let firsts: Vec<i32> = entry.batches.iter().map(|b| b.first_sequence).collect();
    assert_eq!(firsts, vec![0, 2, 4]);
    assert!(
        append(&log, idempotent_batch(1, 0, 4, 2))
            .unwrap()
            .duplicate
    );
    assert_eq!(
        append(&log, idempotent_batch(1, 0, 6, 1))
            .unwrap()
            .base_offset,
        6
    );
}

#[test]
fn a_snapshot_beyond_a_crash_cut_log_end_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let sizes: Vec<u64> = (0..4)
        .map(|at| {
            let payload = idempotent_batch(1, 0, at * 2, 2);
            let bytes = payload.len() as u64;
            append(&log, payload).unwrap();
            bytes
        })
        .collect();
    log.flush().unwrap();
    assert_eq!(list_snapshots(dir.path()).unwrap(), vec![8]);
    drop(log);
    // The disk lost the last batch and a half of the one before (torn write).
    let segment = dir.path().join("00000000000000000000.log");
    let keep = sizes[0] + sizes[1] + sizes[2] / 2;
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(keep)
        .unwrap();
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(list_snapshots(dir.path()).unwrap(), Vec::<i64>::new());
    assert_eq!(log.producer_entry(1).unwrap().last_sequence(), 3);
    // The lost batches are new again; the surviving ones are duplicates.
    assert!(
        append(&log, idempotent_batch(1, 0, 2, 2))
            .unwrap()
            .duplicate
    );
    let outcome = append(&log, idempotent_batch(1, 0, 4, 2)).unwrap();
    assert_eq!((outcome.duplicate, outcome.base_offset), (false, 4));
}

#[test]
fn a_damaged_snapshot_falls_back_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(4, 1, 10, 2)).unwrap();
    log.close().unwrap();
    drop(log);
    let path = snapshot_path(dir.path(), 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert!(!path.exists(), "the damaged snapshot is removed");
    assert_eq!(log.producer_entry(4).unwrap().last_sequence(), 11);
    assert!(
        append(&log, idempotent_batch(4, 1, 10, 2))
            .unwrap()
            .duplicate
    );
}

#[test]
fn truncation_reloads_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    for at in 0..5 {
        append(&log, idempotent_batch(1, 0, at, 1)).unwrap();
    }
    log.flush().unwrap();
    log.truncate_to(2).unwrap();
    assert_eq!(log.producer_entry(1).unwrap().last_sequence(), 1);
    assert!(list_snapshots(dir.path()).unwrap().iter().all(|&o| o <= 2));
    assert_eq!(
        append(&log, idempotent_batch(1, 0, 2, 1))
            .unwrap()
            .base_offset,
        2
    );
    log.truncate_to(0).unwrap();
    assert_eq!(log.producer_count(), 0);
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 10_000,
        retention_ms: -1,
        ..config()
    };
    let log = Log::open(dir.path(), config, 0, 0).unwrap();
    append_at(&log, idempotent_batch(1, 0, 0, 1), 100_000).unwrap();
    append_at(&log, idempotent_batch(2, 0, 0, 1), 105_000).unwrap();
    // Producer 1 is expired at append time: treated as unknown, so any sequence goes.
    let outcome = append_at(&log, idempotent_batch(1, 0, 50, 1), 110_000).unwrap();
    assert!(!outcome.duplicate);
    assert_eq!(log.producer_entry(1).unwrap().last_sequence(), 50);
    // The retention pass forgets every expired producer.
    log.enforce_retention(115_000).unwrap();
    assert_eq!(log.producer_count(), 1);
    assert!(log.producer_entry(2).is_none());
    log.enforce_retention(120_000).unwrap();
    assert_eq!(log.producer_count(), 0);
}

#[test]
fn producers_below_the_log_start_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    append(&log, idempotent_batch(1, 0, 0, 2)).unwrap();
    append(&log, idempotent_batch(2, 0, 0, 2)).unwrap();
    log.delete_records_before(3).unwrap();
    assert!(log.producer_entry(1).is_none());
    assert!(log.producer_entry(2).is_some());
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config(), 3, 0).unwrap();
    assert_eq!(log.producer_count(), 1);
}

#[test]
fn snapshots_are_kept_bounded_and_named_by_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    for at in 0..60 {
        append(&log, idempotent_batch(1, 0, at, 1)).unwrap();
        if at % 10 == 9 {
            log.flush().unwrap();
        }
    }
    let snapshots = list_snapshots(dir.path()).unwrap();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert_eq!(*snapshots.last().unwrap(), 60);
    assert!(snapshot_path(dir.path(), 60).ends_with("00000000000000000060.snapshot"));
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Step {
    /// A new batch of `count` records from producer `producer`.
    Send { producer: usize, count: usize },
    /// A retry of that producer's `back`-th most recent batch (0 = the last).
    Retry { producer: usize, back: usize },
    /// Reopen the log, cleanly or after a crash.
    Restart { clean: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 1usize..4).prop_map(|(producer, count)| Step::Send { producer, count }),
        3 => (0usize..3, 0usize..8).prop_map(|(producer, back)| Step::Retry { producer, back }),
        1 => any::<bool>().prop_map(|clean| Step::Restart { clean }),
    ]
}

/// Per producer: the (first sequence, count, base offset) of every batch it sent.
type Sent = Vec<Vec<(i32, usize, i64)>>;

/// Runs one step; a restart drops the log (after `close` when clean) and opens it again.
fn run_step(dir: &Path, log: Log, sent: &mut Sent, step: &Step) -> Log {
    match *step {
        Step::Send { producer, count } => {
            let next = sent[producer].last().map_or(0, |&(s, c, _)| s + c as i32);
            let outcome = append(&log, idempotent_batch(producer as i64, 0, next, count)).unwrap();
            assert!(!outcome.duplicate);
            sent[producer].push((next, count, outcome.base_offset));
            log
        }
        Step::Retry { producer, back } => {
            let batches = &sent[producer];
            let Some(&(sequence, count, base)) = batches.iter().rev().nth(back) else {
                return log;
            };
            let result = append(&log, idempotent_batch(producer as i64, 0, sequence, count));
            if back < 5 {
                let outcome = result.unwrap();
                assert!(outcome.duplicate);
                assert_eq!(outcome.base_offset, base);
            } else {
                assert!(matches!(
                    result,
                    Err(AppendError::OutOfOrderSequence { .. })
                ));
            }
            log
        }
        Step::Restart { clean } => {
            if clean {
                log.close().unwrap();
            }
            drop(log);
            Log::open(dir, config(), 0, 0).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Whatever the retries and restarts, the log holds every sent batch exactly once, in
    /// send order, and retries of the last five are answered with their original offsets.
    #[test]
    fn retries_never_duplicate_records(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0, 0).unwrap();
        let mut sent: Sent = vec![Vec::new(); 3];
        for step in &steps {
            log = run_step(dir.path(), log, &mut sent, step);
        }
        let mut expected: Vec<(i64, i16, i32, i64, i64)> = sent
            .iter()
            .enumerate()
            .flat_map(|(producer, batches)| {
                batches.iter().map(move |&(sequence, count, base)| {
                    (producer as i64, 0, sequence, base, base + count as i64 - 1)
                })
            })
            .collect();
        expected.sort_by_key(|batch| batch.3);
        prop_assert_eq!(stored_batches(&log), expected);
    }
}
