//! DescribeTransactions: the coordinator's view of transactional ids it coordinates
//! (`kafka-transactions.sh describe`).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::ResponseError;

use super::{str_bytes, RequestContext};

/// Ids one request may describe; the rest are answered INVALID_REQUEST.
const DESCRIBED_IDS_MAX: usize = 10_000;

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for (index, id) in request.transactional_ids.into_iter().enumerate() {
        let mut entry = TransactionState::default();
        entry.producer_id = ProducerId(-1);
        entry.producer_epoch = -1;
        entry.transaction_state = str_bytes("");
        entry.transaction_start_time_ms = -1;
        let describable = context.authorize(
            sluice_raft::image::acls::operation::DESCRIBE,
            sluice_raft::image::acls::resource_type::TRANSACTIONAL_ID,
            id.as_str(),
        );
        let described = if index >= DESCRIBED_IDS_MAX || id.is_empty() {
            Err(ResponseError::InvalidRequest)
        } else if !describable {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            context.broker.txns.describe(id.as_str())
        };
        entry.transactional_id = id;
        match described {
            Err(error) => entry.error_code = error.code(),
            Ok(None) => entry.error_code = ResponseError::TransactionalIdNotFound.code(),
            Ok(Some(metadata)) => {
                entry.producer_id = ProducerId(metadata.producer_id);
                entry.producer_epoch = metadata.producer_epoch;
                entry.transaction_state = str_bytes(metadata.state.name());
                entry.transaction_timeout_ms = metadata.timeout_ms;
                entry.transaction_start_time_ms = metadata.start_ms;
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, partition) in metadata.partitions {
                    // Kafka: only the partitions of topics the principal may DESCRIBE.
                    let describe = sluice_raft::image::acls::operation::DESCRIBE;
                    if !context.authorize_topic(describe, &topic) {
                        continue;
                    }
                    match topics.last_mut() {
                        Some(last) if last.topic.0.as_str() == topic => {
                            last.partitions.push(partition)
                        }
                        _ => {
                            let mut data = TopicData::default();
                            data.topic = TopicName(str_bytes(topic));
                            data.partitions.push(partition);
                            topics.push(data);
                        }
                    }
                }
                entry.topics = topics;
            }
        }
        response.transaction_states.push(entry);
    }
    response
}
