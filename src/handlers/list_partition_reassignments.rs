//! ListPartitionReassignments (KIP-455): the partitions whose reassignment is running, from
//! this node's image.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use sluice_raft::image::{PartitionRegistration, TopicImage, TopicsImage};

use super::{str_bytes, RequestContext};

pub fn handle(
    context: &RequestContext<'_>,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let image = context.broker.topics();
    let topics = &image.metadata.topics;
    let mut response = ListPartitionReassignmentsResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::DESCRIBE) {
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        response.error_message = Some(super::str_bytes("Cluster authorization failed."));
        return response;
    }
    match &request.topics {
        // Every running reassignment.
        None => {
            for topic in topics.by_id.values() {
                let wanted: Vec<i32> = topic.partitions.keys().copied().collect();
                push_ongoing(&mut response, topics, topic, &wanted);
            }
        }
        // Only the named partitions; unknown ones are left out, as Kafka does.
        Some(wanted) => {
            for asked in wanted {
                if let Some(topic) = topics.topic_by_name(asked.name.0.as_str()) {
                    push_ongoing(&mut response, topics, topic, &asked.partition_indexes);
                }
            }
        }
    }
    response
}

fn push_ongoing(
    response: &mut ListPartitionReassignmentsResponse,
    topics: &TopicsImage,
    topic: &TopicImage,
    partition_indexes: &[i32],
) {
    let partitions: Vec<OngoingPartitionReassignment> = partition_indexes
        .iter()
        .filter_map(|index| {
            let partition = topic.partitions.get(index)?;
            if partition.is_reassigning() {
                return Some(ongoing(*index, partition));
            }
            // A queued move is reported as it will run, so that `--verify` waits for it.
            let target = topics.queued_reassignments.get(&(topic.topic_id, *index))?;
            Some(ongoing(*index, &as_started(partition, target)))
        })
        .collect();
    if partitions.is_empty() {
        return;
    }
    let mut ongoing_topic = OngoingTopicReassignment::default();
    ongoing_topic.name = TopicName(str_bytes(topic.name.clone()));
    ongoing_topic.partitions = partitions;
    response.topics.push(ongoing_topic);
}

/// `partition` as the reassignment to `target` will look once it starts.
fn as_started(partition: &PartitionRegistration, target: &[i32]) -> PartitionRegistration {
    let removing: Vec<i32> = partition
        .replicas
        .iter()
        .copied()
        .filter(|id| !target.contains(id))
        .collect();
    let adding = target
        .iter()
        .copied()
        .filter(|id| !partition.replicas.contains(id))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend_from_slice(&removing);
    PartitionRegistration {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        ..partition.clone()
    }
}

fn ongoing(index: i32, partition: &PartitionRegistration) -> OngoingPartitionReassignment {
    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect();
    let mut ongoing = OngoingPartitionReassignment::default();
    ongoing.partition_index = index;
    ongoing.replicas = ids(&partition.replicas);
    ongoing.adding_replicas = ids(&partition.adding_replicas);
    ongoing.removing_replicas = ids(&partition.removing_replicas);
    ongoing
}
