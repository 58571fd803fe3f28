//! The transaction coordinator (KIP-98; transaction version 2 of KIP-890 when the client
//! speaks it, see `state`): transactional ids, their producer ids and epochs, and the state
//! of each one's current transaction.
//!
//! A transactional id belongs to partition `abs(java_hash(id)) % partitions` of the internal
//! topic `__transaction_state` and is coordinated by that partition's leader, as a group is by
//! its `__consumer_offsets` partition. Every state change is a record in Kafka's schema
//! (`records`), appended to the leader replica and acknowledged only once the whole ISR has it;
//! the in-memory map is changed after that (an id with a write in flight is "pending": other
//! requests for it get CONCURRENT_TRANSACTIONS, as Kafka's `pendingState` does). The decisions
//! themselves are pure functions (`state`). On leadership of a partition its log is replayed
//! (`topic::on_image`), and transactions found preparing get their markers sent again
//! (`markers`): PrepareCommit/PrepareAbort survive coordinator failover and restarts.

pub mod markers;
pub mod peers;
pub mod records;
pub mod state;
pub mod topic;
pub mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::{now_ms, Broker};
use crate::group::offsets_partition_for;
pub use state::{TxnMetadata, TxnPartition, TxnState};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// Kafka's limit on transactional id length follows from the record's i16 string length.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = i16::MAX as usize;

/// Whether a write in flight for an id is checked before or after the producer's id and
/// epoch (see [`TxnCoordinator::decide_for_producer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    PendingFirst,
    ProducerFirst,
}

/// One `__transaction_state` partition this node leads.
struct Owned {
    /// The partition's leader epoch when this node took it: markers carry it, and a write
    /// at another epoch is refused (the coordinator moved).
    coordinator_epoch: i32,
    loaded: bool,
    txns: HashMap<String, Entry>,
}

#[derive(Default)]
struct Entry {
    metadata: Option<TxnMetadata>,
    /// A write for this id is in flight.
    pending: bool,
}

/// A decided write: what to append, and where it must still be coordinated when it lands.
pub struct Ticket {
    pub transactional_id: String,
    pub partition: i32,
    pub coordinator_epoch: i32,
    pub metadata: TxnMetadata,
}

pub struct TxnCoordinator {
    owned: Mutex<HashMap<i32, Owned>>,
    partition_count: AtomicI32,
    /// Bumped when a partition finishes loading (FindCoordinator waits on it).
    loads: watch::Sender<u64>,
    /// Connections to other brokers for markers and verification.
    pub peers: peers::PeerPool,
}

impl Default for TxnCoordinator {
    fn default() -> Self {
        TxnCoordinator::new()
    }
}

impl TxnCoordinator {
    pub fn new() -> TxnCoordinator {
        TxnCoordinator {
            owned: Mutex::new(HashMap::new()),
            partition_count: AtomicI32::new(0),
            loads: watch::channel(0).0,
            peers: peers::PeerPool::default(),
        }
    }

    fn owned(&self) -> MutexGuard<'_, HashMap<i32, Owned>> {
        // A panic while holding the lock is a bug elsewhere; the map itself stays usable.
        self.owned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_partition_count(&self, count: i32) {
        self.partition_count.store(count, Ordering::Relaxed);
    }

    /// The `__transaction_state` partition of `transactional_id` (None: no topic yet).
    pub fn partition_for(&self, transactional_id: &str) -> Option<i32> {
        let count = self.partition_count.load(Ordering::Relaxed);
        (count > 0).then(|| offsets_partition_for(transactional_id, count))
    }

    /// Partition → coordinator epoch of every partition held (loaded or loading).
    pub fn ownership(&self) -> HashMap<i32, i32> {
        self.owned()
            .iter()
            .map(|(partition, owned)| (*partition, owned.coordinator_epoch))
            .collect()
    }

    /// Starts holding `partition` at `epoch`; false if already held at that epoch.
    pub fn begin_load(&self, partition: i32, epoch: i32) -> bool {
        let mut owned = self.owned();
        if owned
            .get(&partition)
            .is_some_and(|held| held.coordinator_epoch == epoch)
        {
            return false;
        }
        owned.insert(
            partition,
            Owned {
                coordinator_epoch: epoch,
                loaded: false,
                txns: HashMap::new(),
            },
        );
        true
    }

