//! The broker side of `__transaction_state`: creating the topic on first need, appending the
//! coordinator's records to this node's leader replicas, and loading or unloading partitions
//! as this node gains or loses their leadership (Kafka's `TransactionStateManager`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::records::{self, RecordError};
use super::{markers, Ticket, TxnMetadata, TRANSACTION_STATE_TOPIC};
use crate::broker::{now_ms, ApiError, Broker, Replica, Topic, TopicsImage};
use crate::internal_topic;
use crate::replication;

/// Kafka's transaction.state.log replication factor default; capped at the live brokers.
const REPLICATION_FACTOR_MAX: i16 = 3;
/// A state write not replicated by then is answered COORDINATOR_NOT_AVAILABLE (retried).
const WRITE_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per step while loading a partition (Kafka's transaction.state.log.load.buffer.size).
const LOAD_READ_BYTES: usize = 5 * 1024 * 1024;
/// Pause before a failed load is tried again.
const LOAD_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The topic, created through the controller if it does not exist yet (Kafka does this on
/// the first FindCoordinator for a transactional id).
pub async fn ensure_created(broker: &Broker) -> Result<Arc<Topic>, ApiError> {
    let partitions = broker.config.transaction_state_partitions;
    let name = TRANSACTION_STATE_TOPIC;
    internal_topic::ensure_created(broker, name, partitions, REPLICATION_FACTOR_MAX).await
}

/// Appends the ticket's record to this node's leader replica (still at the ticket's epoch)
/// and waits until the whole ISR has it.
pub async fn append(broker: &Arc<Broker>, ticket: &Ticket) -> Result<(), ResponseError> {
    let image = broker.topics();
    let found = image
        .by_name
        .get(TRANSACTION_STATE_TOPIC)
        .and_then(|topic| topic.partition(ticket.partition))
        .ok_or(ResponseError::NotCoordinator)?;
    if found.leader_epoch() != ticket.coordinator_epoch {
        return Err(ResponseError::NotCoordinator);
    }
    let replica = found
        .leader_replica(broker.node_id(), -1)
        .map_err(|_| ResponseError::NotCoordinator)?
        .clone();
    let now = now_ms();
    let mut batch = records::encode_batch(&ticket.transactional_id, &ticket.metadata, now);
    let outcome = replica
        .log
        .append(&mut batch, ticket.coordinator_epoch, now)
        .map_err(|error| {
            tracing::warn!(%error, "appending to the transaction log");
            ResponseError::CoordinatorNotAvailable
        })?;
    replication::recompute_high_watermark(&replica);
    broker.notify_appended();
    replication::wait_replicated(
        broker,
        &replica,
        outcome.last_offset,
        WRITE_REPLICATION_TIMEOUT,
        1,
    )
    .await
    .map_err(|error| match error {
        ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
        _ => ResponseError::CoordinatorNotAvailable,
    })
}

/// Loads the partitions this node now leads and unloads the ones it no longer does.
pub fn on_image(broker: &Arc<Broker>, topics: &TopicsImage) {
    let txns = &broker.txns;
    internal_topic::follow_leadership(broker, topics, TRANSACTION_STATE_TOPIC, txns, spawn_load);
}

impl internal_topic::PartitionCoordinator for super::TxnCoordinator {
    fn held_partitions(&self) -> Vec<i32> {
        self.ownership().into_keys().collect()
    }

    fn set_partition_count(&self, count: i32) {
        super::TxnCoordinator::set_partition_count(self, count);
    }

    fn begin_load(&self, partition: i32, leader_epoch: i32) -> bool {
        super::TxnCoordinator::begin_load(self, partition, leader_epoch)
    }

    fn unload(&self, partition: i32) {
        super::TxnCoordinator::unload(self, partition);
    }
}

/// Replays the partition on the blocking pool, serves its ids, and resumes the markers of
/// transactions it finds preparing. A failed load is retried while this node still loads
/// the partition at that epoch (serving without the state would lose transactions).
fn spawn_load(broker: Arc<Broker>, replica: Arc<Replica>, epoch: i32) {
    tokio::spawn(async move {
        let partition = replica.index;
        while broker.txns.loading(partition, epoch) {
            let loading = replica.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&loading)).await;
            if install(&broker, partition, epoch, loaded) {
                return;
            }
            tokio::time::sleep(LOAD_RETRY_INTERVAL).await;
        }
    });
}

/// Serves a loaded partition; false if the load failed.
fn install(
    broker: &Arc<Broker>,
    partition: i32,
    epoch: i32,
    loaded: Result<Result<HashMap<String, TxnMetadata>, LoadError>, tokio::task::JoinError>,
) -> bool {
    match loaded {
        Ok(Ok(txns)) => {
            let count = txns.len();
            let preparing = broker.txns.finish_load(partition, epoch, txns);
            tracing::debug!(
                partition,
                epoch,
                count,
                preparing = preparing.len(),
                "transaction log partition loaded"
            );
            for id in preparing {
                markers::spawn_completion(broker.clone(), id, partition, epoch);
            }
            true
        }
        Ok(Err(error)) => {
            tracing::error!(%error, partition, "loading a transaction log partition failed");
            false
        }
        Err(error) => {
            tracing::error!(%error, partition, "transaction log load task failed");
            false
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the transaction log: {0}")]
    Read(#[from] sluice_storage::ReadError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Every transactional id's latest metadata in the partition, as of its log end now.
pub fn load(replica: &Replica) -> Result<HashMap<String, TxnMetadata>, LoadError> {
    let mut txns = HashMap::new();
    let end = replica.log.log_end_offset();
    let mut offset = replica.log.log_start_offset();
    while offset < end {
        let read = replica.log.read(offset, LOAD_READ_BYTES, true)?;
        match records::replay(read.records, &mut txns)? {
            Some(next) if next > offset => offset = next,
            _ => return Err(LoadError::Record(RecordError::Batch)),
        }
    }
    Ok(txns)
}
