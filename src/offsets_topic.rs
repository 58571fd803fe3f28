//! The broker side of `__consumer_offsets`: creating the topic on first need, appending
//! commits to this node's leader replicas through the normal replicated path, and loading or
//! unloading offsets partitions as this node gains or loses their leadership (Kafka's
//! `GroupMetadataManager` / coordinator loader).
//!
//! The group coordinator (`crate::group`) knows only the `OffsetsLog` trait and which
//! partitions it owns; the metadata publisher calls [`on_image`] after each new view.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::ResponseError;
use sluice_storage::{AppendError, VerificationGuard};

use crate::broker::{now_ms, ApiError, Broker, Replica, Topic, TopicsImage};
use crate::group::offset_records::{self, ConsumerRecords, RecordError};
use crate::group::{GroupOffsets, OffsetsLog, Ownership, Replicated, OFFSETS_TOPIC};
use crate::internal_topic;
use crate::replication;

/// Kafka's offsets.commit.timeout.ms: a commit not replicated by then is answered
/// COORDINATOR_NOT_AVAILABLE (the client retries).
const COMMIT_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before replaying a partition again after a failed load.
const LOAD_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Bytes read per step while loading a partition (Kafka's offsets.load.buffer.size).
const LOAD_READ_BYTES: usize = 5 * 1024 * 1024;

/// Appends to this node's leader replicas of the offsets topic.
pub struct ReplicatedOffsetsLog {
    broker: Weak<Broker>,
}

impl ReplicatedOffsetsLog {
    pub fn new(broker: &Arc<Broker>) -> ReplicatedOffsetsLog {
        ReplicatedOffsetsLog {
            broker: Arc::downgrade(broker),
        }
    }
}

impl ReplicatedOffsetsLog {
    /// This node's leader replica of offsets partition `partition`, with its leader epoch.
    fn leader_replica(
        &self,
        partition: i32,
    ) -> Result<(Arc<Broker>, Arc<Replica>, i32), ResponseError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let image = broker.topics();
        let found = image
            .by_name
            .get(OFFSETS_TOPIC)
            .and_then(|topic| topic.partition(partition))
            .ok_or(ResponseError::NotCoordinator)?;
        let replica = found
            .leader_replica(broker.node_id(), -1)
            .map_err(|_| ResponseError::NotCoordinator)?
            .clone();
        let leader_epoch = found.leader_epoch();
        Ok((broker, replica, leader_epoch))
    }
}

impl OffsetsLog for ReplicatedOffsetsLog {
    fn next_sequence(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<i32, ResponseError> {
        let (_, replica, _) = self.leader_replica(partition)?;
        // The coordinator writes a producer's batches here, so their sequences only have to
        // continue what the log holds (Kafka skips the check for coordinator appends).
        match replica.log.producer_entry(producer_id) {
            Some(entry) if entry.producer_epoch > producer_epoch => {
                Err(ResponseError::InvalidProducerEpoch)
            }
            Some(entry) if entry.producer_epoch == producer_epoch => Ok(
                sluice_storage::producer_state::next_sequence(entry.last_sequence()),
            ),
            _ => Ok(0),
        }
    }

    fn append(
        &self,
        partition: i32,
        mut batch: BytesMut,
        verification: Option<VerificationGuard>,
    ) -> Result<(i64, Replicated), ResponseError> {
        let (broker, replica, leader_epoch) = self.leader_replica(partition)?;
        let log = &replica.log;
        let appended = match verification {
            Some(guard) => log.append_verified(&mut batch, leader_epoch, now_ms(), guard),
            None => log.append(&mut batch, leader_epoch, now_ms()),
        };
        let outcome = appended.map_err(|error| append_error(&error))?;
        replication::recompute_high_watermark(&replica);
        // Followers' waiting fetches must see the batch for the commit to complete.
        broker.notify_appended();
        let last_offset = outcome.last_offset;
        // min.insync.replicas 1, the default Kafka's offsets topic has too: the commit waits
        // for the whole ISR, however small it has become.
        let replicated = Box::pin(async move {
            replication::wait_replicated(
                &broker,
                &replica,
                last_offset,
                COMMIT_REPLICATION_TIMEOUT,
                1,
            )
            .await
            .map_err(commit_error)
        });
        Ok((last_offset, replicated))
    }
}

/// Kafka's mapping of append failures to OffsetCommit errors.
fn append_error(error: &AppendError) -> ResponseError {
    match error {
        AppendError::LargerThanSegment { .. } | AppendError::Batch(_) => {
            ResponseError::InvalidCommitOffsetSize
        }
        AppendError::Storage(_) => ResponseError::NotCoordinator,
        // A transactional commit of a producer an InitProducerId has fenced since.
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        other => {
            tracing::error!(error = %other, "appending to the offsets topic");
            ResponseError::UnknownServerError
        }
    }
}

fn commit_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
        _ => ResponseError::CoordinatorNotAvailable,
    }
}

