//! The transaction state machine of one transactional id, as pure functions: each request
//! and the coordinator's own steps map the current metadata to an error, an answer, or new
//! metadata to write (Kafka's `TransactionMetadata` transitions, transaction version 1).
//! Nothing here does I/O; `super::coordinator` writes what these functions decide.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

/// A partition of a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

/// Kafka's `TransactionState`, with its ids (the log's `transaction_status`) and names
/// (DescribeTransactions / ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.name() == name)
    }

    /// Markers are being written; only the coordinator moves it on.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// What the coordinator knows (and writes to `__transaction_state`) about one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the ongoing (or last) transaction began; -1 before the first.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// The highest epoch handed out; Kafka moves to a fresh producer id instead of reaching
/// `i16::MAX` (which a fence bump may still use).
const PRODUCER_EPOCH_MAX: i16 = i16::MAX - 1;

/// What InitProducerId decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// Call again with a freshly allocated producer id.
    NeedProducerId,
    /// Write `metadata`, then answer with its producer id and epoch.
    Grant(TxnMetadata),
    /// An ongoing transaction is fenced: write `metadata` (PrepareAbort at a bumped epoch),
    /// send its abort markers and answer CONCURRENT_TRANSACTIONS (the client retries).
    FenceOngoing(TxnMetadata),
}

/// InitProducerId with a transactional id (`expected`: the client's current producer id
/// and epoch, KIP-360, or none).
pub fn init_producer_id(
    current: Option<&TxnMetadata>,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
    fresh_producer_id: Option<i64>,
    now_ms: i64,
) -> Result<Init, ResponseError> {
    let Some(current) = current else {
        let Some(producer_id) = fresh_producer_id else {
            return Ok(Init::NeedProducerId);
        };
        return Ok(Init::Grant(TxnMetadata {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }));
    };
    if let Some((producer_id, epoch)) = expected {
        if producer_id != current.producer_id || epoch != current.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
    }
    match current.state {
        TxnState::Ongoing => {
            let mut fenced = current.clone();
            fenced.producer_epoch = current.producer_epoch.saturating_add(1);
            fenced.state = TxnState::PrepareAbort;
            fenced.last_update_ms = now_ms;
            Ok(Init::FenceOngoing(fenced))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let (producer_id, producer_epoch) = if current.producer_epoch >= PRODUCER_EPOCH_MAX {
                match fresh_producer_id {
                    Some(id) => (id, 0),
                    None => return Ok(Init::NeedProducerId),
                }
            } else {
                (current.producer_id, current.producer_epoch + 1)
            };
            Ok(Init::Grant(TxnMetadata {
                producer_id,
                producer_epoch,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            }))
        }
        TxnState::PrepareCommit
        | TxnState::PrepareAbort
        | TxnState::PrepareEpochFence
        | TxnState::Dead => Err(ResponseError::ConcurrentTransactions),
    }
}

/// The checks every request of a producer makes first (Kafka's order).
fn check_producer(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<&TxnMetadata, ResponseError> {
    let current = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
    if current.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if current.producer_epoch != producer_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    Ok(current)
}

/// AddPartitionsToTxn / AddOffsetsToTxn: `None` when every partition is already in the
/// ongoing transaction (nothing to write).
pub fn add_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
    now_ms: i64,
) -> Result<Option<TxnMetadata>, ResponseError> {
    let current = check_producer(current, producer_id, producer_epoch)?;
    match current.state {
        TxnState::PrepareCommit
        | TxnState::PrepareAbort
        | TxnState::PrepareEpochFence
        | TxnState::Dead => return Err(ResponseError::ConcurrentTransactions),
        TxnState::Ongoing
            if partitions
                .iter()
                .all(|partition| current.partitions.contains(partition)) =>
        {
            return Ok(None);
        }
        _ => {}
    }
    let mut next = current.clone();
    if current.state != TxnState::Ongoing {
        next.start_ms = now_ms;
        next.partitions.clear();
    }
    next.state = TxnState::Ongoing;
    next.partitions.extend(partitions.iter().cloned());
    next.last_update_ms = now_ms;
    Ok(Some(next))
}

