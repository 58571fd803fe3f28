//! The balancer's plan: which partitions to move where so that replicas and preferred leaders
//! spread evenly over the brokers that may hold them (within one of the even share), racks
//! respected, hot partitions counted for more. Pure: the binary measures partition loads,
//! calls [`plan_moves`] on the active controller and submits the moves as reassignments
//! (add the new replica, let it catch up, switch, drop the old one).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::image::{BrokerId, MetadataImage, PartitionRegistration};

/// Measured load of a partition (bytes in + bytes out per second on its leader).
pub type PartitionLoads = BTreeMap<(Uuid, i32), u64>;

/// A partition's new replica list. The first replica is the preferred leader; a move that
/// only reorders the same replicas changes the preferred leader and copies no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition_index: i32,
    pub replicas: Vec<BrokerId>,
}

/// What the balancer may use and must avoid.
#[derive(Debug, Clone)]
pub struct BalanceInput<'a> {
    pub loads: Option<&'a PartitionLoads>,
    /// Brokers being decommissioned: every replica moves off them.
    pub draining: &'a BTreeSet<BrokerId>,
    /// Partitions already moving (their replica sets are left alone).
    pub moving: &'a BTreeSet<(Uuid, i32)>,
    /// Most moves in the returned plan.
    pub moves_max: usize,
}

/// One replica held by a broker, for the planner's bookkeeping.
#[derive(Debug, Clone)]
struct PartitionState {
    topic_id: Uuid,
    topic: String,
    partition_index: i32,
    replicas: Vec<BrokerId>,
    weight: u64,
}

struct Planner<'a> {
    image: &'a MetadataImage,
    eligible: Vec<BrokerId>,
    partitions: Vec<PartitionState>,
    replica_counts: BTreeMap<BrokerId, usize>,
    leader_counts: BTreeMap<BrokerId, usize>,
    weights: BTreeMap<BrokerId, u64>,
    moved: BTreeSet<usize>,
    moves: Vec<Move>,
}

/// The moves that bring the cluster closest to even, at most `input.moves_max`: first every
/// replica off a draining broker, then replica counts, then preferred leaders.
pub fn plan_moves(image: &MetadataImage, input: &BalanceInput<'_>) -> Vec<Move> {
    let eligible: Vec<BrokerId> = image
        .cluster
        .active_broker_ids()
        .into_iter()
        .filter(|id| !input.draining.contains(id))
        .collect();
    if eligible.is_empty() || input.moves_max == 0 {
        return Vec::new();
    }
    let mut planner = Planner::new(image, eligible, input);
    planner.drain(input.draining, input.moves_max);
    planner.even_replicas(input.moves_max);
    planner.even_leaders(input.moves_max);
    planner.moves
}

impl<'a> Planner<'a> {
    fn new(image: &'a MetadataImage, eligible: Vec<BrokerId>, input: &BalanceInput<'_>) -> Self {
        let mut partitions = Vec::new();
        for topic in image.topics.by_id.values() {
            for (index, partition) in &topic.partitions {
                if input.moving.contains(&(topic.topic_id, *index)) {
                    continue;
                }
                let weight = input
                    .loads
                    .and_then(|loads| loads.get(&(topic.topic_id, *index)).copied())
                    .unwrap_or(0);
                partitions.push(PartitionState {
                    topic_id: topic.topic_id,
                    topic: topic.name.clone(),
                    partition_index: *index,
                    replicas: partition.replicas.clone(),
                    weight,
                });
            }
        }
        let mut planner = Planner {
            image,
            replica_counts: eligible.iter().map(|id| (*id, 0)).collect(),
            leader_counts: eligible.iter().map(|id| (*id, 0)).collect(),
            weights: eligible.iter().map(|id| (*id, 0)).collect(),
            eligible,
            partitions,
            moved: BTreeSet::new(),
            moves: Vec::new(),
        };
        planner.count_moving(input.moving);
        for index in 0..planner.partitions.len() {
            planner.account(index, 1);
        }
        planner
    }

