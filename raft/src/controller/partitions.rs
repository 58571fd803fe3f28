//! Leadership and ISR: leader election, AlterPartition, and moving partitions off a broker
//! that is fenced or shutting down.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::error_code;
use super::reassignments::{complete_if_caught_up, transition_records};
use super::{ControllerResult, RecordBudget};
use crate::image::{
    BrokerId, ClusterImage, MetadataImage, MetadataRecord, PartitionRegistration, LEADER_NONE,
};

/// The first replica, in preferred order, that is in the ISR and active.
pub fn clean_leader(cluster: &ClusterImage, partition: &PartitionRegistration) -> Option<BrokerId> {
    partition
        .replicas
        .iter()
        .copied()
        .find(|id| partition.isr.contains(id) && cluster.is_active(*id))
}

/// Changes that take `broker_id` out of leadership and ISRs, at most `records_max` of them.
/// The last ISR member stays in the ISR (so a clean election stays possible when it returns)
/// but loses leadership.
pub fn remove_broker_from_partitions(
    image: &MetadataImage,
    broker_id: BrokerId,
    records_max: usize,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.by_id.values() {
        for (index, partition) in &topic.partitions {
            if records.len() >= records_max {
                return records;
            }
            if !partition.isr.contains(&broker_id) && partition.leader != broker_id {
                continue;
            }
            let isr: Vec<BrokerId> = partition
                .isr
                .iter()
                .copied()
                .filter(|id| *id != broker_id)
                .collect();
            let isr = if isr.is_empty() {
                partition.isr.clone()
            } else {
                isr
            };
            let leader = if partition.leader == broker_id {
                let remaining = PartitionRegistration {
                    isr: isr.clone(),
                    ..partition.clone()
                };
                let next = clean_leader(&image.cluster, &remaining).filter(|id| *id != broker_id);
                Some(next.unwrap_or(LEADER_NONE))
            } else {
                None
            };
            let isr_changed = isr != partition.isr;
            if leader.is_none() && !isr_changed {
                continue;
            }
            records.push(MetadataRecord::PartitionChange {
                topic_id: topic.topic_id,
                partition_index: *index,
                leader,
                isr: isr_changed.then_some(isr),
            });
        }
    }
    records
}

