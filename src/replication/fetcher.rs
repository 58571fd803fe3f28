//! The follower side: one task per followed partition and leader epoch. It first cuts the
//! log where it diverges from the leader's (OffsetForLeaderEpoch), then fetches from the log
//! end, appends with the leader's offsets and epochs, and learns the high watermark.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, RequestKind, TopicName,
};
use kafka_protocol::ResponseError;

use sluice_raft::image::ConfigResource;

use super::peer::{Peer, PeerError};
use super::throttle::ReassignmentThrottle;
use crate::broker::{now_ms, Broker, Replica, Role};
use crate::handlers::{str_bytes, FOLLOWER_THROTTLED_RATE};

/// Fetch v12: replica id as a top-level field, leader epochs, topics by name.
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const FETCH_WAIT_MS: i32 = 500;
const FETCH_PARTITION_BYTES_MAX: i32 = 8 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an error before trying again (leader moving, peer down).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// OffsetForLeaderEpoch rounds before giving up on finding the divergence point (each round
/// steps back at least one epoch).
const TRUNCATION_ROUNDS_MAX: u32 = 64;

pub fn spawn(broker: Arc<Broker>, replica: Arc<Replica>, leader: i32, leader_epoch: i32) {
    tokio::spawn(async move {
        tracing::info!(topic = %replica.topic, partition = replica.index, leader, leader_epoch, "following");
        run(&broker, &replica, leader, leader_epoch).await;
        tracing::debug!(topic = %replica.topic, partition = replica.index, leader_epoch, "fetcher stopped");
    });
}

fn still_following(replica: &Replica, leader: i32, leader_epoch: i32) -> bool {
    replica.progress().role
        == (Role::Follower {
            leader,
            leader_epoch,
        })
}

fn leader_address(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.topics();
    let registration = image.metadata.cluster.broker(leader)?;
    broker.inter_broker.address_of(&registration.listeners)
}

