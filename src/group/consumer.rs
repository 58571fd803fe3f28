//! KIP-848 "consumer" groups: the broker assigns partitions, members only heartbeat
//! (ConsumerGroupHeartbeat), as Kafka 4.x's `GroupMetadataManager` runs them.
//!
//! Each heartbeat does three things under the group's mutex: (1) creates or updates the
//! member — a changed subscription, or a change in the subscribed topics' metadata (new
//! partitions), bumps the *group epoch*; (2) when the group epoch is ahead of the *target
//! assignment epoch*, the assignor computes every member's target assignment at the group
//! epoch; (3) the member is reconciled one step towards its target (`consumer_member`).
//! Session and revocation deadlines are enforced by one timer task per member.

mod persist;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor, AssignorMember, TopicMetadata, ASSIGNORS};
use super::consumer_member::{is_subset, ConsumerMember, MemberState, Owned};
use super::consumer_outcome::{
    ConsumerGroupDescription, ConsumerHeartbeat, ConsumerHeartbeatOutcome,
    ConsumerMemberDescription, JOIN_GROUP_MEMBER_EPOCH, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH, REBALANCE_TIMEOUT_UNCHANGED,
};
use super::offset_records::ConsumerRecords;
use super::{timers, GroupContext};
use crate::broker::{now_ms, ApiError};

/// Looks a topic up by name in the broker's current topics image.
pub type TopicLookup<'a> = &'a dyn Fn(&str) -> Option<TopicMetadata>;

/// Kafka's `ConsumerGroup.ConsumerGroupState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch moved; the target assignment is not computed yet.
    Assigning,
    /// Some member is not yet at the target assignment.
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

#[derive(Default)]
pub struct ConsumerGroup {
    group_epoch: i32,
    /// The epoch of `target`.
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    /// group.instance.id → member id of static members.
    static_members: HashMap<String, String>,
    /// Every member's target assignment at `assignment_epoch`.
    target: HashMap<String, Assignment>,
    /// Who holds each partition (assigned or not yet revoked): a partition is given to a
    /// member only when nobody else is here.
    holders: HashMap<(Uuid, i32), String>,
    /// How many members subscribe to each topic name.
    subscribed: BTreeMap<String, usize>,
    /// The subscribed topics that exist, as the target assignment saw them.
    topics: BTreeMap<String, TopicMetadata>,
    empty_since_ms: Option<i64>,
    dead: bool,
    /// The group's records as last written to its offsets partition (`persist`).
    written: ConsumerRecords,
    /// Restored from the log: `topics` is not known yet and is read without a new epoch.
    topics_unknown: bool,
}

fn error(code: ResponseError, message: String) -> ApiError {
    ApiError::new(code, message)
}

