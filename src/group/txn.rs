//! Transactional offset commits (KIP-98 / KIP-447): TxnOffsetCommit writes the offsets as a
//! transactional batch of the committing producer to the group's `__consumer_offsets`
//! partition and keeps them pending; the transaction's marker on that partition (written by
//! WriteTxnMarkers) makes them committed offsets or drops them. While a transaction has an
//! offset pending, OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it.
//!
//! Pending offsets are recorded when their batch is appended, not when it is replicated: the
//! in-memory view then matches a replay of this leader's log, whatever order replication and
//! markers complete in (a record lost with its leader is unloaded with the partition).

use std::future::Future;

use kafka_protocol::ResponseError;

use super::offset_records::{self, OffsetKey, OffsetRecord, TxnProducer};
use super::{
    lock_group, offsets_partition_for, CommittedOffset, GroupCoordinator, LateMarker, Membership,
    Ownership, Replicated, TxnOffsetCommit,
};

/// One partition's OffsetFetch answer: (topic, partition, committed, error).
pub type FetchedOffset = (String, i32, Option<CommittedOffset>, Option<ResponseError>);

impl GroupCoordinator {
    /// TxnOffsetCommit: validates the member (if named), appends the offsets as a
    /// transactional batch of the producer and returns once every ISR member holds it. The
    /// offsets become visible when the transaction commits ([`Self::complete_transaction`]).
    pub fn commit_transactional(
        &self,
        group_id: &str,
        commit: TxnOffsetCommit,
    ) -> impl Future<Output = Result<(), ResponseError>> + Send + 'static {
        let submitted = self.submit_txn_commit(group_id, commit);
        async move {
            match submitted? {
                Some(replicated) => replicated.await,
                None => Ok(()),
            }
        }
    }

    fn submit_txn_commit(
        &self,
        group_id: &str,
        commit: TxnOffsetCommit,
    ) -> Result<Option<Replicated>, ResponseError> {
        let partition = self.coordinated(group_id)?;
        let member = &commit.member;
        let slot = match self.slot(group_id) {
            Some(slot) => slot,
            // Kafka creates a "simple" group for a commit naming no generation.
            None if member.generation_id < 0 => self.slot_or_create(group_id)?,
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut group = lock_group(&slot);
        if group.is_dead() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        match &mut group.membership {
            Membership::Classic(classic) => classic.validate_txn_commit(member)?,
            Membership::Consumer(consumer) => consumer.validate_txn_commit(
                &member.member_id,
                member.generation_id,
                member.group_instance_id.as_deref(),
            )?,
        }
        if commit.offsets.is_empty() {
            return Ok(None);
        }
        let records: Vec<OffsetRecord> = commit
            .offsets
            .iter()
            .map(|offset| OffsetRecord {
                key: OffsetKey {
                    group: group_id.to_string(),
                    topic: offset.topic.clone(),
                    partition: offset.partition,
                },
                value: Some(offset.committed.clone()),
            })
            .collect();
        let (first_offset, replicated) = self.append_transactional(partition, &commit, &records)?;
        for (offset, record_offset) in commit.offsets.into_iter().zip(first_offset..) {
            group.offsets.put_pending(
                commit.producer_id,
                offset.topic,
                offset.partition,
                offset.committed,
                record_offset,
            );
        }
        Ok(Some(replicated))
    }

    /// Appends `records` as one transactional batch of the producer; returns the offset of
    /// the first record and what resolves once they are replicated.
    fn append_transactional(
        &self,
        partition: i32,
        commit: &TxnOffsetCommit,
        records: &[OffsetRecord],
    ) -> Result<(i64, Replicated), ResponseError> {
        let (producer_id, producer_epoch) = (commit.producer_id, commit.producer_epoch);
        assert!(!records.is_empty());
        let log = self
            .log
            .get()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let _serialized = self.txn_appends.lock().unwrap_or_else(|e| e.into_inner());
        let base_sequence = log.next_sequence(partition, producer_id, producer_epoch)?;
        let producer = TxnProducer {
            producer_id,
            producer_epoch,
            base_sequence,
        };
        let batch = offset_records::encode_txn_batch(records, producer, crate::broker::now_ms())
            .map_err(|error| {
                tracing::warn!(%error, producer_id, "encoding transactional offset records");
                ResponseError::UnknownServerError
            })?;
        let (last_offset, replicated) =
            log.append(partition, batch, Some(commit.verification_guard))?;
        let first_offset = last_offset - (records.len() as i64 - 1);
        Ok((first_offset, replicated))
    }

    /// A transaction of `producer_id` ended on offsets partition `partition` with a marker
    /// at `marker_offset`, now on every ISR member: its pending offsets there become
    /// committed (`commit`) or are dropped. Called by WriteTxnMarkers on the partition's
    /// leader; a partition this node does not coordinate is ignored (its new leader replays
    /// the marker), one still loading applies it when the load finishes.
    pub fn complete_transaction(
        &self,
        partition: i32,
        producer_id: i64,
        commit: bool,
        marker_offset: i64,
    ) {
        let owned = self.owned();
        match owned.get(&partition) {
            Some(Ownership::Active { .. }) => {}
            Some(Ownership::Loading { .. }) => {
                let marker = LateMarker {
                    producer_id,
                    commit,
                    marker_offset,
                };
                self.late_markers()
                    .entry(partition)
                    .or_default()
                    .push(marker);
                return;
            }
            None => return,
        }
        let count = self.partition_count();
        let slots: Vec<_> = self
            .groups()
            .iter()
            .filter(|(id, _)| offsets_partition_for(id, count) == partition)
            .map(|(_, slot)| slot.clone())
            .collect();
        drop(owned);
        let mut ended = 0;
        for slot in slots {
            let mut group = lock_group(&slot);
            if group.is_dead() || !group.offsets.has_pending_of(producer_id) {
                continue;
            }
            ended += group
                .offsets
                .complete_transaction(producer_id, commit, marker_offset);
        }
        tracing::debug!(
            partition,
            producer_id,
            commit,
            offsets = ended,
            "transaction ended in the offsets topic"
        );
    }

    /// OffsetFetch: committed offsets of `wanted` partitions (`None`: every partition with
    /// one). With `require_stable`, a partition with a transaction's offset pending answers
    /// UNSTABLE_OFFSET_COMMIT (the client retries until the transaction ends).
    pub fn fetch_offsets_stable(
        &self,
        group_id: &str,
        wanted: Option<&[(String, i32)]>,
        require_stable: bool,
    ) -> Result<Vec<FetchedOffset>, ResponseError> {
        self.coordinated(group_id)?;
        let slot = self.slot(group_id);
        let group = slot.as_ref().map(|slot| lock_group(slot));
        let offsets = group.as_ref().map(|group| &group.offsets);
        let answer = |topic: &str, partition: i32, found: Option<&CommittedOffset>| {
            let unstable =
                require_stable && offsets.is_some_and(|o| o.has_pending(topic, partition));
            if unstable {
                (
                    topic.to_string(),
                    partition,
                    None,
                    Some(ResponseError::UnstableOffsetCommit),
                )
            } else {
                (topic.to_string(), partition, found.cloned(), None)
            }
        };
        Ok(match wanted {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partition)| {
                    let found = offsets.and_then(|o| o.get(topic, *partition));
                    answer(topic, *partition, found)
                })
                .collect(),
            None => offsets
                .map(|offsets| {
                    offsets
                        .iter()
                        .map(|(topic, partition, committed)| {
                            answer(topic, partition, Some(committed))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
