//! AllocateProducerIds: hands brokers blocks of producer ids that are never reused.

use uuid::Uuid;

use super::error_code;
use super::{ControllerConfig, ControllerResult};
use crate::image::{BrokerId, MetadataImage, MetadataRecord};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllocateProducerIdsRequest {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducerIdBlock {
    pub error_code: i16,
    pub first_producer_id: i64,
    pub count: i64,
}

pub fn allocate_producer_ids(
    image: &MetadataImage,
    request: &AllocateProducerIdsRequest,
    config: &ControllerConfig,
) -> ControllerResult<ProducerIdBlock> {
    assert!(config.producer_id_block_size > 0);
    let refuse = |error_code| {
        let block = ProducerIdBlock {
            error_code,
            first_producer_id: -1,
            count: 0,
        };
        ControllerResult::new(vec![], block)
    };
    let Some(broker) = image.cluster.broker(request.broker_id) else {
        return refuse(error_code::BROKER_ID_NOT_REGISTERED);
    };
    if broker.incarnation_id != request.incarnation_id {
        return refuse(error_code::STALE_BROKER_EPOCH);
    }
    let first_producer_id = image.producer_ids.next_producer_id;
    let Some(next_producer_id) = first_producer_id.checked_add(config.producer_id_block_size)
    else {
        return refuse(error_code::UNKNOWN_SERVER_ERROR);
    };
    let record = MetadataRecord::ProducerIds {
        broker_id: request.broker_id,
        next_producer_id,
    };
    let block = ProducerIdBlock {
        error_code: error_code::NONE,
        first_producer_id,
        count: config.producer_id_block_size,
    };
    ControllerResult::new(vec![record], block)
}