    /// Installs the replayed ids; returns those whose markers must be sent (preparing).
    pub fn finish_load(
        &self,
        partition: i32,
        epoch: i32,
        txns: HashMap<String, TxnMetadata>,
    ) -> Vec<String> {
        let mut owned = self.owned();
        let Some(held) = owned
            .get_mut(&partition)
            .filter(|held| held.coordinator_epoch == epoch && !held.loaded)
        else {
            return Vec::new();
        };
        let preparing = txns
            .iter()
            .filter(|(_, metadata)| metadata.state.is_preparing())
            .map(|(id, _)| id.clone())
            .collect();
        held.txns = txns
            .into_iter()
            .map(|(id, metadata)| {
                let entry = Entry {
                    metadata: Some(metadata),
                    pending: false,
                };
                (id, entry)
            })
            .collect();
        held.loaded = true;
        drop(owned);
        self.loads.send_modify(|count| *count += 1);
        preparing
    }

    pub fn unload(&self, partition: i32) {
        self.owned().remove(&partition);
    }

    /// True while `partition` is held at `epoch` and still loading.
    pub fn loading(&self, partition: i32, epoch: i32) -> bool {
        self.owned()
            .get(&partition)
            .is_some_and(|held| !held.loaded && held.coordinator_epoch == epoch)
    }

    /// True while `partition` is held, loaded, at `epoch`.
    pub fn coordinating(&self, partition: i32, epoch: i32) -> bool {
        self.owned()
            .get(&partition)
            .is_some_and(|held| held.loaded && held.coordinator_epoch == epoch)
    }

