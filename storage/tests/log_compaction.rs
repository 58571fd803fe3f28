//! Log compaction: random keyed writes and cleanings keep, for every key, its latest record
//! at its original offset; tombstones go after their delete horizon; idempotent producers
//! keep their last batch (possibly empty); a follower accepts a compacted leader's batches.

mod common;

use std::collections::BTreeMap;

use common::{encode_batch, TestBatch, TestRecord};
use proptest::prelude::*;
use sluice_storage::compaction::records::parse_records;
use sluice_storage::compaction::{CleanerConfig, UncompressedOnly};
use sluice_storage::{BatchIter, Log, LogConfig};

const NOW_MS: i64 = 1_000_000;

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn cleaner_config(dedupe_buffer_bytes: usize) -> CleanerConfig {
    CleanerConfig {
        dedupe_buffer_bytes,
        delete_retention_ms: 1_000,
        min_compaction_lag_ms: 0,
        io_bytes_per_second: 0,
        stable_offset: i64::MAX,
    }
}

/// One record as written or read: key, value (None = tombstone).
type Entry = (Vec<u8>, Option<Vec<u8>>);

fn keyed_batch(entries: &[Entry], producer: Option<(i64, i32)>) -> Vec<u8> {
    let (producer_id, base_sequence) = producer.unwrap_or((-1, -1));
    encode_batch(&TestBatch {
        base_offset: 0,
        base_timestamp: NOW_MS,
        max_timestamp: NOW_MS,
        attributes: 0,
        producer_id,
        producer_epoch: if producer_id >= 0 { 0 } else { -1 },
        base_sequence,
        records: entries
            .iter()
            .map(|(key, value)| TestRecord {
                timestamp_delta: 0,
                key: Some(key),
                value: value.as_deref(),
            })
            .collect(),
    })
}

/// Every record a reader sees from the log start, with its offset, and the batch count.
fn read_records(log: &Log) -> (Vec<(i64, Entry)>, usize) {
    let mut out = Vec::new();
    let mut batches = 0;
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        assert!(!records.is_empty(), "nothing readable at {offset}");
        for item in BatchIter::new(&records) {
            let (position, header) = item.unwrap();
            assert!(header.base_offset >= offset || header.last_offset() >= offset);
            header.check_stored_counts().unwrap();
            let batch = &records[position..position + header.size_bytes()];
            assert_eq!(
                sluice_storage::batch::batch_crc(batch),
                header.crc,
                "bad CRC"
            );
            batches += 1;
            if header.is_control() {
                // A transaction marker: clients skip it.
                offset = header.last_offset() + 1;
                continue;
            }
            for record in parse_records(&batch[61..], header.record_count).unwrap() {
                let record_offset = header.base_offset + i64::from(record.offset_delta);
                assert!(record_offset <= header.last_offset());
                if record_offset >= offset {
                    let entry = (
                        record.key.unwrap().to_vec(),
                        record.value.map(<[u8]>::to_vec),
                    );
                    out.push((record_offset, entry));
                }
            }
            offset = header.last_offset() + 1;
        }
    }
    (out, batches)
}

/// What a log must show after cleanings, given everything written (offset → entry).
/// `aborted`: records of aborted transactions, which may still be read until cleaned.
fn check_compacted(
    log: &Log,
    written: &BTreeMap<i64, Entry>,
    aborted: &BTreeMap<i64, Entry>,
    tombstones_may_go: bool,
) {
    let (read, _) = read_records(log);
    let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for (offset, (key, _)) in written {
        latest.insert(key, *offset);
    }
    let mut previous = -1;
    let mut seen_latest = 0;
    for (offset, entry) in &read {
        assert!(*offset > previous, "offsets increase");
        previous = *offset;
        if let Some(aborted_entry) = aborted.get(offset) {
            assert_eq!(aborted_entry, entry, "aborted record at {offset}");
            continue;
        }
        assert_eq!(
            written.get(offset),
            Some(entry),
            "record at {offset} is what was written"
        );
        if latest.get(entry.0.as_slice()) == Some(offset) {
            seen_latest += 1;
        }
    }
    let live = latest
        .values()
        .filter(|offset| written[offset].1.is_some())
        .count();
    if tombstones_may_go {
        assert!(
            seen_latest >= live,
            "every live key's latest record is there"
        );
    } else {
        assert_eq!(
            seen_latest,
            latest.len(),
            "every key's latest record is there"
        );
    }
    for (key, offset) in &latest {
        let present = read.iter().any(|(at, _)| at == offset);
        let tombstone = written[offset].1.is_none();
        assert!(
            present || (tombstones_may_go && tombstone),
            "latest of {key:?} at {offset}"
        );
    }
}

