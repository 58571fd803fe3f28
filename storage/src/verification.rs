//! KIP-890 part 1's verification guard (Kafka's `VerificationStateEntry`): closes the race
//! between the transaction coordinator's "this partition is in the transaction" answer and
//! the append of the producer's first transactional batch.
//!
//! The leader records a guard for the producer *before* it asks the coordinator. Any
//! transactional batch or marker of that producer written to the log (the transaction started
//! or ended, here or through replication) removes it. The verified batch is appended only if
//! the guard it got is still the producer's guard: a marker that landed in between (the
//! coordinator ended the transaction) removed it, and a newer verification replaced it with a
//! different one (the ABA case: a stale answer cannot start a later transaction). Without
//! this, the late batch would open a transaction no coordinator will ever end (a hanging
//! transaction that holds the last stable offset back forever).
//!
//! In memory only, like Kafka: a restart loses the guards, which fails the verifying appends
//! (the producer retries and verifies again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::producer_state::PRODUCERS_MAX;

/// A unique token for one verification; [`VerificationGuard::NONE`] is "none obtained"
/// (Kafka's `VerificationGuard.SENTINEL`), which never verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    pub const NONE: VerificationGuard = VerificationGuard(0);

    pub fn is_none(self) -> bool {
        self == VerificationGuard::NONE
    }

    /// A guard no other verification of this process ever had.
    fn next() -> VerificationGuard {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let value = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(value != 0, "verification guards exhausted");
        VerificationGuard(value)
    }
}

/// One producer's verification in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationEntry {
    pub guard: VerificationGuard,
    /// Wall clock when the verification started (entries expire like producers).
    pub started_ms: i64,
    /// The lowest sequence seen verifying with `producer_epoch`: a higher sequence cannot be
    /// appended before it (Kafka's out-of-order loop protection).
    pub lowest_sequence: i32,
    pub producer_epoch: i16,
}

/// The verifications in progress of one partition, by producer id.
#[derive(Debug, Default)]
pub struct Verifications {
    entries: HashMap<i64, VerificationEntry>,
}

impl Verifications {
    /// Starts (or joins) the producer's verification: the guard the verified append must
    /// present. A producer already verifying keeps its guard (concurrent retries share it);
    /// its lowest sequence follows Kafka's `maybeUpdateLowestSequenceAndEpoch`.
    pub fn start(
        &mut self,
        producer_id: i64,
        sequence: i32,
        producer_epoch: i16,
        now_ms: i64,
    ) -> VerificationGuard {
        if !self.entries.contains_key(&producer_id) && self.entries.len() >= PRODUCERS_MAX {
            self.evict_oldest();
        }
        let entry = self
            .entries
            .entry(producer_id)
            .or_insert_with(|| VerificationEntry {
                guard: VerificationGuard::next(),
                started_ms: now_ms,
                lowest_sequence: sequence,
                producer_epoch,
            });
        if producer_epoch == entry.producer_epoch && sequence < entry.lowest_sequence {
            entry.lowest_sequence = sequence;
        }
        if producer_epoch > entry.producer_epoch {
            entry.producer_epoch = producer_epoch;
            entry.lowest_sequence = sequence;
        }
        assert!(!entry.guard.is_none());
        entry.guard
    }

    pub fn get(&self, producer_id: i64) -> Option<&VerificationEntry> {
        self.entries.get(&producer_id)
    }

    /// Whether `guard` is the producer's current guard.
    pub fn verifies(&self, producer_id: i64, guard: VerificationGuard) -> bool {
        !guard.is_none()
            && self
                .entries
                .get(&producer_id)
                .is_some_and(|entry| entry.guard == guard)
    }

    /// The producer's transaction started or ended: its verification is over.
    pub fn clear(&mut self, producer_id: i64) {
        self.entries.remove(&producer_id);
    }

    /// Forgets verifications older than `expiration_ms` (never answered); returns how many.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, entry| now_ms.saturating_sub(entry.started_ms) < expiration_ms);
        before - self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, entry)| entry.started_ms)
            .map(|(producer_id, _)| *producer_id);
        if let Some(producer_id) = oldest {
            self.entries.remove(&producer_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_verifies_until_cleared_and_is_never_reused() {
        let mut verifications = Verifications::default();
        let first = verifications.start(7, 3, 0, 100);
        assert!(verifications.verifies(7, first));
        assert!(!verifications.verifies(7, VerificationGuard::NONE));
        assert!(!verifications.verifies(8, first));
        // A concurrent retry joins the same verification, with the lower sequence.
        assert_eq!(verifications.start(7, 1, 0, 150), first);
        assert_eq!(verifications.get(7).map(|e| e.lowest_sequence), Some(1));
        // A newer epoch resets the lowest sequence.
        assert_eq!(verifications.start(7, 0, 1, 150), first);
        assert_eq!(
            verifications
                .get(7)
                .map(|e| (e.producer_epoch, e.lowest_sequence)),
            Some((1, 0))
        );
        verifications.clear(7);
        assert!(!verifications.verifies(7, first));
        let second = verifications.start(7, 0, 1, 200);
        assert_ne!(second, first);
        assert!(!verifications.verifies(7, first));
        assert!(verifications.verifies(7, second));
    }

    #[test]
    fn unanswered_verifications_expire() {
        let mut verifications = Verifications::default();
        verifications.start(1, 0, 0, 100);
        verifications.start(2, 0, 0, 500);
        assert_eq!(verifications.remove_expired(1_099, 1_000), 0);
        assert_eq!(verifications.remove_expired(1_100, 1_000), 1);
        assert!(verifications.get(1).is_none());
        assert!(verifications.get(2).is_some());
    }
}
