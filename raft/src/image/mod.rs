//! The cluster metadata as an immutable image, and the delta that builds the next one.
//!
//! Pure data: nothing here imports openraft or tokio. The Raft state machine feeds committed
//! records to a [`MetadataDelta`] and publishes the [`MetadataImage`] it yields; readers hold an
//! `Arc<MetadataImage>` for the duration of one request.

pub mod acls;
mod cluster;
mod codec;
mod configs;
mod delta;
mod producer_ids;
mod quotas;
mod record;
mod scram;
mod topics;

use std::sync::Arc;

pub use acls::{AclBinding, AclFilter, AclsImage};
pub use cluster::{Admission, BrokerId, BrokerRegistration, ClusterImage, Listener};
pub use codec::{
    decode_batch, encode_batch, DecodeError, BATCH_FORMAT, LIST_LEN_MAX, RECORD_BYTES_MAX,
    STRING_BYTES_MAX,
};
pub use configs::{ConfigResource, ConfigsImage};
pub use delta::{MetadataDelta, ReplayError};
pub use producer_ids::ProducerIdsImage;
pub use quotas::{
    quota_key_is_integer, ClientQuotasImage, EntityName, QuotaEntity, QuotaValue,
    CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, QUOTA_KEYS, REQUEST_PERCENTAGE,
};
pub use record::MetadataRecord;
pub use scram::{ScramCredentialImage, ScramImage, ScramMechanismCode};
pub use topics::{PartitionRegistration, TopicImage, TopicsImage, LEADER_NONE};

/// Where an image stands in the Raft log: the last entry it includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Provenance {
    /// Raft log index of the last applied entry; 0 before any.
    pub last_applied_index: u64,
    /// Raft term of that entry.
    pub last_applied_term: u64,
}

/// The whole cluster metadata at one point of the log. Never mutated: a change builds a new
/// image through [`MetadataDelta`], sharing every sub-image the change did not touch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataImage {
    pub provenance: Provenance,
    pub cluster: Arc<ClusterImage>,
    pub topics: Arc<TopicsImage>,
    pub configs: Arc<ConfigsImage>,
    pub producer_ids: Arc<ProducerIdsImage>,
    pub scram: Arc<ScramImage>,
    pub client_quotas: Arc<ClientQuotasImage>,
    pub acls: Arc<AclsImage>,
}

impl MetadataImage {
    /// The image before any record: what a new cluster starts from.
    pub fn empty() -> MetadataImage {
        MetadataImage::default()
    }

    /// Records that rebuild this image when replayed from empty (the snapshot content).
    /// Order matters: topics precede their partitions and their configs.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for broker in self.cluster.brokers.values() {
            records.push(MetadataRecord::RegisterBroker {
                broker_id: broker.broker_id,
                incarnation_id: broker.incarnation_id,
                listeners: broker.listeners.clone(),
                rack: broker.rack.clone(),
                fenced: broker.fenced,
            });
            let refusal = match &broker.admission {
                Admission::Unchecked => None,
                Admission::Admitted => Some(None),
                Admission::Refused(reason) => Some(Some(reason.clone())),
            };
            if let Some(refusal) = refusal {
                records.push(MetadataRecord::BrokerAdmission {
                    broker_id: broker.broker_id,
                    incarnation_id: broker.incarnation_id,
                    refusal,
                });
            }
        }
        for topic in self.topics.by_id.values() {
            topic_records(topic, &mut records);
        }
        for ((topic_id, partition_index), target) in &self.topics.queued_reassignments {
            records.push(MetadataRecord::QueueReassignment {
                topic_id: *topic_id,
                partition_index: *partition_index,
                target: Some(target.clone()),
            });
        }
        for (resource, configs) in &self.configs.resources {
            for (name, value) in configs {
                records.push(MetadataRecord::Config {
                    resource: resource.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for ((user, mechanism), credential) in &self.scram.credentials {
            records.push(MetadataRecord::ScramCredential {
                user: user.clone(),
                mechanism: *mechanism,
                salt: credential.salt.clone(),
                stored_key: credential.stored_key.clone(),
                server_key: credential.server_key.clone(),
                iterations: credential.iterations,
            });
        }
        if self.producer_ids.next_producer_id != ProducerIdsImage::EMPTY.next_producer_id {
            records.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                next_producer_id: self.producer_ids.next_producer_id,
            });
        }
        for (entity, quotas) in &self.client_quotas.entities {
            for (key, value) in quotas {
                records.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        for (id, acl) in &self.acls.by_id {
            records.push(MetadataRecord::AccessControlEntry {
                id: *id,
                acl: acl.clone(),
            });
        }
        records
    }

    /// Replays `records` onto an empty image: the inverse of [`MetadataImage::to_records`].
    pub fn from_records(
        records: &[MetadataRecord],
        provenance: Provenance,
    ) -> Result<MetadataImage, ReplayError> {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for record in records {
            delta.replay(record)?;
        }
        delta.set_provenance(provenance);
        Ok(delta.apply())
    }
}

fn topic_records(topic: &TopicImage, records: &mut Vec<MetadataRecord>) {
    records.push(MetadataRecord::Topic {
        topic_id: topic.topic_id,
        name: topic.name.clone(),
    });
    for (index, partition) in &topic.partitions {
        // The reassignment record that follows bumps the partition epoch on replay.
        let partition_epoch = if partition.is_reassigning() {
            assert!(partition.partition_epoch > 0, "a reassignment bumped it");
            partition.partition_epoch - 1
        } else {
            partition.partition_epoch
        };
        records.push(MetadataRecord::Partition {
            topic_id: topic.topic_id,
            partition_index: *index,
            replicas: partition.replicas.clone(),
            isr: partition.isr.clone(),
            leader: partition.leader,
            leader_epoch: partition.leader_epoch,
            partition_epoch,
        });
        if partition.is_reassigning() {
            records.push(MetadataRecord::PartitionReassignment {
                topic_id: topic.topic_id,
                partition_index: *index,
                replicas: partition.replicas.clone(),
                adding_replicas: partition.adding_replicas.clone(),
                removing_replicas: partition.removing_replicas.clone(),
            });
        }
    }
}
