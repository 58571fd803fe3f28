//! Replacing a group of segments by their cleaned copy, crash-safely (Kafka's `.cleaned` →
//! `.swap` → rename, with directories instead of suffixes).
//!
//! 1. The cleaner writes the new segment (`.log`, `.index`, `.timeindex`, `.txnindex`, named
//!    by the group's first base offset `B`) into `<partition>/cleaner-work/`, fsynced.
//! 2. Commit: a `replaces` file says the group spans offsets `[B, E)`, then the directory is
//!    renamed to `cleaner-swap/` (one atomic rename) and the partition directory fsynced.
//! 3. Finish: the old segments with base in `(B, E)` are deleted, the new files are renamed
//!    over `<B>.*` (indexes first, the `.log` last), `cleaner-swap/` is removed.
//!
//! On open, `recover` removes a `cleaner-work/` (the old segments are intact: roll back) and
//! finishes a `cleaner-swap/` (every step of 3 can be redone), so a crash at any point leaves
//! either the old segments or the new one.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs_util::{
    self, segment_file_path, LOG_EXTENSION, OFFSET_INDEX_EXTENSION, TIME_INDEX_EXTENSION,
};
use crate::txn_index::TXN_INDEX_EXTENSION;

pub const WORK_DIR: &str = "cleaner-work";
pub const SWAP_DIR: &str = "cleaner-swap";
const REPLACES_FILE: &str = "replaces";
const REPLACES_VERSION: u8 = 1;
const REPLACES_BYTES: usize = 1 + 8 + 8 + 4;

/// Index kinds first, the log last: the log's arrival completes the segment.
const EXTENSIONS_IN_MOVE_ORDER: [&str; 4] = [
    OFFSET_INDEX_EXTENSION,
    TIME_INDEX_EXTENSION,
    TXN_INDEX_EXTENSION,
    LOG_EXTENSION,
];

pub fn work_dir(dir: &Path) -> PathBuf {
    dir.join(WORK_DIR)
}

/// An empty work directory (a leftover of an abandoned cleaning is removed).
pub fn prepare_work_dir(dir: &Path) -> io::Result<PathBuf> {
    let work = work_dir(dir);
    remove_dir_if_exists(&work)?;
    fs::create_dir(&work)?;
    Ok(work)
}

pub fn abandon(dir: &Path) -> io::Result<()> {
    remove_dir_if_exists(&work_dir(dir))
}

/// Step 2: the work directory (holding segment `first_base`, already fsynced) becomes the
/// swap directory replacing the segments in `[first_base, end_offset)`.
pub fn commit(dir: &Path, first_base: i64, end_offset: i64) -> io::Result<()> {
    assert!(first_base < end_offset);
    let work = work_dir(dir);
    let mut contents = [0u8; REPLACES_BYTES];
    contents[0] = REPLACES_VERSION;
    contents[1..9].copy_from_slice(&first_base.to_be_bytes());
    contents[9..17].copy_from_slice(&end_offset.to_be_bytes());
    let crc = crc32c::crc32c(&contents[..17]);
    contents[17..].copy_from_slice(&crc.to_be_bytes());
    fs_util::write_file_atomically(&work.join(REPLACES_FILE), &contents)?;
    fs::rename(&work, dir.join(SWAP_DIR))?;
    fs_util::fsync_dir(dir)
}

/// Step 3 (also the recovery of a committed swap).
pub fn finish(dir: &Path) -> io::Result<()> {
    let swap = dir.join(SWAP_DIR);
    let (first_base, end_offset) = read_replaces(&swap)?;
    for base in segment_bases(dir)? {
        if base > first_base && base < end_offset {
            delete_segment_files_at(dir, base)?;
        }
    }
    for extension in EXTENSIONS_IN_MOVE_ORDER {
        let from = segment_file_path(&swap, first_base, extension);
        if fs_util::file_exists(&from)? {
            fs::rename(&from, segment_file_path(dir, first_base, extension))?;
        }
    }
    fs_util::fsync_dir(dir)?;
    remove_dir_if_exists(&swap)?;
    fs_util::fsync_dir(dir)
}

/// On open, before segments are listed: roll back an uncommitted cleaning, finish a
/// committed one.
pub fn recover(dir: &Path) -> io::Result<()> {
    let work = work_dir(dir);
    if fs_util::file_exists(&work)? {
        tracing::info!(dir = %dir.display(), "rolling back an unfinished cleaning");
        remove_dir_if_exists(&work)?;
        fs_util::fsync_dir(dir)?;
    }
    if fs_util::file_exists(&dir.join(SWAP_DIR))? {
        tracing::info!(dir = %dir.display(), "finishing a committed cleaning");
        finish(dir)?;
    }
    Ok(())
}

fn read_replaces(swap: &Path) -> io::Result<(i64, i64)> {
    let contents = fs::read(swap.join(REPLACES_FILE))?;
    let damaged = || io::Error::new(io::ErrorKind::InvalidData, "damaged cleaner swap manifest");
    if contents.len() != REPLACES_BYTES || contents[0] != REPLACES_VERSION {
        return Err(damaged());
    }
    let crc = u32::from_be_bytes([contents[17], contents[18], contents[19], contents[20]]);
    if crc32c::crc32c(&contents[..17]) != crc {
        return Err(damaged());
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&contents[1..9]);
    let mut end = [0u8; 8];
    end.copy_from_slice(&contents[9..17]);
    let (first, end) = (i64::from_be_bytes(first), i64::from_be_bytes(end));
    if first < 0 || end <= first {
        return Err(damaged());
    }
    Ok((first, end))
}

