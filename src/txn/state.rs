//! The transaction state machine of one transactional id, as pure functions: each request
//! and the coordinator's own steps map the current metadata to an error, an answer, or new
//! metadata to write (Kafka's `TransactionMetadata` transitions). Nothing here does I/O;
//! `super::coordinator` writes what these functions decide.
//!
//! Transaction version 2 (KIP-890 part 2): every EndTxn of a client speaking it (EndTxn v5)
//! bumps the producer epoch when it prepares the commit/abort, so the markers carry the new
//! epoch and any late write of the ended transaction is fenced. When the epoch is exhausted
//! the prepare record names a fresh producer id (`next_producer_id`) that the completion
//! switches to. A retried EndTxn is recognised by its epoch being one below the current one
//! (or, after such a switch, by the previous producer id).

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
    /// The producer id before the last completion switched to `next_producer_id` (-1: none).
    pub previous_producer_id: i64,
    /// The fresh producer id a prepared transaction version 2 end switches to on completion,
    /// because the epoch is exhausted (-1: none).
    pub next_producer_id: i64,
    /// The transaction version the client used for the last transition (0/1, or 2).
    pub client_transaction_version: i16,
    /// Kafka's `lastProducerEpoch`: the epoch an InitProducerId naming it is a retry of (its
    /// answer was lost), answered with the current epoch without a new bump (KIP-360; -1:
    /// none). Like Kafka, kept in memory only: it is not in `__transaction_state`.
    pub last_producer_epoch: i16,
}

/// Kafka's "no producer id" / "no producer epoch".
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// The first transaction version whose ends bump the epoch.
pub const TRANSACTION_VERSION_EPOCH_BUMP: i16 = 2;

impl TxnMetadata {
    /// A fresh id's metadata: Empty at `producer_epoch`.
    pub fn empty(producer_id: i64, producer_epoch: i16, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            producer_id,
            producer_epoch,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: 0,
            last_producer_epoch: NO_PRODUCER_EPOCH,
        }
    }

    fn bumps_epochs(&self) -> bool {
        self.client_transaction_version >= TRANSACTION_VERSION_EPOCH_BUMP
    }
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
/// and epoch, KIP-360, or none), as Kafka's `prepareInitProducerIdTransit` decides it.
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
        return Ok(Init::Grant(TxnMetadata::empty(
            producer_id,
            0,
            timeout_ms,
            now_ms,
        )));
    };
    if expected.is_some_and(|expected| !is_own_producer(current, expected)) {
        return Err(ResponseError::ProducerFenced);
    }
    match current.state {
        TxnState::Ongoing => {
            let bumps = current.bumps_epochs();
            Ok(Init::FenceOngoing(fence_and_abort(current, bumps, now_ms)))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            let expected_epoch = expected.map(|(_, epoch)| epoch);
            init_idle(
                current,
                timeout_ms,
                expected_epoch,
                fresh_producer_id,
                now_ms,
            )
        }
        TxnState::PrepareCommit
        | TxnState::PrepareAbort
        | TxnState::PrepareEpochFence
        | TxnState::Dead => Err(ResponseError::ConcurrentTransactions),
    }
}

/// Kafka's `isValidProducerId`: the producer id a KIP-360 InitProducerId names is the
/// current one, or the one before a switch when its epoch was exhausted (a retry whose answer
/// was lost). The epoch is checked by [`init_idle`].
fn is_own_producer(current: &TxnMetadata, (producer_id, epoch): (i64, i16)) -> bool {
    producer_id == current.producer_id
        || (producer_id == current.previous_producer_id && epoch >= PRODUCER_EPOCH_MAX)
}

