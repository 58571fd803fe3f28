//! `MetadataRecord`: the only way the metadata image changes.

use uuid::Uuid;

use super::acls::AclBinding;
use super::cluster::{BrokerId, Listener};
use super::configs::ConfigResource;
use super::quotas::{QuotaEntity, QuotaValue};

/// One change to the cluster metadata, as written to the Raft log.
///
/// Records are facts, not requests: the controller validates an operation against the image and
/// emits records; replay checks only that a record fits the image it lands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// Registers a broker, or replaces the registration of a restarted one.
    RegisterBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
        listeners: Vec<Listener>,
        rack: Option<String>,
        fenced: bool,
    },
    UnregisterBroker {
        broker_id: BrokerId,
    },
    FenceBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
    },
    UnfenceBroker {
        broker_id: BrokerId,
        incarnation_id: Uuid,
    },
    /// A new topic, before its partitions.
    Topic {
        topic_id: Uuid,
        name: String,
    },
    /// Removes a topic, its partitions and its configs.
    RemoveTopic {
        topic_id: Uuid,
    },
    /// A whole partition registration: written at creation and in snapshots.
    Partition {
        topic_id: Uuid,
        partition_index: i32,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// Changes leader and/or ISR. Replay bumps the partition epoch, and the leader epoch when
    /// the leader changes, so epochs never come from the proposer.
    PartitionChange {
        topic_id: Uuid,
        partition_index: i32,
        leader: Option<BrokerId>,
        isr: Option<Vec<BrokerId>>,
    },
    /// Starts, completes or cancels a reassignment: the whole replica set and which members
    /// are being added or removed (Kafka's `PartitionChangeRecord` fields `Replicas`,
    /// `AddingReplicas`, `RemovingReplicas`, a record of its own here so that older records
    /// keep their encoding). Leader and ISR changes go in a `PartitionChange` before it.
    /// Replay bumps the partition epoch.
    PartitionReassignment {
        topic_id: Uuid,
        partition_index: i32,
        replicas: Vec<BrokerId>,
        adding_replicas: Vec<BrokerId>,
        removing_replicas: Vec<BrokerId>,
    },
    /// Queues a reassignment until a move slot frees (`target: Some`), or takes it off the
    /// queue (`None`).
    QueueReassignment {
        topic_id: Uuid,
        partition_index: i32,
        target: Option<Vec<BrokerId>>,
    },
    /// Sets (`value: Some`) or deletes (`None`) one config of a resource.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// The controller's verdict on a broker incarnation's advertised address: admitted
    /// (`refusal: None`) or refused, with the reason.
    BrokerAdmission {
        broker_id: BrokerId,
        incarnation_id: Uuid,
        refusal: Option<String>,
    },
    /// Sets a user's SCRAM credential for one mechanism (1 = SHA-256, 2 = SHA-512).
    ScramCredential {
        user: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    RemoveScramCredential {
        user: String,
        mechanism: i8,
    },
    /// Adds one access-control entry (Kafka's `AccessControlEntryRecord`).
    AccessControlEntry {
        id: Uuid,
        acl: AclBinding,
    },
    /// Removes one (Kafka's `RemoveAccessControlEntryRecord`).
    RemoveAccessControlEntry {
        id: Uuid,
    },
    /// A producer-id block was handed to `broker_id`; the next block starts here.
    ProducerIds {
        broker_id: BrokerId,
        next_producer_id: i64,
    },
    /// Sets (`value: Some`) or removes (`None`) one quota of a client-quota entity (Kafka's
    /// `ClientQuotaRecord`).
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
}

impl MetadataRecord {
    /// The type tag written before the record body; stable across versions.
    pub fn type_id(&self) -> u16 {
        match self {
            MetadataRecord::RegisterBroker { .. } => 1,
            MetadataRecord::UnregisterBroker { .. } => 2,
            MetadataRecord::FenceBroker { .. } => 3,
            MetadataRecord::UnfenceBroker { .. } => 4,
            MetadataRecord::Topic { .. } => 5,
            MetadataRecord::RemoveTopic { .. } => 6,
            MetadataRecord::Partition { .. } => 7,
            MetadataRecord::PartitionChange { .. } => 8,
            MetadataRecord::Config { .. } => 9,
            MetadataRecord::ProducerIds { .. } => 10,
            MetadataRecord::PartitionReassignment { .. } => 11,
            MetadataRecord::QueueReassignment { .. } => 12,
            MetadataRecord::BrokerAdmission { .. } => 16,
            // Kafka's numbers for AccessControlEntryRecord / RemoveAccessControlEntryRecord.
            MetadataRecord::AccessControlEntry { .. } => 17,
            MetadataRecord::RemoveAccessControlEntry { .. } => 18,
            // 20 and up: security (other branches take 12-19).
            MetadataRecord::ScramCredential { .. } => 20,
            MetadataRecord::RemoveScramCredential { .. } => 21,
            MetadataRecord::ClientQuota { .. } => 30,
        }
    }
}
