//! Fetch: whole stored batches for each partition, long-polled until `min_bytes` arrive or
//! `max_wait_ms` passes.
//!
//! Fetch sessions (KIP-227) are answered sessionless (session id 0): clients then send full
//! requests, which is what they do with any broker that declines a session.
//!
//! READ_COMMITTED (KIP-98): consumers see batches only below the last stable offset, and
//! the answer lists the aborted transactions overlapping the returned batches (from the
//! segments' transaction indexes) so the client drops their records; followers always read
//! to the log end.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, ProducerId};
use kafka_protocol::ResponseError;
use sluice_storage::{BatchIter, ReadError};
use tokio::time::Instant;

use sluice_raft::image::acls::operation;

use super::read_replica::{self, Serving};
use super::{leader_hint, str_bytes, RequestContext};
use crate::broker::{Partition, Replica, Topic, TopicsImage};
use crate::budget::{self, FetchKind};
use crate::replication;

/// The longest a Fetch waits for data, whatever it asks (a client asking more is answered
/// empty and asks again).
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Kafka's READ_COMMITTED isolation level.
const READ_COMMITTED: i8 = 1;

pub async fn handle(context: &RequestContext<'_>, request: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + wait.min(FETCH_WAIT_MAX);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let kind = if replica_id(context.api_version, &request) >= 0 {
        FetchKind::Replication
    } else {
        FetchKind::Consumer
    };
    let denied = denied_topics(context, &request);
    let mut appended = context.broker.subscribe_appends();
    loop {
        // Mark the current generation seen before reading, so an append between the read and
        // the wait still wakes us.
        appended.borrow_and_update();
        let granted = context
            .broker
            .budget
            .fetch_grant(kind, Instant::now().into_std());
        let (response, bytes) = read_once(context, &request, &denied, granted);
        let follower_news = tells_follower_new_high_watermark(context, &request, &response);
        // Kafka answers at once when there is nothing to wait for: no partitions asked,
        // min_bytes already met (0 included), an error, a high watermark the fetching
        // follower does not know yet, or no wait allowed. A closing broker
        // answers at once too: its wake-up may have come before this request was read. An
        // empty budget answers at once as well: waiting cannot fill it, throttling does; and
        // min_bytes counts as met at what the budget grants.
        let nothing_asked = request.topics.iter().all(|t| t.partitions.is_empty());
        if nothing_asked
            || follower_news
            || bytes >= min_bytes.min(granted)
            || granted == 0
            || has_errors(&response)
            || Instant::now() >= deadline
            || context.broker.is_closing()
        {
            return charged(context, kind, response, bytes, granted);
        }
        let woke = tokio::time::timeout_at(deadline, appended.changed()).await;
        if !matches!(woke, Ok(Ok(()))) || context.broker.is_closing() {
            // Deadline passed (or the broker is closing): answer with what there is now.
            let granted = context
                .broker
                .budget
                .fetch_grant(kind, Instant::now().into_std());
            let (response, bytes) = read_once(context, &request, &denied, granted);
            return charged(context, kind, response, bytes, granted);
        }
    }
}

/// Charges the response to the node budget, counts its bytes, and sets (and applies) the
/// throttle time.
fn charged(
    context: &RequestContext<'_>,
    kind: FetchKind,
    mut response: FetchResponse,
    bytes: usize,
    granted: usize,
) -> FetchResponse {
    let broker = context.broker;
    let now = std::time::Instant::now();
    let node_throttle = broker
        .budget
        .charge_fetch(kind, context.connection, bytes, granted, now);
    // Replication is never client-quota'd, as in Kafka.
    let quota_throttle = match kind {
        FetchKind::Consumer => super::client_quota_throttle(
            context,
            kafka_protocol::messages::ApiKey::Fetch,
            budget::QuotaKind::Fetch,
            bytes,
            now,
        ),
        FetchKind::Replication => std::time::Duration::ZERO,
    };
    let throttle = node_throttle.max(quota_throttle);
    match kind {
        FetchKind::Replication => {
            broker.metrics.replication_bytes_out.inc_by(bytes as u64);
        }
        FetchKind::Consumer => {
            for topic in &response.responses {
                let topic_bytes: usize = topic
                    .partitions
                    .iter()
                    .map(|p| p.records.as_ref().map_or(0, Bytes::len))
                    .sum();
                if topic_bytes > 0 {
                    let name = topic_name(broker, context.api_version, topic);
                    broker.metrics.add_topic_bytes_out(&name, topic_bytes);
                }
            }
        }
    }
    if !throttle.is_zero() {
        broker.metrics.record_throttle(ApiKey::Fetch, throttle);
        context.connection.mute_for(throttle, now);
        // throttle_time_ms exists from v1 on.
        if context.api_version >= 1 {
            response.throttle_time_ms = budget::throttle_ms(throttle);
        }
    }
    response
}

