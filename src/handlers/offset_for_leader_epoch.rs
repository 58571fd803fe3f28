//! OffsetForLeaderEpoch: a single node has had one leader epoch, so every epoch up to it ends
//! at the log end.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::handlers::produce::LEADER_EPOCH;

pub fn handle(
    context: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = context.broker.topics();
    let mut response = OffsetForLeaderEpochResponse::default();
    for wanted_topic in request.topics {
        let topic = image.by_name.get(wanted_topic.topic.0.as_str());
        let mut topic_result = OffsetForLeaderTopicResult::default();
        topic_result.topic = wanted_topic.topic.clone();
        for wanted in wanted_topic.partitions {
            let mut result = EpochEndOffset::default();
            result.partition = wanted.partition;
            result.leader_epoch = -1;
            result.end_offset = -1;
            match topic.and_then(|t| t.partition(wanted.partition)) {
                None => result.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if wanted.current_leader_epoch > LEADER_EPOCH => {
                    result.error_code = ResponseError::UnknownLeaderEpoch.code();
                }
                Some(partition) if wanted.leader_epoch >= 0 => {
                    result.leader_epoch = LEADER_EPOCH;
                    result.end_offset = partition.log.log_end_offset();
                }
                Some(_) => {}
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
