//! Partition reassignment (KIP-455): add the target replicas, let them catch up, then switch
//! to the target set and drop the rest.
//!
//! A running reassignment is the partition's `adding_replicas` / `removing_replicas`; its
//! replica set is the target followed by the replicas being removed, so every member keeps
//! replicating meanwhile. It completes in the AlterPartition that brings the last target
//! replica into the ISR (or at once when they all are already).

use std::collections::BTreeSet;

use uuid::Uuid;

use super::error_code;
use super::partitions::clean_leader;
use super::{ControllerResult, RecordBudget, BUDGET_EXCEEDED_MESSAGE};
use crate::image::{
    BrokerId, ClusterImage, MetadataImage, MetadataRecord, PartitionRegistration, LEADER_NONE,
};

/// One partition of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReassignmentTarget {
    pub topic: String,
    pub partition_index: i32,
    /// The new replica set, preferred leader first; `None` cancels a running reassignment.
    pub replicas: Option<Vec<BrokerId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterReassignmentsRequest {
    pub targets: Vec<ReassignmentTarget>,
    /// KIP-860: when false, a target of another size than the original set is refused.
    pub allow_replication_factor_change: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition_index: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

pub fn alter_reassignments(
    image: &MetadataImage,
    request: &AlterReassignmentsRequest,
    moves_max: usize,
) -> ControllerResult<Vec<ReassignmentResult>> {
    let mut budget = RecordBudget::new();
    let mut results = Vec::with_capacity(request.targets.len());
    let mut moves = Moves {
        running: running_reassignments(image),
        seen: BTreeSet::new(),
        moves_max,
    };
    for target in &request.targets {
        let outcome = reassignment_records(
            image,
            target,
            request.allow_replication_factor_change,
            &mut moves,
        )
        .and_then(|records| {
            if budget.fits(records.len()) {
                budget.extend(records);
                Ok(())
            } else {
                Err((error_code::POLICY_VIOLATION, BUDGET_EXCEEDED_MESSAGE.into()))
            }
        });
        let (error_code, error_message) = match outcome {
            Ok(()) => (error_code::NONE, None),
            Err((code, message)) => (code, Some(message)),
        };
        results.push(ReassignmentResult {
            topic: target.topic.clone(),
            partition_index: target.partition_index,
            error_code,
            error_message,
        });
    }
    ControllerResult::new(budget.records, results)
}

type Refusal = (i16, String);

/// The move slots while one request is handled: which partitions are moving, and which the
/// request already named.
struct Moves {
    running: BTreeSet<(Uuid, i32)>,
    seen: BTreeSet<(Uuid, i32)>,
    moves_max: usize,
}

fn running_reassignments(image: &MetadataImage) -> BTreeSet<(Uuid, i32)> {
    image
        .topics
        .by_id
        .values()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .filter(|(_, partition)| partition.is_reassigning())
                .map(|(index, _)| (topic.topic_id, *index))
        })
        .collect()
}

fn reassignment_records(
    image: &MetadataImage,
    target: &ReassignmentTarget,
    allow_replication_factor_change: bool,
    moves: &mut Moves,
) -> Result<Vec<MetadataRecord>, Refusal> {
    let unknown = || {
        (
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("{}-{} does not exist", target.topic, target.partition_index),
        )
    };
    let topic = image
        .topics
        .topic_by_name(&target.topic)
        .ok_or_else(unknown)?;
    let current = topic
        .partitions
        .get(&target.partition_index)
        .ok_or_else(unknown)?;
    let key = (topic.topic_id, target.partition_index);
    if !moves.seen.insert(key) {
        let message = "the partition is named twice in the request".to_string();
        return Err((error_code::INVALID_REQUEST, message));
    }
    let queued = image.topics.queued_reassignments.contains_key(&key);
    let dequeue = MetadataRecord::QueueReassignment {
        topic_id: key.0,
        partition_index: key.1,
        target: None,
    };
    let Some(replicas) = &target.replicas else {
        if queued {
            return Ok(vec![dequeue]);
        }
        if !current.is_reassigning() {
            let message = "no reassignment is in progress".to_string();
            return Err((error_code::NO_REASSIGNMENT_IN_PROGRESS, message));
        }
        moves.running.remove(&key);
        let reverted = revert(&image.cluster, current);
        return Ok(transition_records(key.0, key.1, current, &reverted));
    };
    check_target(&image.cluster, replicas)?;
    let original = current.original_replicas().len();
    if !allow_replication_factor_change && replicas.len() != original {
        return Err((
            error_code::INVALID_REPLICATION_FACTOR,
            format!("the replication factor would change from {original}"),
        ));
    }
    let next = start(&image.cluster, &revert(&image.cluster, current), replicas);
    let needs_slot = next.is_reassigning() && !moves.running.contains(&key);
    if needs_slot && moves.running.len() >= moves.moves_max {
        // Every move slot is taken: wait in the queue (replacing any earlier queued target).
        return Ok(vec![MetadataRecord::QueueReassignment {
            topic_id: key.0,
            partition_index: key.1,
            target: Some(replicas.clone()),
        }]);
    }
    if next.is_reassigning() {
        moves.running.insert(key);
    } else {
        moves.running.remove(&key);
    }
    let mut records = if queued { vec![dequeue] } else { vec![] };
    records.extend(transition_records(key.0, key.1, current, &next));
    Ok(records)
}

