//! The group coordinator: consumer groups (membership) and their committed offsets.
//!
//! Every group lives in its own `Arc<Mutex<Group>>` slot in one map; the map's lock is taken
//! before a group's, never the other way round, and neither is ever held across an `.await`.
//! A group is its membership — today always the classic protocol (`classic`), later also
//! KIP-848 "consumer" groups (a second `Membership` variant) — plus its committed offsets
//! (`offsets`), which are the same for both.
//!
//! Commits are validated under the group's lock and submitted to the `OffsetStore` there (a
//! non-blocking queue push, so the store sees commits in the order the group accepted them);
//! the store's writer updates the in-memory offsets once the write is durable, then the
//! handler answers. At start every stored offset is loaded; groups come back Empty (members
//! rejoin, as they do after a Kafka coordinator moves).

mod classic;
mod member;
mod offsets;
pub mod outcome;
mod protocol;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_storage::{CommittedOffset, OffsetKey, OffsetStore, OffsetStoreError, OffsetWrite};
use tokio::sync::oneshot;

pub use classic::{ClassicGroup, GroupState};
pub use offsets::GroupOffsets;
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

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// group.initial.rebalance.delay.ms: how long a new group waits for more members.
    pub initial_rebalance_delay: Duration,
    /// group.max.size.
    pub group_size_max: usize,
    /// offsets.retention.minutes, in ms.
    pub offsets_retention_ms: i64,
}

/// A group: its membership and its committed offsets.
pub struct Group {
    pub id: String,
    membership: Membership,
    pub offsets: GroupOffsets,
}

/// Which rebalance protocol the group's members speak. KIP-848 groups become a second
/// variant; every `let Membership::Classic(..)` below is then a place to decide.
pub enum Membership {
    Classic(ClassicGroup),
}

impl Group {
    fn new(id: String) -> Group {
        Group {
            id,
            membership: Membership::Classic(ClassicGroup::new()),
            offsets: GroupOffsets::default(),
        }
    }

    pub fn classic(&mut self) -> &mut ClassicGroup {
        let Membership::Classic(classic) = &mut self.membership;
        classic
    }

    pub fn classic_ref(&self) -> &ClassicGroup {
        let Membership::Classic(classic) = &self.membership;
        classic
    }

    fn is_dead(&self) -> bool {
        self.classic_ref().state() == GroupState::Dead
    }
}

pub type GroupSlot = Arc<Mutex<Group>>;

/// What the state machine needs to start timers for its group.
#[derive(Clone)]
pub struct GroupContext {
    pub slot: Weak<Mutex<Group>>,
    pub config: Arc<GroupConfig>,
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
    groups: Mutex<HashMap<String, GroupSlot>>,
    store: OffsetStore,
}

impl GroupCoordinator {
    /// Loads every committed offset from `store`; each group starts Empty.
    pub fn open(
        config: GroupConfig,
        store: OffsetStore,
    ) -> Result<GroupCoordinator, OffsetStoreError> {
        let mut groups: HashMap<String, Group> = HashMap::new();
        let loaded = store.load_all()?;
        let offset_count = loaded.len();
        for (key, committed) in loaded {
            let group = groups
                .entry(key.group.clone())
                .or_insert_with(|| Group::new(key.group.clone()));
            group.offsets.put(key.topic, key.partition, committed);
        }
        tracing::info!(
            groups = groups.len(),
            offsets = offset_count,
            "committed offsets loaded"
        );
        let groups = groups
            .into_iter()
            .map(|(id, group)| (id, Arc::new(Mutex::new(group))))
            .collect();
        Ok(GroupCoordinator {
            config: Arc::new(config),
            groups: Mutex::new(groups),
            store,
        })
    }

