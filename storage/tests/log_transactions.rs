//! Transactions at the log: markers, the last stable offset, the aborted-transaction index
//! (`.txnindex`, Kafka's layout), fencing, and that all of it survives a clean restart, a
//! crash without snapshots or index files, truncation, and replication to a follower.

mod common;

use std::path::Path;

use common::*;
use sluice_storage::{AbortedTxn, AppendError, BatchIter, Log, LogConfig, TxnMarker};

const NOW_MS: i64 = 1_000_000;
const TRANSACTIONAL: i16 = 0x10;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1_000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn batch(producer_id: i64, epoch: i16, sequence: i32, count: usize, attributes: i16) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|at| format!("p{producer_id}-s{}", sequence as usize + at).into_bytes())
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
        attributes,
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
        records,
    })
}

fn produce(log: &Log, producer_id: i64, epoch: i16, sequence: i32, count: usize) -> i64 {
    let mut payload = batch(producer_id, epoch, sequence, count, TRANSACTIONAL);
    log.append(&mut payload, 0, NOW_MS).unwrap().base_offset
}

fn marker(producer_id: i64, epoch: i16, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        commit,
    }
}

fn end_txn(log: &Log, producer_id: i64, epoch: i16, commit: bool) -> i64 {
    let outcome = log
        .append_txn_marker(marker(producer_id, epoch, commit), 0, NOW_MS)
        .unwrap();
    assert_eq!(outcome.base_offset, outcome.last_offset);
    outcome.base_offset
}

fn aborted(producer_id: i64, first_offset: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id,
        first_offset,
    }
}

/// Every stored batch's (producer id, base offset, control?).
fn stored(log: &Log) -> Vec<(i64, i64, bool)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        for item in BatchIter::new(&records) {
            let header = item.unwrap().1;
            out.push((header.producer_id, header.base_offset, header.is_control()));
            offset = header.last_offset() + 1;
        }
    }
    out
}

/// Producer 1 aborts [0, 1] + [3], producer 2 commits [2]: offsets 0-1 p1, 2 p2, 3 p1,
/// 4 abort p1, 5 commit p2.
fn interleaved(log: &Log) {
    assert_eq!(produce(log, 1, 0, 0, 2), 0);
    assert_eq!(log.last_stable_offset(2), 0);
    assert!(log.has_ongoing_txn(1) && !log.has_ongoing_txn(2));
    assert_eq!(produce(log, 2, 0, 0, 1), 2);
    assert_eq!(produce(log, 1, 0, 2, 1), 3);
    assert_eq!(end_txn(log, 1, 0, false), 4);
    assert!(!log.has_ongoing_txn(1) && log.has_ongoing_txn(2));
    // The abort marker is not below the high watermark yet: still unstable from 0.
    assert_eq!(log.last_stable_offset(4), 0);
    assert_eq!(log.last_stable_offset(5), 2);
    assert_eq!(end_txn(log, 2, 0, true), 5);
    assert_eq!(log.last_stable_offset(6), 6);
}

#[test]
fn markers_end_transactions_and_move_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
    interleaved(&log);
    let expected = vec![
        (1, 0, false),
        (2, 2, false),
        (1, 3, false),
        (1, 4, true),
        (2, 5, true),
    ];
    assert_eq!(stored(&log), expected);
    assert_eq!(log.aborted_transactions(0, 6), vec![aborted(1, 0)]);
    assert_eq!(log.aborted_transactions(3, 4), vec![aborted(1, 0)]);
    // Past the abort marker, or before the transaction: nothing.
    assert_eq!(log.aborted_transactions(5, 6), vec![]);
    // Kafka's file layout: version 0, pid, first, last, LSO after the abort (2: p2 open).
    let index = std::fs::read(dir.path().join("00000000000000000000.txnindex")).unwrap();
    let mut entry = vec![0u8, 0];
    for value in [1i64, 0, 4, 2] {
        entry.extend_from_slice(&value.to_be_bytes());
    }
    assert_eq!(index, entry);
    // The committed transaction left no entry; the producers' next transactions start anew.
    assert_eq!(produce(&log, 1, 0, 3, 1), 6);
    assert_eq!(log.last_stable_offset(7), 6);
}

