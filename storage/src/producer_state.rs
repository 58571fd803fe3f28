//! Per-partition state of idempotent producers: for each producer id its epoch and its last
//! few batches' sequence ranges and offsets, and the rules (Kafka's `ProducerAppendInfo`)
//! that accept, refuse or recognize as duplicate an incoming batch.
//!
//! Transactions (KIP-98): a transactional batch of a producer with no ongoing transaction in
//! this partition starts one at its first offset; a marker (`TxnMarker`) ends it and reports
//! the completed transaction, which the log turns into an aborted-transaction index entry
//! and a moved last stable offset.
//!
//! Pure in-memory logic: no I/O. `Log` asks for an [`AppendPlan`] before writing anything
//! and applies it only after the write succeeded, so a refused or failed append leaves the
//! state untouched.

use std::collections::{HashMap, VecDeque};

use crate::batch::{BatchHeader, BatchIter};
use crate::control::{parse_marker, TxnMarker};
use crate::error::AppendError;

/// Batches remembered per producer for duplicate detection: Kafka's
/// `NUM_BATCHES_TO_RETAIN`, the client's `max.in.flight.requests.per.connection` limit.
pub const BATCHES_RETAINED: usize = 5;
/// Producers remembered per partition. Beyond it the least recently appending producer is
/// forgotten (it is then treated as unknown, which Kafka accepts with any sequence).
pub const PRODUCERS_MAX: usize = 100_000;
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// A batch header's "no epoch".
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Kafka's `RecordBatch.NO_SEQUENCE`, also "no batch retained".
pub const NO_SEQUENCE: i32 = -1;
/// No transaction marker seen yet.
pub const NO_COORDINATOR_EPOCH: i32 = -1;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// What the partition knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_epoch: i16,
    /// Oldest first; at most [`BATCHES_RETAINED`] batches, all of `producer_epoch`. Empty
    /// only for a producer known from a transaction marker alone (or whose epoch a marker
    /// bumped).
    pub batches: VecDeque<BatchMetadata>,
    /// Wall clock of the producer's last append (expiry runs on it).
    pub last_append_ms: i64,
    /// Epoch of the transaction coordinator that wrote this producer's last marker.
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    /// An entry with no batch yet.
    pub fn new(producer_epoch: i16, now_ms: i64) -> ProducerEntry {
        ProducerEntry {
            producer_epoch,
            batches: VecDeque::with_capacity(BATCHES_RETAINED),
            last_append_ms: now_ms,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
        }
    }

    /// The last retained batch's last sequence, or [`NO_SEQUENCE`].
    pub fn last_sequence(&self) -> i32 {
        self.batches
            .back()
            .map_or(NO_SEQUENCE, |batch| batch.last_sequence)
    }

    /// The last retained batch's last offset, or -1.
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |batch| batch.last_offset)
    }

    /// The sequence the producer's next batch of `epoch` must start with.
    fn expected_sequence(&self, epoch: i16) -> i32 {
        if epoch != self.producer_epoch || self.batches.is_empty() {
            0
        } else {
            next_sequence(self.last_sequence())
        }
    }

    /// A marker of a newer epoch forgets the older epoch's batches (Kafka's
    /// `maybeUpdateProducerEpoch`).
    fn bump_epoch(&mut self, epoch: i16) {
        if epoch != self.producer_epoch {
            self.batches.clear();
            self.producer_epoch = epoch;
        }
    }

    fn find_duplicate(&self, epoch: i16, first: i32, last: i32) -> Option<BatchMetadata> {
        if epoch != self.producer_epoch {
            return None;
        }
        let found = self
            .batches
            .iter()
            .find(|batch| batch.first_sequence == first && batch.last_sequence == last);
        found.copied()
    }

    /// Records `batch` of `epoch`; a new epoch forgets the older epoch's batches.
    fn push(&mut self, epoch: i16, batch: BatchMetadata, now_ms: i64) {
        self.bump_epoch(epoch);
        if self.batches.len() == BATCHES_RETAINED {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_append_ms = now_ms;
        assert!(!self.batches.is_empty() && self.batches.len() <= BATCHES_RETAINED);
    }

    /// A producer in a transaction never expires (Kafka's `isProducerExpired`): its
    /// transaction must end with a marker first.
    fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.current_txn_first_offset.is_none()
            && now_ms.saturating_sub(self.last_append_ms) >= expiration_ms
    }
}