    /// Waits (at most `within`) until `partition` is loaded here; false if it is not.
    pub async fn wait_loaded(&self, partition: i32, within: Duration) -> bool {
        let mut loads = self.loads.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            loads.borrow_and_update();
            match self.owned().get(&partition) {
                None => return false,
                Some(held) if held.loaded => return true,
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, loads.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Runs `decide` on the id's metadata under the lock. When it returns metadata to write,
    /// the id becomes pending and the ticket must be passed to [`write`]. An id with a write
    /// in flight is CONCURRENT_TRANSACTIONS (InitProducerId and the coordinator's own steps).
    pub fn decide<R>(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Result<(Option<TxnMetadata>, R), ResponseError>,
    ) -> Result<(Option<Ticket>, R), ResponseError> {
        self.decide_in(Order::PendingFirst, transactional_id, decide)
    }

    /// [`Self::decide`] for a request of a producer (AddPartitionsToTxn, AddOffsetsToTxn,
    /// EndTxn): Kafka checks its producer id and epoch before a write in flight, so a
    /// fenced producer is told so (INVALID_PRODUCER_ID_MAPPING / PRODUCER_FENCED) rather than
    /// to retry. `decide` must make those checks first and have no side effects.
    pub fn decide_for_producer<R>(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Result<(Option<TxnMetadata>, R), ResponseError>,
    ) -> Result<(Option<Ticket>, R), ResponseError> {
        self.decide_in(Order::ProducerFirst, transactional_id, decide)
    }

    fn decide_in<R>(
        &self,
        order: Order,
        transactional_id: &str,
        decide: impl FnOnce(Option<&TxnMetadata>) -> Result<(Option<TxnMetadata>, R), ResponseError>,
    ) -> Result<(Option<Ticket>, R), ResponseError> {
        let partition = self
            .partition_for(transactional_id)
            .ok_or(ResponseError::NotCoordinator)?;
        let mut owned = self.owned();
        let held = owned
            .get_mut(&partition)
            .ok_or(ResponseError::NotCoordinator)?;
        if !held.loaded {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let current = held.txns.get(transactional_id);
        let pending = current.is_some_and(|entry| entry.pending);
        if pending && order == Order::PendingFirst {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let decided = decide(current.and_then(|entry| entry.metadata.as_ref()));
        if pending {
            return Err(match decided {
                Err(
                    fenced @ (ResponseError::InvalidProducerIdMapping
                    | ResponseError::ProducerFenced),
                ) => fenced,
                _ => ResponseError::ConcurrentTransactions,
            });
        }
        let (write, answer) = decided?;
        let ticket = write.map(|metadata| {
            held.txns
                .entry(transactional_id.to_string())
                .or_default()
                .pending = true;
            Ticket {
                transactional_id: transactional_id.to_string(),
                partition,
                coordinator_epoch: held.coordinator_epoch,
                metadata,
            }
        });
        Ok((ticket, answer))
    }

    /// KIP-890 verification: the partitions not in the producer's ongoing transaction.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
    ) -> Result<Vec<TxnPartition>, ResponseError> {
        let (_, missing) = self.decide(transactional_id, |current| {
            let missing =
                state::verify_partitions(current, producer_id, producer_epoch, partitions)?;
            Ok((None, missing))
        })?;
        Ok(missing)
    }

    /// Ends a write: installs the metadata if it is durable and the partition is still
    /// coordinated at the ticket's epoch; clears the pending mark either way.
    fn finish_write(&self, ticket: &Ticket, durable: bool) -> bool {
        let mut owned = self.owned();
        let Some(held) = owned
            .get_mut(&ticket.partition)
            .filter(|held| held.coordinator_epoch == ticket.coordinator_epoch)
        else {
            return false;
        };
        if durable && ticket.metadata.state == TxnState::Dead {
            held.txns.remove(&ticket.transactional_id);
            return true;
        }
        let entry = held
            .txns
            .entry(ticket.transactional_id.clone())
            .or_default();
        entry.pending = false;
        if durable {
            entry.metadata = Some(ticket.metadata.clone());
        } else if entry.metadata.is_none() {
            held.txns.remove(&ticket.transactional_id);
        }
        durable
    }

    /// The metadata of one id, if this node coordinates it.
    pub fn describe(&self, transactional_id: &str) -> Result<Option<TxnMetadata>, ResponseError> {
        let partition = self
            .partition_for(transactional_id)
            .ok_or(ResponseError::NotCoordinator)?;
        let owned = self.owned();
        let held = owned.get(&partition).ok_or(ResponseError::NotCoordinator)?;
        if !held.loaded {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(held
            .txns
            .get(transactional_id)
            .and_then(|entry| entry.metadata.clone()))
    }

    /// Some partition this node took is still being loaded.
    pub fn any_loading(&self) -> bool {
        self.owned().values().any(|held| !held.loaded)
    }

    /// Every id this node coordinates (loaded partitions), with its metadata.
    pub fn list(&self) -> Vec<(String, TxnMetadata)> {
        let owned = self.owned();
        let mut all: Vec<_> = owned
            .values()
            .filter(|held| held.loaded)
            .flat_map(|held| held.txns.iter())
            .filter_map(|(id, entry)| Some((id.clone(), entry.metadata.clone()?)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Ids (not pending) whose metadata `due` says something must be done for.
    fn due(&self, due: impl Fn(&TxnMetadata) -> bool) -> Vec<String> {
        let owned = self.owned();
        owned
            .values()
            .filter(|held| held.loaded)
            .flat_map(|held| held.txns.iter())
            .filter(|(_, entry)| !entry.pending && entry.metadata.as_ref().is_some_and(&due))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Ongoing transactions past their timeout.
    fn overdue(&self, now_ms: i64) -> Vec<String> {
        self.due(|metadata| state::abort_expired(metadata, false, now_ms).is_some())
    }
}

/// Appends the ticket's record and waits until the ISR has it; then the new metadata is
/// what the coordinator serves. Errors are the ones Kafka's clients retry on.
pub async fn write(broker: &Arc<Broker>, ticket: &Ticket) -> Result<(), ResponseError> {
    let appended = topic::append(broker, ticket).await;
    let installed = broker.txns.finish_write(ticket, appended.is_ok());
    match appended {
        Ok(()) if installed => Ok(()),
        Ok(()) => Err(ResponseError::NotCoordinator),
        Err(error) => Err(error),
    }
}

/// Decides and, if needed, writes; then starts the markers of a transaction that the write
/// moved to PrepareCommit/PrepareAbort. The write runs in its own task: a request future
/// dropped mid-write (connection closed, shutdown) must not leave the id pending forever.
pub async fn transition<R>(
    broker: &Arc<Broker>,
    transactional_id: &str,
    decide: impl FnOnce(Option<&TxnMetadata>) -> Result<(Option<TxnMetadata>, R), ResponseError>,
) -> Result<R, ResponseError> {
    let decided = broker.txns.decide(transactional_id, decide)?;
    write_decided(broker, decided).await
}

/// [`transition`] for a request of a producer ([`TxnCoordinator::decide_for_producer`]).
pub async fn transition_for_producer<R>(
    broker: &Arc<Broker>,
    transactional_id: &str,
    decide: impl FnOnce(Option<&TxnMetadata>) -> Result<(Option<TxnMetadata>, R), ResponseError>,
) -> Result<R, ResponseError> {
    let decided = broker.txns.decide_for_producer(transactional_id, decide)?;
    write_decided(broker, decided).await
}

async fn write_decided<R>(
    broker: &Arc<Broker>,
    (ticket, answer): (Option<Ticket>, R),
) -> Result<R, ResponseError> {
    let Some(ticket) = ticket else {
        return Ok(answer);
    };
    let writing = broker.clone();
    let written = tokio::spawn(async move {
        write(&writing, &ticket).await?;
        if ticket.metadata.state.is_preparing() {
            markers::spawn_completion(
                writing.clone(),
                ticket.transactional_id.clone(),
                ticket.partition,
                ticket.coordinator_epoch,
            );
        }
        Ok::<(), ResponseError>(())
    });
    match written.await {
        Ok(Ok(())) => Ok(answer),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ResponseError::UnknownServerError),
    }
}

/// Every `--transaction-abort-interval-ms`: aborts transactions past their timeout, fencing
/// their producer (Kafka's `abortTimedOutTransactions`), and forgets ids idle longer than
/// `--transactional-id-expiration-ms`.
pub fn spawn_expiry(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_millis(broker.config.transaction_abort_interval_ms);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            abort_overdue(&broker).await;
            remove_expired(&broker).await;
        }
    })
}

async fn abort_overdue(broker: &Arc<Broker>) {
    let version_2 = broker.config.transaction_version >= state::TRANSACTION_VERSION_EPOCH_BUMP;
    for id in broker.txns.overdue(now_ms()) {
        let aborted = transition(broker, &id, |current| {
            let next =
                current.and_then(|metadata| state::abort_expired(metadata, version_2, now_ms()));
            let due = next.is_some();
            Ok((next, due))
        })
        .await;
        match aborted {
            Ok(true) => tracing::info!(transactional_id = %id, "timed-out transaction aborted"),
            Ok(false) => {}
            Err(error) => {
                tracing::debug!(transactional_id = %id, ?error, "timed-out abort deferred")
            }
        }
    }
}

async fn remove_expired(broker: &Arc<Broker>) {
    let expiration_ms = broker.config.transactional_id_expiration_ms;
    let now = now_ms();
    let expired = broker
        .txns
        .due(|metadata| state::expire(metadata, expiration_ms, now).is_some());
    for id in expired {
        let removed = transition(broker, &id, |current| {
            let next =
                current.and_then(|metadata| state::expire(metadata, expiration_ms, now_ms()));
            Ok((next, ()))
        })
        .await;
        if let Err(error) = removed {
            tracing::debug!(transactional_id = %id, ?error, "expiring a transactional id deferred");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(epoch: i16, state: TxnState) -> TxnMetadata {
        let mut metadata = TxnMetadata::empty(3, epoch, 1_000, 0);
        metadata.state = state;
        metadata
    }

    /// A coordinator holding every partition of a 1-partition topic at `epoch`, loaded with `txns`.
    fn coordinator(epoch: i32, txns: &[(&str, TxnMetadata)]) -> TxnCoordinator {
        let coordinator = TxnCoordinator::new();
        coordinator.set_partition_count(1);
        assert!(coordinator.begin_load(0, epoch));
        let loaded = txns
            .iter()
            .map(|(id, metadata)| (id.to_string(), metadata.clone()))
            .collect();
        coordinator.finish_load(0, epoch, loaded);
        coordinator
    }

    fn write_empty(
        current: Option<&TxnMetadata>,
    ) -> Result<(Option<TxnMetadata>, ()), ResponseError> {
        assert!(current.is_none());
        Ok((Some(metadata(0, TxnState::Empty)), ()))
    }

    #[test]
    fn ids_are_served_only_when_loaded_here() {
        let coordinator = TxnCoordinator::new();
        assert_eq!(
            coordinator.describe("tx").err(),
            Some(ResponseError::NotCoordinator)
        );
        coordinator.set_partition_count(1);
        assert!(coordinator.begin_load(0, 4));
        assert!(!coordinator.begin_load(0, 4), "same epoch: already held");
        assert_eq!(
            coordinator.describe("tx").err(),
            Some(ResponseError::CoordinatorLoadInProgress)
        );
        let preparing = coordinator.finish_load(
            0,
            4,
            HashMap::from([
                ("a".to_string(), metadata(0, TxnState::PrepareCommit)),
                ("b".to_string(), metadata(0, TxnState::Ongoing)),
            ]),
        );
        assert_eq!(preparing, vec!["a".to_string()]);
        assert!(coordinator.coordinating(0, 4));
        assert_eq!(coordinator.list().len(), 2);
        coordinator.unload(0);
        assert_eq!(
            coordinator.describe("a").err(),
            Some(ResponseError::NotCoordinator)
        );
    }

    #[test]
    fn an_id_with_a_write_in_flight_is_pending_until_it_lands() {
        let coordinator = coordinator(1, &[]);
        let (ticket, ()) = coordinator.decide("tx", write_empty).unwrap();
        let ticket = ticket.expect("a write");
        assert_eq!((ticket.partition, ticket.coordinator_epoch), (0, 1));
        assert_eq!(
            coordinator.decide("tx", write_empty).err(),
            Some(ResponseError::ConcurrentTransactions)
        );
        // Nothing installed before the write is durable.
        assert_eq!(coordinator.describe("tx"), Ok(None));
        assert!(coordinator.finish_write(&ticket, true));
        assert_eq!(
            coordinator.describe("tx"),
            Ok(Some(metadata(0, TxnState::Empty)))
        );
    }

    #[test]
    fn a_write_in_flight_is_checked_after_the_producer_as_kafka_does() {
        let ongoing = state::add_partitions(
            Some(&metadata(2, TxnState::Empty)),
            3,
            2,
            &[("t".to_string(), 0)],
            0,
            1,
        )
        .unwrap()
        .unwrap();
        let coordinator = coordinator(1, &[("tx", ongoing.clone())]);
        let end = |epoch: i16| {
            move |current: Option<&TxnMetadata>| {
                let end = state::end_txn(current, 3, epoch, true, 0, None, 2)?;
                Ok((None, end))
            }
        };
        let write = |_: Option<&TxnMetadata>| Ok((Some(ongoing.clone()), ()));
        let (ticket, ()) = coordinator.decide("tx", write).unwrap();
        assert!(ticket.is_some());
        // A fenced producer is told so; the current one retries.
        assert_eq!(
            coordinator.decide_for_producer("tx", end(1)).err(),
            Some(ResponseError::ProducerFenced)
        );
        let other_id = |current: Option<&TxnMetadata>| {
            state::end_txn(current, 4, 2, true, 0, None, 2).map(|end| (None, end))
        };
        assert_eq!(
            coordinator.decide_for_producer("tx", other_id).err(),
            Some(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            coordinator.decide_for_producer("tx", end(2)).err(),
            Some(ResponseError::ConcurrentTransactions)
        );
        // InitProducerId: the write in flight first.
        assert_eq!(
            coordinator.decide("tx", end(1)).err(),
            Some(ResponseError::ConcurrentTransactions)
        );
    }

    #[test]
    fn a_failed_write_or_a_moved_partition_installs_nothing() {
        let coordinator = coordinator(1, &[]);
        let (ticket, ()) = coordinator.decide("tx", write_empty).unwrap();
        assert!(!coordinator.finish_write(&ticket.unwrap(), false));
        assert_eq!(coordinator.describe("tx"), Ok(None));
        // Pending cleared: the next decision runs.
        let (ticket, ()) = coordinator.decide("tx", write_empty).unwrap();
        let ticket = ticket.unwrap();
        // The partition moved away and came back at a newer epoch meanwhile.
        assert!(coordinator.begin_load(0, 2));
        coordinator.finish_load(0, 2, HashMap::new());
        assert!(!coordinator.finish_write(&ticket, true));
        assert_eq!(coordinator.describe("tx"), Ok(None));
    }

    #[test]
    fn overdue_lists_only_idle_ongoing_transactions_past_their_timeout() {
        let mut ongoing = metadata(0, TxnState::Ongoing);
        ongoing.start_ms = 100;
        let coordinator = coordinator(
            1,
            &[
                ("late", ongoing.clone()),
                ("idle", metadata(0, TxnState::Empty)),
            ],
        );
        assert!(coordinator.overdue(1_100).is_empty());
        assert_eq!(coordinator.overdue(1_101), vec!["late".to_string()]);
    }
}