#[test]
fn fencing_and_bad_batches_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
    produce(&log, 7, 3, 0, 1);
    // A client may not send markers.
    let mut control = sluice_storage::control::encode_marker_batch(&marker(7, 3, true), NOW_MS);
    assert!(matches!(
        log.append(&mut control, 0, NOW_MS),
        Err(AppendError::ControlBatchFromClient)
    ));
    // A non-transactional batch inside the producer's transaction.
    let mut plain = batch(7, 3, 1, 1, 0);
    assert!(matches!(
        log.append(&mut plain, 0, NOW_MS),
        Err(AppendError::InvalidTxnState { producer_id: 7 })
    ));
    // A marker of an older producer epoch, then one of an older coordinator epoch.
    assert!(matches!(
        log.append_txn_marker(marker(7, 2, false), 0, NOW_MS),
        Err(AppendError::InvalidProducerEpoch {
            current_epoch: 3,
            ..
        })
    ));
    let newer_coordinator = TxnMarker {
        coordinator_epoch: 5,
        ..marker(7, 4, false)
    };
    // The coordinator fenced the producer: it aborts with the bumped epoch 4.
    assert_eq!(
        log.append_txn_marker(newer_coordinator, 0, NOW_MS)
            .unwrap()
            .base_offset,
        1
    );
    let stale_coordinator = TxnMarker {
        coordinator_epoch: 4,
        ..marker(7, 4, true)
    };
    assert!(matches!(
        log.append_txn_marker(stale_coordinator, 0, NOW_MS),
        Err(AppendError::CoordinatorFenced {
            current_coordinator_epoch: 5,
            ..
        })
    ));
    // The zombie with epoch 3 is fenced; the new epoch starts at sequence 0.
    let mut zombie = batch(7, 3, 1, 1, TRANSACTIONAL);
    assert!(matches!(
        log.append(&mut zombie, 0, NOW_MS),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(produce(&log, 7, 4, 0, 1), 2);
    assert_eq!(
        stored(&log),
        vec![(7, 0, false), (7, 1, true), (7, 2, false)]
    );
    assert_eq!(log.aborted_transactions(0, 3), vec![aborted(7, 0)]);
}

/// What a reader sees of the transactions.
fn txn_view(log: &Log) -> (i64, bool, bool, Vec<AbortedTxn>) {
    let end = log.log_end_offset();
    (
        log.last_stable_offset(end),
        log.has_ongoing_txn(1),
        log.has_ongoing_txn(3),
        log.aborted_transactions(0, end),
    )
}

fn remove_matching(dir: &Path, extension: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == extension) {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn state_survives_restarts_and_is_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let expected = {
        let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
        interleaved(&log);
        // Producer 3 keeps a transaction open across the restart, over several segments.
        for sequence in 0..20 {
            produce(&log, 3, 0, sequence, 1);
        }
        assert!(log.aborted_transactions(0, 100).len() == 1);
        let view = txn_view(&log);
        assert_eq!(view, (6, false, true, vec![aborted(1, 0)]));
        log.close().unwrap();
        view
    };
    {
        let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
        assert!(log.open_report().clean_shutdown);
        assert_eq!(txn_view(&log), expected);
        // Drop without close: a crash.
    }
    // Without snapshots or transaction indexes everything is replayed from the log.
    remove_matching(dir.path(), "snapshot");
    remove_matching(dir.path(), "txnindex");
    let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
    assert!(!log.open_report().clean_shutdown);
    assert_eq!(txn_view(&log), expected);
    let index = std::fs::read(dir.path().join("00000000000000000000.txnindex")).unwrap();
    assert_eq!(index.len(), 34);
    // Producer 3's abort, in the newest segment, covers reads from its first segment on.
    let end = end_txn(&log, 3, 0, false);
    assert_eq!(log.last_stable_offset(end + 1), end + 1);
    assert_eq!(
        log.aborted_transactions(6, 7),
        vec![aborted(3, 6)],
        "found in a later segment's index"
    );
    assert_eq!(
        log.aborted_transactions(0, end + 1),
        vec![aborted(1, 0), aborted(3, 6)]
    );
}

#[test]
fn truncation_reopens_transactions_whose_markers_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
    interleaved(&log);
    log.flush().unwrap();
    // Cut the abort of producer 1 (offset 4) and everything after.
    log.truncate_to(4).unwrap();
    assert!(log.has_ongoing_txn(1) && log.has_ongoing_txn(2));
    assert_eq!(log.last_stable_offset(4), 0);
    assert_eq!(log.aborted_transactions(0, 4), vec![]);
    assert!(!dir.path().join("00000000000000000000.txnindex").exists());
    // The leader's history continues with a commit of producer 1 instead.
    assert_eq!(end_txn(&log, 1, 0, true), 4);
    assert_eq!(end_txn(&log, 2, 0, false), 5);
    assert_eq!(log.aborted_transactions(0, 6), vec![aborted(2, 2)]);
    assert_eq!(log.last_stable_offset(6), 6);
}

