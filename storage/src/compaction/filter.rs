//! What the cleaner does with one batch (Kafka's `MemoryRecords.filterTo` with the cleaner's
//! retention rule): keep it byte for byte, rewrite it with fewer records, or drop it.
//!
//! A rewritten batch keeps its base offset, last offset delta, producer id, epoch, base
//! sequence, leader epoch and attributes, so kept records keep their offsets (the dropped
//! ones leave gaps) and a producer's sequences stay continuous. Committed transactional
//! batches are cleaned like others, aborted ones removed, markers kept (see `compaction`).

use std::borrow::Cow;

use crate::batch::{
    encode_batch, BatchHeader, TimestampType, ATTRIBUTE_COMPRESSION_MASK,
    ATTRIBUTE_DELETE_HORIZON_BIT, BATCH_HEADER_BYTES, NO_TIMESTAMP,
};
use crate::compaction::codec::{RecordsCodec, CODEC_NONE};
use crate::compaction::offset_map::OffsetMap;
use crate::compaction::records::{encode_record, parse_records, Record};

/// The cleaner's rules for one cleaning.
pub struct FilterRules<'a> {
    pub map: &'a OffsetMap,
    /// Batches at or above this offset were not seen by the map and are kept.
    pub map_end: i64,
    pub now_ms: i64,
    /// `delete.retention.ms`: how long a tombstone stays after the cleaning that first saw it.
    pub delete_retention_ms: i64,
    pub codec: &'a dyn RecordsCodec,
    /// Bound on a batch's decompressed records.
    pub records_bytes_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Rewrite(Vec<u8>),
    Drop,
}

/// Counters of one cleaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterStats {
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub null_key_records_removed: u64,
    /// Batches of aborted transactions removed (or emptied).
    pub aborted_batches_removed: u64,
    /// Batches kept whole because the cleaner does not rewrite them (transaction markers, or
    /// records it cannot decode).
    pub batches_untouched: u64,
    /// The earliest delete horizon of a tombstone still in the cleaned part of the log.
    pub tombstone_horizon_ms: Option<i64>,
}

/// Whether the map may look inside this batch (an aborted transaction's batch is excluded
/// by the caller, who knows the aborted transactions).
pub fn is_cleanable(header: &BatchHeader) -> bool {
    !header.is_control() && header.record_count > 0
}

/// The batch's uncompressed record section, or `None` when it cannot be decoded.
pub fn records_section<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    codec: &dyn RecordsCodec,
    bytes_max: usize,
) -> Option<Cow<'a, [u8]>> {
    let section = &batch[BATCH_HEADER_BYTES..];
    match header.compression_codec() {
        CODEC_NONE => Some(Cow::Borrowed(section)),
        id => codec
            .decompress(id, section, bytes_max)
            .ok()
            .map(Cow::Owned),
    }
}

