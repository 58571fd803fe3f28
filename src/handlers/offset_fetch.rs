//! OffsetFetch: committed offsets of one group (v1-7) or of several groups (v8+); from v9 a
//! consumer group member is checked against its group (member id and epoch).
//!
//! With `require_stable` (v7+, sent by read_committed consumers) a partition for which a
//! transaction has an offset pending answers UNSTABLE_OFFSET_COMMIT; the client retries until
//! the transaction ends (Kafka does not wait either).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::ResponseError;

use sluice_raft::image::acls::operation;

use super::{str_bytes, RequestContext};

/// Committed offset of a partition without one (Kafka's INVALID_OFFSET).
const NO_OFFSET: i64 = -1;
const NO_LEADER_EPOCH: i32 = -1;

/// One partition's answer: (topic, partition, committed, error).
type Fetched = crate::group::FetchedOffset;

pub fn handle(context: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    let version = context.api_version;
    let require_stable = version >= 7 && request.require_stable;
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        response.groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .flat_map(|t| {
                            let name = t.name.0.to_string();
                            t.partition_indexes
                                .into_iter()
                                .map(move |p| (name.clone(), p))
                        })
                        .collect::<Vec<_>>()
                });
                // v9+: a consumer group member names itself and its epoch (KIP-848).
                let member_error = context
                    .broker
                    .groups
                    .check_fetch_member(
                        &group.group_id.0,
                        group.member_id.as_deref(),
                        group.member_epoch,
                    )
                    .err();
                if let Some(error) = member_error {
                    let mut refused = OffsetFetchResponseGroup::default();
                    refused.group_id = group.group_id;
                    refused.error_code = error.code();
                    return refused;
                }
                group_response(context, group.group_id, wanted, require_stable)
            })
            .collect();
        return response;
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let (fetched, group_error) = fetch(context, &request.group_id.0, wanted, require_stable);
    if version >= 2 {
        response.error_code = group_error.map_or(0, |error| error.code());
    }
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for (topic, partition, committed, error) in fetched {
        // v1 has no group-level error: every partition carries it.
        let error = error.or(if version < 2 { group_error } else { None });
        let mut entry = OffsetFetchResponsePartition::default();
        entry.partition_index = partition;
        entry.committed_offset = committed.as_ref().map_or(NO_OFFSET, |c| c.offset);
        if version >= 5 {
            entry.committed_leader_epoch = committed
                .as_ref()
                .map_or(NO_LEADER_EPOCH, |c| c.leader_epoch);
        }
        entry.metadata = Some(str_bytes(committed.map(|c| c.metadata).unwrap_or_default()));
        entry.error_code = error.map_or(0, |error| error.code());
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(entry),
            _ => {
                let mut topic_entry = OffsetFetchResponseTopic::default();
                topic_entry.name = TopicName(str_bytes(topic));
                topic_entry.partitions.push(entry);
                topics.push(topic_entry);
            }
        }
    }
    response.topics = topics;
    response
}

fn group_response(
    context: &RequestContext<'_>,
    group_id: GroupId,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> OffsetFetchResponseGroup {
    let (fetched, group_error) = fetch(context, &group_id.0, wanted, require_stable);
    let mut group = OffsetFetchResponseGroup::default();
    group.group_id = group_id;
    group.error_code = group_error.map_or(0, |error| error.code());
    for (topic, partition, committed, error) in fetched {
        let mut entry = OffsetFetchResponsePartitions::default();
        entry.partition_index = partition;
        entry.committed_offset = committed.as_ref().map_or(NO_OFFSET, |c| c.offset);
        entry.committed_leader_epoch = committed
            .as_ref()
            .map_or(NO_LEADER_EPOCH, |c| c.leader_epoch);
        entry.metadata = Some(str_bytes(committed.map(|c| c.metadata).unwrap_or_default()));
        entry.error_code = error.map_or(0, |error| error.code());
        match group.topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(entry),
            _ => {
                let mut topic_entry = OffsetFetchResponseTopics::default();
                topic_entry.name = TopicName(str_bytes(topic));
                topic_entry.partitions.push(entry);
                group.topics.push(topic_entry);
            }
        }
    }
    group
}

/// The partitions' offsets, and the group-level error if any. Kafka's checks: DESCRIBE on
/// the group, and on each topic (a topic asked for by name is answered
/// TOPIC_AUTHORIZATION_FAILED, one found by listing the group's offsets is left out).
fn fetch(
    context: &RequestContext<'_>,
    group_id: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> (Vec<Fetched>, Option<ResponseError>) {
    let found = if context.authorize_group(operation::DESCRIBE, group_id) {
        context
            .broker
            .groups
            .fetch_offsets_stable(group_id, wanted.as_deref(), require_stable)
    } else {
        Err(ResponseError::GroupAuthorizationFailed)
    };
    let listing = wanted.is_none();
    match found {
        Ok(found) => {
            let fetched = found
                .into_iter()
                .filter_map(|(topic, partition, committed, error)| {
                    if context.authorize_topic(operation::DESCRIBE, &topic) {
                        Some((topic, partition, committed, error))
                    } else if listing {
                        None
                    } else {
                        let denied = Some(ResponseError::TopicAuthorizationFailed);
                        Some((topic, partition, None, denied))
                    }
                })
                .collect();
            (fetched, None)
        }
        Err(error) => {
            let fetched = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| (topic, partition, None, None))
                .collect();
            (fetched, Some(error))
        }
    }
}