/// Changes that give leaderless partitions whose ISR holds `broker_id` that broker as leader.
pub fn lead_orphaned_partitions(
    image: &MetadataImage,
    broker_id: BrokerId,
    records_max: usize,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.by_id.values() {
        for (index, partition) in &topic.partitions {
            if records.len() >= records_max {
                return records;
            }
            if partition.leader == LEADER_NONE && partition.isr.contains(&broker_id) {
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.topic_id,
                    partition_index: *index,
                    leader: Some(broker_id),
                    isr: None,
                });
            }
        }
    }
    records
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    /// Move leadership back to the first replica, if it is in the ISR and active.
    Preferred,
    /// Elect from the ISR if possible, else from any active replica: may lose records.
    Unclean,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectLeadersRequest {
    pub election_type: ElectionType,
    /// `(topic_id, partition_index)` pairs; `None` means every partition.
    pub partitions: Option<Vec<(Uuid, i32)>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectionResult {
    pub topic_id: Uuid,
    pub partition_index: i32,
    pub error_code: i16,
}

pub fn elect_leaders(
    image: &MetadataImage,
    request: &ElectLeadersRequest,
) -> ControllerResult<Vec<ElectionResult>> {
    let targets: Vec<(Uuid, i32)> = match &request.partitions {
        Some(partitions) => partitions.clone(),
        None => image
            .topics
            .by_id
            .values()
            .flat_map(|topic| {
                topic
                    .partitions
                    .keys()
                    .map(|index| (topic.topic_id, *index))
            })
            .collect(),
    };
    let mut budget = RecordBudget::new();
    let mut results = Vec::with_capacity(targets.len());
    for (topic_id, partition_index) in targets {
        let error_code = match image.topics.partition(topic_id, partition_index) {
            None => error_code::UNKNOWN_TOPIC_OR_PARTITION,
            Some(partition) => match elect(&image.cluster, partition, request.election_type) {
                Err(code) => code,
                Ok(_) if !budget.fits(1) => error_code::POLICY_VIOLATION,
                Ok((leader, isr)) => {
                    budget.extend(vec![MetadataRecord::PartitionChange {
                        topic_id,
                        partition_index,
                        leader: Some(leader),
                        isr,
                    }]);
                    error_code::NONE
                }
            },
        };
        results.push(ElectionResult {
            topic_id,
            partition_index,
            error_code,
        });
    }
    ControllerResult::new(budget.records, results)
}

/// The new leader (and ISR, for an unclean election) or the error code saying why not.
fn elect(
    cluster: &ClusterImage,
    partition: &PartitionRegistration,
    election_type: ElectionType,
) -> Result<(BrokerId, Option<Vec<BrokerId>>), i16> {
    match election_type {
        ElectionType::Preferred => {
            let preferred = partition.replicas[0];
            if partition.leader == preferred {
                Err(error_code::ELECTION_NOT_NEEDED)
            } else if partition.isr.contains(&preferred) && cluster.is_active(preferred) {
                Ok((preferred, None))
            } else {
                Err(error_code::PREFERRED_LEADER_NOT_AVAILABLE)
            }
        }
        ElectionType::Unclean => {
            if partition.leader != LEADER_NONE {
                return Err(error_code::ELECTION_NOT_NEEDED);
            }
            if let Some(leader) = clean_leader(cluster, partition) {
                return Ok((leader, None));
            }
            let leader = partition
                .replicas
                .iter()
                .copied()
                .find(|id| cluster.is_active(*id))
                .ok_or(error_code::ELIGIBLE_LEADERS_NOT_AVAILABLE)?;
            Ok((leader, Some(vec![leader])))
        }
    }
}

/// A partition leader asks to change the ISR (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionRequest {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub topic_id: Uuid,
    pub partition_index: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartitionResponse {
    pub error_code: i16,
    /// The partition after the change (or as it is, on error, when it exists).
    pub partition: Option<PartitionRegistration>,
}

pub fn alter_partition(
    image: &MetadataImage,
    request: &AlterPartitionRequest,
) -> ControllerResult<AlterPartitionResponse> {
    let current = image
        .topics
        .partition(request.topic_id, request.partition_index)
        .cloned();
    let answer = |error_code: i16| {
        ControllerResult::new(
            vec![],
            AlterPartitionResponse {
                error_code,
                partition: current.clone(),
            },
        )
    };
    let Some(partition) = current.clone() else {
        return answer(error_code::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if let Err(code) = check_alter_partition(&image.cluster, &partition, request) {
        return answer(code);
    }
    if partition.isr == request.new_isr {
        return answer(error_code::NONE);
    }
    let mut next = PartitionRegistration {
        isr: request.new_isr.clone(),
        partition_epoch: partition.partition_epoch.saturating_add(1),
        ..partition
    };
    let mut records = vec![MetadataRecord::PartitionChange {
        topic_id: request.topic_id,
        partition_index: request.partition_index,
        leader: None,
        isr: Some(request.new_isr.clone()),
    }];
    // The ISR now holds every target replica: the reassignment completes in the same entry.
    if let Some(done) = complete_if_caught_up(&image.cluster, &next) {
        let completing =
            transition_records(request.topic_id, request.partition_index, &next, &done);
        let leader_moved = done.leader != next.leader;
        next = PartitionRegistration {
            leader_epoch: next.leader_epoch.saturating_add(i32::from(leader_moved)),
            partition_epoch: next.partition_epoch.saturating_add(completing.len() as i32),
            ..done
        };
        records.extend(completing);
    }
    ControllerResult::new(
        records,
        AlterPartitionResponse {
            error_code: error_code::NONE,
            partition: Some(next),
        },
    )
}

fn check_alter_partition(
    cluster: &ClusterImage,
    partition: &PartitionRegistration,
    request: &AlterPartitionRequest,
) -> Result<(), i16> {
    let broker = cluster
        .broker(request.broker_id)
        .ok_or(error_code::BROKER_ID_NOT_REGISTERED)?;
    if broker.incarnation_id != request.incarnation_id {
        return Err(error_code::STALE_BROKER_EPOCH);
    }
    if partition.leader != request.broker_id {
        return Err(error_code::NOT_LEADER_OR_FOLLOWER);
    }
    if request.leader_epoch != partition.leader_epoch {
        return Err(error_code::FENCED_LEADER_EPOCH);
    }
    if request.partition_epoch != partition.partition_epoch {
        return Err(error_code::INVALID_UPDATE_VERSION);
    }
    let unique: BTreeSet<BrokerId> = request.new_isr.iter().copied().collect();
    let all_replicas = request
        .new_isr
        .iter()
        .all(|id| partition.replicas.contains(id));
    if unique.len() != request.new_isr.len()
        || !all_replicas
        || !unique.contains(&request.broker_id)
    {
        return Err(error_code::INVALID_REQUEST);
    }
    // A member may stay while fenced (the fence itself removes it); a new one must be active.
    let ineligible = request
        .new_isr
        .iter()
        .any(|id| !partition.isr.contains(id) && !cluster.is_active(*id));
    if ineligible {
        return Err(error_code::INELIGIBLE_REPLICA);
    }
    Ok(())
}
