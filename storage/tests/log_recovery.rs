//! Crash recovery: torn tails, garbage, flipped bytes, the recovery point, the clean-shutdown
//! marker, index rebuilds and leftover files.

mod common;
mod support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use sluice_storage::{Log, LogConfig, OpenReport};
use support::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn active_log_path(dir: &Path) -> PathBuf {
    dir.join(&segment_files(dir).last().unwrap().0)
}

/// Everything a reader can see, from the log start.
fn read_all(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read(offset, 1 << 20, true).unwrap().records;
        assert!(!records.is_empty());
        for item in sluice_storage::BatchIter::new(&records) {
            offset = item.unwrap().1.last_offset() + 1;
        }
        out.extend_from_slice(&records);
    }
    out
}

fn concat(stored: &[Stored]) -> Vec<u8> {
    stored
        .iter()
        .flat_map(|batch| batch.bytes.clone())
        .collect()
}

fn counts(n: usize) -> Vec<usize> {
    (0..n).map(|at| 1 + at % 3).collect()
}

/// Opens, appends, and drops without close (a crash as far as the files are concerned).
fn crashed_log(dir: &Path, batches: usize) -> Vec<Stored> {
    let log = Log::open(dir, config(), 0, 0).unwrap();
    let stored = append_many(&log, &counts(batches), 30, |at| at as i64);
    drop(log);
    stored
}

fn reopen_and_check(dir: &Path, expected: &[Stored], bytes_truncated: u64) -> Log {
    let log = Log::open(dir, config(), 0, 0).unwrap();
    let report = log.open_report();
    assert!(!report.clean_shutdown);
    assert_eq!(report.bytes_truncated, bytes_truncated);
    let end = expected.last().map_or(0, |batch| batch.last_offset + 1);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log), concat(expected));
    let mut next = simple_batch(2, 5, 0);
    assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, end);
    log
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 30);
    let mut file = OpenOptions::new()
        .append(true)
        .open(active_log_path(dir.path()))
        .unwrap();
    file.write_all(&[0xab; 37]).unwrap();
    drop(file);
    reopen_and_check(dir.path(), &stored, 37);
}

#[test]
fn torn_half_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 30);
    let path = active_log_path(dir.path());
    let length = std::fs::metadata(&path).unwrap().len();
    let last = stored.last().unwrap().bytes.len() as u64;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(length - last / 2).unwrap();
    reopen_and_check(dir.path(), &stored[..stored.len() - 1], last - last / 2);
}

#[test]
fn flipped_byte_in_the_last_batch_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 30);
    let path = active_log_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let length = bytes.len();
    bytes[length - 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let last = stored.last().unwrap().bytes.len() as u64;
    reopen_and_check(dir.path(), &stored[..stored.len() - 1], last);
}

#[test]
fn damage_in_an_unflushed_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 60);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    std::fs::remove_file(dir.path().join("recovery-point")).unwrap();
    // Flip a byte inside the first batch of the second segment.
    let second_base: i64 = files[1].0.trim_end_matches(".log").parse().unwrap();
    let path = dir.path().join(&files[1].0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[70] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let kept = stored
        .iter()
        .take_while(|batch| batch.base_offset < second_base)
        .count();
    let lost: u64 = files[1..].iter().map(|(_, size)| size).sum();
    let log = reopen_and_check(dir.path(), &stored[..kept], lost);
    assert_eq!(log.open_report().segments_scanned, 2);
    assert_eq!(log.open_report().segments_deleted as usize, files.len() - 2);
}

#[test]
fn only_segments_from_the_recovery_point_are_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 80);
    let files = segment_files(dir.path());
    assert!(files.len() >= 4);
    // Damage below the recovery point is not even read (start-up cost does not grow with data).
    let path = dir.path().join(&files[0].0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[70] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let report = log.open_report();
    assert!(!report.clean_shutdown);
    assert_eq!(report.segments_scanned, 1);
    assert_eq!(log.log_end_offset(), stored.last().unwrap().last_offset + 1);
}

#[test]
fn clean_shutdown_skips_the_scan_and_the_marker_does_not_survive() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &counts(50), 30, |at| at as i64);
    log.close().unwrap();
    let mut late = simple_batch(1, 1, 0);
    assert!(matches!(
        log.append(&mut late, 0, 0),
        Err(sluice_storage::AppendError::Storage(_))
    ));
    drop(log);
    assert!(dir.path().join("clean-shutdown").exists());

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(
        log.open_report(),
        OpenReport {
            clean_shutdown: true,
            ..OpenReport::default()
        }
    );
    assert!(!dir.path().join("clean-shutdown").exists());
    assert_eq!(log.log_end_offset(), stored.last().unwrap().last_offset + 1);
    assert_eq!(read_all(&log), concat(&stored));
    let more = append_many(&log, &[2], 30, |_| 99);
    drop(log);

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert!(!log.open_report().clean_shutdown);
    assert_eq!(log.open_report().segments_scanned, 1);
    let mut all = stored;
    all.extend(more);
    assert_eq!(read_all(&log), concat(&all));
}