impl ConsumerGroup {
    /// A new group; `empty_since_ms` carries over from a classic group it replaces.
    pub fn new(empty_since_ms: Option<i64>) -> ConsumerGroup {
        ConsumerGroup {
            empty_since_ms,
            ..ConsumerGroup::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.dead {
            return ConsumerGroupState::Dead;
        }
        if self.members.is_empty() {
            return ConsumerGroupState::Empty;
        }
        if self.group_epoch > self.assignment_epoch {
            return ConsumerGroupState::Assigning;
        }
        let reconciled = self
            .members
            .values()
            .all(|member| member.is_reconciled_to(self.assignment_epoch));
        if reconciled {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    pub fn has_no_members(&self) -> bool {
        self.members.is_empty()
    }

    pub fn empty_since_ms(&self) -> Option<i64> {
        self.empty_since_ms
    }

    #[cfg(test)]
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.subscribed.keys().cloned().collect()
    }

    /// This node stopped coordinating the group (its offsets partition moved away): members
    /// are forgotten here and heartbeat the new coordinator, which rebuilds the group.
    pub fn unload(&mut self) {
        for (_, mut member) in std::mem::take(&mut self.members) {
            member.stop_timer();
        }
        self.static_members.clear();
        self.mark_dead();
    }

    /// Deleted: every later request is told to find the coordinator again.
    pub fn mark_dead(&mut self) {
        assert!(self.members.is_empty(), "only an empty group is deleted");
        self.dead = true;
    }

    pub fn heartbeat(
        &mut self,
        ctx: &GroupContext,
        request: ConsumerHeartbeat,
        topics: TopicLookup<'_>,
    ) -> Result<ConsumerHeartbeatOutcome, ApiError> {
        if self.dead {
            return Err(ApiError::code_only(ResponseError::CoordinatorNotAvailable));
        }
        if matches!(
            request.member_epoch,
            LEAVE_GROUP_MEMBER_EPOCH | LEAVE_GROUP_STATIC_MEMBER_EPOCH
        ) {
            return self.leave(&request);
        }
        let now = Instant::now();
        let member_id = self.find_or_join(ctx, &request, now)?;
        let mut bump = self.update_member(&member_id, &request);
        bump |= self.refresh_topics(topics);
        if bump {
            self.group_epoch += 1;
            tracing::debug!(group_epoch = self.group_epoch, "group epoch bumped");
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
        }
        let assigned_before = self.member(&member_id).assigned.clone();
        self.reconcile_member(ctx, &member_id, &request.owned, now);
        let session_timeout = ctx.config.consumer_session_timeout;
        let member = self.member_mut(&member_id);
        member.session_deadline = now + session_timeout;
        let full_request = request.member_epoch == JOIN_GROUP_MEMBER_EPOCH
            || (request.rebalance_timeout_ms != REBALANCE_TIMEOUT_UNCHANGED
                && request.subscribed_topic_names.is_some()
                && request.owned.is_some());
        let assignment =
            (full_request || member.assigned != assigned_before).then(|| member.assigned.clone());
        Ok(ConsumerHeartbeatOutcome {
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: duration_ms(ctx.config.consumer_heartbeat_interval),
            assignment,
        })
    }

    fn member(&self, member_id: &str) -> &ConsumerMember {
        let member = self.members.get(member_id);
        member.unwrap_or_else(|| panic!("member {member_id} was just found or added"))
    }

    fn member_mut(&mut self, member_id: &str) -> &mut ConsumerMember {
        let member = self.members.get_mut(member_id);
        member.unwrap_or_else(|| panic!("member {member_id} was just found or added"))
    }

    /// The member the heartbeat is from: an existing one (fenced unless its epoch is right),
    /// a new one (epoch 0), or a static member replacing its previous incarnation.
    fn find_or_join(
        &mut self,
        ctx: &GroupContext,
        request: &ConsumerHeartbeat,
        now: Instant,
    ) -> Result<String, ApiError> {
        let joining = request.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        let known = self.members.contains_key(&request.member_id);
        let Some(instance_id) = &request.instance_id else {
            if known {
                self.check_epoch(&request.member_id, request.member_epoch, &request.owned)?;
                return Ok(request.member_id.clone());
            }
            return self.join_new(ctx, request, now);
        };
        let current = self.static_members.get(instance_id).cloned();
        if !joining {
            let current = current.ok_or_else(|| {
                let message = format!("Instance id {instance_id} is unknown.");
                error(ResponseError::UnknownMemberId, message)
            })?;
            if current != request.member_id {
                let message = format!(
                    "Static member {} with instance id {instance_id} was fenced by member {current}.",
                    request.member_id
                );
                return Err(error(ResponseError::FencedInstanceId, message));
            }
            self.check_epoch(&current, request.member_epoch, &request.owned)?;
            return Ok(current);
        }
        match current {
            Some(current) if current == request.member_id => {
                self.check_epoch(&current, request.member_epoch, &request.owned)?;
                Ok(current)
            }
            Some(current) => {
                if self.member(&current).member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    let message = format!(
                        "Static member {} with instance id {instance_id} cannot join the group \
                         because the instance id is owned by {current} member.",
                        request.member_id
                    );
                    return Err(error(ResponseError::UnreleasedInstanceId, message));
                }
                Ok(self.replace_static_member(ctx, &current, request, now))
            }
            None if known => {
                self.check_epoch(&request.member_id, request.member_epoch, &request.owned)?;
                Ok(request.member_id.clone())
            }
            None => self.join_new(ctx, request, now),
        }
    }

    fn join_new(
        &mut self,
        ctx: &GroupContext,
        request: &ConsumerHeartbeat,
        now: Instant,
    ) -> Result<String, ApiError> {
        if request.member_epoch != JOIN_GROUP_MEMBER_EPOCH {
            let message = format!("Member {} is not a member of the group.", request.member_id);
            return Err(error(ResponseError::UnknownMemberId, message));
        }
        let size_max = ctx.config.group_size_max;
        if self.members.len() >= size_max {
            let message = format!(
                "The consumer group has reached its maximum capacity of {size_max} members."
            );
            return Err(error(ResponseError::GroupMaxSizeReached, message));
        }
        let member_id = if request.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        let session_deadline = now + ctx.config.consumer_session_timeout;
        let member = ConsumerMember {
            member_id: member_id.clone(),
            instance_id: request.instance_id.clone(),
            rack_id: None,
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout: Duration::ZERO,
            subscribed_topic_names: BTreeSet::new(),
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline,
            revocation_deadline: None,
            timer: Some(timers::spawn_consumer_member_timer(
                ctx,
                &member_id,
                session_deadline,
            )),
        };
        if let Some(instance_id) = &request.instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        self.empty_since_ms = None;
        tracing::info!(%member_id, "member joins the consumer group");
        Ok(member_id)
    }

    /// A static member came back under a new member id after leaving with epoch -2: the new
    /// id takes over the old member's partitions and target, without a new group epoch.
    fn replace_static_member(
        &mut self,
        ctx: &GroupContext,
        old_member_id: &str,
        request: &ConsumerHeartbeat,
        now: Instant,
    ) -> String {
        let member_id = if request.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        let mut old = self
            .members
            .remove(old_member_id)
            .unwrap_or_else(|| panic!("static member {old_member_id} is a member"));
        old.stop_timer();
        for partition in old.held() {
            self.holders.insert(partition, member_id.clone());
        }
        if let Some(target) = self.target.remove(old_member_id) {
            self.target.insert(member_id.clone(), target);
        }
        let session_deadline = now + ctx.config.consumer_session_timeout;
        let member = ConsumerMember {
            member_id: member_id.clone(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            session_deadline,
            revocation_deadline: None,
            timer: Some(timers::spawn_consumer_member_timer(
                ctx,
                &member_id,
                session_deadline,
            )),
            ..old
        };
        if let Some(instance_id) = &member.instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        tracing::info!(%member_id, old_member_id, "static member rejoins under a new member id");
        member_id
    }

    /// FENCED_MEMBER_EPOCH unless the epoch is the member's, or its previous one with owned
    /// partitions it still may own (the response with the new epoch was lost). Epoch 0 from a
    /// known member is a rejoin: it gave up its partitions, so it starts over from nothing.
    fn check_epoch(&mut self, member_id: &str, epoch: i32, owned: &Owned) -> Result<(), ApiError> {
        if epoch == JOIN_GROUP_MEMBER_EPOCH {
            self.release_all(member_id);
            return Ok(());
        }
        let member = self.member(member_id);
        let known = member.member_epoch;
        let late_but_fine =
            epoch == member.previous_member_epoch && is_subset(owned, &member.assigned);
        if epoch > known || (epoch < known && !late_but_fine) {
            let message = format!(
                "The consumer group member has a different member epoch ({epoch}) than the one \
                 known by the group coordinator ({known}). The member must abandon all its \
                 partitions and rejoin."
            );
            return Err(error(ResponseError::FencedMemberEpoch, message));
        }
        Ok(())
    }

    /// The member holds nothing and starts reconciling from epoch 0.
    fn release_all(&mut self, member_id: &str) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        for partition in member.held() {
            if self.holders.get(&partition).map(String::as_str) == Some(member_id) {
                self.holders.remove(&partition);
            }
        }
        member.assigned.clear();
        member.pending_revocation.clear();
        member.member_epoch = 0;
        member.previous_member_epoch = 0;
        member.state = MemberState::Stable;
        member.revocation_deadline = None;
    }

    /// Applies what the heartbeat changed; `true` when the group epoch must move.
    fn update_member(&mut self, member_id: &str, request: &ConsumerHeartbeat) -> bool {
        let mut bump = false;
        let member = self
            .members
            .get_mut(member_id)
            .unwrap_or_else(|| panic!("member {member_id} was just found or added"));
        if let Some(names) = &request.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            if names != member.subscribed_topic_names {
                let old = std::mem::replace(&mut member.subscribed_topic_names, names.clone());
                unsubscribe(&mut self.subscribed, &old);
                for name in names {
                    *self.subscribed.entry(name).or_default() += 1;
                }
                bump = true;
            }
        }
        if request.server_assignor.is_some() && request.server_assignor != member.server_assignor {
            member.server_assignor = request.server_assignor.clone();
            bump = true;
        }
        if request.rebalance_timeout_ms != REBALANCE_TIMEOUT_UNCHANGED {
            let timeout_ms = u64::try_from(request.rebalance_timeout_ms).unwrap_or(0);
            member.rebalance_timeout = Duration::from_millis(timeout_ms);
        }
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id.clone();
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        bump
    }