fn append(log: &Log, written: &mut BTreeMap<i64, Entry>, entries: &[Entry]) {
    let mut batch = keyed_batch(entries, None);
    let outcome = log.append(&mut batch, 0, NOW_MS).unwrap();
    for (at, entry) in entries.iter().enumerate() {
        written.insert(outcome.base_offset + at as i64, entry.clone());
    }
}

fn entry(key: u8, value: Option<u32>) -> Entry {
    (
        format!("key-{key}").into_bytes(),
        value.map(|value| format!("value-{value}").into_bytes()),
    )
}

#[test]
fn cleaning_keeps_the_latest_record_of_each_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    for round in 0..40u32 {
        let entries: Vec<Entry> = (0..3)
            .map(|at| entry(((round * 3 + at) % 7) as u8, Some(round)))
            .collect();
        append(&log, &mut written, &entries);
    }
    let size_before = log.size_bytes();
    let stats = log.dirty_stats(NOW_MS, 0).unwrap();
    assert!(stats.dirty_ratio() > 0.9, "{stats:?}");
    let outcome = log
        .clean(&cleaner_config(1 << 20), &UncompressedOnly, NOW_MS)
        .unwrap();
    assert!(outcome.segments_cleaned > 1, "{outcome:?}");
    assert_eq!(outcome.keys_mapped, 7);
    assert!(log.size_bytes() < size_before);
    check_compacted(&log, &written, &BTreeMap::new(), false);
    let (read, _) = read_records(&log);
    // Each key at most once in the cleaned part (below the active segment).
    let cleaned_end = outcome.first_dirty_offset;
    let mut keys: Vec<&[u8]> = read
        .iter()
        .filter(|(offset, _)| *offset < cleaned_end)
        .map(|(_, (key, _))| key.as_slice())
        .collect();
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), count);
    assert_eq!(log.dirty_stats(NOW_MS, 0).unwrap().dirty_bytes, 0);
    // A second cleaning with nothing dirty changes nothing.
    let again = log
        .clean(&cleaner_config(1 << 20), &UncompressedOnly, NOW_MS)
        .unwrap();
    assert_eq!(again.segments_cleaned, 0);
    // Reopening (crash, then clean shutdown) reads the same.
    drop(log);
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    assert_eq!(read_records(&log).0, read);
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    assert_eq!(read_records(&log).0, read);
}

#[test]
fn tombstones_stay_until_their_horizon_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    for round in 0..30u32 {
        append(&log, &mut written, &[entry((round % 5) as u8, Some(round))]);
    }
    append(&log, &mut written, &[entry(1, None)]);
    for round in 30..60u32 {
        append(&log, &mut written, &[entry(9, Some(round))]);
    }
    let config = cleaner_config(1 << 20);
    log.clean(&config, &UncompressedOnly, NOW_MS).unwrap();
    let (read, _) = read_records(&log);
    let tombstone = |read: &[(i64, Entry)]| {
        read.iter()
            .any(|(_, entry)| entry == &(b"key-1".to_vec(), None))
    };
    assert!(tombstone(&read), "kept before the horizon");
    assert!(!read
        .iter()
        .any(|(_, (key, value))| key == b"key-1" && value.is_some()));
    assert_eq!(log.tombstone_horizon_ms(), Some(NOW_MS + 1_000));
    log.clean(&config, &UncompressedOnly, NOW_MS + 999).unwrap();
    assert!(tombstone(&read_records(&log).0), "still before the horizon");
    let outcome = log
        .clean(&config, &UncompressedOnly, NOW_MS + 1_000)
        .unwrap();
    assert_eq!(outcome.stats.tombstones_removed, 1);
    let (read, _) = read_records(&log);
    assert!(!read.iter().any(|(_, (key, _))| key == b"key-1"));
    check_compacted(&log, &written, &BTreeMap::new(), true);
}