fn segment_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(|name| fs_util::parse_segment_file_name(name, LOG_EXTENSION))
        {
            bases.push(base);
        }
    }
    Ok(bases)
}

/// The log first (so a crash leaves orphan indexes at most, which open removes).
fn delete_segment_files_at(dir: &Path, base: i64) -> io::Result<()> {
    for extension in [
        LOG_EXTENSION,
        OFFSET_INDEX_EXTENSION,
        TIME_INDEX_EXTENSION,
        TXN_INDEX_EXTENSION,
    ] {
        fs_util::remove_file_if_exists(&segment_file_path(dir, base, extension))?;
    }
    Ok(())
}

fn remove_dir_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    //! A crash anywhere in a swap leaves the old segments or the new one, never a mix: the
    //! states are built from copies of the directory before and after a real cleaning.

    use super::*;
    use crate::compaction::{CleanerConfig, UncompressedOnly};
    use crate::test_encoder::{encode_batch, TestBatch, TestRecord};
    use crate::{BatchIter, Log, LogConfig};

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 100,
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    fn copy_files(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    }

    fn read_all(dir: &Path) -> Vec<u8> {
        let log = Log::open(dir, config(600), 0, 0).unwrap();
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let records = log.read(offset, 1 << 20, true).unwrap().records;
            for item in BatchIter::new(&records) {
                offset = item.unwrap().1.last_offset() + 1;
            }
            out.extend_from_slice(&records);
        }
        assert!(!work_dir(dir).exists() && !dir.join(SWAP_DIR).exists());
        out
    }

    /// The log before and after one cleaning that rewrites all its closed segments into
    /// one, and the active segment's base.
    fn before_and_after(root: &Path) -> (PathBuf, PathBuf, i64) {
        let before = root.join("before");
        let log = Log::open(&before, config(600), 0, 0).unwrap();
        for round in 0..40i64 {
            let key = format!("key-{}", round % 4);
            let value = format!("value-{round}");
            let mut batch = encode_batch(&TestBatch {
                base_offset: 0,
                base_timestamp: 5,
                max_timestamp: 5,
                attributes: 0,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                records: vec![TestRecord {
                    timestamp_delta: 0,
                    key: Some(key.as_bytes()),
                    value: Some(value.as_bytes()),
                }],
            });
            log.append(&mut batch, 0, 5).unwrap();
        }
        drop(log);
        let after = root.join("after");
        copy_files(&before, &after);
        let log = Log::open(&after, config(1 << 20), 0, 0).unwrap();
        let active_base = log.dirty_stats(5, 0).unwrap().cleanable_end_offset;
        let outcome = log
            .clean(&CleanerConfig::default(), &UncompressedOnly, 10)
            .unwrap();
        assert!(outcome.segments_cleaned > 2, "{outcome:?}");
        drop(log);
        (before, after, active_base)
    }

    #[test]
    fn a_crash_during_a_swap_yields_the_old_or_the_new_segments() {
        let root = tempfile::tempdir().unwrap();
        let (before, after, active_base) = before_and_after(root.path());
        let old = read_all(&before);
        let new = read_all(&after);
        assert_ne!(old, new);
        let extensions = [
            LOG_EXTENSION,
            OFFSET_INDEX_EXTENSION,
            TIME_INDEX_EXTENSION,
            TXN_INDEX_EXTENSION,
        ];
        // State 1: the cleaned copy is (partly) written in the work directory.
        let state = |name: &str, torn: bool| {
            let dir = root.path().join(name);
            copy_files(&before, &dir);
            let work = dir.join(WORK_DIR);
            fs::create_dir(&work).unwrap();
            for extension in extensions {
                let from = segment_file_path(&after, 0, extension);
                if from.exists() {
                    fs::copy(&from, segment_file_path(&work, 0, extension)).unwrap();
                }
            }
            if torn {
                let log = segment_file_path(&work, 0, LOG_EXTENSION);
                let length = fs::metadata(&log).unwrap().len();
                fs::File::options()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(length / 2)
                    .unwrap();
            }
            dir
        };
        assert_eq!(read_all(&state("torn", true)), old);
        assert_eq!(read_all(&state("written", false)), old);
        // State 2: committed, nothing moved yet.
        let committed = state("committed", false);
        commit(&committed, 0, active_base).unwrap();
        let copy = root.path().join("committed-copy");
        copy_files(&committed, &copy);
        fs::create_dir(copy.join(SWAP_DIR)).unwrap();
        copy_files(&committed.join(SWAP_DIR), &copy.join(SWAP_DIR));
        assert_eq!(read_all(&committed), new);
        // State 3: the replaced segments deleted and the offset index moved.
        for base in segment_bases(&copy).unwrap() {
            if base > 0 && base < active_base {
                delete_segment_files_at(&copy, base).unwrap();
            }
        }
        fs::rename(
            segment_file_path(&copy.join(SWAP_DIR), 0, OFFSET_INDEX_EXTENSION),
            segment_file_path(&copy, 0, OFFSET_INDEX_EXTENSION),
        )
        .unwrap();
        let partial = root.path().join("partial");
        copy_files(&copy, &partial);
        fs::create_dir(partial.join(SWAP_DIR)).unwrap();
        copy_files(&copy.join(SWAP_DIR), &partial.join(SWAP_DIR));
        assert_eq!(read_all(&partial), new);
        // State 4: everything moved, only the manifest left.
        for extension in extensions {
            let from = segment_file_path(&copy.join(SWAP_DIR), 0, extension);
            if from.exists() {
                fs::rename(&from, segment_file_path(&copy, 0, extension)).unwrap();
            }
        }
        assert_eq!(read_all(&copy), new);
    }
}
