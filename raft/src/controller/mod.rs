//! The controller: operations as pure functions from an image and a request to records and a
//! response.
//!
//! Nothing here mutates state. The active controller runs an operation against its current
//! image, writes the records to the Raft log, and answers with the response once they are
//! committed; every node (the active one included) changes its image only by replaying the
//! records. Each operation emits at most [`RECORDS_PER_OPERATION_MAX`] records.

mod acls;
mod admission;
pub mod balance;
mod brokers;
mod configs;
mod create_partitions;
pub mod error_code;
mod partitions;
mod placement;
mod producer_ids;
mod quotas;
mod reassignments;
mod scram;
mod topics;

use uuid::Uuid;

pub use acls::{
    create_acls, delete_acls, invalid_acl_reason, AclCreationResult, AclDeletionResult,
    CreateAclsRequest, DeleteAclsRequest,
};
pub use admission::{record_admission, AdmissionVerdict, ADMISSION_PENDING};
pub use brokers::{
    fence_broker, heartbeat, register_broker, unregister_broker, BrokerChangeResponse,
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, PartitionLoad, RegisterBrokerRequest,
    RegisterBrokerResponse, PARTITION_LOADS_MAX,
};
pub use configs::{alter_configs, AlterConfigsRequest, AlterConfigsResource, ConfigOp};
pub use configs::{AlterConfigsResult, CONFIG_NAME_BYTES_MAX};
pub use create_partitions::{
    create_partitions, CreatePartitionsRequest, CreatePartitionsResult, PartitionsIncrease,
};
pub use partitions::{
    alter_partition, elect_leaders, AlterPartitionRequest, AlterPartitionResponse,
    ElectLeadersRequest, ElectionResult, ElectionType,
};
pub use placement::{place_replicas, rack_alternated_brokers};
pub use producer_ids::{allocate_producer_ids, AllocateProducerIdsRequest, ProducerIdBlock};
pub use quotas::{
    alter_client_quotas, AlterClientQuotasRequest, AlterClientQuotasResult, ClientQuotaAlteration,
    QuotaOp,
};
pub use reassignments::{
    alter_reassignments, AlterReassignmentsRequest, ReassignmentResult, ReassignmentTarget,
};
pub use scram::{
    alter_scram, AlterScramRequest, AlterScramResult, ScramUpsertion, SCRAM_ITERATIONS_MAX,
    SCRAM_ITERATIONS_MIN,
};
pub use topics::{
    create_topics, delete_topics, CreatableTopic, CreateTopicsRequest, CreatedTopic,
    DeleteTopicsRequest, DeletedTopic, TOPIC_NAME_BYTES_MAX,
};

use std::sync::Arc;

use crate::image::{MetadataDelta, MetadataImage, MetadataRecord};

/// Most records one operation may write, as Kafka's `MAX_RECORDS_PER_USER_OP`: keeps a Raft
/// entry, and the time to apply it, bounded.
pub const RECORDS_PER_OPERATION_MAX: usize = 10_000;

/// What an operation decided: the records to commit, and the answer to give once they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerResult<T> {
    pub records: Vec<MetadataRecord>,
    pub response: T,
}

impl<T> ControllerResult<T> {
    pub fn new(records: Vec<MetadataRecord>, response: T) -> Self {
        assert!(records.len() <= RECORDS_PER_OPERATION_MAX);
        ControllerResult { records, response }
    }
}

/// Cluster-wide settings the operations need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Used when CreateTopics asks for `num_partitions = -1`.
    pub default_partitions: i32,
    /// Used when CreateTopics asks for `replication_factor = -1`.
    pub default_replication_factor: i16,
    /// Producer ids handed to a broker per AllocateProducerIds.
    pub producer_id_block_size: i64,
    /// A broker whose heartbeats stop for this long is fenced (Kafka's
    /// `broker.session.timeout.ms`).
    pub broker_session_timeout_ms: u64,
    /// Reassignments that may run at once; more wait in the queue.
    pub reassignment_moves_max: usize,
    /// Unfence a broker only once its advertised address was checked from the active
    /// controller (the binary's `--admission-check`, on by default there; off here so that
    /// pure tests need no network).
    pub admission_check: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            default_partitions: 1,
            default_replication_factor: 1,
            producer_id_block_size: 1000,
            broker_session_timeout_ms: 9000,
            reassignment_moves_max: 4,
            admission_check: false,
        }
    }
}

/// Every change a node can ask of the controller.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Operation {
    RegisterBroker(RegisterBrokerRequest),
    BrokerHeartbeat(BrokerHeartbeatRequest),
    /// Fences a broker whose heartbeats stopped (the active controller's session timer).
    FenceBroker {
        broker_id: i32,
    },
    UnregisterBroker {
        broker_id: i32,
    },
    /// The active controller's address check of a broker incarnation: admitted
    /// (`refusal: None`) or refused; a refused unfenced broker is fenced.
    RecordAdmission(AdmissionVerdict),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    AlterConfigs(AlterConfigsRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterPartition(AlterPartitionRequest),
    AllocateProducerIds(AllocateProducerIdsRequest),
    AlterReassignments(AlterReassignmentsRequest),
    AlterScram(AlterScramRequest),
    AlterClientQuotas(AlterClientQuotasRequest),
    CreateAcls(CreateAclsRequest),
    DeleteAcls(DeleteAclsRequest),
}