/// A transaction a marker ended in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    pub aborted: bool,
}

/// What a batch did to a producer's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnEvent {
    Started { producer_id: i64, first_offset: i64 },
    Completed(CompletedTxn),
}

/// A marker's update of its producer, applied once the marker is written.
#[derive(Debug)]
pub struct PendingMarker {
    producer_id: i64,
    entry: ProducerEntry,
    pub completed: Option<CompletedTxn>,
}

/// The last sequence of a batch: sequences wrap from `i32::MAX` to 0, as in Kafka.
pub fn last_sequence(first_sequence: i32, last_offset_delta: i32) -> i32 {
    assert!(first_sequence >= 0 && last_offset_delta >= 0);
    if first_sequence > i32::MAX - last_offset_delta {
        last_offset_delta - (i32::MAX - first_sequence) - 1
    } else {
        first_sequence + last_offset_delta
    }
}

/// The sequence that follows `last`.
pub fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

/// What an append must do with respect to producer state.
#[derive(Debug)]
pub enum AppendPlan {
    /// Write the payload, then apply these updated entries.
    Write(PendingProducers),
    /// Every batch was appended before: write nothing, answer with the original offsets.
    Duplicate(DuplicateOf),
}

/// The original placement of a payload whose batches are all duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateOf {
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
}

/// Entries updated by a payload, applied once its bytes are written.
#[derive(Debug, Default)]
pub struct PendingProducers {
    entries: Vec<(i64, ProducerEntry)>,
    /// Transactions the payload starts: (producer id, first offset).
    started: Vec<(i64, i64)>,
}

impl PendingProducers {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Transactions the payload starts: (producer id, first offset).
    pub fn started_txns(&self) -> &[(i64, i64)] {
        &self.started
    }
}

/// How one batch relates to its producer's state.
enum BatchCheck {
    New,
    Duplicate(BatchMetadata),
}

