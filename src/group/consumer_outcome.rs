//! What a KIP-848 consumer group is asked (ConsumerGroupHeartbeat) and answers, and how it
//! describes itself (ConsumerGroupDescribe), in the coordinator's own terms.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

use super::assignor::{Assignment, Assignor, ASSIGNORS};
use super::consumer_member::Owned;
use crate::broker::ApiError;

/// Most topic names one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;

/// Kafka's member epochs with a meaning of their own.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// `rebalance_timeout_ms` of a heartbeat that does not change it.
pub const REBALANCE_TIMEOUT_UNCHANGED: i32 = -1;
/// From this ConsumerGroupHeartbeat version on the client generates its member id (KIP-1082).
pub const CONSUMER_GENERATED_MEMBER_ID_REQUIRED_VERSION: i16 = 1;

/// One ConsumerGroupHeartbeat. `None` fields did not change since the member's last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeat {
    /// Empty only for a v0 member's first heartbeat (the coordinator then makes one up).
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Owned,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatOutcome {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when the member's assignment changed or its request was a full one.
    pub assignment: Option<Assignment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub assignment: Assignment,
    pub target_assignment: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: &'static str,
    pub members: Vec<ConsumerMemberDescription>,
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, plus sluice's limits: INVALID_REQUEST
/// (with Kafka's message) or UNSUPPORTED_ASSIGNOR.
pub fn validate_heartbeat(
    group_id: &str,
    request: &ConsumerHeartbeat,
    api_version: i16,
) -> Result<(), ApiError> {
    let invalid = |message: &str| Err(ApiError::new(ResponseError::InvalidRequest, message));
    let epoch = request.member_epoch;
    let member_id_required = api_version >= CONSUMER_GENERATED_MEMBER_ID_REQUIRED_VERSION
        || epoch > 0
        || epoch == LEAVE_GROUP_MEMBER_EPOCH;
    if member_id_required && request.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if request.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if request.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if request
        .subscribed_topic_regex
        .as_deref()
        .is_some_and(|regex| !regex.is_empty())
    {
        return invalid(
            "SubscribedTopicRegex is not supported by this broker; subscribe by topic names.",
        );
    }
    let topic_count = request.subscribed_topic_names.as_ref().map_or(0, Vec::len);
    if topic_count > SUBSCRIBED_TOPICS_MAX {
        return invalid("Too many subscribed topic names.");
    }
    if epoch == JOIN_GROUP_MEMBER_EPOCH {
        if request.rebalance_timeout_ms == REBALANCE_TIMEOUT_UNCHANGED {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if !matches!(&request.owned, Some(owned) if owned.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none() {
            return invalid(
                "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            );
        }
    } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if request.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(name) = &request.server_assignor {
        if Assignor::from_name(name).is_none() {
            let supported: Vec<&str> = ASSIGNORS.iter().map(|a| a.name()).collect();
            let message = format!(
                "ServerAssignor {name} is not supported. Supported assignors: {}.",
                supported.join(", ")
            );
            return Err(ApiError::new(ResponseError::UnsupportedAssignor, message));
        }
    }
    Ok(())
}