/// The answer to an [`Operation`], variant for variant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OperationResponse {
    RegisterBroker(RegisterBrokerResponse),
    BrokerHeartbeat(BrokerHeartbeatResponse),
    FenceBroker(BrokerChangeResponse),
    UnregisterBroker(BrokerChangeResponse),
    RecordAdmission(BrokerChangeResponse),
    CreateTopics(Vec<CreatedTopic>),
    DeleteTopics(Vec<DeletedTopic>),
    CreatePartitions(Vec<CreatePartitionsResult>),
    AlterConfigs(Vec<AlterConfigsResult>),
    ElectLeaders(Vec<ElectionResult>),
    AlterPartition(AlterPartitionResponse),
    AllocateProducerIds(ProducerIdBlock),
    AlterReassignments(Vec<ReassignmentResult>),
    AlterScram(Vec<AlterScramResult>),
    AlterClientQuotas(Vec<AlterClientQuotasResult>),
    CreateAcls(Vec<AclCreationResult>),
    DeleteAcls(Vec<AclDeletionResult>),
}

/// Runs one operation against `image`. `new_topic_id` supplies ids for created topics and
/// access-control entries (random
/// in production, fixed in tests), which keeps this function deterministic.
pub fn execute(
    image: &MetadataImage,
    operation: &Operation,
    config: &ControllerConfig,
    new_topic_id: &mut dyn FnMut() -> Uuid,
) -> ControllerResult<OperationResponse> {
    fn wrap<T>(
        result: ControllerResult<T>,
        variant: fn(T) -> OperationResponse,
    ) -> ControllerResult<OperationResponse> {
        ControllerResult::new(result.records, variant(result.response))
    }
    match operation {
        Operation::RegisterBroker(request) => wrap(
            register_broker(image, request),
            OperationResponse::RegisterBroker,
        ),
        Operation::BrokerHeartbeat(request) => wrap(
            heartbeat(image, request, config),
            OperationResponse::BrokerHeartbeat,
        ),
        Operation::FenceBroker { broker_id } => wrap(
            fence_broker(image, *broker_id),
            OperationResponse::FenceBroker,
        ),
        Operation::UnregisterBroker { broker_id } => wrap(
            unregister_broker(image, *broker_id),
            OperationResponse::UnregisterBroker,
        ),
        Operation::RecordAdmission(verdict) => wrap(
            record_admission(image, verdict),
            OperationResponse::RecordAdmission,
        ),
        Operation::CreateTopics(request) => wrap(
            create_topics(image, request, config, new_topic_id),
            OperationResponse::CreateTopics,
        ),
        Operation::DeleteTopics(request) => wrap(
            promote_after(image, delete_topics(image, request), config),
            OperationResponse::DeleteTopics,
        ),
        Operation::CreatePartitions(request) => wrap(
            create_partitions(image, request),
            OperationResponse::CreatePartitions,
        ),
        Operation::AlterConfigs(request) => wrap(
            alter_configs(image, request),
            OperationResponse::AlterConfigs,
        ),
        Operation::ElectLeaders(request) => wrap(
            elect_leaders(image, request),
            OperationResponse::ElectLeaders,
        ),
        Operation::AlterPartition(request) => wrap(
            promote_after(image, alter_partition(image, request), config),
            OperationResponse::AlterPartition,
        ),
        Operation::AllocateProducerIds(request) => wrap(
            allocate_producer_ids(image, request, config),
            OperationResponse::AllocateProducerIds,
        ),
        Operation::AlterReassignments(request) => wrap(
            promote_after(
                image,
                alter_reassignments(image, request, config.reassignment_moves_max),
                config,
            ),
            OperationResponse::AlterReassignments,
        ),
        Operation::AlterScram(request) => {
            wrap(alter_scram(image, request), OperationResponse::AlterScram)
        }
        Operation::AlterClientQuotas(request) => wrap(
            alter_client_quotas(image, request),
            OperationResponse::AlterClientQuotas,
        ),
        Operation::CreateAcls(request) => wrap(
            create_acls(image, request, new_topic_id),
            OperationResponse::CreateAcls,
        ),
        Operation::DeleteAcls(request) => {
            wrap(delete_acls(image, request), OperationResponse::DeleteAcls)
        }
    }
}

/// `result` plus the starts of queued reassignments that the move slots it frees allow
/// (a completed, cancelled or deleted move), in the same entry.
fn promote_after<T>(
    image: &MetadataImage,
    mut result: ControllerResult<T>,
    config: &ControllerConfig,
) -> ControllerResult<T> {
    if result.records.is_empty() || image.topics.queued_reassignments.is_empty() {
        return result;
    }
    let mut delta = MetadataDelta::new(Arc::new(image.clone()));
    for record in &result.records {
        if delta.replay(record).is_err() {
            // The entry will be rejected as a whole; promoting on top of it means nothing.
            return result;
        }
    }
    let next = delta.apply();
    let promoted = reassignments::promote_queued(&next, config.reassignment_moves_max);
    if result.records.len() + promoted.len() <= RECORDS_PER_OPERATION_MAX {
        result.records.extend(promoted);
    }
    result
}

/// Counts records against [`RECORDS_PER_OPERATION_MAX`] while an operation builds them.
pub(crate) struct RecordBudget {
    pub records: Vec<MetadataRecord>,
}

impl RecordBudget {
    pub fn new() -> Self {
        RecordBudget {
            records: Vec::new(),
        }
    }

    /// Whether `count` more records still fit.
    pub fn fits(&self, count: usize) -> bool {
        self.records.len().saturating_add(count) <= RECORDS_PER_OPERATION_MAX
    }

    pub fn extend(&mut self, records: Vec<MetadataRecord>) {
        assert!(self.fits(records.len()), "checked with fits() first");
        self.records.extend(records);
    }
}

/// The message a response carries when an operation ran out of its record budget.
pub(crate) const BUDGET_EXCEEDED_MESSAGE: &str = "too many records for one operation";

#[cfg(test)]
mod tests;
