//! DeleteRecords: move a partition's log start offset forward (offset -1: to the high watermark).

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;

/// DeleteRecords' "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub fn handle(
    context: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = context.broker.topics();
    let mut response = DeleteRecordsResponse::default();
    for wanted_topic in request.topics {
        let name = wanted_topic.name.0.to_string();
        let topic = image.by_name.get(&name);
        let denied = !context.authorize_topic(sluice_raft::image::acls::operation::DELETE, &name);
        let mut topic_result = DeleteRecordsTopicResult::default();
        topic_result.name = wanted_topic.name.clone();
        for wanted in wanted_topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = wanted.partition_index;
            result.low_watermark = -1;
            let node = context.broker.node_id();
            let partition = topic.and_then(|t| t.partition(wanted.partition_index));
            match partition.map(|p| p.leader_replica(node, -1)) {
                _ if denied => {
                    result.error_code = ResponseError::TopicAuthorizationFailed.code();
                }
                None => result.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(Err(error)) => result.error_code = error.code(),
                Some(Ok(partition)) => {
                    let offset = if wanted.offset == HIGH_WATERMARK {
                        partition.log.log_end_offset()
                    } else {
                        wanted.offset
                    };
                    match context
                        .broker
                        .delete_records_before(&name, partition, offset)
                    {
                        Ok(low_watermark) => result.low_watermark = low_watermark,
                        Err(error) => result.error_code = error.code.code(),
                    }
                }
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
