//! Log-level test helpers (integration tests only; unit tests use `common` alone).
#![allow(dead_code)]

use crate::common::{read_i64_at, simple_batch};

/// A batch as the log stored it (after stamping) with its offsets.
#[derive(Clone, Debug)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// Appends one batch per entry of `record_counts`, with timestamps from `timestamp_of(i)`.
pub fn append_many(
    log: &sluice_storage::Log,
    record_counts: &[usize],
    value_bytes: usize,
    timestamp_of: impl Fn(usize) -> i64,
) -> Vec<Stored> {
    let mut stored = Vec::new();
    for (at, &count) in record_counts.iter().enumerate() {
        let mut bytes = simple_batch(count, value_bytes, timestamp_of(at));
        let outcome = log.append(&mut bytes, 1, 1_000_000).unwrap();
        assert_eq!(outcome.last_offset - outcome.base_offset + 1, count as i64);
        stored.push(Stored {
            max_timestamp: read_i64_at(&bytes, 35),
            bytes,
            base_offset: outcome.base_offset,
            last_offset: outcome.last_offset,
        });
    }
    stored
}

/// The stored batch containing `offset`.
pub fn containing(stored: &[Stored], offset: i64) -> usize {
    stored
        .iter()
        .position(|batch| batch.base_offset <= offset && offset <= batch.last_offset)
        .unwrap()
}

/// Segment `.log` files in a directory, sorted, with their sizes.
pub fn segment_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_str().unwrap().ends_with(".log"))
        .map(|entry| {
            (
                entry.file_name().into_string().unwrap(),
                entry.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}