/// All producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    pub fn new() -> ProducerStateMap {
        ProducerStateMap::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every entry, sorted by producer id (snapshots are deterministic).
    pub fn entries_sorted(&self) -> Vec<(i64, &ProducerEntry)> {
        let mut entries: Vec<(i64, &ProducerEntry)> = self
            .producers
            .iter()
            .map(|(id, entry)| (*id, entry))
            .collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        entries
    }

    /// Inserts a whole entry (snapshot loading).
    pub(crate) fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        assert!(entry.batches.len() <= BATCHES_RETAINED);
        self.producers.insert(producer_id, entry);
    }

    /// Checks every batch of a validated, unstamped payload whose first record will get
    /// `base_offset`, in order, against the state as the earlier batches leave it.
    /// All-or-nothing: one refused batch refuses the payload. A payload made only of
    /// duplicates is a duplicate; one mixing duplicates with new batches is out of order
    /// (clients never send that; writing part of it would break the all-or-nothing rule).
    pub fn plan_append(
        &self,
        payload: &[u8],
        base_offset: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<AppendPlan, AppendError> {
        let mut pending = PendingProducers::default();
        let mut duplicate: Option<DuplicateOf> = None;
        let mut new_batches = 0u32;
        let mut first_offset = base_offset;
        for item in BatchIter::new(payload) {
            let (_, header) = item?;
            let batch_first_offset = first_offset;
            first_offset += i64::from(header.last_offset_delta) + 1;
            if header.is_control() {
                // Only the broker writes markers (`plan_marker`); Kafka refuses a client's
                // control batch as an invalid record.
                return Err(AppendError::ControlBatchFromClient);
            }
            if header.producer_id < 0 {
                new_batches += 1;
                continue;
            }
            let check = self.check_batch(
                &mut pending,
                &header,
                batch_first_offset,
                now_ms,
                expiration_ms,
            )?;
            match check {
                BatchCheck::New => new_batches += 1,
                BatchCheck::Duplicate(original) => {
                    let merged = duplicate.map_or(original.first_offset, |d| d.first_offset);
                    duplicate = Some(DuplicateOf {
                        first_offset: merged,
                        last_offset: original.last_offset,
                        max_timestamp_ms: duplicate
                            .map_or(original.max_timestamp_ms, |d| d.max_timestamp_ms)
                            .max(original.max_timestamp_ms),
                    });
                }
            }
            if duplicate.is_some() && new_batches > 0 {
                return Err(out_of_order(
                    &header,
                    self.expected_sequence(&pending, &header),
                ));
            }
        }
        match duplicate {
            Some(original) => Ok(AppendPlan::Duplicate(original)),
            None => Ok(AppendPlan::Write(pending)),
        }
    }

    /// Kafka's `checkProducerEpoch` + `checkSequence` for one batch; a new batch updates the
    /// pending entry of its producer.
    fn check_batch(
        &self,
        pending: &mut PendingProducers,
        header: &BatchHeader,
        first_offset: i64,
        now_ms: i64,
        expiration_ms: i64,
    ) -> Result<BatchCheck, AppendError> {
        let producer_id = header.producer_id;
        let epoch = header.producer_epoch;
        let first = header.base_sequence;
        if first < 0 {
            return Err(AppendError::InvalidSequence {
                producer_id,
                sequence: first,
            });
        }
        let last = last_sequence(first, header.last_offset_delta);
        let at = pending
            .entries
            .iter()
            .position(|(id, _)| *id == producer_id);
        let current = match at {
            Some(at) => Some(&pending.entries[at].1),
            None => self
                .producers
                .get(&producer_id)
                .filter(|entry| !entry.is_expired(now_ms, expiration_ms)),
        };
        if let Some(entry) = current {
            if let Some(original) = entry.find_duplicate(epoch, first, last) {
                return Ok(BatchCheck::Duplicate(original));
            }
            if epoch < entry.producer_epoch {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id,
                    producer_epoch: epoch,
                    current_epoch: entry.producer_epoch,
                });
            }
            let known_epoch = entry.producer_epoch != NO_PRODUCER_EPOCH;
            let expected = entry.expected_sequence(epoch);
            if known_epoch && first != expected {
                return Err(out_of_order(header, expected));
            }
        }
        // An unknown producer (never seen, expired, or whose batches were all deleted) is
        // accepted at any sequence: Kafka's rule since KIP-360.
        let batch = BatchMetadata {
            first_sequence: first,
            last_sequence: last,
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta),
            max_timestamp_ms: header.max_timestamp,
        };
        let mut updated = current
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(epoch, now_ms));
        updated.push(epoch, batch, now_ms);
        match (updated.current_txn_first_offset, header.is_transactional()) {
            (None, true) => {
                updated.current_txn_first_offset = Some(first_offset);
                pending.started.push((producer_id, first_offset));
            }
            (Some(_), false) => return Err(AppendError::InvalidTxnState { producer_id }),
            _ => {}
        }
        match at {
            Some(at) => pending.entries[at].1 = updated,
            None => pending.entries.push((producer_id, updated)),
        }
        Ok(BatchCheck::New)
    }

    fn expected_sequence(&self, pending: &PendingProducers, header: &BatchHeader) -> i32 {
        let pending_entry = pending
            .entries
            .iter()
            .find(|(id, _)| *id == header.producer_id)
            .map(|(_, entry)| entry);
        pending_entry
            .or_else(|| self.producers.get(&header.producer_id))
            .map_or(0, |entry| entry.expected_sequence(header.producer_epoch))
    }

    /// Kafka's `appendEndTxnMarker`: a marker `marker_offset` for its producer. `checked`
    /// (the leader's own append) refuses an older producer epoch or coordinator epoch; a
    /// replica records what its leader wrote unchecked.
    pub fn plan_marker(
        &self,
        marker: &TxnMarker,
        marker_offset: i64,
        now_ms: i64,
        checked: bool,
    ) -> Result<PendingMarker, AppendError> {
        let producer_id = marker.producer_id;
        let mut entry = self
            .producers
            .get(&producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(marker.producer_epoch, now_ms));
        if checked && marker.producer_epoch < entry.producer_epoch {
            return Err(AppendError::InvalidProducerEpoch {
                producer_id,
                producer_epoch: marker.producer_epoch,
                current_epoch: entry.producer_epoch,
            });
        }
        if checked && marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(AppendError::CoordinatorFenced {
                producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                current_coordinator_epoch: entry.coordinator_epoch,
            });
        }
        let completed = entry
            .current_txn_first_offset
            .map(|first_offset| CompletedTxn {
                producer_id,
                first_offset,
                last_offset: marker_offset,
                aborted: !marker.commit,
            });
        entry.bump_epoch(marker.producer_epoch);
        entry.current_txn_first_offset = None;
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_append_ms = now_ms;
        Ok(PendingMarker {
            producer_id,
            entry,
            completed,
        })
    }

    /// Makes a written marker's update current.
    pub fn apply_marker(&mut self, pending: PendingMarker) {
        let mut producers = PendingProducers::default();
        producers.entries.push((pending.producer_id, pending.entry));
        self.apply(producers);
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|entry| entry.current_txn_first_offset.is_some())
    }

    /// Whether `producer_id` has a transaction open in this partition at `producer_epoch`.
    pub fn has_ongoing_txn_at(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers.get(&producer_id).is_some_and(|entry| {
            entry.current_txn_first_offset.is_some() && entry.producer_epoch == producer_epoch
        })
    }

    /// Every ongoing transaction: (producer id, first offset).
    pub fn ongoing_txns(&self) -> Vec<(i64, i64)> {
        self.producers
            .iter()
            .filter_map(|(id, entry)| entry.current_txn_first_offset.map(|first| (*id, first)))
            .collect()
    }

    /// Makes a written payload's updates current.
    pub fn apply(&mut self, pending: PendingProducers) {
        for (producer_id, entry) in pending.entries {
            if !self.producers.contains_key(&producer_id) && self.producers.len() >= PRODUCERS_MAX {
                self.evict_least_recent();
            }
            self.producers.insert(producer_id, entry);
        }
        assert!(self.producers.len() <= PRODUCERS_MAX);
    }

    fn evict_least_recent(&mut self) {
        // A producer in a transaction goes last: forgetting it loses its first offset.
        let oldest = self
            .producers
            .iter()
            .min_by_key(|(id, entry)| {
                let in_txn = entry.current_txn_first_offset.is_some();
                (in_txn, entry.last_append_ms, **id)
            })
            .map(|(id, _)| *id);
        if let Some(oldest) = oldest {
            self.producers.remove(&oldest);
        }
    }

    /// Records a batch already in the log (rebuilding state on open, or a replica appending
    /// its leader's batches): no checks, as Kafka's replay of its own log. `control_batch` is
    /// the whole batch when the header says control (markers are read from the record);
    /// `now_ms` stands for the unknown append time, so replayed producers expire no earlier
    /// than one expiration period after the open.
    pub fn replay(
        &mut self,
        header: &BatchHeader,
        control_batch: Option<&[u8]>,
        now_ms: i64,
    ) -> Option<TxnEvent> {
        if header.is_control() {
            let marker = control_batch.and_then(|batch| parse_marker(header, batch))?;
            if marker.producer_id < 0 {
                return None;
            }
            let pending = self
                .plan_marker(&marker, header.base_offset, now_ms, false)
                .ok()?;
            let completed = pending.completed;
            self.apply_marker(pending);
            return completed.map(TxnEvent::Completed);
        }
        self.replay_batch(header, now_ms)
    }

    fn replay_batch(&mut self, header: &BatchHeader, now_ms: i64) -> Option<TxnEvent> {
        if header.producer_id < 0 || header.base_sequence < 0 || header.last_offset_delta < 0 {
            return None;
        }
        let batch = BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header.base_sequence, header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp_ms: header.max_timestamp,
        };
        let mut pending = PendingProducers::default();
        let mut entry = self
            .producers
            .get(&header.producer_id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(header.producer_epoch, now_ms));
        entry.push(header.producer_epoch, batch, now_ms);
        let started = (header.is_transactional() && entry.current_txn_first_offset.is_none())
            .then_some(header.base_offset);
        if let Some(first_offset) = started {
            entry.current_txn_first_offset = Some(first_offset);
        }
        pending.entries.push((header.producer_id, entry));
        self.apply(pending);
        started.map(|first_offset| TxnEvent::Started {
            producer_id: header.producer_id,
            first_offset,
        })
    }

    /// Forgets producers idle for `expiration_ms`; returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| !entry.is_expired(now_ms, expiration_ms));
        before - self.producers.len()
    }

    /// Forgets producers whose last batch lies wholly below the log start (deleted by
    /// retention or DeleteRecords); returns how many. Producers in a transaction and those
    /// known from markers alone stay.
    pub fn remove_below(&mut self, log_start_offset: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry.batches.is_empty()
                || entry.current_txn_first_offset.is_some()
                || entry.last_offset() >= log_start_offset
        });
        before - self.producers.len()
    }
}