    /// Partitions already moving still occupy their brokers.
    fn count_moving(&mut self, moving: &BTreeSet<(Uuid, i32)>) {
        for (topic_id, index) in moving {
            let Some(partition) = self.image.topics.partition(*topic_id, *index) else {
                continue;
            };
            for broker in &partition.replicas {
                if let Some(count) = self.replica_counts.get_mut(broker) {
                    *count += 1;
                }
            }
        }
    }

    /// Adds (`sign` 1) or removes (0) partition `index`'s replicas to/from the tallies.
    fn account(&mut self, index: usize, sign: u8) {
        let partition = &self.partitions[index];
        for (position, broker) in partition.replicas.iter().enumerate() {
            let add = |value: &mut usize| {
                *value = if sign == 1 {
                    *value + 1
                } else {
                    value.saturating_sub(1)
                }
            };
            if let Some(count) = self.replica_counts.get_mut(broker) {
                add(count);
            }
            if position == 0 {
                if let Some(count) = self.leader_counts.get_mut(broker) {
                    add(count);
                }
            }
            if let Some(weight) = self.weights.get_mut(broker) {
                *weight = if sign == 1 {
                    weight.saturating_add(partition.weight)
                } else {
                    weight.saturating_sub(partition.weight)
                };
            }
        }
    }

    fn room(&self, moves_max: usize) -> bool {
        self.moves.len() < moves_max
    }

