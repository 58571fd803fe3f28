//! `MetadataDelta`: replays records onto a base image and builds the next image.

use std::collections::BTreeSet;
use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use super::acls::AclsImage;
use super::cluster::{Admission, BrokerId, BrokerRegistration, ClusterImage};
use super::codec::{LIST_LEN_MAX, STRING_BYTES_MAX};
use super::configs::{ConfigResource, ConfigsImage};
use super::producer_ids::ProducerIdsImage;
use super::quotas::{ClientQuotasImage, EntityName, QuotaEntity, QuotaValue, QUOTA_KEYS};
use super::record::MetadataRecord;
use super::scram::{ScramCredentialImage, ScramImage};
use super::topics::{PartitionRegistration, TopicImage, TopicsImage, LEADER_NONE};
use super::{MetadataImage, Provenance};

/// A record that does not fit the image it is replayed onto. The state machine rejects the
/// whole entry holding it, on every node alike, since replay depends only on the image.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {broker_id} has another incarnation than {incarnation_id}")]
    StaleIncarnation {
        broker_id: BrokerId,
        incarnation_id: Uuid,
    },
    #[error("topic id {0} is not known")]
    UnknownTopic(Uuid),
    #[error("topic {0} already exists")]
    DuplicateTopic(String),
    #[error("partition {partition_index} of topic {topic_id} is not known")]
    UnknownPartition {
        topic_id: Uuid,
        partition_index: i32,
    },
    #[error("partition {partition_index} of topic {topic_id} already exists")]
    DuplicatePartition {
        topic_id: Uuid,
        partition_index: i32,
    },
    #[error("invalid record: {0}")]
    Invalid(&'static str),
}

/// The changes between a base image and the next one. Only touched domains get a sub-image
/// copy; [`MetadataDelta::apply`] reuses the base's `Arc` for the rest.
pub struct MetadataDelta {
    base: Arc<MetadataImage>,
    provenance: Provenance,
    cluster: Option<ClusterImage>,
    topics: Option<TopicsImage>,
    configs: Option<ConfigsImage>,
    producer_ids: Option<ProducerIdsImage>,
    scram: Option<ScramImage>,
    client_quotas: Option<ClientQuotasImage>,
    acls: Option<AclsImage>,
}

impl MetadataDelta {
    pub fn new(base: Arc<MetadataImage>) -> MetadataDelta {
        MetadataDelta {
            provenance: base.provenance,
            base,
            cluster: None,
            topics: None,
            configs: None,
            producer_ids: None,
            scram: None,
            client_quotas: None,
            acls: None,
        }
    }

    pub fn base(&self) -> &MetadataImage {
        &self.base
    }