    /// Stops the offset writer after what is queued is durable.
    pub fn close(&self) {
        self.store.close();
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

    fn context(&self, slot: &GroupSlot) -> GroupContext {
        GroupContext {
            slot: Arc::downgrade(slot),
            config: self.config.clone(),
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
        if group_id.is_empty() {
            return refuse(ResponseError::InvalidGroupId);
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
        let ctx = self.context(&slot);
        let mut group = lock_group(&slot);
        group.classic().join(&ctx, request)
    }

    pub fn sync(
        &self,
        group_id: &str,
        request: SyncRequest,
    ) -> impl std::future::Future<Output = SyncOutcome> + Send + 'static {
        let reply = if group_id.is_empty() {
            Reply::Now(SyncOutcome::error(ResponseError::InvalidGroupId))
        } else {
            match self.slot(group_id) {
                None => Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
                Some(slot) => lock_group(&slot).classic().sync(request),
            }
        };
        wait(reply, || {
            SyncOutcome::error(ResponseError::CoordinatorNotAvailable)
        })
    }

    pub fn heartbeat(&self, group_id: &str, member: &MemberRef) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = self.slot(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut group = lock_group(&slot);
        group.classic().heartbeat(member)
    }

    /// Per leaving member: `Ok` or its error; `Err` for the whole request.
    pub fn leave(
        &self,
        group_id: &str,
        leaving: &[LeavingMember],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let Some(slot) = self.slot(group_id) else {
            return Ok(vec![Err(ResponseError::UnknownMemberId); leaving.len()]);
        };
        let ctx = self.context(&slot);
        let mut group = lock_group(&slot);
        group.classic().leave(&ctx, leaving)
    }

    /// Commits `offsets` durably for `member` (who was validated against the group) and
    /// returns once they are on disk and visible to OffsetFetch.
    pub fn commit(
        &self,
        group_id: &str,
        member: &MemberRef,
        offsets: Vec<OffsetCommit>,
    ) -> impl std::future::Future<Output = Result<(), ResponseError>> + Send + 'static {
        let submitted = self.submit_commit(group_id, member, offsets);
        async move {
            match submitted? {
                None => Ok(()),
                Some(receiver) => durable(receiver).await,
            }
        }
    }

    fn submit_commit(
        &self,
        group_id: &str,
        member: &MemberRef,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Option<oneshot::Receiver<Result<(), OffsetStoreError>>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = match self.slot(group_id) {
            Some(slot) => slot,
            None if member.generation_id < 0 => self.slot_or_create(group_id)?,
            // A member of a generation this coordinator never saw (it restarted).
            None => return Err(ResponseError::IllegalGeneration),
        };
        let mut group = lock_group(&slot);
        group.classic().validate_commit(member)?;
        if offsets.is_empty() {
            return Ok(None);
        }
        let writes = offsets
            .iter()
            .map(|commit| {
                let key = OffsetKey {
                    group: group_id.to_string(),
                    topic: commit.topic.clone(),
                    partition: commit.partition,
                };
                OffsetWrite::Commit(key, commit.committed.clone())
            })
            .collect();
        let (sender, receiver) = oneshot::channel();
        let weak = Arc::downgrade(&slot);
        let done = Box::new(move |outcome: Result<(), OffsetStoreError>| {
            if outcome.is_ok() {
                if let Some(slot) = weak.upgrade() {
                    let mut group = lock_group(&slot);
                    // A group deleted meanwhile stays deleted (its delete follows in the store).
                    if !group.is_dead() {
                        for commit in offsets {
                            group
                                .offsets
                                .put(commit.topic, commit.partition, commit.committed);
                        }
                    }
                }
            }
            let _ = sender.send(outcome);
        });
        self.store.submit(writes, done).map_err(store_error)?;
        Ok(Some(receiver))
    }

    /// Committed offsets of `wanted` partitions (`None`: every partition with one).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<&[(String, i32)]>,
    ) -> Result<Vec<(String, i32, Option<CommittedOffset>)>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = self.slot(group_id);
        let group = slot.as_ref().map(|slot| lock_group(slot));
        let offsets = group.as_ref().map(|group| &group.offsets);
        Ok(match wanted {
            Some(wanted) => wanted
                .iter()
                .map(|(topic, partition)| {
                    let found = offsets.and_then(|o| o.get(topic, *partition)).cloned();
                    (topic.clone(), *partition, found)
                })
                .collect(),
            None => offsets
                .map(|offsets| {
                    offsets
                        .iter()
                        .map(|(topic, partition, c)| {
                            (topic.to_string(), partition, Some(c.clone()))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = self.slot(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let group = lock_group(&slot);
        Ok(group.classic_ref().describe())
    }

    /// Every group, sorted by id.
    pub fn list(&self) -> Vec<GroupListing> {
        let slots: Vec<GroupSlot> = self.groups().values().cloned().collect();
        let mut listings: Vec<GroupListing> = slots
            .iter()
            .filter_map(|slot| {
                let group = lock_group(slot);
                let classic = group.classic_ref();
                (classic.state() != GroupState::Dead).then(|| GroupListing {
                    group_id: group.id.clone(),
                    protocol_type: classic.protocol_type().unwrap_or_default().to_string(),
                    state: classic.state().name(),
                    group_type: GROUP_TYPE_CLASSIC,
                })
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// DeleteGroups for one group: only an Empty group goes, with its offsets.
    pub fn delete(
        &self,
        group_id: &str,
    ) -> impl std::future::Future<Output = Result<(), ResponseError>> + Send + 'static {
        let submitted = self.submit_delete(group_id);
        async move { durable(submitted?).await }
    }

    fn submit_delete(
        &self,
        group_id: &str,
    ) -> Result<oneshot::Receiver<Result<(), OffsetStoreError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let mut groups = self.groups();
        let slot = groups
            .get(group_id)
            .cloned()
            .ok_or(ResponseError::GroupIdNotFound)?;
        let mut group = lock_group(&slot);
        match group.classic_ref().state() {
            GroupState::Empty => {}
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        let (sender, receiver) = oneshot::channel();
        let write = OffsetWrite::DeleteGroup(group_id.to_string());
        let done = Box::new(move |outcome| {
            let _ = sender.send(outcome);
        });
        self.store.submit(vec![write], done).map_err(store_error)?;
        group.classic().mark_dead();
        group.offsets = GroupOffsets::default();
        groups.remove(group_id);
        tracing::info!(group_id, "group deleted");
        Ok(receiver)
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
            let (results, receiver) = submitted?;
            if let Some(receiver) = receiver {
                durable(receiver).await?;
            }
            Ok(results)
        }
    }

    #[allow(clippy::type_complexity)]
    fn submit_offset_deletes(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<
        (
            Vec<Result<(), ResponseError>>,
            Option<oneshot::Receiver<Result<(), OffsetStoreError>>>,
        ),
        ResponseError,
    > {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let slot = self.slot(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut group = lock_group(&slot);
        let classic = group.classic_ref();
        let subscribed = match classic.state() {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => None,
            _ => match classic.subscribed_topics() {
                Some(topics) => Some(topics.clone()),
                None => return Err(ResponseError::NonEmptyGroup),
            },
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut writes = Vec::new();
        for (topic, partition) in partitions {
            if subscribed
                .as_ref()
                .is_some_and(|topics| topics.contains(topic))
            {
                results.push(Err(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            if group.offsets.remove(topic, *partition).is_some() {
                writes.push(OffsetWrite::DeleteOffset(OffsetKey {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                }));
            }
            results.push(Ok(()));
        }
        if writes.is_empty() {
            return Ok((results, None));
        }
        let (sender, receiver) = oneshot::channel();
        let done = Box::new(move |outcome| {
            let _ = sender.send(outcome);
        });
        self.store.submit(writes, done).map_err(store_error)?;
        Ok((results, Some(receiver)))
    }

    /// Drops offsets of Empty groups older than the retention, and groups left with neither
    /// members nor offsets. Returns how many offsets expired.
    pub fn expire_offsets(&self, now_ms: i64) -> usize {
        let slots: Vec<GroupSlot> = self.groups().values().cloned().collect();
        let retention_ms = self.config.offsets_retention_ms;
        let mut expired_count = 0;
        let mut vanished = Vec::new();
        for slot in slots {
            let mut group = lock_group(&slot);
            let classic = group.classic_ref();
            if classic.state() != GroupState::Empty {
                continue;
            }
            let expired = group
                .offsets
                .expired(now_ms, retention_ms, classic.empty_since_ms());
            let mut writes = Vec::with_capacity(expired.len());
            for (topic, partition) in expired {
                group.offsets.remove(&topic, partition);
                let group_id = group.id.clone();
                writes.push(OffsetWrite::DeleteOffset(OffsetKey {
                    group: group_id,
                    topic,
                    partition,
                }));
            }
            expired_count += writes.len();
            if !writes.is_empty() {
                let done = Box::new(|outcome: Result<(), OffsetStoreError>| {
                    if let Err(error) = outcome {
                        tracing::warn!(%error, "expiring offsets failed; retried next pass");
                    }
                });
                if let Err(error) = self.store.submit(writes, done) {
                    tracing::warn!(%error, "expiring offsets failed; retried next pass");
                }
            }
            if group.offsets.is_empty() && group.classic_ref().has_no_members() {
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
            let idle = group.classic_ref().state() == GroupState::Empty
                && group.classic_ref().has_no_members()
                && group.offsets.is_empty();
            if idle {
                group.classic().mark_dead();
                groups.remove(group_id);
                tracing::debug!(group_id, "group removed: no members, no offsets");
            }
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

async fn durable(
    receiver: oneshot::Receiver<Result<(), OffsetStoreError>>,
) -> Result<(), ResponseError> {
    match receiver.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(store_error(error)),
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// Busy or closing stores are retriable for clients; damage is not.
fn store_error(error: OffsetStoreError) -> ResponseError {
    match error {
        OffsetStoreError::Busy | OffsetStoreError::Closed => ResponseError::CoordinatorNotAvailable,
        OffsetStoreError::Database(_)
        | OffsetStoreError::Damaged(_)
        | OffsetStoreError::Invalid(_) => {
            tracing::error!(%error, "offset store failure");
            ResponseError::UnknownServerError
        }
    }
}