#[test]
fn torn_tail_after_clean_shutdown_marker_is_still_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &counts(10), 30, |at| at as i64);
    log.close().unwrap();
    drop(log);
    let mut file = OpenOptions::new()
        .append(true)
        .open(active_log_path(dir.path()))
        .unwrap();
    file.write_all(&[1; 20]).unwrap();
    drop(file);
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(log.open_report().bytes_truncated, 20);
    assert_eq!(read_all(&log), concat(&stored));
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &counts(80), 30, |at| (at as i64 * 7) % 50);
    log.close().unwrap();
    drop(log);
    let files = segment_files(dir.path());
    let index_of =
        |at: usize, extension: &str| dir.path().join(files[at].0.replace(".log", extension));
    let originals: Vec<(PathBuf, Vec<u8>)> = [(0, ".index"), (1, ".timeindex"), (2, ".index")]
        .into_iter()
        .map(|(at, extension)| {
            let path = index_of(at, extension);
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    assert!(originals.iter().all(|(_, bytes)| !bytes.is_empty()));
    std::fs::remove_file(&originals[0].0).unwrap();
    std::fs::write(&originals[1].0, [9u8; 13]).unwrap();
    let mut unordered = originals[2].1.clone();
    unordered.rotate_left(8);
    std::fs::write(&originals[2].0, &unordered).unwrap();

    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    assert_eq!(log.open_report().indexes_rebuilt, 3);
    for (path, bytes) in &originals {
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{}", path.display());
    }
    assert_eq!(read_all(&log), concat(&stored));
    for offset in 0..log.log_end_offset() {
        let records = log.read(offset, 1, true).unwrap().records;
        assert_eq!(
            records.as_ref(),
            stored[containing(&stored, offset)].bytes.as_slice()
        );
    }
}

#[test]
fn leftover_files_are_cleaned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let stored = crashed_log(dir.path(), 5);
    let leftovers = [
        "00000000000000000000.log.deleted",
        "recovery-point.tmp",
        "00000000000000000000.index.tmp",
        "00000000000000099999.index",
        "00000000000000099999.timeindex",
    ];
    for name in leftovers {
        std::fs::write(dir.path().join(name), b"junk").unwrap();
    }
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    for name in leftovers {
        assert!(!dir.path().join(name).exists(), "{name}");
    }
    assert_eq!(read_all(&log), concat(&stored));
}

#[test]
fn truncate_to_drops_the_batch_containing_the_offset_and_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let stored = append_many(&log, &counts(60), 30, |at| at as i64);
    let segments_before = segment_files(dir.path()).len();
    let target = stored[25].base_offset + 1;
    log.truncate_to(target).unwrap();
    assert_eq!(log.log_end_offset(), stored[25].base_offset);
    assert_eq!(read_all(&log), concat(&stored[..25]));
    assert!(segment_files(dir.path()).len() < segments_before);
    let more = append_many(&log, &[3, 3], 30, |_| 1_000);
    assert_eq!(more[0].base_offset, stored[25].base_offset);
    drop(log);
    let log = Log::open(dir.path(), config(), 0, 0).unwrap();
    let mut all = stored[..25].to_vec();
    all.extend(more);
    assert_eq!(read_all(&log), concat(&all));
    assert_eq!(log.max_timestamp().unwrap().unwrap().0, 1_000);

    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(segment_files(dir.path()).len(), 1);
}

fn batch_prefix_for_cut(stored: &[Stored], cut: u64) -> usize {
    let mut total = 0u64;
    stored
        .iter()
        .take_while(|batch| {
            total += batch.bytes.len() as u64;
            total <= cut
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Cutting the active segment anywhere keeps exactly the complete batch prefix.
    #[test]
    fn random_cut_keeps_the_complete_batch_prefix(batch_counts in proptest::collection::vec(1usize..6, 1..25), cut_per_mille in 0u64..=1000) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { index_interval_bytes: 100, ..LogConfig::default() };
        let log = Log::open(dir.path(), config.clone(), 0, 0).unwrap();
        let stored = append_many(&log, &batch_counts, 17, |at| at as i64);
        drop(log);
        let path = active_log_path(dir.path());
        let length = std::fs::metadata(&path).unwrap().len();
        let cut = length * cut_per_mille / 1000;
        OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();

        let log = Log::open(dir.path(), config, 0, 0).unwrap();
        let kept = batch_prefix_for_cut(&stored, cut);
        let kept_bytes: u64 = stored[..kept].iter().map(|batch| batch.bytes.len() as u64).sum();
        prop_assert_eq!(log.log_end_offset(), stored[..kept].last().map_or(0, |batch| batch.last_offset + 1));
        prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), kept_bytes);
        prop_assert_eq!(log.open_report().bytes_truncated, cut - kept_bytes);
        prop_assert_eq!(read_all(&log), concat(&stored[..kept]));
        let mut next = simple_batch(1, 3, 0);
        prop_assert_eq!(log.append(&mut next, 0, 0).unwrap().base_offset, log.log_end_offset() - 1);
    }
}