    /// True when no record has been replayed.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_none()
            && self.topics.is_none()
            && self.configs.is_none()
            && self.producer_ids.is_none()
            && self.client_quotas.is_none()
            && self.scram.is_none()
            && self.acls.is_none()
    }

    pub fn set_provenance(&mut self, provenance: Provenance) {
        assert!(
            provenance >= self.base.provenance,
            "provenance moves forward"
        );
        self.provenance = provenance;
    }

    /// Replays one record. On error the delta is unchanged.
    pub fn replay(&mut self, record: &MetadataRecord) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::ScramCredential {
                user,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                let credential = ScramCredentialImage {
                    salt: salt.clone(),
                    stored_key: stored_key.clone(),
                    server_key: server_key.clone(),
                    iterations: *iterations,
                };
                self.scram_mut()
                    .credentials
                    .insert((user.clone(), *mechanism), credential);
                Ok(())
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                self.acls_mut().by_id.insert(*id, acl.clone());
                Ok(())
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                let known = self.acls.as_ref().unwrap_or(&self.base.acls);
                if !known.by_id.contains_key(id) {
                    return Err(ReplayError::Invalid(
                        "removes an unknown access-control entry",
                    ));
                }
                self.acls_mut().by_id.remove(id);
                Ok(())
            }
            MetadataRecord::RemoveScramCredential { user, mechanism } => {
                self.scram_mut()
                    .credentials
                    .remove(&(user.clone(), *mechanism));
                Ok(())
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                listeners,
                rack,
                fenced,
            } => self.replay_register_broker(BrokerRegistration {
                broker_id: *broker_id,
                incarnation_id: *incarnation_id,
                listeners: listeners.clone(),
                rack: rack.clone(),
                fenced: *fenced,
                admission: Admission::Unchecked,
            }),
            MetadataRecord::BrokerAdmission {
                broker_id,
                incarnation_id,
                refusal,
            } => self.replay_admission(*broker_id, *incarnation_id, refusal),
            MetadataRecord::UnregisterBroker { broker_id } => {
                self.cluster()
                    .broker(*broker_id)
                    .ok_or(ReplayError::UnknownBroker(*broker_id))?;
                self.cluster_mut().brokers.remove(broker_id);
                Ok(())
            }
            MetadataRecord::FenceBroker {
                broker_id,
                incarnation_id,
            } => self.set_fenced(*broker_id, *incarnation_id, true),
            MetadataRecord::UnfenceBroker {
                broker_id,
                incarnation_id,
            } => self.set_fenced(*broker_id, *incarnation_id, false),
            MetadataRecord::Topic { topic_id, name } => self.replay_topic(*topic_id, name),
            MetadataRecord::RemoveTopic { topic_id } => self.replay_remove_topic(*topic_id),
            MetadataRecord::Partition {
                topic_id,
                partition_index,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let partition = PartitionRegistration {
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                };
                self.replay_partition(*topic_id, *partition_index, partition)
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index,
                leader,
                isr,
            } => self.replay_partition_change(*topic_id, *partition_index, *leader, isr.as_deref()),
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_index,
                replicas,
                adding_replicas,
                removing_replicas,
            } => self.replay_partition_reassignment(
                *topic_id,
                *partition_index,
                PartitionReplicas {
                    replicas,
                    adding: adding_replicas,
                    removing: removing_replicas,
                },
            ),
            MetadataRecord::QueueReassignment {
                topic_id,
                partition_index,
                target,
            } => self.replay_queue_reassignment(*topic_id, *partition_index, target.as_deref()),
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => self.replay_config(resource, name, value.as_deref()),
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id <= self.producer_ids().next_producer_id {
                    return Err(ReplayError::Invalid("producer ids move backwards"));
                }
                self.producer_ids_mut().next_producer_id = *next_producer_id;
                Ok(())
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                self.replay_client_quota(entity, key, *value)
            }
        }
    }

    /// Builds the next image; untouched domains share the base's `Arc`.
    pub fn apply(self) -> MetadataImage {
        let base = &self.base;
        MetadataImage {
            provenance: self.provenance,
            cluster: self.cluster.map_or_else(|| base.cluster.clone(), Arc::new),
            topics: self.topics.map_or_else(|| base.topics.clone(), Arc::new),
            configs: self.configs.map_or_else(|| base.configs.clone(), Arc::new),
            producer_ids: self
                .producer_ids
                .map_or_else(|| base.producer_ids.clone(), Arc::new),
            scram: self.scram.map_or_else(|| base.scram.clone(), Arc::new),
            client_quotas: self
                .client_quotas
                .map_or_else(|| base.client_quotas.clone(), Arc::new),
            acls: self.acls.map_or_else(
                || base.acls.clone(),
                |mut acls| {
                    acls.reindex();
                    Arc::new(acls)
                },
            ),
        }
    }

    /// The cluster as replayed so far.
    pub fn cluster(&self) -> &ClusterImage {
        self.cluster.as_ref().unwrap_or(&self.base.cluster)
    }

    /// The topics as replayed so far.
    pub fn topics(&self) -> &TopicsImage {
        self.topics.as_ref().unwrap_or(&self.base.topics)
    }

    fn producer_ids(&self) -> &ProducerIdsImage {
        self.producer_ids
            .as_ref()
            .unwrap_or(&self.base.producer_ids)
    }

    fn acls_mut(&mut self) -> &mut AclsImage {
        let base = &self.base;
        self.acls.get_or_insert_with(|| (*base.acls).clone())
    }

    fn scram_mut(&mut self) -> &mut ScramImage {
        let base = &self.base;
        self.scram.get_or_insert_with(|| (*base.scram).clone())
    }

    fn cluster_mut(&mut self) -> &mut ClusterImage {
        let base = &self.base;
        self.cluster
            .get_or_insert_with(|| ClusterImage::clone(&base.cluster))
    }

    fn topics_mut(&mut self) -> &mut TopicsImage {
        let base = &self.base;
        self.topics
            .get_or_insert_with(|| TopicsImage::clone(&base.topics))
    }

    fn configs_mut(&mut self) -> &mut ConfigsImage {
        let base = &self.base;
        self.configs
            .get_or_insert_with(|| ConfigsImage::clone(&base.configs))
    }

    fn producer_ids_mut(&mut self) -> &mut ProducerIdsImage {
        let base = &self.base;
        self.producer_ids
            .get_or_insert_with(|| ProducerIdsImage::clone(&base.producer_ids))
    }

    fn replay_register_broker(&mut self, broker: BrokerRegistration) -> Result<(), ReplayError> {
        if broker.broker_id < 0 {
            return Err(ReplayError::Invalid("negative broker id"));
        }
        if broker.listeners.len() > LIST_LEN_MAX {
            return Err(ReplayError::Invalid("too many listeners"));
        }
        self.cluster_mut().brokers.insert(broker.broker_id, broker);
        Ok(())
    }

    fn replay_admission(
        &mut self,
        broker_id: BrokerId,
        incarnation_id: Uuid,
        refusal: &Option<String>,
    ) -> Result<(), ReplayError> {
        let broker = self
            .cluster()
            .broker(broker_id)
            .ok_or(ReplayError::UnknownBroker(broker_id))?;
        if broker.incarnation_id != incarnation_id {
            return Err(ReplayError::StaleIncarnation {
                broker_id,
                incarnation_id,
            });
        }
        if refusal.as_ref().is_some_and(|r| r.len() > STRING_BYTES_MAX) {
            return Err(ReplayError::Invalid("admission refusal too long"));
        }
        if let Some(broker) = self.cluster_mut().brokers.get_mut(&broker_id) {
            broker.admission = match refusal {
                None => Admission::Admitted,
                Some(reason) => Admission::Refused(reason.clone()),
            };
        }
        Ok(())
    }

    fn set_fenced(
        &mut self,
        broker_id: BrokerId,
        incarnation_id: Uuid,
        fenced: bool,
    ) -> Result<(), ReplayError> {
        let broker = self
            .cluster()
            .broker(broker_id)
            .ok_or(ReplayError::UnknownBroker(broker_id))?;
        if broker.incarnation_id != incarnation_id {
            return Err(ReplayError::StaleIncarnation {
                broker_id,
                incarnation_id,
            });
        }
        if let Some(broker) = self.cluster_mut().brokers.get_mut(&broker_id) {
            broker.fenced = fenced;
        }
        Ok(())
    }

    fn replay_topic(&mut self, topic_id: Uuid, name: &str) -> Result<(), ReplayError> {
        if name.is_empty() {
            return Err(ReplayError::Invalid("empty topic name"));
        }
        if topic_id.is_nil() {
            return Err(ReplayError::Invalid("nil topic id"));
        }
        let topics = self.topics();
        if topics.by_id.contains_key(&topic_id) || topics.id_by_name.contains_key(name) {
            return Err(ReplayError::DuplicateTopic(name.to_string()));
        }
        let topic = TopicImage {
            topic_id,
            name: name.to_string(),
            partitions: Default::default(),
        };
        let topics = self.topics_mut();
        topics.by_id.insert(topic_id, Arc::new(topic));
        topics.id_by_name.insert(name.to_string(), topic_id);
        Ok(())
    }

    fn replay_remove_topic(&mut self, topic_id: Uuid) -> Result<(), ReplayError> {
        let name = self
            .topics()
            .topic(topic_id)
            .ok_or(ReplayError::UnknownTopic(topic_id))?
            .name
            .clone();
        let topics = self.topics_mut();
        topics.by_id.remove(&topic_id);
        topics.id_by_name.remove(&name);
        topics
            .queued_reassignments
            .retain(|(queued_topic, _), _| *queued_topic != topic_id);
        // A topic's configs die with it, as in Kafka: a new topic of the same name starts clean.
        let resource = ConfigResource::Topic(name);
        if self.configs_view().resources.contains_key(&resource) {
            self.configs_mut().resources.remove(&resource);
        }
        Ok(())
    }

    fn configs_view(&self) -> &ConfigsImage {
        self.configs.as_ref().unwrap_or(&self.base.configs)
    }

    fn replay_partition(
        &mut self,
        topic_id: Uuid,
        partition_index: i32,
        partition: PartitionRegistration,
    ) -> Result<(), ReplayError> {
        if partition_index < 0 {
            return Err(ReplayError::Invalid("negative partition index"));
        }
        if partition.leader_epoch < 0 || partition.partition_epoch < 0 {
            return Err(ReplayError::Invalid("negative epoch"));
        }
        check_partition(&partition)?;
        let topic = self
            .topics()
            .topic(topic_id)
            .ok_or(ReplayError::UnknownTopic(topic_id))?;
        if topic.partitions.contains_key(&partition_index) {
            return Err(ReplayError::DuplicatePartition {
                topic_id,
                partition_index,
            });
        }
        self.topic_mut(topic_id)
            .partitions
            .insert(partition_index, partition);
        Ok(())
    }

    fn replay_partition_change(
        &mut self,
        topic_id: Uuid,
        partition_index: i32,
        leader: Option<BrokerId>,
        isr: Option<&[BrokerId]>,
    ) -> Result<(), ReplayError> {
        let current = self.topics().partition(topic_id, partition_index).ok_or(
            ReplayError::UnknownPartition {
                topic_id,
                partition_index,
            },
        )?;
        let mut next = current.clone();
        if let Some(isr) = isr {
            next.isr = isr.to_vec();
        }
        if let Some(leader) = leader {
            next.leader = leader;
            next.leader_epoch = bump(next.leader_epoch)?;
        }
        next.partition_epoch = bump(next.partition_epoch)?;
        check_partition(&next)?;
        self.topic_mut(topic_id)
            .partitions
            .insert(partition_index, next);
        Ok(())
    }

    fn replay_partition_reassignment(
        &mut self,
        topic_id: Uuid,
        partition_index: i32,
        replicas: PartitionReplicas<'_>,
    ) -> Result<(), ReplayError> {
        let current = self.topics().partition(topic_id, partition_index).ok_or(
            ReplayError::UnknownPartition {
                topic_id,
                partition_index,
            },
        )?;
        let mut next = current.clone();
        next.replicas = replicas.replicas.to_vec();
        next.adding_replicas = replicas.adding.to_vec();
        next.removing_replicas = replicas.removing.to_vec();
        next.partition_epoch = bump(next.partition_epoch)?;
        check_partition(&next)?;
        self.topic_mut(topic_id)
            .partitions
            .insert(partition_index, next);
        Ok(())
    }

    fn replay_queue_reassignment(
        &mut self,
        topic_id: Uuid,
        partition_index: i32,
        target: Option<&[BrokerId]>,
    ) -> Result<(), ReplayError> {
        if self.topics().partition(topic_id, partition_index).is_none() {
            return Err(ReplayError::UnknownPartition {
                topic_id,
                partition_index,
            });
        }
        let key = (topic_id, partition_index);
        match target {
            Some(target) => {
                let unique: BTreeSet<BrokerId> = target.iter().copied().collect();
                if target.is_empty() || target.len() > LIST_LEN_MAX || unique.len() != target.len()
                {
                    return Err(ReplayError::Invalid(
                        "queued target empty or with duplicates",
                    ));
                }
                let queue = &mut self.topics_mut().queued_reassignments;
                queue.insert(key, target.to_vec());
            }
            None => {
                if !self.topics().queued_reassignments.contains_key(&key) {
                    return Err(ReplayError::Invalid("no queued reassignment to remove"));
                }
                self.topics_mut().queued_reassignments.remove(&key);
            }
        }
        Ok(())
    }

    /// The topic to change, copied out of its `Arc` only if shared with the base.
    fn topic_mut(&mut self, topic_id: Uuid) -> &mut TopicImage {
        let topic = self.topics_mut().by_id.get_mut(&topic_id);
        let topic = topic.unwrap_or_else(|| panic!("topic {topic_id} checked before change"));
        Arc::make_mut(topic)
    }

    fn replay_client_quota(
        &mut self,
        entity: &QuotaEntity,
        key: &str,
        value: Option<QuotaValue>,
    ) -> Result<(), ReplayError> {
        if !entity.is_valid() {
            return Err(ReplayError::Invalid(
                "quota entity without user or client-id",
            ));
        }
        let name_too_long = |name: &Option<EntityName>| matches!(name, Some(EntityName::Named(name)) if name.len() > STRING_BYTES_MAX);
        if name_too_long(&entity.user) || name_too_long(&entity.client_id) {
            return Err(ReplayError::Invalid("quota entity name too long"));
        }
        if !QUOTA_KEYS.contains(&key) {
            return Err(ReplayError::Invalid("unknown quota key"));
        }
        if value.is_some_and(|value| QuotaValue::new(value.get()).is_none()) {
            return Err(ReplayError::Invalid("quota value not finite and positive"));
        }
        let base = &self.base;
        let entities = &mut self
            .client_quotas
            .get_or_insert_with(|| ClientQuotasImage::clone(&base.client_quotas))
            .entities;
        match value {
            Some(value) => {
                entities
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_string(), value);
            }
            None => {
                if let Some(quotas) = entities.get_mut(entity) {
                    quotas.remove(key);
                    // No empty maps: the image equals its replay from records.
                    if quotas.is_empty() {
                        entities.remove(entity);
                    }
                }
            }
        }
        Ok(())
    }

    fn replay_config(
        &mut self,
        resource: &ConfigResource,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), ReplayError> {
        if name.is_empty() {
            return Err(ReplayError::Invalid("empty config name"));
        }
        if let ConfigResource::Topic(topic_name) = resource {
            if !self.topics().id_by_name.contains_key(topic_name) {
                return Err(ReplayError::Invalid("config for an unknown topic"));
            }
        }
        let resources = &mut self.configs_mut().resources;
        match value {
            Some(value) => {
                resources
                    .entry(resource.clone())
                    .or_default()
                    .insert(name.to_string(), value.to_string());
            }
            None => {
                if let Some(configs) = resources.get_mut(resource) {
                    configs.remove(name);
                    // No empty maps: the image equals its replay from records.
                    if configs.is_empty() {
                        resources.remove(resource);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The replica lists of a `PartitionReassignment` record.
struct PartitionReplicas<'a> {
    replicas: &'a [BrokerId],
    adding: &'a [BrokerId],
    removing: &'a [BrokerId],
}

fn bump(epoch: i32) -> Result<i32, ReplayError> {
    epoch
        .checked_add(1)
        .ok_or(ReplayError::Invalid("epoch overflow"))
}

/// Replicas unique and non-empty, ISR a non-empty subset of them, leader none or in the ISR.
fn check_partition(partition: &PartitionRegistration) -> Result<(), ReplayError> {
    if partition.replicas.is_empty() || partition.replicas.len() > LIST_LEN_MAX {
        return Err(ReplayError::Invalid("replica count out of range"));
    }
    let replicas: BTreeSet<BrokerId> = partition.replicas.iter().copied().collect();
    if replicas.len() != partition.replicas.len() {
        return Err(ReplayError::Invalid("duplicate replica"));
    }
    let isr: BTreeSet<BrokerId> = partition.isr.iter().copied().collect();
    if isr.is_empty() || isr.len() != partition.isr.len() {
        return Err(ReplayError::Invalid("ISR empty or with duplicates"));
    }
    if !isr.is_subset(&replicas) {
        return Err(ReplayError::Invalid("ISR member is not a replica"));
    }
    if partition.leader != LEADER_NONE && !isr.contains(&partition.leader) {
        return Err(ReplayError::Invalid("leader is not in the ISR"));
    }
    let adding: BTreeSet<BrokerId> = partition.adding_replicas.iter().copied().collect();
    let removing: BTreeSet<BrokerId> = partition.removing_replicas.iter().copied().collect();
    if adding.len() != partition.adding_replicas.len()
        || removing.len() != partition.removing_replicas.len()
    {
        return Err(ReplayError::Invalid("duplicate adding or removing replica"));
    }
    if !adding.is_subset(&replicas) || !removing.is_subset(&replicas) {
        return Err(ReplayError::Invalid(
            "adding or removing replica is not a replica",
        ));
    }
    // Something must be left once the reassignment completes, and nothing both comes and goes.
    if !adding.is_disjoint(&removing) || removing.len() == replicas.len() {
        return Err(ReplayError::Invalid("invalid reassignment sets"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_id() -> Uuid {
        Uuid::from_u128(1)
    }

    fn image_with_topic() -> Arc<MetadataImage> {
        let records = [
            MetadataRecord::Topic {
                topic_id: topic_id(),
                name: "orders".into(),
            },
            MetadataRecord::Partition {
                topic_id: topic_id(),
                partition_index: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            },
        ];
        Arc::new(MetadataImage::from_records(&records, Provenance::default()).unwrap())
    }

    #[test]
    fn partition_change_bumps_epochs_from_replay() {
        let base = image_with_topic();
        let mut delta = MetadataDelta::new(base.clone());
        delta
            .replay(&MetadataRecord::PartitionChange {
                topic_id: topic_id(),
                partition_index: 0,
                leader: None,
                isr: Some(vec![1, 2]),
            })
            .unwrap();
        delta
            .replay(&MetadataRecord::PartitionChange {
                topic_id: topic_id(),
                partition_index: 0,
                leader: Some(2),
                isr: None,
            })
            .unwrap();
        let next = delta.apply();
        let partition = next.topics.partition(topic_id(), 0).unwrap();
        assert_eq!(
            partition,
            &PartitionRegistration {
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 2,
                leader_epoch: 1,
                partition_epoch: 2,
                adding_replicas: vec![],
                removing_replicas: vec![],
            }
        );
        // Untouched domains are the very same allocation.
        assert!(Arc::ptr_eq(&next.cluster, &base.cluster));
        assert!(Arc::ptr_eq(&next.configs, &base.configs));
        assert!(!Arc::ptr_eq(&next.topics, &base.topics));
    }

    #[test]
    fn invalid_records_are_errors_and_leave_the_delta_unchanged() {
        let base = image_with_topic();
        let mut delta = MetadataDelta::new(base.clone());
        let bad = [
            MetadataRecord::PartitionChange {
                topic_id: topic_id(),
                partition_index: 0,
                leader: Some(4),
                isr: None,
            },
            MetadataRecord::PartitionChange {
                topic_id: topic_id(),
                partition_index: 0,
                leader: None,
                isr: Some(vec![2, 3]),
            },
            MetadataRecord::PartitionChange {
                topic_id: topic_id(),
                partition_index: 9,
                leader: None,
                isr: None,
            },
            MetadataRecord::Topic {
                topic_id: Uuid::from_u128(2),
                name: "orders".into(),
            },
            MetadataRecord::FenceBroker {
                broker_id: 1,
                incarnation_id: Uuid::nil(),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("nope".into()),
                name: "a".into(),
                value: Some("b".into()),
            },
            MetadataRecord::RemoveTopic {
                topic_id: Uuid::from_u128(3),
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: 0,
            },
        ];
        for record in &bad {
            assert!(delta.replay(record).is_err(), "{record:?} replayed");
        }
        assert!(delta.is_empty());
        assert_eq!(delta.apply(), *base);
    }

    #[test]
    fn removing_a_topic_removes_its_configs() {
        let base = image_with_topic();
        let mut delta = MetadataDelta::new(base);
        let resource = ConfigResource::Topic("orders".into());
        delta
            .replay(&MetadataRecord::Config {
                resource: resource.clone(),
                name: "retention.ms".into(),
                value: Some("1".into()),
            })
            .unwrap();
        let with_config = delta.apply();
        assert_eq!(
            with_config
                .configs
                .topic_configs("orders")
                .unwrap()
                .get("retention.ms"),
            Some(&"1".to_string())
        );
        let mut delta = MetadataDelta::new(Arc::new(with_config));
        delta
            .replay(&MetadataRecord::RemoveTopic {
                topic_id: topic_id(),
            })
            .unwrap();
        let next = delta.apply();
        assert!(next.configs.resources.is_empty());
        assert!(next.topics.by_id.is_empty());
        assert!(next.topics.id_by_name.is_empty());
    }
}