#[test]
fn a_follower_keeps_the_same_transactions() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = Log::open(leader_dir.path(), config(), 0, NOW_MS).unwrap();
    let follower = Log::open(follower_dir.path(), config(), 0, NOW_MS).unwrap();
    interleaved(&leader);
    produce(&leader, 3, 0, 0, 1);
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let records = leader.read(offset, 300, true).unwrap().records;
        offset = follower.append_replicated(&records, NOW_MS).unwrap();
    }
    assert_eq!(txn_view(&follower), txn_view(&leader));
    assert_eq!(
        std::fs::read(follower_dir.path().join("00000000000000000000.txnindex")).unwrap(),
        std::fs::read(leader_dir.path().join("00000000000000000000.txnindex")).unwrap()
    );
    // A follower taking over checks the next marker as the leader would.
    assert!(matches!(
        follower.append_txn_marker(marker(3, -1, true), 1, NOW_MS),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(
        follower
            .append_txn_marker(marker(3, 0, false), 1, NOW_MS)
            .unwrap()
            .base_offset,
        7
    );
    assert_eq!(
        follower.aborted_transactions(0, 8),
        vec![aborted(1, 0), aborted(3, 6)]
    );
}

#[test]
fn the_last_stable_offset_never_falls_below_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
    assert_eq!(produce(&log, 1, 0, 0, 2), 0);
    assert_eq!(produce(&log, 2, 0, 0, 1), 2);
    assert_eq!(log.last_stable_offset(3), 0);
    assert_eq!(log.delete_records_before(1).unwrap(), 1);
    assert_eq!(log.last_stable_offset(3), 1);
    assert_eq!(
        log.last_stable_offset(0),
        0,
        "never above the high watermark"
    );
    end_txn(&log, 1, 0, true);
    assert_eq!(log.last_stable_offset(4), 2);
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// A transactional batch of producer `0` with `1` records.
    Data(i64, usize),
    Plain,
    Marker(i64, bool),
    /// Reopen: cleanly (close first) or after a crash, optionally without snapshots.
    Reopen {
        clean: bool,
        drop_snapshots: bool,
    },
    /// Truncate at the start of the n-th (modulo) write, as a follower does.
    Truncate(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        6 => (1i64..=3, 1usize..=3).prop_map(|(producer, count)| Op::Data(producer, count)),
        2 => Just(Op::Plain),
        4 => (1i64..=3, any::<bool>()).prop_map(|(producer, commit)| Op::Marker(producer, commit)),
        1 => (any::<bool>(), any::<bool>())
            .prop_map(|(clean, drop_snapshots)| Op::Reopen { clean, drop_snapshots }),
        1 => (0usize..64).prop_map(Op::Truncate),
    ]
}

/// What the log must show: each data batch (base offset, producer, transaction number) and
/// how each transaction ended.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i64, Option<usize>)>,
    /// producer → (first offset, transaction number) of its open transaction.
    open: std::collections::HashMap<i64, (i64, usize)>,
    committed: Vec<bool>,
    next_sequence: std::collections::HashMap<i64, i32>,
    end: i64,
    /// Every write (data, plain, marker) with its base offset, to rebuild after a truncation.
    history: Vec<(i64, Op)>,
}

impl Model {
    /// Records a write the log accepted at `base`.
    fn write(&mut self, base: i64, op: &Op) {
        assert_eq!(base, self.end);
        self.history.push((base, op.clone()));
        match *op {
            Op::Data(producer, count) => {
                let sequence = *self.next_sequence.get(&producer).unwrap_or(&0);
                self.next_sequence.insert(producer, sequence + count as i32);
                let txn = match self.open.get(&producer) {
                    Some((_, txn)) => *txn,
                    None => {
                        self.committed.push(false);
                        let txn = self.committed.len() - 1;
                        self.open.insert(producer, (base, txn));
                        txn
                    }
                };
                self.batches.push((base, producer, Some(txn)));
                self.end += count as i64;
            }
            Op::Plain => {
                self.batches.push((base, -1, None));
                self.end += 1;
            }
            Op::Marker(producer, commit) => {
                if let Some((_, txn)) = self.open.remove(&producer) {
                    self.committed[txn] = commit;
                }
                self.end += 1;
            }
            Op::Reopen { .. } | Op::Truncate(_) => unreachable!("not a write"),
        }
    }
}