/// KIP-890 verification (AddPartitionsToTxn verify_only): the partitions not in the
/// ongoing transaction of this producer.
pub fn verify_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
) -> Result<Vec<TxnPartition>, ResponseError> {
    let current = check_producer(current, producer_id, producer_epoch)?;
    let ongoing = current.state == TxnState::Ongoing;
    Ok(partitions
        .iter()
        .filter(|partition| !ongoing || !current.partitions.contains(*partition))
        .cloned()
        .collect())
}

/// EndTxn: `None` for a retry of an end already done (answered OK without a write).
pub fn end_txn(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<Option<TxnMetadata>, ResponseError> {
    let current = check_producer(current, producer_id, producer_epoch)?;
    match (current.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut next = current.clone();
            next.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            next.last_update_ms = now_ms;
            Ok(Some(next))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(ResponseError::ConcurrentTransactions)
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// The coordinator's abort of a transaction older than its timeout: fence the producer
/// (epoch bump) and prepare the abort. `None` if it is not (any longer) due.
pub fn abort_expired(current: &TxnMetadata, now_ms: i64) -> Option<TxnMetadata> {
    let due = current.state == TxnState::Ongoing
        && current
            .start_ms
            .saturating_add(i64::from(current.timeout_ms))
            < now_ms;
    if !due {
        return None;
    }
    let mut next = current.clone();
    next.producer_epoch = current.producer_epoch.saturating_add(1);
    next.state = TxnState::PrepareAbort;
    next.last_update_ms = now_ms;
    Some(next)
}

/// An id idle past `expiration_ms` (no transaction running or being completed) is
/// forgotten: Dead, written as a tombstone (Kafka's `removeExpiredTransactionalIds`).
pub fn expire(current: &TxnMetadata, expiration_ms: i64, now_ms: i64) -> Option<TxnMetadata> {
    let idle = matches!(
        current.state,
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
    );
    if !idle || current.last_update_ms.saturating_add(expiration_ms) > now_ms {
        return None;
    }
    let mut dead = current.clone();
    dead.state = TxnState::Dead;
    dead.partitions.clear();
    dead.last_update_ms = now_ms;
    Some(dead)
}

/// After every marker is written: the transaction is complete.
pub fn complete(current: &TxnMetadata, now_ms: i64) -> Option<TxnMetadata> {
    let state = match current.state {
        TxnState::PrepareCommit => TxnState::CompleteCommit,
        TxnState::PrepareAbort => TxnState::CompleteAbort,
        _ => return None,
    };
    let mut next = current.clone();
    next.state = state;
    next.partitions.clear();
    next.last_update_ms = now_ms;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(epoch: i16) -> TxnMetadata {
        TxnMetadata {
            producer_id: 5,
            producer_epoch: epoch,
            timeout_ms: 1_000,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: 0,
        }
    }

    fn partition(topic: &str, index: i32) -> TxnPartition {
        (topic.to_string(), index)
    }

    #[test]
    fn init_creates_then_bumps_the_epoch() {
        assert_eq!(
            init_producer_id(None, 1_000, None, None, 1),
            Ok(Init::NeedProducerId)
        );
        let Ok(Init::Grant(first)) = init_producer_id(None, 1_000, None, Some(5), 1) else {
            panic!("grant");
        };
        assert_eq!((first.producer_id, first.producer_epoch), (5, 0));
        let Ok(Init::Grant(second)) = init_producer_id(Some(&first), 2_000, None, None, 2) else {
            panic!("grant");
        };
        assert_eq!(
            (second.producer_id, second.producer_epoch, second.timeout_ms),
            (5, 1, 2_000)
        );
        let at_max = empty(PRODUCER_EPOCH_MAX);
        assert_eq!(
            init_producer_id(Some(&at_max), 1_000, None, None, 3),
            Ok(Init::NeedProducerId)
        );
        let Ok(Init::Grant(fresh)) = init_producer_id(Some(&at_max), 1_000, None, Some(9), 3)
        else {
            panic!("grant");
        };
        assert_eq!((fresh.producer_id, fresh.producer_epoch), (9, 0));
    }

    #[test]
    fn init_fences_an_ongoing_transaction_and_waits_for_prepared_ones() {
        let ongoing = add_partitions(Some(&empty(2)), 5, 2, &[partition("t", 0)], 10)
            .unwrap()
            .unwrap();
        let Ok(Init::FenceOngoing(fenced)) =
            init_producer_id(Some(&ongoing), 1_000, None, None, 11)
        else {
            panic!("fence");
        };
        assert_eq!(
            (fenced.producer_epoch, fenced.state),
            (3, TxnState::PrepareAbort)
        );
        assert_eq!(fenced.partitions, BTreeSet::from([partition("t", 0)]));
        assert_eq!(
            init_producer_id(Some(&fenced), 1_000, None, None, 12),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            init_producer_id(Some(&empty(2)), 1_000, Some((5, 1)), None, 12),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn add_partitions_checks_the_producer_and_starts_the_transaction() {
        let start = empty(0);
        assert_eq!(
            add_partitions(None, 5, 0, &[partition("t", 0)], 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&start), 6, 0, &[partition("t", 0)], 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&start), 5, 1, &[partition("t", 0)], 1),
            Err(ResponseError::ProducerFenced)
        );
        let ongoing = add_partitions(Some(&start), 5, 0, &[partition("t", 0)], 7)
            .unwrap()
            .unwrap();
        assert_eq!((ongoing.state, ongoing.start_ms), (TxnState::Ongoing, 7));
        assert_eq!(
            add_partitions(Some(&ongoing), 5, 0, &[partition("t", 0)], 8),
            Ok(None)
        );
        let more = add_partitions(Some(&ongoing), 5, 0, &[partition("u", 1)], 9)
            .unwrap()
            .unwrap();
        assert_eq!(more.start_ms, 7);
        assert_eq!(more.partitions.len(), 2);
        assert_eq!(
            verify_partitions(Some(&more), 5, 0, &[partition("t", 0), partition("v", 0)]),
            Ok(vec![partition("v", 0)])
        );
        assert_eq!(
            verify_partitions(Some(&start), 5, 0, &[partition("t", 0)]),
            Ok(vec![partition("t", 0)])
        );
    }

    #[test]
    fn end_txn_follows_kafkas_state_table() {
        let ongoing = add_partitions(Some(&empty(0)), 5, 0, &[partition("t", 0)], 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            end_txn(Some(&empty(0)), 5, 0, true, 2),
            Err(ResponseError::InvalidTxnState)
        );
        let prepared = end_txn(Some(&ongoing), 5, 0, true, 2).unwrap().unwrap();
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            end_txn(Some(&prepared), 5, 0, true, 3),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            end_txn(Some(&prepared), 5, 0, false, 3),
            Err(ResponseError::InvalidTxnState)
        );
        let done = complete(&prepared, 4).unwrap();
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(end_txn(Some(&done), 5, 0, true, 5), Ok(None));
        assert_eq!(
            end_txn(Some(&done), 5, 0, false, 5),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            end_txn(None, 5, 0, true, 5),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn only_overdue_ongoing_transactions_are_aborted() {
        let ongoing = add_partitions(Some(&empty(0)), 5, 0, &[partition("t", 0)], 100)
            .unwrap()
            .unwrap();
        assert_eq!(abort_expired(&ongoing, 1_100), None);
        let aborted = abort_expired(&ongoing, 1_101).unwrap();
        assert_eq!(
            (aborted.state, aborted.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(abort_expired(&empty(0), i64::MAX), None);
    }

    #[test]
    fn only_idle_ids_expire() {
        let mut done = empty(0);
        done.last_update_ms = 100;
        assert_eq!(expire(&done, 1_000, 1_099), None);
        assert_eq!(expire(&done, 1_000, 1_100).unwrap().state, TxnState::Dead);
        let ongoing = add_partitions(Some(&done), 5, 0, &[partition("t", 0)], 100)
            .unwrap()
            .unwrap();
        assert_eq!(expire(&ongoing, 1_000, i64::MAX), None);
    }

    #[test]
    fn states_round_trip_through_codes_and_names() {
        for state in TxnState::ALL {
            assert_eq!(TxnState::from_code(state.code()), Some(state));
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
        assert_eq!(TxnState::from_code(8), None);
    }
}
