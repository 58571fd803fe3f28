//! Error types of the log. Operating errors only; invariant violations are `assert!`s.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::batch::BatchError;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("the log is closed")]
    Closed,
}

#[derive(Debug, Error)]
pub enum AppendError {
    /// The payload is malformed or a batch is too large; nothing was written.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The payload cannot fit in any segment (Kafka RECORD_BATCH_TOO_LARGE).
    #[error("{bytes} bytes do not fit in a segment of {segment_bytes} bytes")]
    LargerThanSegment { bytes: usize, segment_bytes: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Attaches the operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn context(self, operation: &'static str, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, operation: &'static str, path: &Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        })
    }
}