impl Model {
    fn last_stable_offset(&self) -> i64 {
        self.open
            .values()
            .map(|(first, _)| *first)
            .fold(self.end, i64::min)
    }

    /// Base offsets of the batches a read_committed consumer delivers.
    fn committed_batches(&self) -> Vec<i64> {
        let stable = self.last_stable_offset();
        self.batches
            .iter()
            .filter(|(base, _, txn)| *base < stable && txn.is_none_or(|txn| self.committed[txn]))
            .map(|(base, _, _)| *base)
            .collect()
    }
}

/// Kafka's consumer (`CompletedFetch.nextFetchedRecord`): an aborted transaction's producer is
/// skipped from its first offset until its abort marker. Returns delivered batch base offsets.
fn consume_read_committed(log: &Log) -> Vec<i64> {
    let end = log.log_end_offset();
    let stable = log.last_stable_offset(end);
    let mut aborted = log.aborted_transactions(0, stable);
    aborted.sort_by_key(|txn| txn.first_offset);
    let mut aborted = std::collections::VecDeque::from(aborted);
    let mut aborting = std::collections::HashSet::new();
    let mut delivered = Vec::new();
    let mut offset = 0;
    while offset < stable {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        for item in BatchIter::new(&records) {
            let (position, header) = item.unwrap();
            offset = header.last_offset() + 1;
            if header.base_offset >= stable {
                offset = stable;
                break;
            }
            if header.is_control() {
                let batch = &records[position..position + header.size_bytes()];
                let marker = sluice_storage::control::parse_marker(&header, batch).unwrap();
                if !marker.commit {
                    aborting.remove(&header.producer_id);
                }
                continue;
            }
            while aborted
                .front()
                .is_some_and(|txn| txn.first_offset <= header.last_offset())
            {
                aborting.insert(aborted.pop_front().unwrap().producer_id);
            }
            if header.is_transactional() && aborting.contains(&header.producer_id) {
                continue;
            }
            delivered.push(header.base_offset);
        }
    }
    delivered
}

fn apply(log: Log, dir: &Path, model: &mut Model, op: &Op) -> Log {
    match *op {
        Op::Data(producer, count) => {
            let sequence = *model.next_sequence.get(&producer).unwrap_or(&0);
            let base = produce(&log, producer, 0, sequence, count);
            model.write(base, op);
        }
        Op::Plain => {
            let mut payload = simple_batch(1, 10, 5_000);
            let base = log.append(&mut payload, 0, NOW_MS).unwrap().base_offset;
            model.write(base, op);
        }
        Op::Marker(producer, commit) => {
            let base = end_txn(&log, producer, 0, commit);
            model.write(base, op);
        }
        Op::Reopen {
            clean,
            drop_snapshots,
        } => {
            if clean {
                log.close().unwrap();
            }
            drop(log);
            if drop_snapshots {
                remove_matching(dir, "snapshot");
            }
            return Log::open(dir, config(), 0, NOW_MS).unwrap();
        }
        Op::Truncate(at) => {
            let kept = at % (model.history.len() + 1);
            let cut = model.history.get(kept).map_or(model.end, |(base, _)| *base);
            log.truncate_to(cut).unwrap();
            let history = std::mem::take(&mut model.history);
            *model = Model::default();
            for (base, write) in &history[..kept] {
                model.write(*base, write);
            }
        }
    }
    log
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn read_committed_matches_a_model_of_transactions(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), 0, NOW_MS).unwrap();
        let mut model = Model::default();
        for op in &ops {
            log = apply(log, dir.path(), &mut model, op);
            let end = log.log_end_offset();
            proptest::prop_assert_eq!(end, model.end);
            proptest::prop_assert_eq!(log.last_stable_offset(end), model.last_stable_offset());
            for producer in 1..=3 {
                proptest::prop_assert_eq!(
                    log.has_ongoing_txn(producer),
                    model.open.contains_key(&producer)
                );
            }
            proptest::prop_assert_eq!(consume_read_committed(&log), model.committed_batches());
        }
        // A follower replicating the final log reads the same.
        let follower_dir = tempfile::tempdir().unwrap();
        let follower = Log::open(follower_dir.path(), config(), 0, NOW_MS).unwrap();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let records = log.read(offset, 500, true).unwrap().records;
            offset = follower.append_replicated(&records, NOW_MS).unwrap();
        }
        let end = follower.log_end_offset();
        proptest::prop_assert_eq!(follower.last_stable_offset(end), model.last_stable_offset());
        proptest::prop_assert_eq!(consume_read_committed(&follower), model.committed_batches());
    }
}
