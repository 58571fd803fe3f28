//! Broker lifecycle: registration, heartbeats, fencing, controlled shutdown, unregistration.

use uuid::Uuid;

use super::admission::ADMISSION_PENDING;
use super::error_code;
use super::partitions::{lead_orphaned_partitions, remove_broker_from_partitions};
use super::{ControllerConfig, ControllerResult, RECORDS_PER_OPERATION_MAX};
use crate::image::{Admission, BrokerId, Listener, MetadataImage, MetadataRecord};
use crate::image::{LIST_LEN_MAX, STRING_BYTES_MAX};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisterBrokerRequest {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisterBrokerResponse {
    pub error_code: i16,
}

/// Registers a broker fenced; its first heartbeat that does not ask to stay fenced unfences
/// it. A live registration with another incarnation is refused until it is fenced (by its
/// heartbeat timeout), so one broker id never runs twice.
pub fn register_broker(
    image: &MetadataImage,
    request: &RegisterBrokerRequest,
) -> ControllerResult<RegisterBrokerResponse> {
    let answer = |error_code| RegisterBrokerResponse { error_code };
    if request.broker_id < 0
        || request.listeners.len() > LIST_LEN_MAX
        || request
            .rack
            .as_ref()
            .is_some_and(|rack| rack.len() > STRING_BYTES_MAX)
        || request.listeners.iter().any(|listener| {
            listener.name.len() > STRING_BYTES_MAX || listener.host.len() > STRING_BYTES_MAX
        })
    {
        return ControllerResult::new(vec![], answer(error_code::INVALID_REQUEST));
    }
    if let Some(existing) = image.cluster.broker(request.broker_id) {
        if existing.incarnation_id == request.incarnation_id {
            // A retried registration: already done.
            return ControllerResult::new(vec![], answer(error_code::NONE));
        }
        if !existing.fenced {
            return ControllerResult::new(
                vec![],
                answer(error_code::DUPLICATE_BROKER_REGISTRATION),
            );
        }
    }
    let record = MetadataRecord::RegisterBroker {
        broker_id: request.broker_id,
        incarnation_id: request.incarnation_id,
        listeners: request.listeners.clone(),
        rack: request.rack.clone(),
        fenced: true,
    };
    ControllerResult::new(vec![record], answer(error_code::NONE))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    /// True while the broker is still catching up and must not lead or join ISRs.
    pub want_fence: bool,
    /// Controlled shutdown: move leadership away, then fence.
    pub want_shutdown: bool,
    /// Bytes/s in and out of the partitions this broker leads, for the balancer's weights;
    /// at most [`PARTITION_LOADS_MAX`] (the busiest).
    pub partition_loads: Vec<PartitionLoad>,
}

/// Most partition loads one heartbeat carries.
pub const PARTITION_LOADS_MAX: usize = 10_000;

/// One led partition's recent traffic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionLoad {
    pub topic_id: Uuid,
    pub partition_index: i32,
    pub bytes_per_sec: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerHeartbeatResponse {
    pub error_code: i16,
    pub is_fenced: bool,
    pub should_shut_down: bool,
    /// Why a broker that asked to be unfenced stays fenced: its advertised address has not
    /// passed the controller's check (yet).
    pub admission_refusal: Option<String>,
}

pub fn heartbeat(
    image: &MetadataImage,
    request: &BrokerHeartbeatRequest,
    config: &ControllerConfig,
) -> ControllerResult<BrokerHeartbeatResponse> {
    let Some(broker) = image.cluster.broker(request.broker_id) else {
        return heartbeat_answer(vec![], error_code::BROKER_ID_NOT_REGISTERED, true, false);
    };
    if broker.incarnation_id != request.incarnation_id {
        return heartbeat_answer(vec![], error_code::STALE_BROKER_EPOCH, true, false);
    }
    if request.want_shutdown || request.want_fence {
        let change = fence_broker(image, request.broker_id);
        let done = !change.response.partitions_remaining;
        // The broker may stop only once it leads nothing.
        let shut_down = request.want_shutdown && done;
        return heartbeat_answer(change.records, change.response.error_code, true, shut_down);
    }
    if !broker.fenced {
        return heartbeat_answer(vec![], error_code::NONE, false, false);
    }
    if config.admission_check {
        let refusal = match &broker.admission {
            Admission::Admitted => None,
            Admission::Unchecked => Some(ADMISSION_PENDING.to_string()),
            Admission::Refused(reason) => Some(reason.clone()),
        };
        if let Some(refusal) = refusal {
            let mut answer = heartbeat_answer(vec![], error_code::NONE, true, false);
            answer.response.admission_refusal = Some(refusal);
            return answer;
        }
    }
    let mut records = vec![MetadataRecord::UnfenceBroker {
        broker_id: request.broker_id,
        incarnation_id: request.incarnation_id,
    }];
    records.extend(lead_orphaned_partitions(
        image,
        request.broker_id,
        RECORDS_PER_OPERATION_MAX - 1,
    ));
    heartbeat_answer(records, error_code::NONE, false, false)
}

fn heartbeat_answer(
    records: Vec<MetadataRecord>,
    error_code: i16,
    is_fenced: bool,
    should_shut_down: bool,
) -> ControllerResult<BrokerHeartbeatResponse> {
    let response = BrokerHeartbeatResponse {
        error_code,
        is_fenced,
        should_shut_down,
        admission_refusal: None,
    };
    ControllerResult::new(records, response)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerChangeResponse {
    pub error_code: i16,
    /// More partitions than one operation may change still name the broker: run it again.
    pub partitions_remaining: bool,
}

/// Fences a broker: first moves leadership and ISR membership off it, then marks it fenced.
/// Idempotent, so that a fence cut short by the record budget is finished by running it again.
pub fn fence_broker(
    image: &MetadataImage,
    broker_id: BrokerId,
) -> ControllerResult<BrokerChangeResponse> {
    let Some(broker) = image.cluster.broker(broker_id) else {
        let response = BrokerChangeResponse {
            error_code: error_code::BROKER_ID_NOT_REGISTERED,
            partitions_remaining: false,
        };
        return ControllerResult::new(vec![], response);
    };
    let mut records =
        remove_broker_from_partitions(image, broker_id, RECORDS_PER_OPERATION_MAX - 1);
    let partitions_remaining = records.len() == RECORDS_PER_OPERATION_MAX - 1;
    if !broker.fenced {
        records.push(MetadataRecord::FenceBroker {
            broker_id,
            incarnation_id: broker.incarnation_id,
        });
    }
    let response = BrokerChangeResponse {
        error_code: error_code::NONE,
        partitions_remaining,
    };
    ControllerResult::new(records, response)
}

/// Removes a broker for good (decommissioning). Partitions still list it as a replica.
pub fn unregister_broker(
    image: &MetadataImage,
    broker_id: BrokerId,
) -> ControllerResult<BrokerChangeResponse> {
    let fence = fence_broker(image, broker_id);
    if fence.response.error_code != error_code::NONE || fence.response.partitions_remaining {
        return fence;
    }
    let mut records = fence.records;
    records.push(MetadataRecord::UnregisterBroker { broker_id });
    ControllerResult::new(records, fence.response)
}
