//! Counters of conversion work for old clients, so its cost is visible: how many messages
//! and bytes were up-converted on produce and down-converted on fetch since start.
//!
//! Process-wide atomics (relaxed: they are statistics, not synchronisation). The totals are
//! logged at info level each time the down-converted bytes cross another
//! [`DOWN_CONVERTED_LOG_INTERVAL_BYTES`].

use std::sync::atomic::{AtomicU64, Ordering};

/// How often (in down-converted bytes) the running totals are logged.
pub const DOWN_CONVERTED_LOG_INTERVAL_BYTES: u64 = 64 * 1024 * 1024;

static UP_CONVERTED_MESSAGES: AtomicU64 = AtomicU64::new(0);
static UP_CONVERTED_BYTES: AtomicU64 = AtomicU64::new(0);
static DOWN_CONVERTED_MESSAGES: AtomicU64 = AtomicU64::new(0);
static DOWN_CONVERTED_BYTES: AtomicU64 = AtomicU64::new(0);
static DOWN_CONVERSIONS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// The counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LegacyStats {
    /// Old-format messages stored as v2 records.
    pub up_converted_messages: u64,
    /// Bytes of the v2 batches they became.
    pub up_converted_bytes: u64,
    /// v2 records sent to old readers as old-format messages.
    pub down_converted_messages: u64,
    /// Bytes of the message sets sent to old readers.
    pub down_converted_bytes: u64,
    /// Partitions answered UNSUPPORTED_VERSION because down-conversion is disabled.
    pub down_conversions_refused: u64,
}

pub fn snapshot() -> LegacyStats {
    LegacyStats {
        up_converted_messages: UP_CONVERTED_MESSAGES.load(Ordering::Relaxed),
        up_converted_bytes: UP_CONVERTED_BYTES.load(Ordering::Relaxed),
        down_converted_messages: DOWN_CONVERTED_MESSAGES.load(Ordering::Relaxed),
        down_converted_bytes: DOWN_CONVERTED_BYTES.load(Ordering::Relaxed),
        down_conversions_refused: DOWN_CONVERSIONS_REFUSED.load(Ordering::Relaxed),
    }
}

pub fn record_up_conversion(messages: usize, bytes: usize) {
    UP_CONVERTED_MESSAGES.fetch_add(messages as u64, Ordering::Relaxed);
    UP_CONVERTED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
}

pub fn record_down_conversion(messages: usize, bytes: usize) {
    let bytes = bytes as u64;
    DOWN_CONVERTED_MESSAGES.fetch_add(messages as u64, Ordering::Relaxed);
    let before = DOWN_CONVERTED_BYTES.fetch_add(bytes, Ordering::Relaxed);
    let after = before + bytes;
    if before / DOWN_CONVERTED_LOG_INTERVAL_BYTES != after / DOWN_CONVERTED_LOG_INTERVAL_BYTES {
        let totals = snapshot();
        tracing::info!(?totals, "legacy client conversion totals");
    }
}

pub fn record_down_conversion_refused() {
    DOWN_CONVERSIONS_REFUSED.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_only_grow() {
        let before = snapshot();
        record_up_conversion(3, 100);
        record_down_conversion(2, 50);
        record_down_conversion_refused();
        let after = snapshot();
        // Other tests may convert concurrently, so the deltas are lower bounds.
        assert!(after.up_converted_messages >= before.up_converted_messages + 3);
        assert!(after.up_converted_bytes >= before.up_converted_bytes + 100);
        assert!(after.down_converted_messages >= before.down_converted_messages + 2);
        assert!(after.down_converted_bytes >= before.down_converted_bytes + 50);
        assert!(after.down_conversions_refused > before.down_conversions_refused);
    }
}
