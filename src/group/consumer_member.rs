//! One member of a KIP-848 consumer group and its reconciliation: how it moves from its
//! current assignment towards its target one (Kafka's `CurrentAssignmentBuilder`).
//!
//! A member first gives up (revokes) partitions it must lose, staying at its epoch until its
//! heartbeat no longer reports them; only then does it advance to the target epoch and get
//! new partitions — and only those no other member still holds. So no partition is ever
//! assigned to two members at once.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::Assignment;

/// Partitions the client says it owns: `None` when the heartbeat did not say.
pub type Owned = Option<Vec<(Uuid, Vec<i32>)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// At its target epoch with everything it can have.
    Stable,
    /// Must stop owning `pending_revocation` before it advances.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still hold.
    UnreleasedPartitions,
}

pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout: Duration,
    pub subscribed_topic_names: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// The member is fenced if not heard from by then.
    pub session_deadline: Instant,
    /// Set while the member must revoke: fenced if it has not by then.
    pub revocation_deadline: Option<Instant>,
    /// The session/revocation timer task; aborted when the member goes.
    pub timer: Option<AbortHandle>,
}

impl ConsumerMember {
    pub fn stop_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }

    /// The earlier of the member's deadlines.
    pub fn next_deadline(&self) -> Instant {
        match self.revocation_deadline {
            Some(revocation) => revocation.min(self.session_deadline),
            None => self.session_deadline,
        }
    }

    pub fn is_reconciled_to(&self, target_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_epoch
    }

    /// Every partition the member holds: assigned and not yet revoked.
    pub fn held(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        self.assigned
            .iter()
            .chain(&self.pending_revocation)
            .flat_map(|(topic_id, partitions)| partitions.iter().map(|p| (*topic_id, *p)))
    }

    /// Sets the member's epoch, remembering the one it had.
    fn advance_epoch(&mut self, epoch: i32) {
        if self.member_epoch != epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = epoch;
        }
    }

    /// One step of reconciliation towards `target` at `target_epoch`. `held_by_other` says
    /// whether another member still holds a partition. Returns whether anything changed.
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: &Owned,
        held_by_other: impl Fn(Uuid, i32) -> bool,
    ) -> bool {
        match self.state {
            MemberState::Stable if self.member_epoch == target_epoch => false,
            MemberState::Stable | MemberState::UnreleasedPartitions => self.next_assignment(
                self.member_epoch,
                target_epoch,
                target,
                owned,
                held_by_other,
            ),
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &self.pending_revocation) {
                    return false;
                }
                // Revocation acknowledged: the member moves on to the next epoch.
                let epoch = self.member_epoch + 1;
                self.next_assignment(epoch, target_epoch, target, owned, held_by_other)
            }
        }
    }

    fn next_assignment(
        &mut self,
        epoch_if_revoking: i32,
        target_epoch: i32,
        target: &Assignment,
        owned: &Owned,
        held_by_other: impl Fn(Uuid, i32) -> bool,
    ) -> bool {
        let mut kept = Assignment::new();
        let mut revoke = Assignment::new();
        let mut gain = Assignment::new();
        let mut unreleased = false;
        for (topic_id, partitions) in &self.assigned {
            let wanted = target.get(topic_id);
            for &partition in partitions {
                let keep = wanted.is_some_and(|w| w.contains(&partition));
                let side = if keep { &mut kept } else { &mut revoke };
                side.entry(*topic_id).or_default().insert(partition);
            }
        }
        for (topic_id, partitions) in target {
            for &partition in partitions {
                let has = kept.get(topic_id).is_some_and(|k| k.contains(&partition));
                if has {
                    continue;
                }
                if held_by_other(*topic_id, partition) {
                    unreleased = true;
                } else {
                    gain.entry(*topic_id).or_default().insert(partition);
                }
            }
        }
        let before = (
            self.state,
            self.member_epoch,
            self.assigned.clone(),
            self.pending_revocation.clone(),
        );
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            self.state = MemberState::UnrevokedPartitions;
            self.advance_epoch(epoch_if_revoking);
            self.assigned = kept;
            self.pending_revocation = revoke;
        } else {
            for (topic_id, partitions) in gain {
                kept.entry(topic_id).or_default().extend(partitions);
            }
            self.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
            self.advance_epoch(target_epoch);
            self.assigned = kept;
            self.pending_revocation = Assignment::new();
        }
        before
            != (
                self.state,
                self.member_epoch,
                self.assigned.clone(),
                self.pending_revocation.clone(),
            )
    }
}

