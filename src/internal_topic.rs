//! What the group coordinator (`__consumer_offsets`) and the transaction coordinator
//! (`__transaction_state`) share: their state lives in an internal topic's partitions, and
//! this node serves a partition's part of it exactly while it leads that partition. The
//! metadata publisher calls [`follow_leadership`] after each new view.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::broker::{ApiError, Broker, Replica, Topic, TopicsImage};
use crate::topic_config;

/// A coordinator that loads and unloads internal-topic partitions as leadership moves.
pub trait PartitionCoordinator {
    /// Partitions loading or loaded here.
    fn held_partitions(&self) -> Vec<i32>;
    fn set_partition_count(&self, count: i32);
    /// Marks `partition` loading at `leader_epoch`; false when it already is (or is loaded).
    fn begin_load(&self, partition: i32, leader_epoch: i32) -> bool;
    fn unload(&self, partition: i32);
}

/// Starts loading the partitions of `topic_name` this node now leads (with `spawn_load`)
/// and unloads the ones it no longer does.
pub fn follow_leadership(
    broker: &Arc<Broker>,
    topics: &TopicsImage,
    topic_name: &str,
    coordinator: &impl PartitionCoordinator,
    spawn_load: impl Fn(Arc<Broker>, Arc<Replica>, i32),
) {
    let held = coordinator.held_partitions();
    let Some(topic) = topics.by_name.get(topic_name) else {
        for partition in held {
            coordinator.unload(partition);
        }
        return;
    };
    if let Ok(count @ 1..) = i32::try_from(topic.partitions.len()) {
        coordinator.set_partition_count(count);
    }
    let node = broker.node_id();
    for partition in &topic.partitions {
        let leading = partition.registration.leader == node;
        match (&partition.replica, leading) {
            (Some(replica), true) => {
                let epoch = partition.leader_epoch();
                if coordinator.begin_load(partition.index, epoch) {
                    spawn_load(broker.clone(), replica.clone(), epoch);
                }
            }
            _ if held.contains(&partition.index) => coordinator.unload(partition.index),
            _ => {}
        }
    }
}

/// Internal topics created before compaction existed had retention turned off instead: they
/// become compacted (their other overrides kept). A failure is logged and retried on the
/// next call.
async fn make_compacted(broker: &Broker, topic: &Topic) {
    if topic_config::policy_has(&topic.overrides, topic_config::POLICY_COMPACT) {
        return;
    }
    let mut overrides = topic.overrides.clone();
    overrides.remove(topic_config::RETENTION_MS);
    overrides.remove(topic_config::RETENTION_BYTES);
    overrides.insert(
        topic_config::CLEANUP_POLICY.to_string(),
        topic_config::POLICY_COMPACT.to_string(),
    );
    match broker
        .set_topic_overrides(&topic.name, overrides, false)
        .await
    {
        Ok(()) => tracing::info!(topic = %topic.name, "internal topic is now compacted"),
        Err(error) => {
            tracing::warn!(topic = %topic.name, ?error, "cannot make the internal topic compacted")
        }
    }
}

/// Internal topic `name`, created through the controller if it does not exist yet (Kafka does
/// this on the first FindCoordinator that needs it). Its replication factor is capped at the
/// brokers alive now, so a single dev node needs no flag. Like Kafka's, both internal topics
/// are compacted (`cleanup.policy=compact`), never cut by time or size.
pub async fn ensure_created(
    broker: &Broker,
    name: &str,
    partitions: i32,
    replication_factor_max: i16,
) -> Result<Arc<Topic>, ApiError> {
    if let Some(topic) = broker.topics().by_name.get(name).cloned() {
        make_compacted(broker, &topic).await;
        return Ok(topic);
    }
    let live = broker
        .topics()
        .metadata
        .cluster
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .count()
        .max(1);
    let replication_factor = replication_factor_max.min(i16::try_from(live).unwrap_or(i16::MAX));
    // Compacted, as in Kafka: the last record of each group offset or transactional id
    // stays, tombstoned ones go after delete.retention.ms.
    let overrides = BTreeMap::from([(
        topic_config::CLEANUP_POLICY.to_string(),
        topic_config::POLICY_COMPACT.to_string(),
    )]);
    let created = broker
        .create_topic(
            name,
            partitions,
            replication_factor,
            BTreeMap::new(),
            overrides,
            false,
        )
        .await;
    match created {
        Ok(topic) => Ok(topic),
        // Another request created it meanwhile.
        Err(error) if error.code == ResponseError::TopicAlreadyExists => {
            broker.topics().by_name.get(name).cloned().ok_or(error)
        }
        Err(error) => Err(error),
    }
}
