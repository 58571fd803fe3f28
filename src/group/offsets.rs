//! A group's committed offsets in memory: what OffsetFetch reads. The durable copy is the
//! group's `__consumer_offsets` partition; this view is rebuilt from it when this node starts
//! coordinating the partition and updated once each commit is replicated. Every entry keeps
//! the offset of the record that wrote it, so commits completing out of order still leave the
//! view equal to a replay of the log (the later record wins).
//!
//! Transactional commits (TxnOffsetCommit) are held apart, per producer, until the producer's
//! transaction ends: a commit marker makes them committed offsets (unless a later record
//! already wrote the partition), an abort marker drops them. Kafka's `OffsetMetadataManager`
//! keeps the same two stores.

use std::collections::BTreeMap;

/// A committed position with what the client sent along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// (topic, partition) → (committed position, offset of its record in the offsets topic).
type Entries = BTreeMap<(String, i32), (CommittedOffset, i64)>;

#[derive(Default)]
pub struct GroupOffsets {
    entries: Entries,
    /// Producer id → the offsets its ongoing transaction committed (not visible yet).
    pending: BTreeMap<i64, Entries>,
}

impl GroupOffsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.entries
            .get(&(topic.to_string(), partition))
            .map(|(committed, _)| committed)
    }

    /// Records `committed`, written at `record_offset`, unless a later record already did.
    pub fn put(
        &mut self,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
        record_offset: i64,
    ) {
        let entry = self
            .entries
            .entry((topic, partition))
            .or_insert((committed.clone(), record_offset));
        if entry.1 <= record_offset {
            *entry = (committed, record_offset);
        }
    }

    /// A tombstone: drops the committed offset and, as Kafka does, every transaction's
    /// pending offset of the partition.
    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let key = (topic.to_string(), partition);
        for pending in self.pending.values_mut() {
            pending.remove(&key);
        }
        self.pending.retain(|_, pending| !pending.is_empty());
        self.entries.remove(&key).map(|(committed, _)| committed)
    }

    /// No committed and no pending offsets.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.pending.is_empty()
    }

    /// Records a transactional commit of `producer_id`, written at `record_offset`; it stays
    /// invisible until the transaction ends. A later commit of the same transaction replaces it.
    pub fn put_pending(
        &mut self,
        producer_id: i64,
        topic: String,
        partition: i32,
        committed: CommittedOffset,
        record_offset: i64,
    ) {
        let pending = self.pending.entry(producer_id).or_default();
        let entry = pending
            .entry((topic, partition))
            .or_insert((committed.clone(), record_offset));
        if entry.1 <= record_offset {
            *entry = (committed, record_offset);
        }
    }

    /// Whether some transaction has an offset of the partition pending (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending
            .values()
            .any(|pending| pending.contains_key(&key))
    }

    /// Whether `producer_id` has pending offsets here.
    pub fn has_pending_of(&self, producer_id: i64) -> bool {
        self.pending.contains_key(&producer_id)
    }

    /// The end of `producer_id`'s transaction, whose marker is at `marker_offset`: on commit
    /// its pending offsets written before the marker become committed (each unless a later
    /// record already wrote its partition), on abort they go. Returns how many were pending.
    /// Completing twice (a replay, then the live hook) changes nothing the second time.
    pub fn complete_transaction(
        &mut self,
        producer_id: i64,
        commit: bool,
        marker_offset: i64,
    ) -> usize {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return 0;
        };
        // Records after the marker belong to the producer's next transaction.
        let (ended, later): (Entries, Entries) = pending
            .into_iter()
            .partition(|(_, (_, record_offset))| *record_offset < marker_offset);
        if !later.is_empty() {
            self.pending.insert(producer_id, later);
        }
        let ended_count = ended.len();
        if commit {
            for ((topic, partition), (committed, record_offset)) in ended {
                self.put(topic, partition, committed, record_offset);
            }
        }
        ended_count
    }

    /// Every pending offset: (producer id, topic, partition).
    pub fn pending_keys(&self) -> Vec<(i64, String, i32)> {
        self.pending
            .iter()
            .flat_map(|(producer_id, pending)| {
                pending
                    .keys()
                    .map(move |(topic, partition)| (*producer_id, topic.clone(), *partition))
            })
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every committed offset, by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.entries
            .iter()
            .map(|((topic, partition), (committed, _))| (topic.as_str(), *partition, committed))
    }

    /// Offsets of an empty group due to expire at `now_ms`: retention counts from the later
    /// of the commit and the moment the group became empty (Kafka's KIP-211 rule; a group
    /// that never had members counts from each commit).
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        empty_since_ms: Option<i64>,
    ) -> Vec<(String, i32)> {
        self.entries
            .iter()
            // Kafka keeps an offset while a transaction has one pending for its partition.
            .filter(|((topic, partition), _)| !self.has_pending(topic, *partition))
            .filter(|(_, (committed, _))| {
                let since = committed
                    .commit_timestamp_ms
                    .max(empty_since_ms.unwrap_or(i64::MIN));
                since.saturating_add(retention_ms) <= now_ms
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64, at_ms: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: at_ms,
        }
    }

    #[test]
    fn retention_counts_from_the_later_of_commit_and_emptiness() {
        let mut offsets = GroupOffsets::default();
        offsets.put("t".into(), 0, committed(5, 1_000), 0);
        offsets.put("t".into(), 1, committed(6, 5_000), 1);
        // An earlier record completing late does not replace a later one.
        offsets.put("t".into(), 1, committed(3, 5_000), 0);
        assert_eq!(offsets.get("t", 1).map(|c| c.offset), Some(6));
        assert_eq!(
            offsets.expired(10_999, 10_000, None),
            Vec::<(String, i32)>::new()
        );
        assert_eq!(
            offsets.expired(11_000, 10_000, None),
            vec![("t".to_string(), 0)]
        );
        assert_eq!(
            offsets.expired(14_000, 10_000, Some(8_000)),
            Vec::<(String, i32)>::new()
        );
        assert_eq!(offsets.expired(18_000, 10_000, Some(8_000)).len(), 2);
        assert_eq!(offsets.remove("t", 0).map(|c| c.offset), Some(5));
        assert_eq!(offsets.len(), 1);
    }

    #[test]
    fn a_marker_ends_only_the_records_written_before_it() {
        let mut offsets = GroupOffsets::default();
        offsets.put("t".into(), 0, committed(1, 0), 0);
        offsets.put_pending(7, "t".into(), 0, committed(5, 0), 3);
        offsets.put_pending(7, "t".into(), 1, committed(6, 0), 9);
        offsets.put_pending(8, "t".into(), 1, committed(2, 0), 4);
        assert!(offsets.has_pending("t", 0) && offsets.has_pending("t", 1));
        // The marker at 6 ends producer 7's records at 3, not the next transaction's at 9.
        assert_eq!(offsets.complete_transaction(7, true, 6), 1);
        assert_eq!(offsets.get("t", 0).map(|c| c.offset), Some(5));
        assert!(!offsets.has_pending("t", 0));
        assert!(offsets.has_pending_of(7) && offsets.has_pending_of(8));
        assert_eq!(offsets.complete_transaction(8, false, 10), 1);
        assert_eq!(offsets.get("t", 1), None);
        // A tombstone drops the committed offset and every pending one of the partition.
        offsets.remove("t", 1);
        assert!(!offsets.has_pending_of(7));
        assert_eq!(offsets.pending_keys(), Vec::new());
        // Pending offsets keep a committed one from expiring.
        offsets.put_pending(9, "t".into(), 0, committed(8, 0), 11);
        assert_eq!(offsets.expired(i64::MAX, 1, None), Vec::new());
        assert_eq!(offsets.complete_transaction(9, false, 12), 1);
        assert_eq!(
            offsets.expired(i64::MAX, 1, None),
            vec![("t".to_string(), 0)]
        );
    }
}