/// The offsets topic, created through the controller if it does not exist yet (Kafka does
/// this on the first FindCoordinator for a group). Its replication factor is capped at the
/// brokers alive now, so a single dev node needs no flag.
pub async fn ensure_created(broker: &Broker) -> Result<Arc<Topic>, ApiError> {
    let partitions = broker.config.offsets_topic_partitions;
    let replication_factor_max = broker.config.offsets_topic_replication_factor;
    internal_topic::ensure_created(broker, OFFSETS_TOPIC, partitions, replication_factor_max).await
}

/// Creates the offsets topic and waits until this node (a single test broker) serves
/// every group, as it does once clients have asked FindCoordinator.
#[cfg(test)]
pub async fn coordinate_all_for_test(broker: &Broker) {
    let topic = ensure_created(broker).await.expect("offsets topic");
    for partition in &topic.partitions {
        let loaded = broker
            .groups
            .wait_loaded(partition.index, Duration::from_secs(10));
        assert!(loaded.await, "offsets partition {} loads", partition.index);
    }
}

/// Loads the offsets partitions this node now leads and unloads the ones it no longer does.
pub fn on_image(broker: &Arc<Broker>, topics: &TopicsImage) {
    internal_topic::follow_leadership(broker, topics, OFFSETS_TOPIC, &broker.groups, spawn_load);
}

impl internal_topic::PartitionCoordinator for crate::group::GroupCoordinator {
    fn held_partitions(&self) -> Vec<i32> {
        self.ownership().into_keys().collect()
    }

    fn set_partition_count(&self, count: i32) {
        crate::group::GroupCoordinator::set_partition_count(self, count);
    }

    fn begin_load(&self, partition: i32, leader_epoch: i32) -> bool {
        crate::group::GroupCoordinator::begin_load(self, partition, leader_epoch)
    }

    fn unload(&self, partition: i32) {
        crate::group::GroupCoordinator::unload(self, partition);
    }
}

/// Replays the partition on the blocking pool, then starts serving its groups. A failed
/// replay (a read error) is retried while this node still loads the partition at this
/// epoch: its groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile (serving without the
/// offsets would lose them), and clients retry.
fn spawn_load(broker: Arc<Broker>, replica: Arc<Replica>, leader_epoch: i32) {
    tokio::spawn(async move {
        let partition = replica.index;
        loop {
            let reading = replica.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&reading)).await;
            let error = match loaded {
                Ok(Ok((loaded, consumer))) => {
                    let groups = &broker.groups;
                    groups.finish_load_with(partition, leader_epoch, loaded, consumer);
                    return;
                }
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            tracing::error!(%error, partition, "loading an offsets partition failed; retrying");
            tokio::time::sleep(LOAD_RETRY_PAUSE).await;
            let wanted = Ownership::Loading { leader_epoch };
            if broker.groups.ownership().get(&partition) != Some(&wanted) {
                return;
            }
        }
    });
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    #[error("reading the offsets log: {0}")]
    Read(#[from] sluice_storage::ReadError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Every group's offsets and KIP-848 membership records in the partition, as of its log end.
pub(crate) type Loaded = (
    HashMap<String, GroupOffsets>,
    HashMap<String, ConsumerRecords>,
);

/// Every committed offset and membership record in the partition, as of its log end now.
pub(crate) fn load(replica: &Replica) -> Result<Loaded, LoadError> {
    let mut groups = HashMap::new();
    let mut consumer = HashMap::new();
    let end = replica.log.log_end_offset();
    let mut offset = replica.log.log_start_offset();
    while offset < end {
        let read = replica.log.read(offset, LOAD_READ_BYTES, true)?;
        match offset_records::replay_all(read.records, &mut groups, &mut consumer)? {
            Some(next) if next > offset => offset = next,
            _ => return Err(LoadError::Record(RecordError::Batch)),
        }
    }
    Ok((groups, consumer))
}
