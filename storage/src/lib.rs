//! sluice-storage: partition logs on disk and durable broker metadata.
//!
//! What this crate owns:
//! - `Log`: one partition's log in one directory, laid out like Kafka's (segment files named by
//!   base offset, sparse `.index`/`.timeindex` files). The bytes on disk are the record batch
//!   bytes of the wire (Kafka message format v2), so reads return stored bytes unchanged.
//! - Appends check each batch header and CRC-32C, stamp offsets, leader epoch and (optionally)
//!   LogAppendTime in place, and write; there is no per-record work or allocation.
//! - Crash safety: a recovery point, a clean-shutdown marker, and a CRC scan of the unflushed
//!   tail on open that cuts the log at the first torn or damaged batch.
//! - Retention (time, size), DeleteRecords, truncation.
//! - Idempotent producers: per-partition producer state (epoch, last five batch sequences)
//!   checked on append, snapshotted to `<offset>.snapshot` files and rebuilt on open.
//! - Transactions (KIP-98): each producer's ongoing transaction, the markers that end it
//!   (`Log::append_txn_marker`), the last stable offset, and an aborted-transaction index
//!   per segment (`.txnindex`, Kafka's format) for read_committed reads, and KIP-890's
//!   verification guard (`Log::start_txn_verification`, `Log::append_verified`).
//! - Log compaction (`compaction`, Kafka's LogCleaner): `Log::clean` keeps each key's last
//!   record, rewriting closed segments and swapping them in crash-safely. It is the one part
//!   that reads records (keys and null values); compressed ones through a caller's codec.
//! - `MetadataStore`: topics, log start offsets, cluster id and producer id blocks in redb.
//!
//! What it must not know: Kafka requests and responses, client sessions, Raft or any other
//! replication protocol, record contents outside compaction, compression codecs. Callers
//! translate errors into Kafka error codes (see `BatchError`, `ReadError`).
//!
//! See `DESIGN.md` next to this crate's `Cargo.toml` for file formats and durability rules.

mod active_segment;
pub mod batch;
mod checkpoint;
pub mod compaction;
pub mod control;
mod error;
mod fs_util;
mod index_file;
pub mod leader_epoch_cache;
pub mod legacy_offsets;
mod loader;
mod lock;
pub mod log;
pub mod metadata_store;
pub mod offset_index;
mod producer_recovery;
pub mod producer_snapshot;
pub mod producer_state;
mod recovery;
pub mod segment;
pub mod time_index;
pub mod transactions;
pub mod txn_index;
pub mod verification;

pub use batch::{
    validate_batches, BatchError, BatchHeader, BatchIter, BatchesSummary, CorruptReason,
    TimestampType,
};
pub use control::TxnMarker;
pub use error::{AppendError, ReadError, StorageError};
pub use index_file::IndexDamage;
pub use legacy_offsets::{read_legacy_offsets, LegacyOffset, LegacyOffsetsError};
pub use loader::OpenReport;
pub use log::{AppendOutcome, Log, LogConfig, ReadOutcome, RetentionOutcome};
pub use metadata_store::{DecodeError, MetadataStore, MetadataStoreError, TopicRecord};
pub use producer_state::{
    BatchMetadata, CompletedTxn, ProducerEntry, ProducerStateMap, PRODUCER_ID_EXPIRATION_MS_DEFAULT,
};
pub use recovery::{ScanDamage, ScanOutcome};
pub use txn_index::AbortedTxn;
pub use verification::VerificationGuard;

#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_encoder;
