//! OffsetForLeaderEpoch (KIP-101/279): the leader answers, from its leader-epoch file, the
//! largest epoch not above the asked one and the offset where it ends (the log end for the
//! current epoch). Followers use it to find where their log diverges from the leader's;
//! consumers to detect a log truncated under them (KIP-320).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::RequestContext;

pub fn handle(
    context: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = context.broker.topics();
    let mut response = OffsetForLeaderEpochResponse::default();
    // Kafka: a follower (replica id >= 0) needs CLUSTER_ACTION, a consumer DESCRIBE.
    let follower_denied =
        request.replica_id.0 >= 0 && !context.authorize_cluster(operation::CLUSTER_ACTION);
    for wanted_topic in request.topics {
        let topic = image.by_name.get(wanted_topic.topic.0.as_str());
        let denied = follower_denied
            || (request.replica_id.0 < 0
                && !context.authorize_topic(operation::DESCRIBE, &wanted_topic.topic.0));
        let mut topic_result = OffsetForLeaderTopicResult::default();
        topic_result.topic = wanted_topic.topic.clone();
        for wanted in wanted_topic.partitions {
            let mut result = EpochEndOffset::default();
            result.partition = wanted.partition;
            result.leader_epoch = -1;
            result.end_offset = -1;
            let node = context.broker.node_id();
            let partition = topic.and_then(|t| t.partition(wanted.partition));
            match partition.map(|p| p.leader_replica(node, wanted.current_leader_epoch)) {
                _ if denied => {
                    result.error_code = ResponseError::TopicAuthorizationFailed.code();
                }
                None => result.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(Err(error)) => result.error_code = error.code(),
                Some(Ok(replica)) if wanted.leader_epoch >= 0 => {
                    let (epoch, end_offset) = replica.log.end_offset_for_epoch(wanted.leader_epoch);
                    result.leader_epoch = epoch;
                    result.end_offset = end_offset;
                }
                Some(Ok(_)) => {}
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