/// Decides the fate of `batch` (below the last stable offset, so its transaction, if any,
/// is decided: `aborted` says how). `keep_empty`: when every record goes, keep an empty
/// batch (the producer's last batch in the log, so its sequence survives a restart).
pub fn filter_batch(
    batch: &[u8],
    header: &BatchHeader,
    rules: &FilterRules<'_>,
    aborted: bool,
    keep_empty: bool,
    stats: &mut FilterStats,
) -> Fate {
    if header.base_offset >= rules.map_end {
        return Fate::Keep;
    }
    if header.is_control() {
        // Markers stay: consumers skip them and they are tiny (Kafka removes them once
        // their transaction's records are gone and a horizon passed; not done here).
        stats.batches_untouched += 1;
        return Fate::Keep;
    }
    if aborted && header.record_count > 0 {
        // Nobody reading committed data sees these records (Kafka's cleaner drops them).
        stats.records_removed += header.record_count as u64;
        stats.aborted_batches_removed += 1;
        return if keep_empty {
            Fate::Rewrite(empty_batch(header))
        } else {
            Fate::Drop
        };
    }
    if header.record_count == 0 {
        // Left by an earlier cleaning; only the producer's last batch needs it.
        return if keep_empty { Fate::Keep } else { Fate::Drop };
    }
    let Some(section) = records_section(batch, header, rules.codec, rules.records_bytes_max) else {
        stats.batches_untouched += 1;
        return Fate::Keep;
    };
    let Ok(records) = parse_records(&section, header.record_count) else {
        stats.batches_untouched += 1;
        return Fate::Keep;
    };
    let horizon_passed = header.has_delete_horizon() && header.base_timestamp <= rules.now_ms;
    let mut kept = Vec::with_capacity(records.len());
    for record in &records {
        let offset = header.base_offset + i64::from(record.offset_delta);
        let Some(key) = record.key else {
            stats.null_key_records_removed += 1;
            continue;
        };
        if rules.map.get(key).is_some_and(|latest| latest > offset) {
            continue;
        }
        if record.value.is_none() && horizon_passed {
            stats.tombstones_removed += 1;
            continue;
        }
        kept.push(*record);
    }
    stats.records_removed += (records.len() - kept.len()) as u64;
    let has_tombstone = kept.iter().any(|record| record.value.is_none());
    let horizon_ms = if header.has_delete_horizon() {
        header.base_timestamp
    } else {
        rules
            .now_ms
            .saturating_add(rules.delete_retention_ms.max(0))
    };
    if has_tombstone {
        stats.tombstone_horizon_ms = Some(
            stats
                .tombstone_horizon_ms
                .map_or(horizon_ms, |earliest| earliest.min(horizon_ms)),
        );
    }
    let set_horizon = has_tombstone && !header.has_delete_horizon();
    if kept.len() == records.len() && !set_horizon {
        return Fate::Keep;
    }
    if kept.is_empty() {
        if keep_empty {
            return Fate::Rewrite(empty_batch(header));
        }
        return Fate::Drop;
    }
    let horizon = set_horizon.then_some(horizon_ms);
    Fate::Rewrite(rewrite(header, &kept, horizon, rules.codec))
}

/// The batch header without records: offsets and producer fields stay. A CreateTime batch
/// loses its maximum timestamp (no record carries it any more), so time lookups and the
/// segment's time index never land on a batch without records.
fn empty_batch(header: &BatchHeader) -> Vec<u8> {
    let mut empty = *header;
    empty.record_count = 0;
    empty.attributes &= !ATTRIBUTE_COMPRESSION_MASK;
    if header.timestamp_type() == TimestampType::CreateTime {
        empty.max_timestamp = NO_TIMESTAMP;
    }
    encode_batch(&empty, &[])
}

/// Re-encodes `kept` (compressed with the batch's codec when possible). With a new delete
/// horizon the base timestamp becomes the horizon and the record deltas follow (KIP-534).
fn rewrite(
    header: &BatchHeader,
    kept: &[Record<'_>],
    horizon_ms: Option<i64>,
    codec: &dyn RecordsCodec,
) -> Vec<u8> {
    let mut out = *header;
    out.record_count = kept.len() as i32;
    let base_timestamp = match horizon_ms {
        Some(horizon) => {
            out.attributes |= ATTRIBUTE_DELETE_HORIZON_BIT;
            horizon
        }
        None => header.base_timestamp,
    };
    out.base_timestamp = base_timestamp;
    let mut section = Vec::new();
    let mut max_timestamp = i64::MIN;
    for record in kept {
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(timestamp);
        encode_record(
            &mut section,
            record,
            timestamp.saturating_sub(base_timestamp),
        );
    }
    if header.timestamp_type() == TimestampType::CreateTime {
        out.max_timestamp = max_timestamp;
    }
    let id = header.compression_codec();
    if id != CODEC_NONE {
        match codec.compress(id, &section) {
            Ok(compressed) => return encode_batch(&out, &compressed),
            Err(error) => {
                tracing::warn!(codec = id, %error, "cannot recompress a cleaned batch; storing it uncompressed");
                out.attributes &= !ATTRIBUTE_COMPRESSION_MASK;
            }
        }
    }
    encode_batch(&out, &section)
}
