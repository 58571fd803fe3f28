//! ListTransactions v0-1: the transactional ids this node coordinates, filtered by state,
//! producer id and age (v1, KIP-994). v2's id pattern (a Java regular expression) is not
//! served.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::{str_bytes, RequestContext};
use crate::broker::now_ms;
use crate::txn::TxnState;

pub fn handle(
    context: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    // Only unknown filters: nothing can match (Kafka answers an empty list).
    if states.is_empty() && !request.state_filters.is_empty() {
        return response;
    }
    let now = now_ms();
    for (id, metadata) in context.broker.txns.list() {
        let state_ok = states.is_empty() || states.contains(&metadata.state);
        let producer_ok = request.producer_id_filters.is_empty()
            || request
                .producer_id_filters
                .iter()
                .any(|filter| filter.0 == metadata.producer_id);
        // KIP-994: transactions started at least this long ago (Kafka compares the start
        // time whatever the state; -1 = no filter).
        let duration_ok = request.duration_filter < 0
            || now.saturating_sub(metadata.start_ms) >= request.duration_filter;
        // Kafka lists only the transactions the principal may describe.
        let describable = context.authorize(
            sluice_raft::image::acls::operation::DESCRIBE,
            sluice_raft::image::acls::resource_type::TRANSACTIONAL_ID,
            &id,
        );
        if state_ok && producer_ok && duration_ok && describable {
            let mut entry = TransactionState::default();
            entry.transactional_id = TransactionalId(str_bytes(id));
            entry.producer_id = ProducerId(metadata.producer_id);
            entry.transaction_state = str_bytes(metadata.state.name());
            response.transaction_states.push(entry);
        }
    }
    response
}
