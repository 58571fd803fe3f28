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
    /// An idempotent batch does not continue its producer's sequence (a gap, a reordering,
    /// or a new epoch not starting at 0): Kafka OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error(
        "out of order sequence number for producer {producer_id} epoch {producer_epoch}: \
         got {sequence}, expected {expected_sequence}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        producer_epoch: i16,
        sequence: i32,
        expected_sequence: i32,
    },
    /// An idempotent batch carries an epoch older than its producer's latest: Kafka
    /// INVALID_PRODUCER_EPOCH (a zombie instance of a producer whose epoch was bumped).
    #[error(
        "epoch {producer_epoch} of producer {producer_id} is older than the last seen epoch \
         {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        producer_epoch: i16,
        current_epoch: i16,
    },
    /// An idempotent batch with a negative base sequence: Kafka INVALID_RECORD.
    #[error("invalid sequence number {sequence} in a batch of producer {producer_id}")]
    InvalidSequence { producer_id: i64, sequence: i32 },
    /// A client sent a control batch; only the broker writes transaction markers: Kafka
    /// INVALID_RECORD.
    #[error("control batches are written by the broker only")]
    ControlBatchFromClient,
    /// A non-transactional batch of a producer whose transaction is open in this partition:
    /// Kafka INVALID_TXN_STATE.
    #[error("producer {producer_id} has an ongoing transaction; expected a transactional batch")]
    InvalidTxnState { producer_id: i64 },
    /// A marker from a transaction coordinator older than the one that wrote the producer's
    /// last marker: Kafka TRANSACTION_COORDINATOR_FENCED.
    #[error(
        "coordinator epoch {coordinator_epoch} for producer {producer_id} is older than \
         {current_coordinator_epoch}"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current_coordinator_epoch: i32,
    },
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