fn out_of_order(header: &BatchHeader, expected_sequence: i32) -> AppendError {
    AppendError::OutOfOrderSequence {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        sequence: header.base_sequence,
        expected_sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_encoder::{encode_batch, TestBatch, TestRecord};

    fn batch(producer_id: i64, sequence: i32) -> Vec<u8> {
        encode_batch(&TestBatch {
            base_offset: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            attributes: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: sequence,
            records: vec![TestRecord {
                timestamp_delta: 0,
                key: None,
                value: Some(b"v"),
            }],
        })
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        assert_eq!(last_sequence(0, 0), 0);
        assert_eq!(last_sequence(10, 4), 14);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 5), 3);
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(next_sequence(6), 7);
    }

    #[test]
    fn plans_are_applied_only_when_asked() {
        let mut producers = ProducerStateMap::new();
        let plan = producers.plan_append(&batch(1, 0), 10, 0, 1_000).unwrap();
        assert!(producers.is_empty(), "planning changes nothing");
        let AppendPlan::Write(pending) = plan else {
            panic!("a new batch is written")
        };
        producers.apply(pending);
        let entry = producers.get(1).unwrap();
        assert_eq!(entry.last_offset(), 10);
        assert_eq!(entry.last_append_ms, 0);
    }

    #[test]
    fn the_least_recent_producer_is_evicted_at_the_limit() {
        let mut producers = ProducerStateMap::new();
        for producer_id in 0..=PRODUCERS_MAX as i64 {
            let AppendPlan::Write(pending) = producers
                .plan_append(&batch(producer_id, 0), producer_id, producer_id, i64::MAX)
                .unwrap()
            else {
                panic!("new producers are written")
            };
            producers.apply(pending);
        }
        assert_eq!(producers.len(), PRODUCERS_MAX);
        assert!(producers.get(0).is_none(), "the oldest went");
        assert!(producers.get(1).is_some());
        assert!(producers.get(PRODUCERS_MAX as i64).is_some());
    }
}