/// Whether the client still reports owning any of `partitions`; a heartbeat that did not
/// say is taken as still owning them (Kafka's rule).
pub fn owns_any(owned: &Owned, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic_id, owned_partitions)| {
        partitions
            .get(topic_id)
            .is_some_and(|set| owned_partitions.iter().any(|p| set.contains(p)))
    })
}

/// Whether every partition the client reports is in `assignment`.
pub fn is_subset(owned: &Owned, assignment: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(topic_id, partitions)| {
        assignment
            .get(topic_id)
            .is_some_and(|set| partitions.iter().all(|p| set.contains(p)))
    })
}

/// `assignment` as the client reports owned partitions.
#[cfg(test)]
pub fn as_owned(assignment: &Assignment) -> Vec<(Uuid, Vec<i32>)> {
    assignment
        .iter()
        .map(|(topic_id, partitions)| (*topic_id, partitions.iter().copied().collect()))
        .collect()
}

/// An assignment from `(topic, partitions)` pairs.
#[cfg(test)]
pub fn assignment_of(pairs: &[(Uuid, &[i32])]) -> Assignment {
    let mut assignment = Assignment::new();
    for (topic_id, partitions) in pairs {
        if !partitions.is_empty() {
            assignment
                .entry(*topic_id)
                .or_default()
                .extend(partitions.iter().copied());
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(7);

    fn member(epoch: i32, assigned: &[i32]) -> ConsumerMember {
        ConsumerMember {
            member_id: "m".into(),
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            member_epoch: epoch,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout: Duration::from_secs(30),
            subscribed_topic_names: BTreeSet::new(),
            server_assignor: None,
            assigned: assignment_of(&[(T, assigned)]),
            pending_revocation: Assignment::new(),
            session_deadline: Instant::now(),
            revocation_deadline: None,
            timer: None,
        }
    }

    fn owned(partitions: &[i32]) -> Owned {
        Some(vec![(T, partitions.to_vec())])
    }

    #[test]
    fn revocation_comes_before_assignment() {
        let mut m = member(1, &[0, 1, 2]);
        let target = assignment_of(&[(T, &[2, 3])]);
        assert!(m.reconcile(2, &target, &owned(&[0, 1, 2]), |_, _| false));
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        assert_eq!(m.member_epoch, 1, "stays at its epoch while revoking");
        assert_eq!(m.assigned, assignment_of(&[(T, &[2])]));
        assert_eq!(m.pending_revocation, assignment_of(&[(T, &[0, 1])]));
        // Still reporting partition 1: nothing moves.
        assert!(!m.reconcile(2, &target, &owned(&[1, 2]), |_, _| false));
        // Revoked: advances and gains 3.
        assert!(m.reconcile(2, &target, &owned(&[2]), |_, _| false));
        assert_eq!(m.state, MemberState::Stable);
        assert_eq!((m.member_epoch, m.previous_member_epoch), (2, 1));
        assert_eq!(m.assigned, target);
        assert!(m.pending_revocation.is_empty());
    }

    #[test]
    fn partitions_held_elsewhere_wait_until_released() {
        let mut m = member(0, &[]);
        let target = assignment_of(&[(T, &[0, 1])]);
        assert!(m.reconcile(3, &target, &Some(vec![]), |_, p| p == 1));
        assert_eq!(m.state, MemberState::UnreleasedPartitions);
        assert_eq!(m.member_epoch, 3);
        assert_eq!(m.assigned, assignment_of(&[(T, &[0])]));
        assert!(!m.reconcile(3, &target, &owned(&[0]), |_, p| p == 1));
        assert!(m.reconcile(3, &target, &owned(&[0]), |_, _| false));
        assert_eq!(m.state, MemberState::Stable);
        assert_eq!(m.assigned, target);
    }

    #[test]
    fn a_member_not_reporting_owned_partitions_still_owns_them() {
        let mut m = member(1, &[0]);
        let target = Assignment::new();
        assert!(m.reconcile(2, &target, &None, |_, _| false));
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        assert!(!m.reconcile(2, &target, &None, |_, _| false));
        assert!(m.reconcile(2, &target, &Some(vec![]), |_, _| false));
        assert!(m.is_reconciled_to(2));
    }

    #[test]
    fn subsets_and_ownership() {
        let a = assignment_of(&[(T, &[1, 2])]);
        assert!(is_subset(&owned(&[1]), &a));
        assert!(is_subset(&Some(vec![]), &a));
        assert!(!is_subset(&owned(&[3]), &a));
        assert!(!is_subset(&None, &a));
        assert!(owns_any(&owned(&[2, 5]), &a));
        assert!(!owns_any(&owned(&[5]), &a));
        assert_eq!(as_owned(&a), vec![(T, vec![1, 2])]);
    }
}
