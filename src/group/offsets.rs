//! A group's committed offsets in memory: what OffsetFetch reads. The durable copy is in
//! `sluice_storage::OffsetStore`; this cache is filled from it at start and updated by the
//! store's writer once a commit is durable, so the two agree in the order writes commit.

use std::collections::BTreeMap;

use sluice_storage::CommittedOffset;

#[derive(Default)]
pub struct GroupOffsets {
    entries: BTreeMap<(String, i32), CommittedOffset>,
}

impl GroupOffsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.entries.get(&(topic.to_string(), partition))
    }

    pub fn put(&mut self, topic: String, partition: i32, committed: CommittedOffset) {
        self.entries.insert((topic, partition), committed);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.entries.remove(&(topic.to_string(), partition))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every committed offset, by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        self.entries
            .iter()
            .map(|((topic, partition), committed)| (topic.as_str(), *partition, committed))
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
            .filter(|(_, committed)| {
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
        offsets.put("t".into(), 0, committed(5, 1_000));
        offsets.put("t".into(), 1, committed(6, 5_000));
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
}
