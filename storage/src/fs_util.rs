//! File-system helpers: segment file names, atomic replacement, and two-step deletion.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Suffix of files being written for an atomic rename; removed on open.
pub const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of files scheduled for removal; removed on open.
pub const DELETED_SUFFIX: &str = ".deleted";
pub const LOG_EXTENSION: &str = "log";
pub const OFFSET_INDEX_EXTENSION: &str = "index";
pub const TIME_INDEX_EXTENSION: &str = "timeindex";
/// Digits in a segment file name's base offset (Kafka's format).
const SEGMENT_NAME_DIGITS: usize = 20;

/// `<dir>/<20-digit base offset>.<extension>`.
pub fn segment_file_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    assert!(base_offset >= 0);
    dir.join(format!("{base_offset:020}.{extension}"))
}

/// Parses `<20 digits>.<extension>` into a base offset.
pub fn parse_segment_file_name(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse::<i64>().ok()
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes `contents` to `path` so that after a crash the file holds either the old or the
/// new contents: temp file, fsync, rename, fsync of the directory.
pub fn write_file_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temp_path = with_suffix(path, TEMP_SUFFIX);
    let mut temp = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp_path)?;
    temp.write_all(contents)?;
    temp.sync_all()?;
    drop(temp);
    fs::rename(&temp_path, path)?;
    fsync_dir(parent_dir(path))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// First step of deleting a file: rename it to `<name>.deleted`. A missing file is fine.
pub fn rename_to_deleted(path: &Path) -> io::Result<Option<PathBuf>> {
    let deleted = with_suffix(path, DELETED_SUFFIX);
    match fs::rename(path, &deleted) {
        Ok(()) => Ok(Some(deleted)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Removes a file, ignoring a missing one.
pub fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

pub fn file_exists(path: &Path) -> io::Result<bool> {
    match fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}
