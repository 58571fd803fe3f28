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
//! What is not done (said plainly): transactional and control batches are never rewritten
//! and their keys are not mapped, so transactional data and markers stay until retention
//! (a compacted topic written transactionally keeps every committed and aborted record).
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