/// The topic's name (v13+ responses carry only its id).
fn topic_name(
    broker: &crate::broker::Broker,
    version: i16,
    topic: &FetchableTopicResponse,
) -> String {
    if version < 13 {
        return topic.topic.0.to_string();
    }
    broker
        .topics()
        .by_id
        .get(&topic.topic_id)
        .map_or_else(String::new, |t| t.name.clone())
}

/// Errors and KIP-392 redirections are answered at once (Kafka's `hasPreferredReadReplica`).
fn has_errors(response: &FetchResponse) -> bool {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .any(|p| p.error_code != 0 || p.preferred_read_replica.0 >= 0)
}

/// Whether this answer to a follower's fetch carries a high watermark it has not been told
/// (Kafka's `followerNeedsHwUpdate`). Checks every partition, recording each as told.
fn tells_follower_new_high_watermark(
    context: &RequestContext<'_>,
    request: &FetchRequest,
    response: &FetchResponse,
) -> bool {
    let follower = replica_id(context.api_version, request);
    if follower < 0 {
        return false;
    }
    let image = context.broker.topics();
    let mut news = false;
    for (fetch_topic, answer) in request.topics.iter().zip(&response.responses) {
        let Some(topic) = find_topic(&image, context.api_version, fetch_topic) else {
            continue;
        };
        for data in answer.partitions.iter().filter(|d| d.error_code == 0) {
            let replica = topic
                .partition(data.partition_index)
                .and_then(|p| p.replica.as_ref());
            if let Some(replica) = replica {
                news |= replication::high_watermark_news(replica, follower, data.high_watermark);
            }
        }
    }
    news
}

/// KIP-392, on the leader: the in-sync follower in the consumer's rack to send it to.
fn partition_preferred_read_replica(
    context: &RequestContext<'_>,
    image: &TopicsImage,
    request: &FetchRequest,
    wanted: &FetchPartition,
    replica: &Replica,
    serving: Serving,
    follower: i32,
) -> Option<i32> {
    if serving != Serving::Leader
        || follower >= 0
        || context.api_version < read_replica::FETCH_VERSION_MIN
    {
        return None;
    }
    let topic = image.by_id.get(&replica.topic_id)?;
    let partition = topic.partition(wanted.partition)?;
    read_replica::preferred_read_replica(
        image,
        partition,
        replica,
        context.broker.node_id(),
        request.rack_id.as_str(),
        wanted.fetch_offset,
    )
}

/// Kafka answers a redirected consumer with the partition's offsets and no records.
fn answer_preferred_read_replica(data: &mut PartitionData, replica: &Replica, preferred: i32) {
    data.preferred_read_replica = BrokerId(preferred);
    data.high_watermark = replica.high_watermark();
    data.last_stable_offset = replica.log.last_stable_offset(data.high_watermark);
    data.log_start_offset = replica.log.log_start_offset();
    data.records = Some(Bytes::new());
}

/// One pass over every requested partition. Returns the response and its record bytes.
/// `granted` is what the node budget allows; with 0 nothing is read, not even one batch.
/// Per requested topic, whether this principal may not read it (Kafka checks once per
/// request): a follower's fetch needs CLUSTER_ACTION on the cluster, a consumer's READ on
/// each topic. A topic id this node does not know has no name to check and stays unknown.
fn denied_topics(context: &RequestContext<'_>, request: &FetchRequest) -> Vec<bool> {
    if context.authorizer.is_none() {
        return vec![false; request.topics.len()];
    }
    if replica_id(context.api_version, request) >= 0 {
        let denied = !context.authorize_cluster(operation::CLUSTER_ACTION);
        return vec![denied; request.topics.len()];
    }
    let image = context.broker.topics();
    request
        .topics
        .iter()
        .map(|fetch_topic| {
            let name = find_topic(&image, context.api_version, fetch_topic)
                .map_or_else(|| fetch_topic.topic.0.to_string(), |t| t.name.clone());
            !name.is_empty() && !context.authorize_topic(operation::READ, &name)
        })
        .collect()
}

