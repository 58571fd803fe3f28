//! The topics sub-image: topics by id and name, and each partition's replicas, ISR and leader.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::cluster::BrokerId;

/// `leader` of a partition that has none (Kafka's `NO_LEADER`).
pub const LEADER_NONE: BrokerId = -1;

/// One partition's replica set and leadership, as Kafka's `PartitionRegistration`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRegistration {
    /// Preferred order: the first replica is the preferred leader.
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// `LEADER_NONE` when no eligible replica is left.
    pub leader: BrokerId,
    /// Bumped whenever the leader changes; fences requests from older leaders.
    pub leader_epoch: i32,
    /// Bumped on every change; AlterPartition must name the current one.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding (members of `replicas`); empty when none is running.
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas a reassignment will drop once every target replica is in the ISR.
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    /// Whether a reassignment is running (Kafka: adding or removing replicas are set).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replica set a running reassignment moves to (all of them when none runs).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| !self.removing_replicas.contains(id))
            .collect()
    }

    /// The replica set before the running reassignment (all of them when none runs).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| !self.adding_replicas.contains(id))
            .collect()
    }
}

/// One topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub topic_id: Uuid,
    pub name: String,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// Every topic. Topics sit behind `Arc` so an image change copies only the touched ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicsImage {
    pub by_id: BTreeMap<Uuid, Arc<TopicImage>>,
    pub id_by_name: BTreeMap<String, Uuid>,
    /// Reassignments waiting for a free move slot: (topic id, partition) → target replicas.
    /// They start in key order as running ones finish.
    pub queued_reassignments: BTreeMap<(Uuid, i32), Vec<BrokerId>>,
}

impl TopicsImage {
    pub const EMPTY: TopicsImage = TopicsImage {
        by_id: BTreeMap::new(),
        id_by_name: BTreeMap::new(),
        queued_reassignments: BTreeMap::new(),
    };

    pub fn topic(&self, topic_id: Uuid) -> Option<&Arc<TopicImage>> {
        self.by_id.get(&topic_id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.id_by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    pub fn partition(
        &self,
        topic_id: Uuid,
        partition_index: i32,
    ) -> Option<&PartitionRegistration> {
        self.by_id
            .get(&topic_id)
            .and_then(|topic| topic.partitions.get(&partition_index))
    }

    pub fn partition_count(&self) -> usize {
        self.by_id
            .values()
            .map(|topic| topic.partitions.len())
            .sum()
    }
}