    /// Re-reads the subscribed topics from the broker's image; `true` if any changed (a topic
    /// appeared, went, or got partitions).
    fn refresh_topics(&mut self, topics: TopicLookup<'_>) -> bool {
        let current: BTreeMap<String, TopicMetadata> = self
            .subscribed
            .keys()
            .filter_map(|name| topics(name).map(|metadata| (name.clone(), metadata)))
            .collect();
        if std::mem::take(&mut self.topics_unknown) {
            self.topics = current;
            return false;
        }
        if current == self.topics {
            return false;
        }
        self.topics = current;
        true
    }

    /// The assignor most members asked for; `uniform` when none did.
    fn preferred_assignor(&self) -> Assignor {
        let mut votes = [0usize; ASSIGNORS.len()];
        for member in self.members.values() {
            let wanted = member
                .server_assignor
                .as_deref()
                .and_then(Assignor::from_name);
            if let Some(index) = wanted.and_then(|a| ASSIGNORS.iter().position(|x| *x == a)) {
                votes[index] += 1;
            }
        }
        let most = votes.iter().copied().max().unwrap_or(0);
        let winner = votes.iter().position(|&count| count == most && most > 0);
        winner.map_or(ASSIGNORS[0], |index| ASSIGNORS[index])
    }

    fn compute_target(&mut self) {
        let assignor = self.preferred_assignor();
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|member| AssignorMember {
                member_id: &member.member_id,
                subscribed: &member.subscribed_topic_names,
                previous: self.target.get(&member.member_id),
            })
            .collect();
        let target = assignor.assign(&members, &self.topics);
        self.target = target.into_iter().collect();
        self.assignment_epoch = self.group_epoch;
        tracing::debug!(
            assignment_epoch = self.assignment_epoch,
            assignor = assignor.name(),
            members = self.members.len(),
            "target assignment computed"
        );
    }

    fn reconcile_member(
        &mut self,
        ctx: &GroupContext,
        member_id: &str,
        owned: &Owned,
        now: Instant,
    ) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let ConsumerGroup {
            members, holders, ..
        } = self;
        let member = members
            .get_mut(member_id)
            .unwrap_or_else(|| panic!("member {member_id} was just found or added"));
        let held_before: Vec<(Uuid, i32)> = member.held().collect();
        let was_revoking = member.state == MemberState::UnrevokedPartitions;
        let held_by_other = |topic_id: Uuid, partition: i32| {
            holders
                .get(&(topic_id, partition))
                .is_some_and(|holder| holder != member_id)
        };
        if !member.reconcile(self.assignment_epoch, &target, owned, held_by_other) {
            return;
        }
        for partition in held_before {
            if holders.get(&partition).map(String::as_str) == Some(member_id) {
                holders.remove(&partition);
            }
        }
        for partition in member.held() {
            let previous = holders.insert(partition, member_id.to_string());
            assert!(
                previous.as_deref().unwrap_or(member_id) == member_id,
                "partition {partition:?} given to {member_id} while {previous:?} holds it"
            );
        }
        member.revocation_deadline = match member.state {
            MemberState::UnrevokedPartitions if was_revoking => member.revocation_deadline,
            MemberState::UnrevokedPartitions => {
                // The timer sleeps until the session deadline, which is later: restart it
                // so it wakes for this earlier one.
                let deadline = now + member.rebalance_timeout;
                member.stop_timer();
                let first = deadline.min(member.session_deadline);
                member.timer = Some(timers::spawn_consumer_member_timer(ctx, member_id, first));
                Some(deadline)
            }
            MemberState::Stable | MemberState::UnreleasedPartitions => None,
        };
        tracing::debug!(
            member_id,
            member_epoch = member.member_epoch,
            state = ?member.state,
            "member reconciled"
        );
    }

    /// Epoch -1: the member leaves. Epoch -2: a static member leaves for now, keeping its
    /// partitions until its session expires or it rejoins.
    fn leave(&mut self, request: &ConsumerHeartbeat) -> Result<ConsumerHeartbeatOutcome, ApiError> {
        let member_id = match &request.instance_id {
            None => {
                if !self.members.contains_key(&request.member_id) {
                    let message =
                        format!("Member {} is not a member of the group.", request.member_id);
                    return Err(error(ResponseError::UnknownMemberId, message));
                }
                request.member_id.clone()
            }
            Some(instance_id) => {
                let current = self
                    .static_members
                    .get(instance_id)
                    .cloned()
                    .ok_or_else(|| {
                        let message = format!("Instance id {instance_id} is unknown.");
                        error(ResponseError::UnknownMemberId, message)
                    })?;
                if current != request.member_id {
                    let message = format!(
                        "Static member {} with instance id {instance_id} was fenced by member {current}.",
                        request.member_id
                    );
                    return Err(error(ResponseError::FencedInstanceId, message));
                }
                current
            }
        };
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            let holders = &mut self.holders;
            let member = self.members.get_mut(&member_id);
            let member = member.unwrap_or_else(|| panic!("static member {member_id} is a member"));
            for partition in std::mem::take(&mut member.pending_revocation)
                .into_iter()
                .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t, p)))
            {
                holders.remove(&partition);
            }
            member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            member.revocation_deadline = None;
            tracing::info!(%member_id, "static member left for now");
        } else {
            tracing::info!(%member_id, "member left the consumer group");
            self.remove_member(&member_id);
        }
        Ok(ConsumerHeartbeatOutcome {
            member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Removes (fences) a member: its partitions are free and the group epoch moves.
    fn remove_member(&mut self, member_id: &str) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        member.stop_timer();
        for partition in member.held() {
            if self.holders.get(&partition).map(String::as_str) == Some(member_id) {
                self.holders.remove(&partition);
            }
        }
        unsubscribe(&mut self.subscribed, &member.subscribed_topic_names);
        self.target.remove(member_id);
        if let Some(instance_id) = &member.instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.empty_since_ms = Some(now_ms());
        }
    }

    /// The member's timer fired: `Some(deadline)` to sleep again, `None` when done.
    pub fn on_member_timer(&mut self, member_id: &str) -> Option<Instant> {
        let now = Instant::now();
        let member = self.members.get_mut(member_id)?;
        let revocation_late = member.revocation_deadline.is_some_and(|d| now >= d);
        if now < member.session_deadline && !revocation_late {
            return Some(member.next_deadline());
        }
        if revocation_late {
            tracing::info!(
                member_id,
                "partitions not revoked within the rebalance timeout: member fenced"
            );
        } else {
            tracing::info!(member_id, "session timeout: member fenced");
        }
        // Taken so remove_member does not abort the task running this very callback.
        member.timer = None;
        self.remove_member(member_id);
        None
    }

    /// OffsetCommit from `member_id` at `member_epoch` (Kafka's `validateOffsetCommit`): a
    /// negative epoch with no members is a standalone consumer or an admin.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), ResponseError> {
        if self.dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// TxnOffsetCommit: as an offset commit, except that a request naming no member at all
    /// (clients before KIP-447) is accepted.
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let anonymous = member_epoch == -1 && member_id.is_empty() && group_instance_id.is_none();
        if anonymous && !self.dead {
            return Ok(());
        }
        self.validate_commit(member_id, member_epoch)
    }

    /// OffsetFetch v9+ naming a member (Kafka's `validateOffsetFetch`).
    pub fn validate_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        let Some(member_id) = member_id else {
            return if member_epoch < 0 {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        };
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if member.member_epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    pub fn describe(&self) -> ConsumerGroupDescription {
        let members = self
            .members
            .values()
            .map(|member| ConsumerMemberDescription {
                member_id: member.member_id.clone(),
                instance_id: member.instance_id.clone(),
                rack_id: member.rack_id.clone(),
                member_epoch: member.member_epoch,
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                subscribed_topic_names: member.subscribed_topic_names.clone(),
                assignment: member.assigned.clone(),
                target_assignment: self
                    .target
                    .get(&member.member_id)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        ConsumerGroupDescription {
            state: self.state().name(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor_name: self.preferred_assignor().name(),
            members,
        }
    }

    /// Topic names of the subscribed topics, by id (to describe assignments).
    pub fn topic_names(&self) -> HashMap<Uuid, String> {
        self.topics
            .iter()
            .map(|(name, metadata)| (metadata.id, name.clone()))
            .collect()
    }
}

fn unsubscribe(subscribed: &mut BTreeMap<String, usize>, names: &BTreeSet<String>) {
    for name in names {
        if let Some(count) = subscribed.get_mut(name) {
            *count -= 1;
            if *count == 0 {
                subscribed.remove(name);
            }
        }
    }
}

fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}