/// Starts queued reassignments while fewer than `moves_max` run, in queue order.
pub fn promote_queued(image: &MetadataImage, moves_max: usize) -> Vec<MetadataRecord> {
    let mut running = running_reassignments(image).len();
    let mut records = Vec::new();
    for ((topic_id, partition_index), target) in &image.topics.queued_reassignments {
        if running >= moves_max {
            break;
        }
        records.push(MetadataRecord::QueueReassignment {
            topic_id: *topic_id,
            partition_index: *partition_index,
            target: None,
        });
        let Some(current) = image.topics.partition(*topic_id, *partition_index) else {
            continue;
        };
        // A broker may have been unregistered while it waited: the move is dropped.
        if current.is_reassigning() || check_target(&image.cluster, target).is_err() {
            continue;
        }
        let next = start(&image.cluster, current, target);
        records.extend(transition_records(
            *topic_id,
            *partition_index,
            current,
            &next,
        ));
        if next.is_reassigning() {
            running += 1;
        }
    }
    records
}

/// Empty, duplicates and unregistered brokers are refused, as Kafka does.
fn check_target(cluster: &ClusterImage, replicas: &[BrokerId]) -> Result<(), Refusal> {
    let invalid = |message: String| (error_code::INVALID_REPLICA_ASSIGNMENT, message);
    if replicas.is_empty() {
        return Err(invalid("the target replica list is empty".into()));
    }
    let unique: BTreeSet<BrokerId> = replicas.iter().copied().collect();
    if unique.len() != replicas.len() {
        return Err(invalid(format!("duplicate replicas in {replicas:?}")));
    }
    if let Some(unknown) = replicas.iter().find(|id| cluster.broker(**id).is_none()) {
        return Err(invalid(format!("broker {unknown} is not registered")));
    }
    Ok(())
}

/// The registration with any running reassignment undone: back to the original replicas,
/// the adding ones out of the ISR (and out of leadership).
fn revert(cluster: &ClusterImage, current: &PartitionRegistration) -> PartitionRegistration {
    if !current.is_reassigning() {
        return current.clone();
    }
    settle(cluster, current, current.original_replicas())
}

/// Starts moving `current` (no reassignment running) to `target`.
fn start(
    cluster: &ClusterImage,
    current: &PartitionRegistration,
    target: &[BrokerId],
) -> PartitionRegistration {
    assert!(!current.is_reassigning());
    if current.replicas == target {
        return current.clone();
    }
    let removing: Vec<BrokerId> = current
        .replicas
        .iter()
        .copied()
        .filter(|id| !target.contains(id))
        .collect();
    let adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|id| !current.replicas.contains(id))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend_from_slice(&removing);
    let started = PartitionRegistration {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        ..current.clone()
    };
    complete_if_caught_up(cluster, &started).unwrap_or(started)
}

/// The completed reassignment when every target replica is in the ISR.
pub fn complete_if_caught_up(
    cluster: &ClusterImage,
    partition: &PartitionRegistration,
) -> Option<PartitionRegistration> {
    if !partition.is_reassigning() {
        return None;
    }
    let target = partition.target_replicas();
    if !target.iter().all(|id| partition.isr.contains(id)) {
        return None;
    }
    Some(settle(cluster, partition, target))
}

/// `partition` with exactly `replicas` and no reassignment: the ISR keeps only those, and a
/// leader outside them hands over to the first of them in the ISR and active.
fn settle(
    cluster: &ClusterImage,
    partition: &PartitionRegistration,
    replicas: Vec<BrokerId>,
) -> PartitionRegistration {
    let mut isr: Vec<BrokerId> = partition
        .isr
        .iter()
        .copied()
        .filter(|id| replicas.contains(id))
        .collect();
    if isr.is_empty() {
        // None of them is in sync: keep the first as the last ISR member, leaderless unless
        // it is active (as after fencing the last ISR member).
        isr = vec![replicas[0]];
    }
    let mut next = PartitionRegistration {
        replicas,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        ..partition.clone()
    };
    if !next.isr.contains(&next.leader) {
        next.leader = clean_leader(cluster, &next).unwrap_or(LEADER_NONE);
    }
    next
}

/// The records that take `current` to `next` (epochs aside): leader and ISR first, which
/// only shrink here and so stay within both replica sets, then the replica sets.
pub fn transition_records(
    topic_id: Uuid,
    partition_index: i32,
    current: &PartitionRegistration,
    next: &PartitionRegistration,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let leader = (next.leader != current.leader).then_some(next.leader);
    let isr = (next.isr != current.isr).then(|| next.isr.clone());
    if leader.is_some() || isr.is_some() {
        records.push(MetadataRecord::PartitionChange {
            topic_id,
            partition_index,
            leader,
            isr,
        });
    }
    let replicas_changed = next.replicas != current.replicas
        || next.adding_replicas != current.adding_replicas
        || next.removing_replicas != current.removing_replicas;
    if replicas_changed {
        records.push(MetadataRecord::PartitionReassignment {
            topic_id,
            partition_index,
            replicas: next.replicas.clone(),
            adding_replicas: next.adding_replicas.clone(),
            removing_replicas: next.removing_replicas.clone(),
        });
    }
    records
}
