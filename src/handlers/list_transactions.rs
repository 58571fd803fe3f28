//! ListTransactions v0-2: the transactional ids this node coordinates, filtered by state,
//! producer id, age (v1, KIP-994) and id pattern (v2, KIP-1152), as Kafka's
//! `TransactionStateManager.listTransactionStates` filters them.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::ResponseError;
use regex_automata::meta::Regex;

use super::{str_bytes, RequestContext};
use crate::broker::now_ms;
use crate::txn::{TxnMetadata, TxnState};

pub fn handle(
    context: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    if context.broker.txns.any_loading() {
        response.error_code = ResponseError::CoordinatorLoadInProgress.code();
        return response;
    }
    let Ok(pattern) = IdPattern::new(request.transactional_id_pattern.as_deref()) else {
        response.error_code = ResponseError::InvalidRegularExpression.code();
        return response;
    };
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let filter = Filter {
        // Only unknown state names: nothing matches (Kafka answers an empty list).
        states_named: !request.state_filters.is_empty(),
        states,
        producer_ids: request.producer_id_filters.iter().map(|id| id.0).collect(),
        duration_ms: request.duration_filter,
        pattern,
        now_ms: now_ms(),
    };
    for (id, metadata) in context.broker.txns.list() {
        // Kafka lists only the transactions the principal may describe.
        let describable = context.authorize(
            sluice_raft::image::acls::operation::DESCRIBE,
            sluice_raft::image::acls::resource_type::TRANSACTIONAL_ID,
            &id,
        );
        if describable && filter.includes(&id, &metadata) {
            let mut entry = TransactionState::default();
            entry.transactional_id = TransactionalId(str_bytes(id));
            entry.producer_id = ProducerId(metadata.producer_id);
            entry.transaction_state = str_bytes(metadata.state.name());
            response.transaction_states.push(entry);
        }
    }
    response
}

/// A v2 transactional id pattern: the whole id must match (Java's `Matcher.matches`).
struct IdPattern(Option<Regex>);

impl IdPattern {
    /// None or empty: no filter. The pattern is checked as written, then matched anchored at
    /// both ends (wrapping it unchecked would accept e.g. `a)(b`).
    fn new(pattern: Option<&str>) -> Result<IdPattern, Box<regex_automata::meta::BuildError>> {
        let Some(pattern) = pattern.filter(|pattern| !pattern.is_empty()) else {
            return Ok(IdPattern(None));
        };
        Regex::new(pattern).map_err(Box::new)?;
        let whole = Regex::new(&format!("^(?:{pattern})$")).map_err(Box::new)?;
        Ok(IdPattern(Some(whole)))
    }

    fn matches(&self, id: &str) -> bool {
        self.0.as_ref().is_none_or(|regex| regex.is_match(id))
    }
}

struct Filter {
    states_named: bool,
    states: Vec<TxnState>,
    producer_ids: Vec<i64>,
    duration_ms: i64,
    pattern: IdPattern,
    now_ms: i64,
}

impl Filter {
    fn includes(&self, id: &str, metadata: &TxnMetadata) -> bool {
        // Dead is an id being forgotten (Kafka never lists it).
        let alive = metadata.state != TxnState::Dead;
        let state_ok = !self.states_named || self.states.contains(&metadata.state);
        let producer_ok =
            self.producer_ids.is_empty() || self.producer_ids.contains(&metadata.producer_id);
        // KIP-994: transactions started more than this long ago (Kafka compares the start
        // time whatever the state, -1 before the first transaction; < 0 = no filter).
        let duration_ok = self.duration_ms < 0
            || self.now_ms.saturating_sub(metadata.start_ms) > self.duration_ms;
        alive && state_ok && producer_ok && duration_ok && self.pattern.matches(id)
    }
}