/// InitProducerId with no transaction running: the epoch is bumped, or (exhausted) the id
/// switches to a fresh producer id at epoch 0. A KIP-360 call (`expected_epoch`) must name
/// the current epoch, or the last one (a retry: the same answer again).
fn init_idle(
    current: &TxnMetadata,
    timeout_ms: i32,
    expected_epoch: Option<i16>,
    fresh_producer_id: Option<i64>,
    now_ms: i64,
) -> Result<Init, ResponseError> {
    let current_epoch = current.producer_epoch;
    let mut granted = TxnMetadata::empty(current.producer_id, current_epoch, timeout_ms, now_ms);
    granted.previous_producer_id = current.previous_producer_id;
    match expected_epoch {
        // Kafka answers a retry with the current epoch; checked before exhaustion, where
        // Kafka has no answer (an internal error) for it.
        Some(epoch)
            if epoch != current_epoch
                && epoch != NO_PRODUCER_EPOCH
                && epoch == current.last_producer_epoch =>
        {
            granted.last_producer_epoch = current.last_producer_epoch;
            return Ok(Init::Grant(granted));
        }
        Some(epoch) if epoch != current_epoch => return Err(ResponseError::ProducerFenced),
        _ => {}
    }
    // A new instance (no expected epoch) makes a retry of the old one's call fenced.
    let last_epoch = expected_epoch.map_or(NO_PRODUCER_EPOCH, |_| current_epoch);
    granted.last_producer_epoch = last_epoch;
    if current_epoch >= PRODUCER_EPOCH_MAX {
        let Some(fresh) = fresh_producer_id else {
            return Ok(Init::NeedProducerId);
        };
        granted.producer_id = fresh;
        granted.producer_epoch = 0;
        granted.previous_producer_id = current.producer_id;
    } else {
        granted.producer_epoch = current_epoch + 1;
    }
    Ok(Init::Grant(granted))
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

/// AddPartitionsToTxn / AddOffsetsToTxn, or a partition leader adding the partition of a
/// transaction version 2 write (`client_transaction_version` 2): `None` when every
/// partition is already in the ongoing transaction (nothing to write).
pub fn add_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
    client_transaction_version: i16,
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
    next.client_transaction_version = client_transaction_version;
    Ok(Some(next))
}

/// KIP-890 verification (AddPartitionsToTxn verify_only): the partitions not in the
/// ongoing transaction of this producer. A transaction being ended is
/// CONCURRENT_TRANSACTIONS, as in Kafka's `handleVerifyPartitionsInTransaction`.
pub fn verify_partitions(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TxnPartition],
) -> Result<Vec<TxnPartition>, ResponseError> {
    let current = check_producer(current, producer_id, producer_epoch)?;
    if current.state.is_preparing() {
        return Err(ResponseError::ConcurrentTransactions);
    }
    let ongoing = current.state == TxnState::Ongoing;
    Ok(partitions
        .iter()
        .filter(|partition| !ongoing || !current.partitions.contains(*partition))
        .cloned()
        .collect())
}

/// What EndTxn decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Call again with a freshly allocated producer id (transaction version 2, the epoch
    /// is exhausted).
    NeedProducerId,
    /// Write `metadata` (PrepareCommit/PrepareAbort); answer with [`End::answer`].
    Prepare(TxnMetadata),
    /// A retry of an end already done: answer OK with this producer id and epoch, no write.
    Done {
        producer_id: i64,
        producer_epoch: i16,
    },
}

impl End {
    /// The producer id and epoch the client continues with (EndTxn v5's answer).
    pub fn answer(&self) -> (i64, i16) {
        match self {
            End::NeedProducerId => (NO_PRODUCER_ID, -1),
            End::Prepare(next) if next.next_producer_id != NO_PRODUCER_ID => {
                (next.next_producer_id, 0)
            }
            End::Prepare(next) => (next.producer_id, next.producer_epoch),
            End::Done {
                producer_id,
                producer_epoch,
            } => (*producer_id, *producer_epoch),
        }
    }
}

