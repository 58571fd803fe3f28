//! Small durable files of a log directory: the recovery point, the high watermark (Kafka's
//! `replication-offset-checkpoint`, kept per partition here) and the clean-shutdown marker.

use std::io;
use std::path::{Path, PathBuf};

use crate::fs_util::{self, write_file_atomically};

pub const RECOVERY_POINT_FILE: &str = "recovery-point";
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Format version byte of the offset files (recovery point, high watermark).
const OFFSET_FILE_VERSION: u8 = 1;
/// version (1) + offset (8) + CRC-32C of the first 9 bytes (4).
const OFFSET_FILE_BYTES: usize = 13;

pub fn recovery_point_path(dir: &Path) -> PathBuf {
    dir.join(RECOVERY_POINT_FILE)
}

pub fn clean_shutdown_path(dir: &Path) -> PathBuf {
    dir.join(CLEAN_SHUTDOWN_FILE)
}

pub fn high_watermark_path(dir: &Path) -> PathBuf {
    dir.join(HIGH_WATERMARK_FILE)
}

/// Persists `offset`: every batch below it is on disk (fsynced) before this is called.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// The first offset the log cleaner has not cleaned (Kafka's cleaner-offset-checkpoint).
pub fn write_cleaner_checkpoint(dir: &Path, offset: i64) -> io::Result<()> {
    write_offset_file(&dir.join(CLEANER_CHECKPOINT_FILE), offset)
}

pub fn read_cleaner_checkpoint(dir: &Path) -> io::Result<Option<i64>> {
    read_offset_file(&dir.join(CLEANER_CHECKPOINT_FILE))
}

pub const TOMBSTONE_HORIZON_FILE: &str = "cleaner-tombstone-horizon";

/// The earliest delete horizon of a tombstone the cleaner kept; `None` removes the file.
pub fn write_tombstone_horizon(dir: &Path, horizon_ms: Option<i64>) -> io::Result<()> {
    let path = dir.join(TOMBSTONE_HORIZON_FILE);
    match horizon_ms {
        Some(horizon_ms) => write_offset_file(&path, horizon_ms),
        None => fs_util::remove_file_if_exists(&path),
    }
}

pub fn read_tombstone_horizon(dir: &Path) -> io::Result<Option<i64>> {
    read_offset_file(&dir.join(TOMBSTONE_HORIZON_FILE))
}

pub fn write_recovery_point(dir: &Path, offset: i64) -> io::Result<()> {
    write_offset_file(&recovery_point_path(dir), offset)
}

/// The persisted recovery point, or `None` if the file is missing or damaged (then the whole
/// log is scanned, which is slow but safe).
pub fn read_recovery_point(dir: &Path) -> io::Result<Option<i64>> {
    read_offset_file(&recovery_point_path(dir))
}

/// Persists the high watermark: every offset below it was on every in-sync replica.
pub fn write_high_watermark(dir: &Path, offset: i64) -> io::Result<()> {
    write_offset_file(&high_watermark_path(dir), offset)
}

/// The persisted high watermark, or `None` if the file is missing or damaged (then the
/// replica starts at its log start and learns the rest from its leader).
pub fn read_high_watermark(dir: &Path) -> io::Result<Option<i64>> {
    read_offset_file(&high_watermark_path(dir))
}

fn write_offset_file(path: &Path, offset: i64) -> io::Result<()> {
    let mut contents = [0u8; OFFSET_FILE_BYTES];
    contents[0] = OFFSET_FILE_VERSION;
    contents[1..9].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&contents[..9]);
    contents[9..].copy_from_slice(&crc.to_be_bytes());
    write_file_atomically(path, &contents)
}

fn read_offset_file(path: &Path) -> io::Result<Option<i64>> {
    let contents = match std::fs::read(path) {
        Ok(contents) => contents,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    if contents.len() != OFFSET_FILE_BYTES || contents[0] != OFFSET_FILE_VERSION {
        return Ok(None);
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&contents[9..]);
    if crc32c::crc32c(&contents[..9]) != u32::from_be_bytes(crc) {
        return Ok(None);
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&contents[1..9]);
    let offset = i64::from_be_bytes(offset);
    Ok((offset >= 0).then_some(offset))
}

pub fn write_clean_shutdown_marker(dir: &Path) -> io::Result<()> {
    write_file_atomically(&clean_shutdown_path(dir), &[])
}

/// Removes the marker (durably) and reports whether it was there.
pub fn take_clean_shutdown_marker(dir: &Path) -> io::Result<bool> {
    let path = clean_shutdown_path(dir);
    if !fs_util::file_exists(&path)? {
        return Ok(false);
    }
    std::fs::remove_file(&path)?;
    fs_util::fsync_dir(dir)?;
    Ok(true)
}
