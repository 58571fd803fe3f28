//! Log compaction (`cleanup.policy=compact`, Kafka's LogCleaner): keeps the last record of
//! every key, with gaps in the offsets where older records were.
//!
//! - `offset_map`: key → last offset over the dirty section, bounded in bytes.
//! - `records`: the records inside a batch (the one place besides `control` where storage
//!   reads records; compression goes through the caller's `codec::RecordsCodec`).
//! - `filter`: one batch → keep, rewrite with fewer records, or drop.
//! - `cleaner`: `Log::clean` and `Log::dirty_stats`.
//! - `swap`: replacing segments by their cleaned copy, crash-safely.
//!
//! Transactions (Kafka's rules, simplified for markers): only batches below the last stable
//! offset are cleaned, so every transaction there is decided; records of aborted
//! transactions are removed and never mapped, committed transactional records are compacted
//! like any other, and transaction markers (control batches) are kept.
//! Records with a null key are removed.

pub mod cleaner;
pub mod codec;
pub mod filter;
pub mod offset_map;
pub mod records;
pub(crate) mod swap;

pub use cleaner::{CleanOutcome, CleanerConfig, DirtyStats, RECORDS_BYTES_MAX};
pub use codec::{RecordsCodec, UncompressedOnly};
pub use filter::FilterStats;
