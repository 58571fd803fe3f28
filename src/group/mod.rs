//! The group coordinator: consumer groups (membership) and their committed offsets.
//!
//! Every group lives in its own `Arc<Mutex<Group>>` slot in one map; the map's lock is taken
//! before a group's, never the other way round, and neither is ever held across an `.await`.
//! A group is its membership — the classic protocol (`classic`) or a KIP-848 "consumer" group
//! with server-side assignment (`consumer`) — plus its committed offsets (`offsets`), which are
//! the same for both. A group id is one kind at a time; an empty group switches kind when the
//! other protocol's first member arrives, as in Kafka 4.x.
//!
//! Committed offsets are records of the internal topic `__consumer_offsets` (Kafka's
//! schemas, `offset_records`): a group belongs to partition `abs(java_hash(group)) %
//! partitions`, and this node coordinates it exactly while it leads that partition. A commit
//! is validated under the group's lock and appended there as one batch (so the log holds a
//! group's commits in the order the group accepted them); once the batch is on every ISR
//! member the in-memory offsets are updated and the handler answers. When this node becomes
//! leader of an offsets partition it replays the partition (`load`) before serving its
//! groups. KIP-848 groups' membership is persisted too (`consumer_records`, Kafka's records),
//! so they come back with their members, who carry on; classic groups come back Empty and
//! their members rejoin, as after a Kafka coordinator moves.

pub mod assignor;
mod classic;
pub mod consumer;
mod consumer_member;
pub mod consumer_outcome;
pub mod consumer_records;
mod member;
pub mod offset_records;
mod offsets;
pub mod outcome;
mod protocol;
#[cfg(test)]
mod test_log;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_consumer;
#[cfg(test)]
mod tests_txn;
mod timers;
mod txn;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::ResponseError;
use sluice_storage::VerificationGuard;

pub use classic::{ClassicGroup, GroupState};
pub use consumer::{ConsumerGroup, ConsumerGroupState, TopicLookup};
use consumer_outcome::{
    validate_heartbeat, ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatOutcome,
    JOIN_GROUP_MEMBER_EPOCH,
};
use offset_records::{ConsumerRecords, OffsetKey, OffsetRecord, RawRecord};
pub use offsets::{CommittedOffset, GroupOffsets};
pub use txn::FetchedOffset;

use crate::broker::ApiError;
use outcome::{
    GroupDescription, GroupListing, JoinOutcome, JoinRequest, LeavingMember, MemberRef, Reply,
    SyncOutcome, SyncRequest,
};

