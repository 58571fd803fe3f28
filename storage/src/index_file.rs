//! Writing and reading index files. Entries are buffered in memory and written at the file
//! end in chunks; a rebuilt index replaces the file atomically so a crash never leaves a
//! structurally valid but incomplete index behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::fs_util;

/// Pending index bytes are written once this many accumulate (and on flush/roll/close).
pub const INDEX_WRITE_BUFFER_BYTES: usize = 4096;

/// Why an index file was rejected (it is then rebuilt from its segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IndexDamage {
    #[error("index size is not a multiple of the entry size")]
    SizeNotMultiple,
    #[error("index entries are not increasing")]
    NotMonotonic,
    #[error("index position beyond the segment end")]
    PositionBeyondSegment,
    #[error("index larger than its segment could need")]
    TooLarge,
    #[error("index entry does not point at the batch it names")]
    EntryMismatch,
    #[error("index file missing")]
    Missing,
}

/// Append handle for the active segment's index file.
pub struct IndexFile {
    path: PathBuf,
    file: File,
    written_bytes: u64,
    pending: Vec<u8>,
}

impl IndexFile {
    /// Opens `path` for appending so that it holds exactly `contents` (the in-memory entries).
    /// The file is rewritten if its length differs.
    pub fn open(path: &Path, contents: &[u8]) -> io::Result<IndexFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != contents.len() as u64 {
            file.set_len(0)?;
            file.write_all_at(contents, 0)?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            written_bytes: contents.len() as u64,
            pending: Vec::with_capacity(INDEX_WRITE_BUFFER_BYTES),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Buffers an entry; no I/O (see `write_pending`).
    pub fn push(&mut self, entry: &[u8]) {
        self.pending.extend_from_slice(entry);
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.pending, self.written_bytes)?;
        self.written_bytes += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.file.sync_data()
    }
}

/// Reads a whole index file, refusing files larger than `bytes_max` (a damaged or foreign
/// file must not make us allocate without bound).
pub fn read_index_file(path: &Path, bytes_max: u64) -> io::Result<Result<Vec<u8>, IndexDamage>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Err(IndexDamage::Missing))
        }
        Err(error) => return Err(error),
    };
    let length = file.metadata()?.len();
    if length > bytes_max {
        return Ok(Err(IndexDamage::TooLarge));
    }
    let mut bytes = vec![0u8; length as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(Ok(bytes))
}

/// Replaces an index file with `contents` via temp file + fsync + rename + dir fsync.
pub fn rewrite_index_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    fs_util::write_file_atomically(path, contents)
}
