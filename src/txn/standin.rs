//! The data path's transaction API as the coordinator calls it: `Log::has_ongoing_txn` and
//! `handlers::write_txn_markers::write_markers_here` (helper txnlog). These were stand-ins
//! until the data path was merged; they now delegate, and callers may call the real ones
//! directly and delete this module.

use std::sync::Arc;

use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::Broker;

/// Writes the markers to this node's leader replicas and waits for their replication.
pub async fn write_markers_here(
    broker: &Arc<Broker>,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    crate::handlers::write_txn_markers::write_markers_here(broker, request).await
}

/// Whether `producer_id` has a transaction open in this partition (KIP-890: a batch of an
/// open transaction needs no verification with the coordinator).
pub fn has_ongoing_txn(log: &sluice_storage::Log, producer_id: i64) -> bool {
    log.has_ongoing_txn(producer_id)
}
