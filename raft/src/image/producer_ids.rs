//! The producer-ids sub-image: where the next producer-id block starts.

/// Blocks below `next_producer_id` were handed out; ids are never reused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerIdsImage {
    pub next_producer_id: i64,
}

impl ProducerIdsImage {
    pub const EMPTY: ProducerIdsImage = ProducerIdsImage {
        next_producer_id: 0,
    };
}