fn read_once(
    context: &RequestContext<'_>,
    request: &FetchRequest,
    denied: &[bool],
    granted: usize,
) -> (FetchResponse, usize) {
    let image = context.broker.topics();
    let limit = context.broker.config.fetch_max_bytes.min(granted);
    let mut budget = usize::try_from(request.max_bytes).unwrap_or(0).min(limit);
    let mut total = 0usize;
    let mut response = FetchResponse::default();
    response.session_id = 0;
    for (fetch_topic, denied) in request.topics.iter().zip(denied) {
        let topic = find_topic(&image, context.api_version, fetch_topic);
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = fetch_topic.topic.clone();
        topic_response.topic_id = fetch_topic.topic_id;
        for wanted in &fetch_topic.partitions {
            let mut data = PartitionData::default();
            data.partition_index = wanted.partition;
            data.preferred_read_replica = BrokerId(-1);
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.log_start_offset = -1;
            // Kafka: null for read_uncommitted, a (possibly empty) list for read_committed.
            data.aborted_transactions = (request.isolation_level == READ_COMMITTED).then(Vec::new);
            if *denied {
                data.error_code = ResponseError::TopicAuthorizationFailed.code();
                topic_response.partitions.push(data);
                continue;
            }
            let partition = topic.and_then(|t| t.partition(wanted.partition));
            let node = context.broker.node_id();
            let follower = replica_id(context.api_version, request);
            let follower_may_serve =
                follower < 0 && context.api_version >= read_replica::FETCH_VERSION_MIN;
            let replica = partition.map(|p| {
                read_replica::serving_replica(
                    p,
                    node,
                    wanted.current_leader_epoch,
                    follower_may_serve,
                )
            });
            match replica {
                None => data.error_code = unknown_topic_error(context.api_version).code(),
                Some(Err(error)) => {
                    data.error_code = error.code();
                    let hinted = partition.filter(|_| {
                        context.api_version >= leader_hint::FETCH_VERSION_MIN
                            && leader_hint::wanted_for(data.error_code)
                    });
                    if let Some(partition) = hinted {
                        add_leader_hint(
                            &image,
                            partition,
                            context.listener_name,
                            &mut data,
                            &mut response,
                        );
                    }
                }
                Some(Ok((partition, serving))) => {
                    if let Some(preferred) = partition_preferred_read_replica(
                        context, &image, request, wanted, partition, serving, follower,
                    ) {
                        answer_preferred_read_replica(&mut data, partition, preferred);
                        topic_response.partitions.push(data);
                        continue;
                    }
                    if follower >= 0
                        && replication::record_follower_fetch(
                            partition,
                            follower,
                            wanted.fetch_offset,
                        )
                    {
                        context.broker.notify_appended();
                    }
                    let high_watermark = partition.high_watermark();
                    let partition_max = usize::try_from(wanted.partition_max_bytes).unwrap_or(0);
                    // KIP-74: the first partition with data returns at least one whole batch,
                    // however large, so a consumer can always make progress.
                    let min_one_batch = total == 0 && granted > 0;
                    let max_bytes = partition_max.min(budget);
                    match partition
                        .log
                        .read(wanted.fetch_offset, max_bytes, min_one_batch)
                    {
                        Ok(mut read) => {
                            let last_stable = partition.log.last_stable_offset(high_watermark);
                            let read_committed = request.isolation_level == READ_COMMITTED;
                            // Consumers never see records above the high watermark (read
                            // committed: the LSO); followers replicate everything.
                            if follower < 0 {
                                let visible_end = if read_committed {
                                    last_stable
                                } else {
                                    high_watermark
                                };
                                read.records = below_offset(read.records, visible_end);
                            }
                            if read_committed && follower < 0 {
                                data.aborted_transactions = Some(aborted_transactions(
                                    partition,
                                    wanted.fetch_offset,
                                    &read.records,
                                ));
                            }
                            let length = read.records.len();
                            if follower < 0 {
                                partition.record_traffic(length);
                            }
                            data.high_watermark = high_watermark;
                            data.last_stable_offset = last_stable;
                            data.log_start_offset = read.log_start_offset;
                            data.records = Some(read.records);
                            total += length;
                            budget = budget.saturating_sub(length);
                        }
                        Err(error) => {
                            data.error_code = read_error_code(&error).code();
                            data.high_watermark = partition.high_watermark();
                            data.last_stable_offset =
                                partition.log.last_stable_offset(data.high_watermark);
                            data.log_start_offset = partition.log.log_start_offset();
                        }
                    }
                }
            }
            topic_response.partitions.push(data);
        }
        response.responses.push(topic_response);
    }
    (response, total)
}

