//! The error of a redb-backed store operation, before it becomes openraft's `StorageError`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Boxed: redb's errors are large and this travels through every store call.
    #[error("redb: {0}")]
    Redb(Box<redb::Error>),
    #[error("encoding: {0}")]
    Postcard(#[from] postcard::Error),
    #[error("metadata records: {0}")]
    Decode(#[from] crate::image::DecodeError),
    #[error("metadata replay: {0}")]
    Replay(#[from] crate::image::ReplayError),
    #[error("blocking task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
}

macro_rules! from_redb {
    ($($error:ty),*) => {
        $(impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Redb(Box::new(redb::Error::from(error)))
            }
        })*
    };
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
