//! The partition's open transactions, ordered by first offset, for the last stable offset
//! (LSO): the first offset a read_committed consumer may not see yet.
//!
//! Like Kafka's `ProducerStateManager.ongoingTxns` + `unreplicatedTxns`: a transaction stays
//! unstable from its first batch until its marker is below the high watermark, so the LSO is
//! `min(high watermark, first offset of every ongoing or not yet replicated transaction)`.
//! Kept apart from the producer map behind its own small lock, so Fetch never waits for the
//! writer.

use std::collections::{BTreeMap, HashMap};

use crate::producer_state::CompletedTxn;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transactions {
    /// first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// producer id → first offset.
    ongoing_by_producer: HashMap<i64, i64>,
    /// Completed, marker not yet below the high watermark: first offset → marker offset.
    unreplicated: BTreeMap<i64, i64>,
}

impl Transactions {
    /// Open transactions as (producer id, first offset).
    pub fn from_ongoing(ongoing: &[(i64, i64)]) -> Transactions {
        let mut transactions = Transactions::default();
        for &(producer_id, first_offset) in ongoing {
            transactions.start(producer_id, first_offset);
        }
        transactions
    }

    pub fn start(&mut self, producer_id: i64, first_offset: i64) {
        // One open transaction per producer; an older one can only be left over when the
        // producer map evicted the producer at its size limit.
        if let Some(old_first) = self.ongoing_by_producer.remove(&producer_id) {
            self.ongoing.remove(&old_first);
        }
        self.ongoing.insert(first_offset, producer_id);
        self.ongoing_by_producer.insert(producer_id, first_offset);
    }

    /// The LSO to record with `completed` in the transaction index (Kafka's
    /// `lastStableOffset(completedTxn)`): the first other unstable offset, or the offset
    /// after the marker.
    pub fn index_last_stable_offset(&self, completed: &CompletedTxn) -> i64 {
        let other_ongoing = self
            .ongoing
            .iter()
            .find(|(_, producer_id)| **producer_id != completed.producer_id)
            .map(|(first, _)| *first);
        let other_unreplicated = self.unreplicated.keys().next().copied();
        [other_ongoing, other_unreplicated]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(completed.last_offset + 1)
    }

    pub fn complete(&mut self, completed: &CompletedTxn) {
        self.end(completed.producer_id);
        self.unreplicated
            .insert(completed.first_offset, completed.last_offset);
    }

    /// A marker for `producer_id` was written: whatever it had open is closed.
    pub fn end(&mut self, producer_id: i64) {
        if let Some(first) = self.ongoing_by_producer.remove(&producer_id) {
            self.ongoing.remove(&first);
        }
    }

    pub fn is_ongoing(&self, producer_id: i64) -> bool {
        self.ongoing_by_producer.contains_key(&producer_id)
    }

    /// Forgets completed transactions whose marker is below `high_watermark`, then answers
    /// the LSO.
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.unreplicated
            .retain(|_, marker_offset| *marker_offset >= high_watermark);
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        [ongoing, unreplicated]
            .into_iter()
            .flatten()
            .fold(high_watermark, i64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(producer_id: i64, first_offset: i64, last_offset: i64) -> CompletedTxn {
        CompletedTxn {
            producer_id,
            first_offset,
            last_offset,
            aborted: true,
        }
    }

    #[test]
    fn the_lso_waits_for_open_and_unreplicated_transactions() {
        let mut transactions = Transactions::default();
        assert_eq!(transactions.last_stable_offset(10), 10);
        transactions.start(1, 3);
        transactions.start(2, 5);
        assert_eq!(transactions.last_stable_offset(10), 3);
        assert!(transactions.is_ongoing(1));
        let first = completed(1, 3, 8);
        assert_eq!(transactions.index_last_stable_offset(&first), 5);
        transactions.complete(&first);
        assert!(!transactions.is_ongoing(1));
        // The marker at 8 is not below the high watermark 8 yet.
        assert_eq!(transactions.last_stable_offset(8), 3);
        assert_eq!(transactions.last_stable_offset(9), 5);
        let second = completed(2, 5, 9);
        assert_eq!(transactions.index_last_stable_offset(&second), 10);
        transactions.complete(&second);
        assert_eq!(transactions.last_stable_offset(9), 5);
        assert_eq!(transactions.last_stable_offset(12), 12);
    }
}
