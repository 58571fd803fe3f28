//! ConsumerGroupDescribe (KIP-848): epochs, assignor and members (with current and target
//! assignments) of consumer groups.

use std::collections::HashMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use uuid::Uuid;

use sluice_raft::image::acls::{operation, resource_type};

use super::authz::{GROUP_AUTHORIZATION_FAILED, GROUP_OPERATIONS_ALL};
use super::{message, str_bytes, RequestContext, AUTHORIZED_OPERATIONS_OMITTED};
use crate::group::assignor;

/// `member_type` of a member using the consumer protocol (v1+).
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(
    context: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let mut entry = DescribedGroup::default();
        entry.authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
        if !context.authorize_group(operation::DESCRIBE, &group_id.0) {
            entry.error_code = GROUP_AUTHORIZATION_FAILED;
            entry.group_id = group_id;
            response.groups.push(entry);
            continue;
        }
        match context.broker.groups.consumer_describe(&group_id.0) {
            Ok((description, names)) => {
                entry.group_state = str_bytes(description.state);
                entry.group_epoch = description.group_epoch;
                entry.assignment_epoch = description.assignment_epoch;
                entry.assignor_name = str_bytes(description.assignor_name);
                entry.members = description
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut described = Member::default();
                        described.member_id = str_bytes(member.member_id);
                        described.instance_id = member.instance_id.map(str_bytes);
                        described.rack_id = member.rack_id.map(str_bytes);
                        described.member_epoch = member.member_epoch;
                        described.client_id = str_bytes(member.client_id);
                        described.client_host = str_bytes(member.client_host);
                        described.subscribed_topic_names = member
                            .subscribed_topic_names
                            .into_iter()
                            .map(|name| TopicName(str_bytes(name)))
                            .collect();
                        described.assignment = assignment(&member.assignment, &names);
                        described.target_assignment = assignment(&member.target_assignment, &names);
                        described.member_type = MEMBER_TYPE_CONSUMER;
                        described
                    })
                    .collect();
                if request.include_authorized_operations {
                    entry.authorized_operations = context.authorized_operations(
                        resource_type::GROUP,
                        &group_id.0,
                        GROUP_OPERATIONS_ALL,
                    );
                }
            }
            Err(error) => {
                entry.error_code = error.code.code();
                entry.error_message = message(&error);
            }
        }
        entry.group_id = group_id;
        response.groups.push(entry);
    }
    response
}

fn assignment(partitions: &assignor::Assignment, names: &HashMap<Uuid, String>) -> Assignment {
    let mut entry = Assignment::default();
    entry.topic_partitions = partitions
        .iter()
        .map(|(topic_id, partitions)| {
            let mut topic = TopicPartitions::default();
            topic.topic_id = *topic_id;
            topic.topic_name =
                TopicName(str_bytes(names.get(topic_id).cloned().unwrap_or_default()));
            topic.partitions = partitions.iter().copied().collect();
            topic
        })
        .collect();
    entry
}