#[test]
fn a_small_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    for round in 0..60u32 {
        append(
            &log,
            &mut written,
            &[entry((round % 20) as u8, Some(round))],
        );
    }
    // Room for about five keys.
    let config =
        cleaner_config(5 * (6 + sluice_storage::compaction::offset_map::ENTRY_OVERHEAD_BYTES));
    let first = log.clean(&config, &UncompressedOnly, NOW_MS).unwrap();
    assert!(first.keys_mapped <= 5, "{first:?}");
    check_compacted(&log, &written, &BTreeMap::new(), false);
    let mut passes = 1;
    while log.dirty_stats(NOW_MS, 0).unwrap().dirty_bytes > 0 {
        log.clean(&config, &UncompressedOnly, NOW_MS).unwrap();
        check_compacted(&log, &written, &BTreeMap::new(), false);
        passes += 1;
        assert!(passes < 100);
    }
    assert!(passes > 2, "{passes}");
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    for round in 0..30u32 {
        append(&log, &mut written, &[entry(1, Some(round))]);
    }
    let mut config = cleaner_config(1 << 20);
    config.min_compaction_lag_ms = 10;
    let outcome = log.clean(&config, &UncompressedOnly, NOW_MS + 5).unwrap();
    assert_eq!(outcome.segments_cleaned, 0);
    let outcome = log.clean(&config, &UncompressedOnly, NOW_MS + 10).unwrap();
    assert!(outcome.segments_cleaned > 0);
    check_compacted(&log, &written, &BTreeMap::new(), false);
}

#[test]
fn an_idempotent_producer_keeps_its_last_batch_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    let producer_id = 7;
    let mut sequence = 0;
    for round in 0..20u32 {
        let entries = [entry(1, Some(round)), entry(2, Some(round))];
        let mut batch = keyed_batch(&entries, Some((producer_id, sequence)));
        let outcome = log.append(&mut batch, 0, NOW_MS).unwrap();
        written.insert(outcome.base_offset, entries[0].clone());
        written.insert(outcome.base_offset + 1, entries[1].clone());
        sequence += 2;
    }
    let last_producer_offset = log.log_end_offset() - 1;
    // Overwrite the producer's keys by others so its last batch empties.
    for round in 20..60u32 {
        append(
            &log,
            &mut written,
            &[entry(1, Some(round)), entry(2, Some(round))],
        );
    }
    log.clean(&cleaner_config(1 << 20), &UncompressedOnly, NOW_MS)
        .unwrap();
    check_compacted(&log, &written, &BTreeMap::new(), false);
    let mut empty_batches = Vec::new();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        for item in BatchIter::new(&records) {
            let (_, header) = item.unwrap();
            if header.producer_id == producer_id {
                empty_batches.push((
                    header.record_count,
                    header.last_offset(),
                    header.base_sequence,
                    header.max_timestamp,
                ));
            }
            offset = header.last_offset() + 1;
        }
    }
    // No record carries a timestamp any more: time lookups never land on it.
    assert_eq!(empty_batches, vec![(0, last_producer_offset, 38, -1)]);
    // The producer continues its sequence after a restart that replays the log.
    drop(log);
    for name in std::fs::read_dir(dir.path()).unwrap() {
        let path = name.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "snapshot")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(dir.path(), log_config(), 0, NOW_MS).unwrap();
    assert_eq!(log.producer_entry(producer_id).unwrap().last_sequence(), 39);
    let mut next = keyed_batch(&[entry(3, Some(0))], Some((producer_id, 40)));
    log.append(&mut next, 0, NOW_MS).unwrap();
}

#[test]
fn a_follower_appends_a_compacted_leaders_batches() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Log::open(leader_dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    for round in 0..40u32 {
        append(
            &leader,
            &mut written,
            &[entry((round % 3) as u8, Some(round))],
        );
    }
    leader
        .clean(&cleaner_config(1 << 20), &UncompressedOnly, NOW_MS)
        .unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = Log::open(follower_dir.path(), log_config(), 0, 0).unwrap();
    while follower.log_end_offset() < leader.log_end_offset() {
        let records = leader
            .read(follower.log_end_offset(), 300, true)
            .unwrap()
            .records;
        follower.append_replicated(&records, NOW_MS).unwrap();
    }
    assert_eq!(read_records(&follower), read_records(&leader));
    drop(follower);
    let follower = Log::open(follower_dir.path(), log_config(), 0, 0).unwrap();
    assert_eq!(read_records(&follower), read_records(&leader));
    follower
        .clean(&cleaner_config(1 << 20), &UncompressedOnly, NOW_MS)
        .unwrap();
    check_compacted(&follower, &written, &BTreeMap::new(), false);
}