/// EndTxn of a client speaking `client_transaction_version` (2 for EndTxn v5), as Kafka's
/// `TransactionCoordinator.endTransaction` decides it.
pub fn end_txn(
    current: Option<&TxnMetadata>,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    client_transaction_version: i16,
    fresh_producer_id: Option<i64>,
    now_ms: i64,
) -> Result<End, ResponseError> {
    let current = current.ok_or(ResponseError::InvalidProducerIdMapping)?;
    let bumps = current.bumps_epochs();
    let request_epoch = i32::from(producer_epoch);
    let current_epoch = i32::from(current.producer_epoch);
    // The answer to the first try moved the producer to epoch + 1, or (exhausted) to a
    // fresh producer id at epoch 0.
    let retry_on_bump =
        bumps && current.producer_id == producer_id && current_epoch == request_epoch + 1;
    let retry_on_overflow = bumps
        && current.previous_producer_id == producer_id
        && current.producer_id != producer_id
        && producer_epoch == PRODUCER_EPOCH_MAX
        && current.producer_epoch == 0;
    let retry = retry_on_bump || retry_on_overflow;
    if current.producer_id != producer_id && !retry_on_overflow {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    let same_epoch = current.producer_epoch == producer_epoch;
    let valid_epoch = match current.state {
        _ if !bumps => same_epoch,
        TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
        TxnState::CompleteCommit | TxnState::CompleteAbort => retry || same_epoch,
        _ => same_epoch,
    };
    if !valid_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    let version_2 = client_transaction_version >= TRANSACTION_VERSION_EPOCH_BUMP;
    // Without epoch bumps a same-epoch end of an ended transaction is the retry.
    let done = retry || !bumps;
    let state = current.state;
    match (state, commit) {
        (TxnState::Ongoing, _) => {
            let state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            prepare_end(current, state, version_2, fresh_producer_id, now_ms)
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) if done => {
            Ok(End::Done {
                producer_id: current.producer_id,
                producer_epoch: current.producer_epoch,
            })
        }
        // Version 2: the client aborts a transaction whose writes never reached the
        // coordinator; nothing to mark, but the epoch still moves on.
        (TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort, false)
            if version_2 && !retry =>
        {
            let mut nothing = current.clone();
            nothing.partitions.clear();
            nothing.start_ms = now_ms;
            prepare_end(
                &nothing,
                TxnState::PrepareAbort,
                true,
                fresh_producer_id,
                now_ms,
            )
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(ResponseError::ConcurrentTransactions)
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// PrepareCommit/PrepareAbort; version 2 bumps the epoch (a fresh producer id for the
/// completion when it is exhausted).
fn prepare_end(
    current: &TxnMetadata,
    state: TxnState,
    version_2: bool,
    fresh_producer_id: Option<i64>,
    now_ms: i64,
) -> Result<End, ResponseError> {
    let mut next = current.clone();
    next.state = state;
    next.last_update_ms = now_ms;
    if version_2 {
        if current.producer_epoch >= PRODUCER_EPOCH_MAX {
            let Some(fresh) = fresh_producer_id else {
                return Ok(End::NeedProducerId);
            };
            next.next_producer_id = fresh;
        }
        // At most i16::MAX: exhausted epochs are PRODUCER_EPOCH_MAX = i16::MAX - 1.
        next.producer_epoch = current.producer_epoch.saturating_add(1);
        next.last_producer_epoch = current.producer_epoch;
        next.client_transaction_version = TRANSACTION_VERSION_EPOCH_BUMP;
    } else {
        // The version of the client that ends it (Kafka records the request's).
        next.client_transaction_version = 0;
    }
    Ok(End::Prepare(next))
}

/// The coordinator aborts an ongoing transaction on its own (timeout, or InitProducerId of
/// a new instance): the epoch is bumped to fence the producer (Kafka's PrepareEpochFence),
/// and under transaction version 2 the abort bumps it once more, as any end does, while
/// the epoch allows (never past `i16::MAX`; no producer id switch here).
fn fence_and_abort(current: &TxnMetadata, version_2: bool, now_ms: i64) -> TxnMetadata {
    let mut next = current.clone();
    next.producer_epoch = current.producer_epoch.saturating_add(1);
    // Kafka's fence forgets the last epoch; its version 2 abort then records the fenced one.
    next.last_producer_epoch = NO_PRODUCER_EPOCH;
    if version_2 && next.producer_epoch < PRODUCER_EPOCH_MAX {
        next.last_producer_epoch = next.producer_epoch;
        next.producer_epoch += 1;
        next.client_transaction_version = TRANSACTION_VERSION_EPOCH_BUMP;
    }
    next.state = TxnState::PrepareAbort;
    next.last_update_ms = now_ms;
    next
}

/// The coordinator's abort of a transaction older than its timeout: fence the producer
/// (epoch bump) and prepare the abort. `None` if it is not (any longer) due. `version_2`:
/// the coordinator runs transaction version 2 (Kafka uses the server's level here).
pub fn abort_expired(current: &TxnMetadata, version_2: bool, now_ms: i64) -> Option<TxnMetadata> {
    let due = current.state == TxnState::Ongoing
        && current
            .start_ms
            .saturating_add(i64::from(current.timeout_ms))
            < now_ms;
    due.then(|| fence_and_abort(current, version_2, now_ms))
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
    // Kafka's `prepareComplete`: the epoch the transaction ended at.
    next.last_producer_epoch = current.producer_epoch;
    if current.bumps_epochs() && current.next_producer_id != NO_PRODUCER_ID {
        // The epoch was exhausted: the producer continues under the fresh id.
        next.previous_producer_id = current.producer_id;
        next.producer_id = current.next_producer_id;
        next.producer_epoch = 0;
        next.next_producer_id = NO_PRODUCER_ID;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(epoch: i16) -> TxnMetadata {
        TxnMetadata::empty(5, epoch, 1_000, 0)
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
        let ongoing = add_partitions(Some(&empty(2)), 5, 2, &[partition("t", 0)], 0, 10)
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

    fn grant_of(init: Result<Init, ResponseError>) -> TxnMetadata {
        match init {
            Ok(Init::Grant(granted)) => granted,
            other => panic!("expected a grant, got {other:?}"),
        }
    }

    fn answer(granted: &TxnMetadata) -> (i64, i16) {
        (granted.producer_id, granted.producer_epoch)
    }

    #[test]
    fn kip_360_init_bumps_the_named_epoch_and_answers_a_retry_again() {
        let first = grant_of(init_producer_id(
            Some(&empty(2)),
            1_000,
            Some((5, 2)),
            None,
            1,
        ));
        assert_eq!(answer(&first), (5, 3));
        assert_eq!(first.last_producer_epoch, 2);
        // The answer was lost: the same call again gets the same answer, no new bump.
        let again = grant_of(init_producer_id(Some(&first), 1_000, Some((5, 2)), None, 2));
        assert_eq!(answer(&again), (5, 3));
        let next = grant_of(init_producer_id(Some(&again), 1_000, Some((5, 3)), None, 3));
        assert_eq!((answer(&next), next.last_producer_epoch), ((5, 4), 3));
        for stale in [(5, 2), (5, 5), (6, 4)] {
            assert_eq!(
                init_producer_id(Some(&next), 1_000, Some(stale), None, 4),
                Err(ResponseError::ProducerFenced),
                "{stale:?}"
            );
        }
        // A new instance (no producer id) forgets the last epoch: the old call is fenced.
        let fresh = grant_of(init_producer_id(Some(&next), 1_000, None, None, 5));
        assert_eq!((answer(&fresh), fresh.last_producer_epoch), ((5, 5), -1));
        assert_eq!(
            init_producer_id(Some(&fresh), 1_000, Some((5, 4)), None, 6),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn kip_360_init_with_an_exhausted_epoch_moves_to_a_fresh_id_and_answers_a_retry() {
        let at_max = empty(PRODUCER_EPOCH_MAX);
        let expected = Some((5, PRODUCER_EPOCH_MAX));
        assert_eq!(
            init_producer_id(Some(&at_max), 1_000, expected, None, 1),
            Ok(Init::NeedProducerId)
        );
        let rotated = grant_of(init_producer_id(Some(&at_max), 1_000, expected, Some(9), 1));
        assert_eq!(answer(&rotated), (9, 0));
        assert_eq!(
            (rotated.previous_producer_id, rotated.last_producer_epoch),
            (5, PRODUCER_EPOCH_MAX)
        );
        let again = grant_of(init_producer_id(Some(&rotated), 1_000, expected, None, 2));
        assert_eq!(answer(&again), (9, 0));
        // The old id with an epoch that is not exhausted is another producer.
        assert_eq!(
            init_producer_id(Some(&rotated), 1_000, Some((5, 3)), None, 2),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            answer(&grant_of(init_producer_id(
                Some(&rotated),
                1_000,
                Some((9, 0)),
                None,
                3
            ))),
            (9, 1)
        );
    }

    #[test]
    fn kip_360_init_after_ends_and_fences() {
        // Version 1: the completion records the epoch it ended at; the producer bumps it.
        let ongoing = add_partitions(Some(&empty(4)), 5, 4, &[partition("t", 0)], 0, 1)
            .unwrap()
            .unwrap();
        let aborted = complete(&prepare_of(end_v1(Some(&ongoing), 4, false)), 2).unwrap();
        let bumped = grant_of(init_producer_id(
            Some(&aborted),
            1_000,
            Some((5, 4)),
            None,
            3,
        ));
        assert_eq!(answer(&bumped), (5, 5));
        // Version 2: the end moved the producer to epoch 5 already; it continues from there.
        let ongoing = add_partitions(Some(&empty(4)), 5, 4, &[partition("t", 0)], 2, 1)
            .unwrap()
            .unwrap();
        let ended = complete(&prepare_of(end_v2(&ongoing, 5, 4, false)), 2).unwrap();
        assert_eq!(ended.producer_epoch, 5);
        assert_eq!(
            init_producer_id(Some(&ended), 1_000, Some((5, 4)), None, 3),
            Err(ResponseError::ProducerFenced)
        );
        let bumped = grant_of(init_producer_id(Some(&ended), 1_000, Some((5, 5)), None, 3));
        assert_eq!(answer(&bumped), (5, 6));
        // An ongoing transaction of the named epoch is fenced and aborted first; the retry
        // then finds the epoch moved on by the fence (Kafka: PRODUCER_FENCED).
        let Ok(Init::FenceOngoing(fenced)) =
            init_producer_id(Some(&ongoing), 1_000, Some((5, 4)), None, 4)
        else {
            panic!("fence");
        };
        let done = complete(&fenced, 5).unwrap();
        assert_eq!(
            init_producer_id(Some(&done), 1_000, Some((5, 4)), None, 6),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn add_partitions_checks_the_producer_and_starts_the_transaction() {
        let start = empty(0);
        assert_eq!(
            add_partitions(None, 5, 0, &[partition("t", 0)], 0, 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&start), 6, 0, &[partition("t", 0)], 0, 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            add_partitions(Some(&start), 5, 1, &[partition("t", 0)], 0, 1),
            Err(ResponseError::ProducerFenced)
        );
        let ongoing = add_partitions(Some(&start), 5, 0, &[partition("t", 0)], 0, 7)
            .unwrap()
            .unwrap();
        assert_eq!((ongoing.state, ongoing.start_ms), (TxnState::Ongoing, 7));
        assert_eq!(
            add_partitions(Some(&ongoing), 5, 0, &[partition("t", 0)], 0, 8),
            Ok(None)
        );
        let more = add_partitions(Some(&ongoing), 5, 0, &[partition("u", 1)], 0, 9)
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
        let ending = prepare_of(end_v1(Some(&more), 0, true));
        assert_eq!(
            verify_partitions(Some(&ending), 5, 0, &[partition("t", 0)]),
            Err(ResponseError::ConcurrentTransactions)
        );
    }

    fn end_v1(
        current: Option<&TxnMetadata>,
        epoch: i16,
        commit: bool,
    ) -> Result<End, ResponseError> {
        end_txn(current, 5, epoch, commit, 0, None, 2)
    }

    fn prepare_of(end: Result<End, ResponseError>) -> TxnMetadata {
        match end {
            Ok(End::Prepare(next)) => next,
            other => panic!("expected a prepare, got {other:?}"),
        }
    }

    #[test]
    fn end_txn_follows_kafkas_state_table() {
        let ongoing = add_partitions(Some(&empty(0)), 5, 0, &[partition("t", 0)], 0, 1)
            .unwrap()
            .unwrap();
        assert_eq!(
            end_v1(Some(&empty(0)), 0, true),
            Err(ResponseError::InvalidTxnState)
        );
        let prepared = prepare_of(end_v1(Some(&ongoing), 0, true));
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareCommit, 0)
        );
        assert_eq!(
            end_v1(Some(&prepared), 0, true),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            end_v1(Some(&prepared), 0, false),
            Err(ResponseError::InvalidTxnState)
        );
        let done = complete(&prepared, 4).unwrap();
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(
            end_v1(Some(&done), 0, true),
            Ok(End::Done {
                producer_id: 5,
                producer_epoch: 0
            })
        );
        assert_eq!(
            end_v1(Some(&done), 0, false),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            end_v1(None, 0, true),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    fn end_v2(
        current: &TxnMetadata,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<End, ResponseError> {
        end_txn(Some(current), pid, epoch, commit, 2, None, 3)
    }

    #[test]
    fn version_2_ends_bump_the_epoch_and_recognise_retries() {
        let ongoing = add_partitions(Some(&empty(4)), 5, 4, &[partition("t", 0)], 2, 1)
            .unwrap()
            .unwrap();
        assert_eq!(ongoing.client_transaction_version, 2);
        let end = end_v2(&ongoing, 5, 4, true);
        assert_eq!(end.as_ref().map(End::answer), Ok((5, 5)));
        let prepared = prepare_of(end);
        assert_eq!(
            (prepared.state, prepared.producer_epoch),
            (TxnState::PrepareCommit, 5)
        );
        // A retry while the markers are written; the old epoch is not a retry once aborting.
        assert_eq!(
            end_v2(&prepared, 5, 4, true),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            end_v2(&prepared, 5, 5, true),
            Err(ResponseError::ProducerFenced)
        );
        let done = complete(&prepared, 4).unwrap();
        assert_eq!((done.producer_id, done.producer_epoch), (5, 5));
        // The client did not see the answer and retries with its old epoch.
        assert_eq!(
            end_v2(&done, 5, 4, true),
            Ok(End::Done {
                producer_id: 5,
                producer_epoch: 5
            })
        );
        assert_eq!(
            end_v2(&done, 5, 4, false),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            end_v2(&done, 5, 3, true),
            Err(ResponseError::ProducerFenced)
        );
        // The next transaction's write with the old epoch is fenced.
        assert_eq!(
            add_partitions(Some(&done), 5, 4, &[partition("t", 0)], 2, 5),
            Err(ResponseError::ProducerFenced)
        );
        // Aborting a transaction that never reached the coordinator still bumps.
        let nothing = prepare_of(end_v2(&done, 5, 5, false));
        assert_eq!(
            (
                nothing.state,
                nothing.producer_epoch,
                nothing.partitions.len()
            ),
            (TxnState::PrepareAbort, 6, 0)
        );
    }

    #[test]
    fn an_exhausted_epoch_moves_to_the_next_producer_id() {
        let ongoing = add_partitions(
            Some(&empty(PRODUCER_EPOCH_MAX)),
            5,
            PRODUCER_EPOCH_MAX,
            &[partition("t", 0)],
            2,
            1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            end_v2(&ongoing, 5, PRODUCER_EPOCH_MAX, false),
            Ok(End::NeedProducerId)
        );
        let end = end_txn(Some(&ongoing), 5, PRODUCER_EPOCH_MAX, false, 2, Some(9), 2);
        assert_eq!(end.as_ref().map(End::answer), Ok((9, 0)));
        let prepared = prepare_of(end);
        assert_eq!(
            (
                prepared.producer_id,
                prepared.producer_epoch,
                prepared.next_producer_id
            ),
            (5, i16::MAX, 9)
        );
        let done = complete(&prepared, 3).unwrap();
        assert_eq!(
            (
                done.producer_id,
                done.producer_epoch,
                done.previous_producer_id
            ),
            (9, 0, 5)
        );
        assert_eq!(done.next_producer_id, NO_PRODUCER_ID);
        assert_eq!(
            end_v2(&done, 5, PRODUCER_EPOCH_MAX, false),
            Ok(End::Done {
                producer_id: 9,
                producer_epoch: 0
            })
        );
        assert_eq!(
            end_v2(&done, 5, 3, false),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn version_2_coordinator_aborts_bump_twice() {
        let ongoing = add_partitions(Some(&empty(0)), 5, 0, &[partition("t", 0)], 2, 100)
            .unwrap()
            .unwrap();
        let aborted = abort_expired(&ongoing, true, 1_101).unwrap();
        assert_eq!(
            (aborted.state, aborted.producer_epoch),
            (TxnState::PrepareAbort, 2)
        );
        let Ok(Init::FenceOngoing(fenced)) = init_producer_id(Some(&ongoing), 1_000, None, None, 2)
        else {
            panic!("fence");
        };
        assert_eq!(fenced.producer_epoch, 2);
    }

    #[test]
    fn only_overdue_ongoing_transactions_are_aborted() {
        let ongoing = add_partitions(Some(&empty(0)), 5, 0, &[partition("t", 0)], 0, 100)
            .unwrap()
            .unwrap();
        assert_eq!(abort_expired(&ongoing, false, 1_100), None);
        let aborted = abort_expired(&ongoing, false, 1_101).unwrap();
        assert_eq!(
            (aborted.state, aborted.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(abort_expired(&empty(0), false, i64::MAX), None);
    }

    #[test]
    fn only_idle_ids_expire() {
        let mut done = empty(0);
        done.last_update_ms = 100;
        assert_eq!(expire(&done, 1_000, 1_099), None);
        assert_eq!(expire(&done, 1_000, 1_100).unwrap().state, TxnState::Dead);
        let ongoing = add_partitions(Some(&done), 5, 0, &[partition("t", 0)], 0, 100)
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
