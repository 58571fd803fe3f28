//! Stand-ins for the data path's transaction API (helper txnlog's `Log::has_ongoing_txn` and
//! `handlers::write_txn_markers::write_markers_here`) until it is merged; deleted then.

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::Broker;

/// Answers every marker OK without writing it.
pub async fn write_markers_here(
    _broker: &Arc<Broker>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    for marker in request.markers {
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        for topic in marker.topics {
            let mut topic_result = WritableTxnMarkerTopicResult::default();
            topic_result.name = topic.name;
            for index in topic.partition_indexes {
                let mut partition = WritableTxnMarkerPartitionResult::default();
                partition.partition_index = index;
                topic_result.partitions.push(partition);
            }
            result.topics.push(topic_result);
        }
        response.markers.push(result);
    }
    response
}

/// No transaction state in the log yet: every transactional batch is verified.
pub fn has_ongoing_txn(_log: &sluice_storage::Log, _producer_id: i64) -> bool {
    false
}