/// Kafka's group.min.session.timeout.ms and group.max.session.timeout.ms defaults.
pub const SESSION_TIMEOUT_MS_MIN: i32 = 6_000;
pub const SESSION_TIMEOUT_MS_MAX: i32 = 1_800_000;
/// Kafka's offset.metadata.max.bytes.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// Groups this node keeps at most; creating one more answers COORDINATOR_NOT_AVAILABLE.
pub const GROUP_COUNT_MAX: usize = 1_000_000;
/// Kafka's `group.type` names (ListGroups v5+).
pub const GROUP_TYPE_CLASSIC: &str = "classic";
pub const GROUP_TYPE_CONSUMER: &str = "consumer";
/// Kafka's group.consumer.heartbeat.interval.ms and group.consumer.session.timeout.ms defaults.
pub const CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 5_000;
pub const CONSUMER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 45_000;
/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`: Java's
/// `String.hashCode` over UTF-16 code units, wrapping, with `abs(MIN_VALUE)` taken as 0.
pub fn offsets_partition_for(group_id: &str, partition_count: i32) -> i32 {
    assert!(partition_count > 0);
    let hash = group_id.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count
}

/// Resolves once an appended batch is on every ISR member (or cannot be).
pub type Replicated = Pin<Box<dyn Future<Output = Result<(), ResponseError>> + Send>>;

/// Where commits go: the offsets partitions this node leads (the replicated log in the
/// broker; an in-memory log in unit tests).
pub trait OffsetsLog: Send + Sync {
    /// Appends `batch` to offsets partition `partition` as this node's leader replica;
    /// returns the offset of its last record and what resolves once every ISR member holds
    /// it. NOT_COORDINATOR when this node does not lead the partition. `verification`: the
    /// KIP-890 guard of a transactional batch (TxnOffsetCommit), `None` for the
    /// coordinator's own records.
    fn append(
        &self,
        partition: i32,
        batch: BytesMut,
        verification: Option<VerificationGuard>,
    ) -> Result<(i64, Replicated), ResponseError>;

    /// The sequence the leader replica of `partition` expects next from `producer_id` at
    /// `producer_epoch` (0 for a producer it does not know or at a newer epoch);
    /// INVALID_PRODUCER_EPOCH when the log has seen a newer epoch (a fenced producer).
    fn next_sequence(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<i32, ResponseError>;
}

/// A transaction's end reached an offsets partition while it was loading: applied once the
/// load finishes (the replay may or may not have seen the marker; applying it twice is safe).
#[derive(Debug, Clone, Copy)]
struct LateMarker {
    producer_id: i64,
    commit: bool,
    marker_offset: i64,
}

/// A TxnOffsetCommit as the handler validated it.
#[derive(Debug, Clone)]
pub struct TxnOffsetCommit {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The KIP-890 guard the handler's verification got (`NONE`: the producer's
    /// transaction was ongoing on the offsets partition).
    pub verification_guard: VerificationGuard,
    pub member: MemberRef,
    pub offsets: Vec<OffsetCommit>,
}

/// This node's part in one offsets partition it leads, at one leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Replaying the partition: its groups answer COORDINATOR_LOAD_IN_PROGRESS.
    Loading {
        leader_epoch: i32,
    },
    Active {
        leader_epoch: i32,
    },
}

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
    pub initial_rebalance_delay: Duration,
    /// group.max.size.
    pub group_size_max: usize,
    /// offsets.retention.minutes, in ms.
    pub offsets_retention_ms: i64,
    /// group.consumer.heartbeat.interval.ms: how often consumer group members heartbeat.
    pub consumer_heartbeat_interval: Duration,
    /// group.consumer.session.timeout.ms: a silent consumer group member is fenced after it.
    pub consumer_session_timeout: Duration,
}

/// A group: its membership and its committed offsets.
pub struct Group {
    pub id: String,
    membership: Membership,
    pub offsets: GroupOffsets,
}

/// Which rebalance protocol the group's members speak.
pub enum Membership {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

impl Group {
    fn new(id: String) -> Group {
        Group {
            id,
            membership: Membership::Classic(ClassicGroup::new()),
            offsets: GroupOffsets::default(),
        }
    }

    pub fn classic(&mut self) -> Option<&mut ClassicGroup> {
        match &mut self.membership {
            Membership::Classic(classic) => Some(classic),
            Membership::Consumer(_) => None,
        }
    }

    pub fn classic_ref(&self) -> Option<&ClassicGroup> {
        match &self.membership {
            Membership::Classic(classic) => Some(classic),
            Membership::Consumer(_) => None,
        }
    }

    pub fn consumer(&mut self) -> Option<&mut ConsumerGroup> {
        match &mut self.membership {
            Membership::Classic(_) => None,
            Membership::Consumer(consumer) => Some(consumer),
        }
    }

    pub fn consumer_ref(&self) -> Option<&ConsumerGroup> {
        match &self.membership {
            Membership::Classic(_) => None,
            Membership::Consumer(consumer) => Some(consumer),
        }
    }

    fn is_dead(&self) -> bool {
        match &self.membership {
            Membership::Classic(classic) => classic.state() == GroupState::Dead,
            Membership::Consumer(consumer) => consumer.state() == ConsumerGroupState::Dead,
        }
    }

    /// The Empty state of either kind (no members).
    fn is_empty_state(&self) -> bool {
        match &self.membership {
            Membership::Classic(classic) => classic.state() == GroupState::Empty,
            Membership::Consumer(consumer) => consumer.state() == ConsumerGroupState::Empty,
        }
    }

    fn has_no_members(&self) -> bool {
        match &self.membership {
            Membership::Classic(classic) => classic.has_no_members(),
            Membership::Consumer(consumer) => consumer.has_no_members(),
        }
    }

    fn empty_since_ms(&self) -> Option<i64> {
        match &self.membership {
            Membership::Classic(classic) => classic.empty_since_ms(),
            Membership::Consumer(consumer) => consumer.empty_since_ms(),
        }
    }

    fn mark_dead(&mut self) {
        match &mut self.membership {
            Membership::Classic(classic) => classic.mark_dead(),
            Membership::Consumer(consumer) => consumer.mark_dead(),
        }
    }

    /// Coordination moved to another node; the group may still have members.
    fn unload(&mut self) {
        match &mut self.membership {
            Membership::Classic(classic) => classic.unload(),
            Membership::Consumer(consumer) => consumer.unload(),
        }
    }

    /// Kafka's state names (ListGroups, DescribeGroups, ConsumerGroupDescribe).
    pub fn state_name(&self) -> &'static str {
        match &self.membership {
            Membership::Classic(classic) => classic.state().name(),
            Membership::Consumer(consumer) => consumer.state().name(),
        }
    }

    /// The topics members subscribe to while the group is not Empty (`None`: unknown, as for
    /// classic groups whose members are not Kafka consumers).
    fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        match &self.membership {
            Membership::Classic(classic) => classic.subscribed_topics().cloned(),
            Membership::Consumer(consumer) => Some(consumer.subscribed_topics()),
        }
    }

    /// The group as a consumer group, converting an empty classic group (Kafka 4.x does the
    /// same when a consumer-protocol member arrives at an empty classic group).
    fn as_consumer(&mut self) -> Result<&mut ConsumerGroup, ApiError> {
        if let Membership::Classic(classic) = &mut self.membership {
            if classic.state() != GroupState::Empty || !classic.has_no_members() {
                let message = format!("Group {} is not a consumer group.", self.id);
                return Err(ApiError::new(ResponseError::GroupIdNotFound, message));
            }
            let empty_since_ms = classic.empty_since_ms();
            // Stops its timers; nothing else of it is kept but the offsets.
            classic.mark_dead();
            self.membership = Membership::Consumer(ConsumerGroup::new(empty_since_ms));
            tracing::info!(group_id = %self.id, "empty classic group becomes a consumer group");
        }
        match &mut self.membership {
            Membership::Consumer(consumer) => Ok(consumer),
            Membership::Classic(_) => unreachable!("converted above"),
        }
    }

    /// The group as a classic group, converting an empty consumer group; a consumer group
    /// with members refuses classic members (INCONSISTENT_GROUP_PROTOCOL).
    fn as_classic(&mut self) -> Result<&mut ClassicGroup, ResponseError> {
        if let Membership::Consumer(consumer) = &mut self.membership {
            if !consumer.has_no_members() {
                return Err(ResponseError::InconsistentGroupProtocol);
            }
            consumer.mark_dead();
            self.membership = Membership::Classic(ClassicGroup::new());
            tracing::info!(group_id = %self.id, "empty consumer group becomes a classic group");
        }
        match &mut self.membership {
            Membership::Classic(classic) => Ok(classic),
            Membership::Consumer(_) => unreachable!("converted above"),
        }
    }
}

pub type GroupSlot = Arc<Mutex<Group>>;

/// What the state machine needs to start timers for its group.
#[derive(Clone)]
pub struct GroupContext {
    pub slot: Weak<Mutex<Group>>,
    pub config: Arc<GroupConfig>,
    /// Where the group's records go (`None` before the broker attached the log), and the
    /// group's offsets partition: timers write what they change too.
    pub log: Option<Arc<dyn OffsetsLog>>,
    pub offsets_partition: i32,
}

/// A poisoned group lock means a panic while it was held; the state is still the best there
/// is, so it is used rather than poisoning the whole broker.
pub fn lock_group(slot: &Mutex<Group>) -> MutexGuard<'_, Group> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// One partition's commit as a handler validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub committed: CommittedOffset,
}

pub struct GroupCoordinator {
    config: Arc<GroupConfig>,
    /// Groups of the offsets partitions this node leads. Lock order: `owned`, then `groups`,
    /// then a group.
    groups: Mutex<HashMap<String, GroupSlot>>,
    /// Offsets partitions this node leads, by index.
    owned: Mutex<HashMap<i32, Ownership>>,
    /// Partitions of the offsets topic (the configured count until the topic exists).
    partition_count: AtomicI32,
    /// Set once the broker exists (it owns the replicas commits are appended to).
    log: OnceLock<Arc<dyn OffsetsLog>>,
    /// Bumped whenever a partition finishes loading (FindCoordinator waits on it).
    loaded: tokio::sync::watch::Sender<u64>,
    /// Held from reading a producer's next sequence until its batch is appended, so two
    /// transactional commits of one producer cannot take the same sequence. Taken after a
    /// group lock, never before.
    txn_appends: Mutex<()>,
    /// Per loading partition, transaction ends that arrived during the load. Taken after
    /// `owned`.
    late_markers: Mutex<HashMap<i32, Vec<LateMarker>>>,
}

impl GroupCoordinator {
    /// A coordinator of no group yet: groups come with the offsets partitions it loads.
    pub fn new(config: GroupConfig, partition_count: i32) -> GroupCoordinator {
        assert!(partition_count > 0);
        GroupCoordinator {
            config: Arc::new(config),
            groups: Mutex::new(HashMap::new()),
            owned: Mutex::new(HashMap::new()),
            partition_count: AtomicI32::new(partition_count),
            log: OnceLock::new(),
            loaded: tokio::sync::watch::channel(0).0,
            txn_appends: Mutex::new(()),
            late_markers: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until this node serves the groups of `partition`, at most `timeout`; false if
    /// it does not by then (not its leader, or still loading).
    pub async fn wait_loaded(&self, partition: i32, timeout: Duration) -> bool {
        let is_active = || matches!(self.owned().get(&partition), Some(Ownership::Active { .. }));
        let mut loads = self.loaded.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                loads.borrow_and_update();
                if is_active() {
                    return true;
                }
                if loads.changed().await.is_err() {
                    return false;
                }
            }
        });
        waited.await.unwrap_or(false)
    }

    /// Where commits are appended; set once.
    pub fn attach_log(&self, log: Box<dyn OffsetsLog>) {
        if self.log.set(Arc::from(log)).is_err() {
            tracing::error!("the offsets log was attached twice; keeping the first");
        }
    }

    /// The offsets topic as it exists (its partition count decides where groups live).
    pub fn set_partition_count(&self, partition_count: i32) {
        assert!(partition_count > 0);
        self.partition_count
            .store(partition_count, Ordering::Release);
    }

    pub fn partition_count(&self) -> i32 {
        self.partition_count.load(Ordering::Acquire)
    }

    /// The offsets partition `group_id` lives in.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        offsets_partition_for(group_id, self.partition_count())
    }

    fn owned(&self) -> MutexGuard<'_, HashMap<i32, Ownership>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offsets partitions this node leads or is loading.
    pub fn ownership(&self) -> HashMap<i32, Ownership> {
        self.owned().clone()
    }

    /// This node became leader of `partition` at `leader_epoch`: drops what it held of the
    /// partition at another epoch and marks it loading. False when it already holds it at
    /// that epoch (nothing to load).
    pub fn begin_load(&self, partition: i32, leader_epoch: i32) -> bool {
        let mut owned = self.owned();
        let epoch_held = owned.get(&partition).map(|held| match held {
            Ownership::Loading { leader_epoch } | Ownership::Active { leader_epoch } => {
                *leader_epoch
            }
        });
        if epoch_held == Some(leader_epoch) {
            return false;
        }
        self.drop_groups_of(partition);
        self.late_markers().remove(&partition);
        owned.insert(partition, Ownership::Loading { leader_epoch });
        true
    }

    /// Installs the replayed offsets of `partition` (if it is still loading at `leader_epoch`)
    /// and starts serving its groups, each Empty.
    #[cfg(test)]
    pub fn finish_load(
        &self,
        partition: i32,
        leader_epoch: i32,
        loaded: HashMap<String, GroupOffsets>,
    ) {
        self.finish_load_with(partition, leader_epoch, loaded, HashMap::new());
    }

    /// As [`Self::finish_load`], with the KIP-848 groups' membership records: those groups
    /// come back with their members (each with a fresh session), epochs and assignments.
    pub fn finish_load_with(
        &self,
        partition: i32,
        leader_epoch: i32,
        mut loaded: HashMap<String, GroupOffsets>,
        consumer: HashMap<String, ConsumerRecords>,
    ) {
        let mut owned = self.owned();
        if owned.get(&partition) != Some(&Ownership::Loading { leader_epoch }) {
            return;
        }
        let late = self.late_markers().remove(&partition).unwrap_or_default();
        let mut groups = self.groups();
        for id in consumer.keys() {
            loaded.entry(id.clone()).or_default();
        }
        let group_count = loaded.len();
        for (id, mut offsets) in loaded {
            for marker in &late {
                offsets.complete_transaction(
                    marker.producer_id,
                    marker.commit,
                    marker.marker_offset,
                );
            }
            let slot = Arc::new(Mutex::new(Group::new(id.clone())));
            let mut group = lock_group(&slot);
            group.offsets = offsets;
            if let Some(records) = consumer.get(&id) {
                let ctx = self.context(&slot, &id);
                group.membership = Membership::Consumer(ConsumerGroup::restore(&ctx, &id, records));
            }
            drop(group);
            groups.insert(id, slot);
        }
        drop(groups);
        owned.insert(partition, Ownership::Active { leader_epoch });
        drop(owned);
        self.loaded
            .send_modify(|count| *count = count.wrapping_add(1));
        tracing::info!(
            partition,
            leader_epoch,
            groups = group_count,
            "offsets partition loaded"
        );
    }

    /// This node no longer leads `partition`: its groups go (members get NOT_COORDINATOR and
    /// find the new coordinator).
    pub fn unload(&self, partition: i32) {
        let mut owned = self.owned();
        if owned.remove(&partition).is_some() {
            self.late_markers().remove(&partition);
            self.drop_groups_of(partition);
            tracing::info!(partition, "offsets partition unloaded");
        }
    }

    fn drop_groups_of(&self, partition: i32) {
        let count = self.partition_count();
        let mut groups = self.groups();
        groups.retain(|id, slot| {
            if offsets_partition_for(id, count) != partition {
                return true;
            }
            // Stops its timers; waiting joins and syncs are told to find the new coordinator.
            lock_group(slot).unload();
            false
        });
    }

    /// The offsets partition of `group_id` if this node coordinates it, else Kafka's answer.
    fn coordinated(&self, group_id: &str) -> Result<i32, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let partition = self.partition_for(group_id);
        match self.owned().get(&partition) {
            Some(Ownership::Active { .. }) => Ok(partition),
            Some(Ownership::Loading { .. }) => Err(ResponseError::CoordinatorLoadInProgress),
            None => Err(ResponseError::NotCoordinator),
        }
    }

    /// Appends `records` of `partition` as one batch; returns the offset of the first one and
    /// what resolves once they are replicated.
    fn append(
        &self,
        partition: i32,
        records: &[OffsetRecord],
    ) -> Result<(i64, Replicated), ResponseError> {
        self.append_raw(partition, &offset_records::raw(records))
    }

    /// As [`Self::append`], for records of any kind.
    fn append_raw(
        &self,
        partition: i32,
        records: &[RawRecord],
    ) -> Result<(i64, Replicated), ResponseError> {
        assert!(!records.is_empty());
        let log = self
            .log
            .get()
            .ok_or(ResponseError::CoordinatorNotAvailable)?;
        let batch = offset_records::encode_raw_batch(records, crate::broker::now_ms()).map_err(
            |error| {
                tracing::error!(%error, "encoding offset records");
                ResponseError::UnknownServerError
            },
        )?;
        let (last_offset, replicated) = log.append(partition, batch, None)?;
        let first_offset = last_offset - (records.len() as i64 - 1);
        Ok((first_offset, replicated))
    }

    fn late_markers(&self) -> MutexGuard<'_, HashMap<i32, Vec<LateMarker>>> {
        self.late_markers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, GroupSlot>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, group_id: &str) -> Option<GroupSlot> {
        self.groups().get(group_id).cloned()
    }

    fn slot_or_create(&self, group_id: &str) -> Result<GroupSlot, ResponseError> {
        let mut groups = self.groups();
        if let Some(slot) = groups.get(group_id) {
            return Ok(slot.clone());
        }
        if groups.len() >= GROUP_COUNT_MAX {
            tracing::warn!(GROUP_COUNT_MAX, "too many groups; refusing a new one");
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let slot = Arc::new(Mutex::new(Group::new(group_id.to_string())));
        groups.insert(group_id.to_string(), slot.clone());
        Ok(slot)
    }

    /// What the group `group_id` in `slot` needs for its timers (neither lock is taken).
    fn context(&self, slot: &GroupSlot, group_id: &str) -> GroupContext {
        let offsets_partition = self.partition_for(group_id);
        GroupContext {
            slot: Arc::downgrade(slot),
            config: self.config.clone(),
            log: self.log.get().cloned(),
            offsets_partition,
        }
    }

    pub fn join(
        &self,
        group_id: &str,
        request: JoinRequest,
    ) -> impl std::future::Future<Output = JoinOutcome> + Send + 'static {
        let member_id = request.member_id.clone();
        let reply = self.join_reply(group_id, request);
        wait(reply, move || {
            JoinOutcome::error(&member_id, ResponseError::CoordinatorNotAvailable)
        })
    }

    fn join_reply(&self, group_id: &str, request: JoinRequest) -> Reply<JoinOutcome> {
        let refuse = |error| Reply::Now(JoinOutcome::error(&request.member_id, error));
        if let Err(error) = self.coordinated(group_id) {
            return refuse(error);
        }
        let session = request.session_timeout_ms;
        if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session) {
            return refuse(ResponseError::InvalidSessionTimeout);
        }
        let slot = if request.member_id.is_empty() {
            match self.slot_or_create(group_id) {
                Ok(slot) => slot,
                Err(error) => return refuse(error),
            }
        } else {
            match self.slot(group_id) {
                Some(slot) => slot,
                None => return refuse(ResponseError::UnknownMemberId),
            }
        };
        let ctx = self.context(&slot, group_id);
        let mut group = lock_group(&slot);
        match group.as_classic() {
            Ok(classic) => classic.join(&ctx, request),
            Err(error) => refuse(error),
        }
    }

    pub fn sync(
        &self,
        group_id: &str,
        request: SyncRequest,
    ) -> impl std::future::Future<Output = SyncOutcome> + Send + 'static {
        let reply = if let Err(error) = self.coordinated(group_id) {
            Reply::Now(SyncOutcome::error(error))
        } else {
            match self.slot(group_id) {
                None => Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
                Some(slot) => match lock_group(&slot).classic() {
                    Some(classic) => classic.sync(request),
                    // Members of consumer groups do not use the classic protocol.
                    None => Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
                },
            }
        };
        wait(reply, || {
            SyncOutcome::error(ResponseError::CoordinatorNotAvailable)
        })
    }

    pub fn heartbeat(&self, group_id: &str, member: &MemberRef) -> Result<(), ResponseError> {
        self.coordinated(group_id)?;
        let slot = self.slot(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut group = lock_group(&slot);
        let classic = group.classic().ok_or(ResponseError::UnknownMemberId)?;
        classic.heartbeat(member)
    }

    /// Per leaving member: `Ok` or its error; `Err` for the whole request.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeavingMember],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        self.coordinated(group_id)?;
        let Some(slot) = self.slot(group_id) else {
            return Ok(vec![Err(ResponseError::UnknownMemberId); leaving.len()]);
        };
        let ctx = self.context(&slot, group_id);
        let mut group = lock_group(&slot);
        match group.classic() {
            Some(classic) => classic.leave(&ctx, leaving),
            None => Ok(vec![Err(ResponseError::UnknownMemberId); leaving.len()]),
        }
    }

    /// Commits `offsets` for `member` (who is validated against the group) and returns once
    /// they are on every ISR member of the group's offsets partition and visible to
    /// OffsetFetch.
    pub fn commit(
        &self,
        group_id: &str,
        member: &MemberRef,
        offsets: Vec<OffsetCommit>,
    ) -> impl std::future::Future<Output = Result<(), ResponseError>> + Send + 'static {
        let submitted = self.submit_commit(group_id, member, offsets);
        async move {
            let Some((slot, first_offset, replicated, offsets)) = submitted? else {
                return Ok(());
            };
            replicated.await?;
            let Some(slot) = slot.upgrade() else {
                return Ok(());
            };
            let mut group = lock_group(&slot);
            // A group deleted (or unloaded) meanwhile stays so: its tombstones follow.
            if !group.is_dead() {
                for (commit, record_offset) in offsets.into_iter().zip(first_offset..) {
                    let OffsetCommit {
                        topic,
                        partition,
                        committed,
                    } = commit;
                    group
                        .offsets
                        .put(topic, partition, committed, record_offset);
                }
            }
            Ok(())
        }
    }

    #[allow(clippy::type_complexity)]
    fn submit_commit(
        &self,
        group_id: &str,
        member: &MemberRef,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Option<(Weak<Mutex<Group>>, i64, Replicated, Vec<OffsetCommit>)>, ResponseError>
    {
        let partition = self.coordinated(group_id)?;
        let slot = match self.slot(group_id) {
            Some(slot) => slot,
            None if member.generation_id < 0 => self.slot_or_create(group_id)?,
            // A member of a generation this coordinator never saw (it restarted or moved).
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut group = lock_group(&slot);
        match &mut group.membership {
            Membership::Classic(classic) => classic.validate_commit(member)?,
            Membership::Consumer(consumer) => {
                consumer.validate_commit(&member.member_id, member.generation_id)?
            }
        }
        if offsets.is_empty() {
            return Ok(None);
        }
        let records: Vec<OffsetRecord> = offsets
            .iter()
            .map(|commit| OffsetRecord {
                key: OffsetKey {
                    group: group_id.to_string(),
                    topic: commit.topic.clone(),
                    partition: commit.partition,
                },
                value: Some(commit.committed.clone()),
            })
            .collect();
        // Appended under the group lock: the log orders a group's commits as it accepted them.
        let (first_offset, replicated) = self.append(partition, &records)?;
        drop(group);
        Ok(Some((
            Arc::downgrade(&slot),
            first_offset,
            replicated,
            offsets,
        )))
    }

    /// Committed offsets of `wanted` partitions (`None`: every partition with one).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<&[(String, i32)]>,
    ) -> Result<Vec<(String, i32, Option<CommittedOffset>)>, ResponseError> {
        let fetched = self.fetch_offsets_stable(group_id, wanted, false)?;
        Ok(fetched
            .into_iter()
            .map(|(topic, partition, committed, _)| (topic, partition, committed))
            .collect())
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, heartbeats and leaves of consumer groups.
    /// `topics` resolves subscribed topic names in the broker's current image. What the
    /// heartbeat changed is written to the group's offsets partition; the answer waits until
    /// it is replicated, so a new coordinator knows every member an answer told of.
    pub fn consumer_heartbeat_durable(
        &self,
        group_id: &str,
        request: ConsumerHeartbeat,
        api_version: i16,
        topics: TopicLookup<'_>,
    ) -> impl Future<Output = Result<ConsumerHeartbeatOutcome, ApiError>> + Send + 'static {
        let (outcome, replicated) =
            self.submit_consumer_heartbeat(group_id, request, api_version, topics);
        async move {
            if let Some(replicated) = replicated {
                replicated.await.map_err(ApiError::code_only)?;
            }
            outcome
        }
    }

    /// As [`Self::consumer_heartbeat_durable`], without waiting for replication.
    #[cfg(test)]
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        request: ConsumerHeartbeat,
        api_version: i16,
        topics: TopicLookup<'_>,
    ) -> Result<ConsumerHeartbeatOutcome, ApiError> {
        self.submit_consumer_heartbeat(group_id, request, api_version, topics)
            .0
    }

    fn submit_consumer_heartbeat(
        &self,
        group_id: &str,
        request: ConsumerHeartbeat,
        api_version: i16,
        topics: TopicLookup<'_>,
    ) -> (
        Result<ConsumerHeartbeatOutcome, ApiError>,
        Option<Replicated>,
    ) {
        if let Err(error) = validate_heartbeat(group_id, &request, api_version) {
            return (Err(error), None);
        }
        let partition = match self.coordinated(group_id) {
            Ok(partition) => partition,
            Err(code) => return (Err(ApiError::code_only(code)), None),
        };
        let slot = match self.heartbeat_slot(group_id, &request) {
            Ok(slot) => slot,
            Err(error) => return (Err(error), None),
        };
        let ctx = self.context(&slot, group_id);
        let mut group = lock_group(&slot);
        if group.is_dead() {
            let error = ApiError::code_only(ResponseError::CoordinatorNotAvailable);
            return (Err(error), None);
        }
        let consumer = match group.as_consumer() {
            Ok(consumer) => consumer,
            Err(error) => return (Err(error), None),
        };
        let outcome = consumer.heartbeat(&ctx, request, topics);
        // Written under the group lock: the log holds the group's changes in their order.
        let Some(log) = self.log.get() else {
            let error = ApiError::code_only(ResponseError::CoordinatorNotAvailable);
            return (Err(error), None);
        };
        match write_consumer_changes(log.as_ref(), partition, group_id, consumer) {
            Ok(replicated) => (outcome, replicated),
            Err(code) => (Err(ApiError::code_only(code)), None),
        }
    }

    /// The group a heartbeat goes to: created for a joining member; a member of a group this
    /// coordinator does not know is unknown (it rejoins on UNKNOWN_MEMBER_ID).
    fn heartbeat_slot(
        &self,
        group_id: &str,
        request: &ConsumerHeartbeat,
    ) -> Result<GroupSlot, ApiError> {
        if request.member_epoch == JOIN_GROUP_MEMBER_EPOCH {
            return self.slot_or_create(group_id).map_err(ApiError::code_only);
        }
        let unknown = || {
            let message = format!(
                "Member {} is not a member of group {group_id}.",
                request.member_id
            );
            ApiError::new(ResponseError::UnknownMemberId, message)
        };
        let slot = self.slot(group_id).ok_or_else(unknown)?;
        let group = lock_group(&slot);
        if group.classic_ref().is_some_and(|c| c.has_no_members()) {
            return Err(unknown());
        }
        drop(group);
        Ok(slot)
    }

    /// ConsumerGroupDescribe: the group and the topic names of its assignments.
    pub fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<(ConsumerGroupDescription, HashMap<uuid::Uuid, String>), ApiError> {
        self.coordinated(group_id).map_err(ApiError::code_only)?;
        let not_found = |what: &str| {
            let message = format!("Group {group_id} {what}.");
            ApiError::new(ResponseError::GroupIdNotFound, message)
        };
        let slot = self.slot(group_id).ok_or_else(|| not_found("not found"))?;
        let group = lock_group(&slot);
        if group.is_dead() {
            return Err(not_found("not found"));
        }
        let consumer = group
            .consumer_ref()
            .ok_or_else(|| not_found("is not a consumer group"))?;
        Ok((consumer.describe(), consumer.topic_names()))
    }

    /// OffsetFetch v9+ from a consumer group member: UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH
    /// unless it is a member at that epoch (classic groups and unknown groups pass).
    pub fn check_fetch_member(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        let Some(slot) = self.slot(group_id) else {
            return Ok(());
        };
        let group = lock_group(&slot);
        match group.consumer_ref() {
            Some(consumer) => consumer.validate_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }

    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, ResponseError> {
        self.coordinated(group_id)?;
        let slot = self.slot(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let group = lock_group(&slot);
        // Kafka describes only classic groups here (consumer groups: ConsumerGroupDescribe).
        let classic = group.classic_ref().ok_or(ResponseError::GroupIdNotFound)?;
        Ok(classic.describe())
    }

    /// Every group this node coordinates, sorted by id (Kafka: each broker lists its own).
    pub fn list(&self) -> Vec<GroupListing> {
        // Taken first: `owned` comes before any group lock.
        let active: BTreeSet<i32> = self
            .owned()
            .iter()
            .filter(|(_, held)| matches!(held, Ownership::Active { .. }))
            .map(|(partition, _)| *partition)
            .collect();
        let count = self.partition_count();
        let slots: Vec<GroupSlot> = self.groups().values().cloned().collect();
        let mut listings: Vec<GroupListing> = slots
            .iter()
            .filter_map(|slot| {
                let group = lock_group(slot);
                let partition = offsets_partition_for(&group.id, count);
                if group.is_dead() || !active.contains(&partition) {
                    return None;
                }
                let (protocol_type, group_type) = match &group.membership {
                    Membership::Classic(classic) => (
                        classic.protocol_type().unwrap_or_default(),
                        GROUP_TYPE_CLASSIC,
                    ),
                    Membership::Consumer(_) => {
                        (protocol::CONSUMER_PROTOCOL_TYPE, GROUP_TYPE_CONSUMER)
                    }
                };
                Some(GroupListing {
                    group_id: group.id.clone(),
                    protocol_type: protocol_type.to_string(),
                    state: group.state_name(),
                    group_type,
                })
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// DeleteGroups for one group: only an Empty group goes, with its offsets (a tombstone
    /// for each, replicated before the answer).
    pub fn delete(
        &self,
        group_id: &str,
    ) -> impl std::future::Future<Output = Result<(), ResponseError>> + Send + 'static {
        let submitted = self.submit_delete(group_id);
        async move {
            match submitted? {
                Some(replicated) => replicated.await,
                None => Ok(()),
            }
        }
    }

    fn submit_delete(&self, group_id: &str) -> Result<Option<Replicated>, ResponseError> {
        let partition = self.coordinated(group_id)?;
        let mut groups = self.groups();
        let slot = groups
            .get(group_id)
            .cloned()
            .ok_or(ResponseError::GroupIdNotFound)?;
        let mut group = lock_group(&slot);
        if group.is_dead() {
            return Err(ResponseError::GroupIdNotFound);
        }
        if !group.is_empty_state() {
            return Err(ResponseError::NonEmptyGroup);
        }
        // Pending transactional offsets go too (Kafka writes their tombstones as well).
        let partitions: BTreeSet<(String, i32)> = group
            .offsets
            .iter()
            .map(|(topic, topic_partition, _)| (topic.to_string(), topic_partition))
            .chain(
                group
                    .offsets
                    .pending_keys()
                    .into_iter()
                    .map(|(_, topic, topic_partition)| (topic, topic_partition)),
            )
            .collect();
        let tombstones: Vec<OffsetRecord> = partitions
            .iter()
            .map(|(topic, topic_partition)| tombstone(group_id, topic, *topic_partition))
            .collect();
        let mut tombstones = offset_records::raw(&tombstones);
        if let Some(consumer) = group.consumer_ref() {
            let membership = consumer.durable_tombstones().into_iter();
            tombstones.extend(
                membership.map(|(key, _)| (consumer_records::encode_key(group_id, &key), None)),
            );
        }
        let replicated = if tombstones.is_empty() {
            None
        } else {
            Some(self.append_raw(partition, &tombstones)?.1)
        };
        group.mark_dead();
        group.offsets = GroupOffsets::default();
        groups.remove(group_id);
        tracing::info!(group_id, "group deleted");
        Ok(replicated)
    }

    /// OffsetDelete: per partition `Ok` or GROUP_SUBSCRIBED_TO_TOPIC; `Err` for the group.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> impl std::future::Future<Output = Result<Vec<Result<(), ResponseError>>, ResponseError>>
           + Send
           + 'static {
        let submitted = self.submit_offset_deletes(group_id, partitions);
        async move {
            let (results, replicated) = submitted?;
            if let Some(replicated) = replicated {
                replicated.await?;
            }
            Ok(results)
        }
    }

    #[allow(clippy::type_complexity)]
    fn submit_offset_deletes(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(Vec<Result<(), ResponseError>>, Option<Replicated>), ResponseError> {
        let offsets_partition = self.coordinated(group_id)?;
        let slot = self.slot(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut group = lock_group(&slot);
        let subscribed = if group.is_dead() {
            return Err(ResponseError::GroupIdNotFound);
        } else if group.is_empty_state() {
            None
        } else {
            match group.subscribed_topics() {
                Some(topics) => Some(topics),
                None => return Err(ResponseError::NonEmptyGroup),
            }
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            if subscribed
                .as_ref()
                .is_some_and(|topics| topics.contains(topic))
            {
                results.push(Err(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            let held = group.offsets.get(topic, *partition).is_some()
                || group.offsets.has_pending(topic, *partition);
            if held {
                tombstones.push(tombstone(group_id, topic, *partition));
            }
            results.push(Ok(()));
        }
        if tombstones.is_empty() {
            return Ok((results, None));
        }
        let (_, replicated) = self.append(offsets_partition, &tombstones)?;
        for record in &tombstones {
            group
                .offsets
                .remove(&record.key.topic, record.key.partition);
        }
        Ok((results, Some(replicated)))
    }

    /// Drops offsets of Empty groups older than the retention (tombstones in the offsets
    /// topic), and groups left with neither members nor offsets. Returns how many offsets
    /// expired.
    pub fn expire_offsets(&self, now_ms: i64) -> usize {
        let slots: Vec<GroupSlot> = self.groups().values().cloned().collect();
        let retention_ms = self.config.offsets_retention_ms;
        let mut expired_count = 0;
        let mut vanished = Vec::new();
        for slot in slots {
            let mut group = lock_group(&slot);
            if !group.is_empty_state() || group.is_dead() {
                continue;
            }
            let tombstones: Vec<OffsetRecord> = group
                .offsets
                .expired(now_ms, retention_ms, group.empty_since_ms())
                .into_iter()
                .map(|(topic, partition)| tombstone(&group.id, &topic, partition))
                .collect();
            if !tombstones.is_empty() {
                let partition = self.partition_for(&group.id);
                // Replication is not awaited: a tombstone lost with its leader only means the
                // offsets expire again on the next leader.
                match self.append(partition, &tombstones) {
                    Ok(_) => {
                        for record in &tombstones {
                            group
                                .offsets
                                .remove(&record.key.topic, record.key.partition);
                        }
                        expired_count += tombstones.len();
                    }
                    Err(error) => {
                        tracing::warn!(?error, "expiring offsets failed; retried next pass");
                    }
                }
            }
            if group.offsets.is_empty() && group.has_no_members() {
                vanished.push(group.id.clone());
            }
        }
        self.remove_vanished(&vanished);
        expired_count
    }

    fn remove_vanished(&self, group_ids: &[String]) {
        let mut groups = self.groups();
        for group_id in group_ids {
            let Some(slot) = groups.get(group_id).cloned() else {
                continue;
            };
            let mut group = lock_group(&slot);
            // Re-checked: a member may have joined since the pass looked.
            let idle = group.is_empty_state() && group.has_no_members() && group.offsets.is_empty();
            if idle {
                if let Some(consumer) = group.consumer_ref() {
                    self.forget_consumer_group(group_id, consumer);
                }
                group.mark_dead();
                groups.remove(group_id);
                tracing::debug!(group_id, "group removed: no members, no offsets");
            }
        }
    }

    /// Tombstones for a vanished consumer group's records, so it does not come back on the
    /// next load. Not awaited: if lost, the group comes back Empty and vanishes again.
    fn forget_consumer_group(&self, group_id: &str, consumer: &ConsumerGroup) {
        let tombstones: Vec<RawRecord> = consumer
            .durable_tombstones()
            .into_iter()
            .map(|(key, _)| (consumer_records::encode_key(group_id, &key), None))
            .collect();
        if tombstones.is_empty() {
            return;
        }
        let partition = self.partition_for(group_id);
        if let Err(error) = self.append_raw(partition, &tombstones) {
            tracing::warn!(
                ?error,
                group_id,
                "tombstoning a vanished consumer group failed"
            );
        }
    }

    #[cfg(test)]
    fn slot_for_test(&self, group_id: &str) -> Option<GroupSlot> {
        self.slot(group_id)
    }
}

/// Waits for a reply; a dropped sender (the group was deleted or its member replaced in a
/// way that lost the request) becomes `gone()`.
async fn wait<T>(reply: Reply<T>, gone: impl FnOnce() -> T) -> T {
    match reply {
        Reply::Now(value) => value,
        Reply::Later(receiver) => receiver.await.unwrap_or_else(|_| gone()),
    }
}

/// Appends the records that bring the log up to `consumer`'s state, if any changed; returns
/// what resolves once they are replicated.
pub fn write_consumer_changes(
    log: &dyn OffsetsLog,
    partition: i32,
    group_id: &str,
    consumer: &mut ConsumerGroup,
) -> Result<Option<Replicated>, ResponseError> {
    let (changes, view) = consumer.durable_changes();
    if changes.is_empty() {
        return Ok(None);
    }
    let records: Vec<RawRecord> = changes
        .into_iter()
        .map(|(key, value)| (consumer_records::encode_key(group_id, &key), value))
        .collect();
    let batch =
        offset_records::encode_raw_batch(&records, crate::broker::now_ms()).map_err(|error| {
            tracing::error!(%error, "encoding consumer group records");
            ResponseError::UnknownServerError
        })?;
    let (_, replicated) = log.append(partition, batch, None)?;
    consumer.mark_written(view);
    Ok(Some(replicated))
}

fn tombstone(group_id: &str, topic: &str, partition: i32) -> OffsetRecord {
    OffsetRecord {
        key: OffsetKey {
            group: group_id.to_string(),
            topic: topic.to_string(),
            partition,
        },
        value: None,
    }
}