/// KIP-951: the current leader in the partition's answer, its endpoint in the response.
fn add_leader_hint(
    image: &TopicsImage,
    partition: &Partition,
    listener_name: &str,
    data: &mut PartitionData,
    response: &mut FetchResponse,
) {
    let hint = leader_hint::leader_hint(image, partition, listener_name);
    data.current_leader = LeaderIdAndEpoch::default()
        .with_leader_id(BrokerId(hint.leader_id))
        .with_leader_epoch(hint.leader_epoch);
    let Some(endpoint) = hint.endpoint else {
        return;
    };
    if response
        .node_endpoints
        .iter()
        .any(|known| known.node_id.0 == hint.leader_id)
    {
        return;
    }
    response.node_endpoints.push(
        NodeEndpoint::default()
            .with_node_id(BrokerId(hint.leader_id))
            .with_host(str_bytes(endpoint.host))
            .with_port(endpoint.port)
            .with_rack(endpoint.rack.map(str_bytes)),
    );
}

/// Whether a follower (not a consumer) sends `request`.
pub fn is_replica_fetch(version: i16, request: &FetchRequest) -> bool {
    replica_id(version, request) >= 0
}

/// The fetching follower's broker id, or -1 for a consumer (v15+ moved it into
/// `replica_state`, KIP-903).
fn replica_id(version: i16, request: &FetchRequest) -> i32 {
    if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    }
}

/// The aborted transactions a read_committed consumer needs for `records` read from
/// `fetch_offset`: those overlapping `[fetch_offset, last returned offset]`.
fn aborted_transactions(
    replica: &Replica,
    fetch_offset: i64,
    records: &Bytes,
) -> Vec<AbortedTransaction> {
    let last_offset = BatchIter::new(records)
        .map_while(Result::ok)
        .last()
        .map(|(_, header)| header.last_offset());
    let Some(last_offset) = last_offset else {
        return Vec::new();
    };
    replica
        .log
        .aborted_transactions(fetch_offset, last_offset + 1)
        .into_iter()
        .map(|aborted| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(aborted.producer_id))
                .with_first_offset(aborted.first_offset)
        })
        .collect()
}

/// The whole batches of `records` that start below `end_offset`. The high watermark always
/// sits on a batch boundary (replicas copy whole batches), so nothing visible is cut.
fn below_offset(records: Bytes, end_offset: i64) -> Bytes {
    let mut kept = 0;
    for item in BatchIter::new(&records) {
        let Ok((position, header)) = item else {
            break;
        };
        if header.base_offset >= end_offset {
            break;
        }
        kept = position + header.size_bytes();
    }
    records.slice(..kept)
}

fn find_topic<'a>(
    image: &'a TopicsImage,
    version: i16,
    fetch_topic: &FetchTopic,
) -> Option<&'a Arc<Topic>> {
    // v13+ (KIP-516) names topics by id only.
    if version >= 13 {
        image.by_id.get(&fetch_topic.topic_id)
    } else {
        image.by_name.get(fetch_topic.topic.0.as_str())
    }
}

fn unknown_topic_error(version: i16) -> ResponseError {
    if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    }
}

fn read_error_code(error: &ReadError) -> ResponseError {
    match error {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        _ => {
            tracing::error!(%error, "reading a partition failed");
            ResponseError::KafkaStorageError
        }
    }
}