    fn drain(&mut self, draining: &BTreeSet<BrokerId>, moves_max: usize) {
        for index in 0..self.partitions.len() {
            if !self.room(moves_max) {
                return;
            }
            let replicas = self.partitions[index].replicas.clone();
            let leaving: Vec<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|id| draining.contains(id))
                .collect();
            if leaving.is_empty() {
                continue;
            }
            let mut target = replicas.clone();
            for broker in leaving {
                let Some(receiver) = self.receiver_for(&target, broker) else {
                    continue;
                };
                if let Some(slot) = target.iter_mut().find(|id| **id == broker) {
                    *slot = receiver;
                }
            }
            if target != replicas {
                self.commit(index, target);
            }
        }
    }

    fn even_replicas(&mut self, moves_max: usize) {
        while self.room(moves_max) {
            let found = self
                .uneven_pairs(&self.replica_counts)
                .into_iter()
                .find_map(|(donor, receiver)| {
                    let index = self.partition_to_move(donor, receiver)?;
                    Some((donor, receiver, index))
                });
            let Some((donor, receiver, index)) = found else {
                return;
            };
            let mut target = self.partitions[index].replicas.clone();
            if let Some(slot) = target.iter_mut().find(|id| **id == donor) {
                *slot = receiver;
            }
            self.commit(index, target);
        }
    }

    /// Preferred leaders: the first replica of each partition, spread like the replicas.
    fn even_leaders(&mut self, moves_max: usize) {
        while self.room(moves_max) {
            let found =
                self.uneven_pairs(&self.leader_counts)
                    .into_iter()
                    .find_map(|(donor, receiver)| {
                        let index = (0..self.partitions.len()).find(|index| {
                            let replicas = &self.partitions[*index].replicas;
                            !self.moved.contains(index)
                                && replicas.first() == Some(&donor)
                                && replicas.contains(&receiver)
                        })?;
                        Some((receiver, index))
                    });
            let Some((receiver, index)) = found else {
                return;
            };
            let mut target = self.partitions[index].replicas.clone();
            if let Some(position) = target.iter().position(|id| *id == receiver) {
                target.swap(0, position);
            }
            self.commit(index, target);
        }
    }

    /// Every (donor, receiver) pair of eligible brokers whose `counts` differ by more than
    /// one, widest gap first (ties by weight, then id, so plans are deterministic): when the
    /// extremes share no movable partition, a narrower pair may still even things out.
    fn uneven_pairs(&self, counts: &BTreeMap<BrokerId, usize>) -> Vec<(BrokerId, BrokerId)> {
        let mut pairs = Vec::new();
        for donor in &self.eligible {
            for receiver in &self.eligible {
                if counts[donor] > counts[receiver] + 1 {
                    pairs.push((*donor, *receiver));
                }
            }
        }
        pairs.sort_by_key(|(donor, receiver)| {
            (
                std::cmp::Reverse(counts[donor] - counts[receiver]),
                std::cmp::Reverse(self.weights[donor]),
                self.weights[receiver],
                *donor,
                std::cmp::Reverse(*receiver),
            )
        });
        pairs
    }

    /// A partition on `donor` that `receiver` does not hold: the one whose weight best halves
    /// the weight gap between them (hot partitions spread first), racks respected.
    fn partition_to_move(&self, donor: BrokerId, receiver: BrokerId) -> Option<usize> {
        let gap = self.weights[&donor].saturating_sub(self.weights[&receiver]) / 2;
        (0..self.partitions.len())
            .filter(|index| !self.moved.contains(index))
            .filter(|index| {
                let replicas = &self.partitions[*index].replicas;
                replicas.contains(&donor)
                    && !replicas.contains(&receiver)
                    && self.rack_allows(replicas, donor, receiver)
            })
            .min_by_key(|index| {
                let partition = &self.partitions[*index];
                (partition.weight.abs_diff(gap), partition.partition_index)
            })
    }

    /// The eligible broker that should take `leaving`'s replica in `replicas`: fewest
    /// replicas, a rack the others do not use when there is one.
    fn receiver_for(&self, replicas: &[BrokerId], leaving: BrokerId) -> Option<BrokerId> {
        let candidates = self
            .eligible
            .iter()
            .copied()
            .filter(|id| !replicas.contains(id));
        let best_with_rack = candidates
            .clone()
            .filter(|id| self.rack_allows(replicas, leaving, *id))
            .min_by_key(|id| (self.replica_counts[id], self.weights[id], *id));
        best_with_rack.or_else(|| {
            candidates.min_by_key(|id| (self.replica_counts[id], self.weights[id], *id))
        })
    }

    /// Whether replacing `leaving` by `joining` keeps the partition on as many racks.
    fn rack_allows(&self, replicas: &[BrokerId], leaving: BrokerId, joining: BrokerId) -> bool {
        let rack = |id: BrokerId| {
            self.image
                .cluster
                .broker(id)
                .and_then(|broker| broker.rack.clone())
        };
        let Some(joining_rack) = rack(joining) else {
            return true;
        };
        let others: BTreeSet<Option<String>> = replicas
            .iter()
            .filter(|id| **id != leaving)
            .map(|id| rack(*id))
            .collect();
        !others.contains(&Some(joining_rack))
            || rack(leaving).is_some_and(|r| others.contains(&Some(r)))
    }

    fn commit(&mut self, index: usize, target: Vec<BrokerId>) {
        self.account(index, 0);
        self.partitions[index].replicas = target.clone();
        self.account(index, 1);
        self.moved.insert(index);
        let partition = &self.partitions[index];
        self.moves.push(Move {
            topic_id: partition.topic_id,
            topic: partition.topic.clone(),
            partition_index: partition.partition_index,
            replicas: target,
        });
    }
}

/// Partitions whose leader is not their preferred (first) replica although that replica is
/// active and in the ISR: a preferred election moves leadership back (after a failover).
pub fn preferred_leader_drift(image: &MetadataImage) -> Vec<(Uuid, i32)> {
    let mut drifted = Vec::new();
    for topic in image.topics.by_id.values() {
        for (index, partition) in &topic.partitions {
            if needs_preferred_election(image, partition) {
                drifted.push((topic.topic_id, *index));
            }
        }
    }
    drifted
}

fn needs_preferred_election(image: &MetadataImage, partition: &PartitionRegistration) -> bool {
    let Some(preferred) = partition.replicas.first() else {
        return false;
    };
    partition.leader != *preferred
        && partition.isr.contains(preferred)
        && image.cluster.is_active(*preferred)
}

#[cfg(test)]
mod tests;