async fn run(broker: &Broker, replica: &Replica, leader: i32, leader_epoch: i32) {
    let mut peer: Option<Peer> = None;
    let mut truncated = false;
    while still_following(replica, leader, leader_epoch) {
        if peer.is_none() {
            peer = leader_address(broker, leader)
                .map(|address| Peer::new(broker.inter_broker.clone(), address));
        }
        let Some(connection) = peer.as_mut() else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        let step = if truncated {
            fetch_once(broker, replica, connection, leader, leader_epoch).await
        } else {
            truncate_divergent_tail(replica, connection, leader_epoch).await
        };
        match step {
            Ok(()) => truncated = true,
            Err(error) => {
                if error.is_authorisation_refusal() {
                    let reason = error.to_string();
                    broker
                        .inter_broker
                        .note_refused(connection.address(), &reason);
                }
                tracing::debug!(%error, topic = %replica.topic, "replica fetch failed");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("peer: {0}")]
    Peer(#[from] PeerError),
    #[error("leader answered {0:?}")]
    Leader(ResponseError),
    #[error("leader answered code {0}")]
    Code(i16),
    #[error("storage: {0}")]
    Storage(String),
}

impl FetchError {
    /// The leader refused the request for this node's principal (no ClusterAction).
    fn is_authorisation_refusal(&self) -> bool {
        matches!(
            self,
            FetchError::Leader(
                ResponseError::ClusterAuthorizationFailed | ResponseError::TopicAuthorizationFailed
            )
        )
    }
}

fn partition_error(code: i16) -> Result<(), FetchError> {
    if code == 0 {
        return Ok(());
    }
    Err(ResponseError::try_from_code(code).map_or(FetchError::Code(code), FetchError::Leader))
}

/// KIP-279 (Kafka's `getOffsetTruncationState`): ask the leader where our latest epoch ends
/// there; cut our log at the end of that epoch on both sides. When the leader answers with
/// an epoch this log does not have, cut back to the end of the epoch before it here, and ask
/// again with the then-latest epoch.
async fn truncate_divergent_tail(
    replica: &Replica,
    peer: &mut Peer,
    leader_epoch: i32,
) -> Result<(), FetchError> {
    for _ in 0..TRUNCATION_ROUNDS_MAX {
        let Some(latest) = replica.log.latest_epoch() else {
            return Ok(());
        };
        let answer = leader_end_offset(replica, peer, leader_epoch, latest).await?;
        if truncate_for_answer(replica, answer)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Applies one OffsetForLeaderEpoch answer to the log; true once the tail is settled.
fn truncate_for_answer(replica: &Replica, answer: (i32, i64)) -> Result<bool, FetchError> {
    let (cut_at, done) = truncation_point(replica, answer);
    let log_end_offset = replica.log.log_end_offset();
    if cut_at < log_end_offset {
        tracing::info!(
            topic = %replica.topic,
            partition = replica.index,
            from = log_end_offset,
            to = cut_at,
            "truncating a divergent tail"
        );
    }
    // At the log end too: an epoch that started there and wrote nothing is dropped.
    replica
        .log
        .truncate_to(cut_at)
        .map_err(|e| FetchError::Storage(e.to_string()))?;
    replica.clamp_high_watermark();
    Ok(done)
}

/// Where to cut, given the leader's `(epoch, end offset)` for our latest epoch, and whether
/// that settles it.
fn truncation_point(replica: &Replica, (leader_epoch, leader_end): (i32, i64)) -> (i64, bool) {
    let log_end_offset = replica.log.log_end_offset();
    if leader_epoch < 0 || leader_end < 0 {
        // The leader knows no epoch this old: keep only what was committed.
        return (replica.high_watermark().min(log_end_offset), true);
    }
    let (own_epoch, own_end) = replica.log.end_offset_for_epoch(leader_epoch);
    if own_epoch < 0 || own_end < 0 {
        return (replica.high_watermark().min(log_end_offset), true);
    }
    if own_epoch != leader_epoch {
        // Everything from our first epoch above the leader's answer is someone else's
        // history: drop it and compare again.
        return (own_end.min(log_end_offset), false);
    }
    (own_end.min(leader_end).min(log_end_offset), true)
}

async fn leader_end_offset(
    replica: &Replica,
    peer: &mut Peer,
    leader_epoch: i32,
    wanted_epoch: i32,
) -> Result<(i32, i64), FetchError> {
    let mut partition = OffsetForLeaderPartition::default();
    partition.partition = replica.index;
    partition.current_leader_epoch = leader_epoch;
    partition.leader_epoch = wanted_epoch;
    let mut topic = OffsetForLeaderTopic::default();
    topic.topic = TopicName(str_bytes(replica.topic.clone()));
    topic.partitions = vec![partition];
    let mut request = OffsetForLeaderEpochRequest::default();
    request.replica_id = BrokerId(-2);
    request.topics = vec![topic];
    let response: OffsetForLeaderEpochResponse = peer
        .request(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            RequestKind::OffsetForLeaderEpoch(request),
            REQUEST_TIMEOUT,
        )
        .await?;
    let result = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(FetchError::Code(-1))?;
    partition_error(result.error_code)?;
    Ok((result.leader_epoch, result.end_offset))
}

async fn fetch_once(
    broker: &Broker,
    replica: &Replica,
    peer: &mut Peer,
    leader: i32,
    leader_epoch: i32,
) -> Result<(), FetchError> {
    let fetch_offset = replica.log.log_end_offset();
    let throttle = is_being_added(broker, replica).then(|| throttle_bytes_per_sec(broker));
    let mut request = fetch_request(broker.node_id(), replica, leader_epoch, fetch_offset);
    if let Some(rate) = throttle {
        let chunk = ReassignmentThrottle::chunk_bytes(rate, FETCH_PARTITION_BYTES_MAX);
        request.max_bytes = chunk;
        for partition in request
            .topics
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
        {
            partition.partition_max_bytes = chunk;
        }
    }
    let timeout = REQUEST_TIMEOUT + Duration::from_millis(FETCH_WAIT_MS as u64);
    let response: FetchResponse = peer
        .request(
            ApiKey::Fetch,
            FETCH_VERSION,
            RequestKind::Fetch(request),
            timeout,
        )
        .await?;
    partition_error(response.error_code)?;
    let data = response
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(FetchError::Code(-1))?;
    partition_error(data.error_code)?;
    if !still_following(replica, leader, leader_epoch) {
        // A newer epoch's fetcher owns the log now (it may have cut the tail this answer
        // would extend): drop the answer.
        return Ok(());
    }
    let mut fetched_bytes = 0;
    if let Some(records) = data.records.as_ref().filter(|r| !r.is_empty()) {
        let appended = replica.log.append_replicated(records, now_ms());
        appended.map_err(|e| FetchError::Storage(e.to_string()))?;
        fetched_bytes = records.len();
    }
    let end = replica.log.log_end_offset();
    if replica.advance_high_watermark(data.high_watermark.min(end)) {
        broker.notify_appended();
    }
    if let Some(rate) = throttle {
        // Paying before the next fetch also delays the offset that tells the leader we caught
        // up, so the reassignment cannot complete faster than the throttle allows.
        broker.reassignment_throttle.pay(fetched_bytes, rate).await;
    }
    Ok(())
}

/// This node's `follower.replication.throttled.rate` (its own, else the cluster default, as
/// `kafka-reassign-partitions --throttle` sets them), else `--reassignment-throttle-bytes-per-sec`.
fn throttle_bytes_per_sec(broker: &Broker) -> u64 {
    let topics = broker.topics();
    let configs = &topics.metadata.configs;
    [broker.node_id(), -1]
        .into_iter()
        .find_map(|id| {
            configs
                .configs(&ConfigResource::Broker(id))?
                .get(FOLLOWER_THROTTLED_RATE)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(broker.config.reassignment_throttle_bytes_per_sec)
}

/// Whether a running reassignment is adding this node's replica (its catch-up is throttled).
/// A replica a reassignment is adding and that is not in the ISR yet: only its catch-up is
/// throttled. Once in sync it replicates at full speed (Kafka's `shouldFollowerThrottle`),
/// since acks=all writes now wait for it.
fn is_being_added(broker: &Broker, replica: &Replica) -> bool {
    let topics = broker.topics();
    let registration = topics
        .metadata
        .topics
        .partition(replica.topic_id, replica.index);
    let node = broker.node_id();
    registration.is_some_and(|p| p.adding_replicas.contains(&node) && !p.isr.contains(&node))
}

fn fetch_request(node: i32, replica: &Replica, leader_epoch: i32, offset: i64) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = replica.index;
    partition.current_leader_epoch = leader_epoch;
    partition.fetch_offset = offset;
    partition.last_fetched_epoch = -1;
    partition.log_start_offset = -1;
    partition.partition_max_bytes = FETCH_PARTITION_BYTES_MAX;
    let mut topic = FetchTopic::default();
    topic.topic = TopicName(str_bytes(replica.topic.clone()));
    topic.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(node);
    request.max_wait_ms = FETCH_WAIT_MS;
    request.min_bytes = 1;
    request.max_bytes = FETCH_PARTITION_BYTES_MAX;
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = vec![topic];
    request
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use sluice_storage::{Log, LogConfig};
    use uuid::Uuid;

    use super::*;

    /// One batch of `count` records whose values name `tag`.
    fn batch(tag: &str, count: usize) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|at| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: at as i64,
                sequence: -1,
                timestamp: 1_000,
                key: None,
                value: Some(format!("{tag}-{at}").into_bytes().into()),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out
    }

    fn replica(dir: &std::path::Path) -> Replica {
        let log = Log::open(dir, LogConfig::default(), 0, 0).unwrap();
        Replica::new(log, "t".into(), Uuid::nil(), 0)
    }

    fn bytes_from(log: &Log, offset: i64) -> Vec<u8> {
        log.read(offset, 1 << 20, true).unwrap().records.to_vec()
    }

    /// What the fetcher does against `leader`: settle the tail, then copy the rest.
    fn follow(follower: &Replica, leader: &Log) {
        for _ in 0..TRUNCATION_ROUNDS_MAX {
            let latest = follower.log.latest_epoch().unwrap();
            let answer = leader.end_offset_for_epoch(latest);
            if truncate_for_answer(follower, answer).unwrap() {
                break;
            }
        }
        let missing = bytes_from(leader, follower.log.log_end_offset());
        follower.log.append_replicated(&missing, 0).unwrap();
    }

    /// The follower led epoch 1 from offset 10 while the new leader (epoch 2) already had
    /// epoch-0 records past 10 that the follower never got: the leader's end of epoch 0 (20)
    /// is beyond the follower's log end (15), yet the follower's epoch-1 records diverge.
    #[test]
    fn a_tail_from_an_epoch_the_leader_never_had_is_cut_at_the_follower_epoch_end() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = replica(leader_dir.path());
        let follower = replica(follower_dir.path());
        leader.log.append(&mut batch("a", 10), 0, 0).unwrap();
        follower
            .log
            .append_replicated(&bytes_from(&leader.log, 0), 0)
            .unwrap();
        leader.log.append(&mut batch("b", 10), 0, 0).unwrap();
        follower.log.assign_epoch(1).unwrap();
        follower
            .log
            .append(&mut batch("divergent", 5), 1, 0)
            .unwrap();
        leader.log.assign_epoch(2).unwrap();
        leader.log.append(&mut batch("c", 5), 2, 0).unwrap();

        follow(&follower, &leader.log);
        assert_eq!(follower.log.log_end_offset(), 25);
        assert_eq!(bytes_from(&follower.log, 0), bytes_from(&leader.log, 0));
        for epoch in 0..=2 {
            assert_eq!(
                follower.log.end_offset_for_epoch(epoch),
                leader.log.end_offset_for_epoch(epoch)
            );
        }
    }

    /// The follower led epoch 1 and wrote nothing: the empty epoch goes, and the leader's
    /// older-epoch records that follow are recorded under their own epoch.
    #[test]
    fn an_empty_epoch_at_the_log_end_is_dropped_before_replicating() {
        let (leader_dir, follower_dir) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let leader = replica(leader_dir.path());
        let follower = replica(follower_dir.path());
        leader.log.append(&mut batch("a", 10), 0, 0).unwrap();
        follower
            .log
            .append_replicated(&bytes_from(&leader.log, 0), 0)
            .unwrap();
        leader.log.append(&mut batch("b", 10), 0, 0).unwrap();
        follower.log.assign_epoch(1).unwrap();
        leader.log.assign_epoch(2).unwrap();
        leader.log.append(&mut batch("c", 5), 2, 0).unwrap();

        follow(&follower, &leader.log);
        assert_eq!(bytes_from(&follower.log, 0), bytes_from(&leader.log, 0));
        assert_eq!(follower.log.end_offset_for_epoch(1), (0, 20));
        assert_eq!(follower.log.end_offset_for_epoch(0), (0, 20));
    }
}