fn txn_batch(entries: &[Entry], producer_id: i64) -> Vec<u8> {
    let mut batch = keyed_batch(entries, Some((producer_id, 0)));
    batch[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    common::fix_crc(&mut batch);
    batch
}

fn end_txn(log: &Log, producer_id: i64, commit: bool) -> i64 {
    let marker = sluice_storage::TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit,
    };
    log.append_txn_marker(marker, 0, NOW_MS)
        .unwrap()
        .base_offset
}

/// Every batch's (base offset, record count, transactional, control) from the log start.
fn batch_shapes(log: &Log) -> Vec<(i64, i32, bool, bool)> {
    let mut shapes = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        for item in BatchIter::new(&records) {
            let (_, header) = item.unwrap();
            let shape = (
                header.base_offset,
                header.record_count,
                header.is_transactional(),
                header.is_control(),
            );
            shapes.push(shape);
            offset = header.last_offset() + 1;
        }
    }
    shapes
}

#[test]
fn aborted_records_go_committed_ones_compact_markers_and_open_transactions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
    let mut written = BTreeMap::new();
    append(&log, &mut written, &[entry(1, Some(0)), entry(2, Some(0))]);
    // Aborted: key 1 (must neither stay nor shadow the committed value).
    let aborted = log
        .append(&mut txn_batch(&[entry(1, Some(100))], 9), 0, NOW_MS)
        .unwrap();
    let abort_marker = end_txn(&log, 9, false);
    // Committed: key 3 (overwritten later) and key 4 (not).
    let committed = log
        .append(
            &mut txn_batch(&[entry(3, Some(50)), entry(4, Some(50))], 10),
            0,
            NOW_MS,
        )
        .unwrap();
    let commit_marker = end_txn(&log, 10, true);
    append(&log, &mut written, &[entry(3, Some(51))]);
    for round in 1..40u32 {
        append(&log, &mut written, &[entry(2, Some(round))]);
    }
    // Open: everything from here on is above the last stable offset.
    let open = log
        .append(&mut txn_batch(&[entry(2, Some(999))], 11), 0, NOW_MS)
        .unwrap();
    for round in 40..60u32 {
        append(&log, &mut written, &[entry(2, Some(round))]);
    }
    let stable_offset = log.last_stable_offset(log.log_end_offset());
    assert_eq!(stable_offset, open.base_offset);
    let config = CleanerConfig {
        stable_offset,
        ..cleaner_config(1 << 20)
    };
    let outcome = log.clean(&config, &UncompressedOnly, NOW_MS).unwrap();
    assert_eq!(outcome.stats.aborted_batches_removed, 1, "{outcome:?}");
    assert!(outcome.first_dirty_offset <= open.base_offset);
    let (read, _) = read_records(&log);
    let at = |offset: i64| {
        read.iter()
            .find(|(at, _)| *at == offset)
            .map(|(_, e)| e.clone())
    };
    assert_eq!(
        at(0),
        Some(entry(1, Some(0))),
        "the committed value of key 1 stays"
    );
    assert_eq!(at(aborted.base_offset), None, "the aborted record is gone");
    assert_eq!(
        at(committed.base_offset),
        None,
        "key 3 was overwritten after the commit"
    );
    assert_eq!(at(committed.base_offset + 1), Some(entry(4, Some(50))));
    assert_eq!(
        at(open.base_offset),
        Some(entry(2, Some(999))),
        "open transactions stay"
    );
    let shapes = batch_shapes(&log);
    let shape = |offset: i64| shapes.iter().find(|shape| shape.0 == offset).copied();
    // Each transactional producer's last batch stays, emptied, for its producer state.
    assert_eq!(
        shape(aborted.base_offset),
        Some((aborted.base_offset, 0, true, false))
    );
    assert_eq!(
        shape(committed.base_offset),
        Some((committed.base_offset, 1, true, false))
    );
    assert_eq!(shape(abort_marker), Some((abort_marker, 1, true, true)));
    assert_eq!(shape(commit_marker), Some((commit_marker, 1, true, true)));
    assert_eq!(log.aborted_transactions(0, log.log_end_offset()).len(), 1);
    // The cleaned part holds key 2 once.
    let key_2_cleaned = read
        .iter()
        .filter(|(offset, (key, _))| key == b"key-2" && *offset < outcome.first_dirty_offset)
        .count();
    assert_eq!(key_2_cleaned, 1, "key 2 compacted to its latest");
    // Replaying the cleaned log from scratch gives the same producer and transaction state.
    drop(log);
    for path in std::fs::read_dir(dir.path()).unwrap() {
        let path = path.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "snapshot")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = Log::open(dir.path(), log_config(), 0, NOW_MS).unwrap();
    assert!(log.has_ongoing_txn(11));
    assert!(!log.has_ongoing_txn(9) && !log.has_ongoing_txn(10));
    assert_eq!(
        log.last_stable_offset(log.log_end_offset()),
        open.base_offset
    );
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<(u8, Option<u32>)>),
    /// A transaction of a new producer, committed or aborted.
    Txn(Vec<(u8, Option<u32>)>, bool),
    Clean {
        dedupe_keys: usize,
        advance_ms: i64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec((0u8..12, proptest::option::weighted(0.9, 0u32..1000)), 1..5).prop_map(Op::Write),
        2 => (proptest::collection::vec((0u8..14, proptest::option::weighted(0.9, 0u32..1000)), 1..4), any::<bool>()).prop_map(|(entries, commit)| Op::Txn(entries, commit)),
        2 => (1usize..16, 0i64..800).prop_map(|(dedupe_keys, advance_ms)| Op::Clean { dedupe_keys, advance_ms }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random keyed writes, cleanings with random map budgets and clocks, and crashes: the
    /// log always shows each key's latest record at its original offset (a tombstone only
    /// until its horizon), nothing but written records, offsets increasing.
    #[test]
    fn random_writes_and_cleanings_keep_the_latest_values(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
        let mut written = BTreeMap::new();
        let mut aborted = BTreeMap::new();
        let mut producer_id = 1_000;
        let mut now_ms = NOW_MS;
        for op in ops {
            match op {
                Op::Write(entries) => {
                    let entries: Vec<Entry> = entries.into_iter().map(|(key, value)| entry(key, value)).collect();
                    append(&log, &mut written, &entries);
                }
                Op::Txn(entries, commit) => {
                    producer_id += 1;
                    let entries: Vec<Entry> = entries.into_iter().map(|(key, value)| entry(key, value)).collect();
                    let outcome = log.append(&mut txn_batch(&entries, producer_id), 0, NOW_MS).unwrap();
                    let target = if commit { &mut written } else { &mut aborted };
                    for (at, entry) in entries.iter().enumerate() {
                        target.insert(outcome.base_offset + at as i64, entry.clone());
                    }
                    end_txn(&log, producer_id, commit);
                }
                Op::Clean { dedupe_keys, advance_ms } => {
                    now_ms += advance_ms;
                    let bytes = dedupe_keys * (6 + sluice_storage::compaction::offset_map::ENTRY_OVERHEAD_BYTES);
                    let config = CleanerConfig {
                        stable_offset: log.last_stable_offset(log.log_end_offset()),
                        ..cleaner_config(bytes)
                    };
                    let outcome = log.clean(&config, &UncompressedOnly, now_ms).unwrap();
                    let cleaned_end = outcome.first_dirty_offset;
                    let (read, _) = read_records(&log);
                    let left = read.iter().find(|(offset, _)| *offset < cleaned_end && aborted.contains_key(offset));
                    prop_assert!(left.is_none(), "aborted record left in the cleaned part: {left:?}");
                }
                Op::Reopen => {
                    drop(log);
                    log = Log::open(dir.path(), log_config(), 0, 0).unwrap();
                }
            }
            check_compacted(&log, &written, &aborted, true);
        }
    }
}
