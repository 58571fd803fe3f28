//! The classic group protocol's state machine (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), as
//! Kafka's `GroupCoordinator` runs it:
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timeout──▶ CompletingRebalance
//!   ▲                ▲        │ (no members left)                   │ leader's SyncGroup
//!   └────────────────┼────────┘                                     ▼
//!                    └──────── member joins, leaves, expires ───── Stable
//! ```
//! (Dead: deleted.) Every method runs under the group's mutex and never waits: a JoinGroup or
//! SyncGroup that must wait gets a oneshot receiver, answered when the group gets there. The
//! broker's timers (session, rebalance, pending member) call back in through `on_*`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::member::{new_member_id, Member};
use super::outcome::{
    DescribedMember, GroupDescription, JoinOutcome, JoinRequest, JoinedMember, LeavingMember,
    MemberRef, Reply, SyncOutcome, SyncRequest,
};
use super::protocol::{self, metadata_for, select_protocol, CONSUMER_PROTOCOL_TYPE};
use super::timers;
use super::GroupContext;
use crate::broker::now_ms;

/// Most bytes of protocol metadata one member may join with. Kafka bounds a group's whole
/// metadata record by the offsets topic's max.message.bytes (1 MiB) and answers
/// UNKNOWN_SERVER_ERROR when it is exceeded; sluice refuses at JoinGroup with the same code.
pub const MEMBER_METADATA_BYTES_MAX: usize = 1024 * 1024;
/// Most protocols (assignors) one member may offer.
pub const MEMBER_PROTOCOLS_MAX: usize = 64;
/// Most bytes of assignments one SyncGroup from the leader may carry.
pub const GROUP_ASSIGNMENT_BYTES_MAX: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// Kafka's names (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What the group's one rebalance timer is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RebalanceWait {
    /// The join phase; `initial_remaining` is set for the first rebalance of an empty group
    /// (`group.initial.rebalance.delay.ms`): what is left of the rebalance timeout to extend
    /// the delay by while new members keep arriving.
    Join { initial_remaining: Option<Duration> },
    /// Members of this generation must send SyncGroup within the rebalance timeout.
    Sync { generation_id: i32 },
}

struct RebalanceTimer {
    wait: RebalanceWait,
    handle: AbortHandle,
}

pub struct ClassicGroup {
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id of static members (KIP-345).
    static_members: HashMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED, waiting for the member's second JoinGroup.
    pending_members: HashMap<String, AbortHandle>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    rebalance: Option<RebalanceTimer>,
    /// Bumped whenever the rebalance timer is replaced, so a stale timer does nothing.
    rebalance_sequence: u64,
    /// A member joined during the initial delay: extend it.
    new_member_added: bool,
    /// Wall-clock ms when the group last became Empty (offset retention counts from it).
    empty_since_ms: Option<i64>,
    /// Topics the members subscribe to (consumer protocol, CompletingRebalance/Stable).
    subscribed_topics: Option<BTreeSet<String>>,
}

impl Default for ClassicGroup {
    fn default() -> Self {
        ClassicGroup::new()
    }
}

impl ClassicGroup {
    pub fn new() -> ClassicGroup {
        ClassicGroup {
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            rebalance: None,
            rebalance_sequence: 0,
            new_member_added: false,
            empty_since_ms: None,
            subscribed_topics: None,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn empty_since_ms(&self) -> Option<i64> {
        self.empty_since_ms
    }

    /// No members and no member ids waiting for their second join.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    pub fn subscribed_topics(&self) -> Option<&BTreeSet<String>> {
        self.subscribed_topics.as_ref()
    }

    /// This node stopped coordinating the group (its offsets partition moved away): members
    /// are forgotten here, their waiting JoinGroup/SyncGroup answered NOT_COORDINATOR, so they
    /// find the new coordinator and rejoin there.
    pub fn unload(&mut self) {
        for (_, mut member) in std::mem::take(&mut self.members) {
            member.stop_timer();
            if let Some((reply, _)) = member.awaiting_join.take() {
                let outcome = JoinOutcome::error(&member.member_id, ResponseError::NotCoordinator);
                let _ = reply.send(outcome);
            }
            if let Some(reply) = member.awaiting_sync.take() {
                let _ = reply.send(SyncOutcome::error(ResponseError::NotCoordinator));
            }
        }
        self.static_members.clear();
        self.mark_dead();
    }

    /// Deleted: timers stop and every waiting request is told to find the coordinator again.
    pub fn mark_dead(&mut self) {
        assert!(self.members.is_empty(), "only an empty group is deleted");
        self.stop_rebalance_timer();
        for (_, timer) in self.pending_members.drain() {
            timer.abort();
        }
        self.state = GroupState::Dead;
    }

    pub fn join(&mut self, ctx: &GroupContext, request: JoinRequest) -> Reply<JoinOutcome> {
        if self.state == GroupState::Dead {
            let outcome =
                JoinOutcome::error(&request.member_id, ResponseError::CoordinatorNotAvailable);
            return Reply::Now(outcome);
        }
        if let Err(error) = self.check_join_protocols(&request) {
            return Reply::Now(JoinOutcome::error(&request.member_id, error));
        }
        if request.member_id.is_empty() {
            self.join_new_member(ctx, request)
        } else {
            self.join_known_member(ctx, request)
        }
    }

    fn check_join_protocols(&self, request: &JoinRequest) -> Result<(), ResponseError> {
        let bytes: usize = request
            .protocols
            .iter()
            .map(|(name, metadata)| name.len() + metadata.len())
            .sum();
        if bytes > MEMBER_METADATA_BYTES_MAX || request.protocols.len() > MEMBER_PROTOCOLS_MAX {
            return Err(ResponseError::UnknownServerError);
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        if self.members.is_empty() {
            return Ok(());
        }
        let same_type = self.protocol_type.as_deref() == Some(request.protocol_type.as_str());
        let common = request.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|member| protocol::supports(&member.protocols, name))
        });
        if same_type && common {
            Ok(())
        } else {
            Err(ResponseError::InconsistentGroupProtocol)
        }
    }

    fn join_new_member(&mut self, ctx: &GroupContext, request: JoinRequest) -> Reply<JoinOutcome> {
        if let Some(instance_id) = &request.group_instance_id {
            if let Some(old_member_id) = self.static_members.get(instance_id).cloned() {
                return self.replace_static_member(ctx, &old_member_id, request);
            }
        }
        let group_size_max = ctx.config.group_size_max;
        if self.members.len() >= group_size_max || self.pending_members.len() >= group_size_max {
            return Reply::Now(JoinOutcome::error("", ResponseError::GroupMaxSizeReached));
        }
        match &request.group_instance_id {
            // Static members skip the MEMBER_ID_REQUIRED round trip, as in Kafka.
            Some(instance_id) => {
                let member_id = new_member_id(instance_id);
                self.add_member_and_rebalance(ctx, member_id, request)
            }
            None => {
                let member_id = new_member_id(&request.client_id);
                if request.require_known_member_id {
                    let session_timeout = timeout_duration(request.session_timeout_ms);
                    let timer = timers::spawn_pending_timer(ctx, &member_id, session_timeout);
                    self.pending_members.insert(member_id.clone(), timer);
                    let outcome = JoinOutcome::error(&member_id, ResponseError::MemberIdRequired);
                    return Reply::Now(outcome);
                }
                self.add_member_and_rebalance(ctx, member_id, request)
            }
        }
    }

    fn join_known_member(
        &mut self,
        ctx: &GroupContext,
        request: JoinRequest,
    ) -> Reply<JoinOutcome> {
        let member_id = request.member_id.clone();
        if let Some(timer) = self.pending_members.remove(&member_id) {
            timer.abort();
            if self.members.len() >= ctx.config.group_size_max {
                let outcome = JoinOutcome::error(&member_id, ResponseError::GroupMaxSizeReached);
                return Reply::Now(outcome);
            }
            return self.add_member_and_rebalance(ctx, member_id, request);
        }
        if let Err(error) = self.check_member(&member_id, request.group_instance_id.as_deref()) {
            return Reply::Now(JoinOutcome::error(&member_id, error));
        }
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|member| member.protocols == request.protocols);
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(ctx, request),
            // The member missed the JoinGroup response: send it the current one again.
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(self.current_join_outcome(&member_id, false))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Reply::Now(self.current_join_outcome(&member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(ctx, request)
            }
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinOutcome::error(
                &member_id,
                ResponseError::UnknownMemberId,
            )),
        }
    }

    /// UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID unless `member_id` is a member (and, when
    /// `group_instance_id` is given, the static member currently holding that instance id).
    fn check_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance_id) = group_instance_id {
            if let Some(current) = self.static_members.get(instance_id) {
                if current != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    fn add_member_and_rebalance(
        &mut self,
        ctx: &GroupContext,
        member_id: String,
        request: JoinRequest,
    ) -> Reply<JoinOutcome> {
        let (sender, receiver) = oneshot::channel();
        let now = Instant::now();
        let session_timeout = timeout_duration(request.session_timeout_ms);
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout,
            rebalance_timeout: timeout_duration(request.rebalance_timeout_ms),
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some((sender, request.skip_assignment_supported)),
            awaiting_sync: None,
            heartbeat_deadline: now + session_timeout,
            timer: Some(timers::spawn_member_timer(
                ctx,
                &member_id,
                now + session_timeout,
            )),
        };
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type);
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        // Only a brand-new group's first rebalance is stretched while members keep arriving.
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance(ctx);
        self.maybe_complete_join(ctx);
        Reply::Later(receiver)
    }

    fn update_member_and_rebalance(
        &mut self,
        ctx: &GroupContext,
        request: JoinRequest,
    ) -> Reply<JoinOutcome> {
        let (sender, receiver) = oneshot::channel();
        let Some(member) = self.members.get_mut(&request.member_id) else {
            return Reply::Now(JoinOutcome::error(
                &request.member_id,
                ResponseError::UnknownMemberId,
            ));
        };
        // A member that gave up waiting and joined again: its earlier request is answered.
        member.answer_join(|_| {
            JoinOutcome::error(&request.member_id, ResponseError::RebalanceInProgress)
        });
        member.protocols = request.protocols;
        member.session_timeout = timeout_duration(request.session_timeout_ms);
        member.rebalance_timeout = timeout_duration(request.rebalance_timeout_ms);
        member.awaiting_join = Some((sender, request.skip_assignment_supported));
        member.heard_from(Instant::now());
        self.maybe_prepare_rebalance(ctx);
        self.maybe_complete_join(ctx);
        Reply::Later(receiver)
    }

    /// A static member restarted (same group.instance.id, no member id): it takes over the
    /// old member's place under a new id. The old id is fenced. While the group is Stable and
    /// the member's protocols are unchanged, no rebalance happens (KIP-345).
    fn replace_static_member(
        &mut self,
        ctx: &GroupContext,
        old_member_id: &str,
        request: JoinRequest,
    ) -> Reply<JoinOutcome> {
        let Some(mut member) = self.members.remove(old_member_id) else {
            return Reply::Now(JoinOutcome::error("", ResponseError::UnknownMemberId));
        };
        let instance_id = member.group_instance_id.clone().unwrap_or_default();
        let new_member_id = new_member_id(&instance_id);
        member.stop_timer();
        member.answer_join(|_| JoinOutcome::error(old_member_id, ResponseError::FencedInstanceId));
        member.answer_sync(SyncOutcome::error(ResponseError::FencedInstanceId));
        let unchanged = member.protocols == request.protocols;
        member.member_id = new_member_id.clone();
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.session_timeout = timeout_duration(request.session_timeout_ms);
        member.rebalance_timeout = timeout_duration(request.rebalance_timeout_ms);
        member.heard_from(Instant::now());
        let deadline = member.heartbeat_deadline;
        member.timer = Some(timers::spawn_member_timer(ctx, &new_member_id, deadline));
        self.members.insert(new_member_id.clone(), member);
        self.static_members
            .insert(instance_id, new_member_id.clone());
        if self.leader_id.as_deref() == Some(old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.clone());
        }
        tracing::debug!(old_member_id, %new_member_id, "static member replaced");
        if self.state == GroupState::Stable && unchanged {
            let is_leader = self.leader_id.as_deref() == Some(new_member_id.as_str());
            let skip = is_leader && request.skip_assignment_supported;
            return Reply::Now(self.current_join_outcome(&new_member_id, skip));
        }
        let request = JoinRequest {
            member_id: new_member_id,
            ..request
        };
        self.update_member_and_rebalance(ctx, request)
    }

    /// The JoinGroup response of the current generation; the leader gets every member.
    fn current_join_outcome(&self, member_id: &str, skip_assignment: bool) -> JoinOutcome {
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        JoinOutcome {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment,
            members: if is_leader {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol_name = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: metadata_for(&member.protocols, protocol_name),
            })
            .collect()
    }

    fn maybe_prepare_rebalance(&mut self, ctx: &GroupContext) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.prepare_rebalance(ctx);
        }
    }

    fn prepare_rebalance(&mut self, ctx: &GroupContext) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments of the aborted generation must not be handed out.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                member.answer_sync(SyncOutcome::error(ResponseError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        let rebalance_timeout = self.rebalance_timeout();
        let wait = if self.state == GroupState::Empty {
            let delay = ctx.config.initial_rebalance_delay.min(rebalance_timeout);
            self.new_member_added = false;
            let remaining = rebalance_timeout.saturating_sub(delay);
            (
                RebalanceWait::Join {
                    initial_remaining: Some(remaining),
                },
                delay,
            )
        } else {
            (
                RebalanceWait::Join {
                    initial_remaining: None,
                },
                rebalance_timeout,
            )
        };
        self.state = GroupState::PreparingRebalance;
        self.subscribed_topics = None;
        self.start_rebalance_timer(ctx, wait.0, wait.1);
        tracing::debug!(generation_id = self.generation_id, "preparing rebalance");
    }

    /// The largest rebalance timeout of the members (Kafka waits for the slowest).
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|member| member.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn start_rebalance_timer(&mut self, ctx: &GroupContext, wait: RebalanceWait, after: Duration) {
        self.stop_rebalance_timer();
        self.rebalance_sequence += 1;
        let handle = timers::spawn_rebalance_timer(ctx, self.rebalance_sequence, after);
        self.rebalance = Some(RebalanceTimer { wait, handle });
    }

    fn stop_rebalance_timer(&mut self) {
        if let Some(timer) = self.rebalance.take() {
            timer.handle.abort();
        }
    }

    /// Completes the join phase once every member has rejoined (never during the initial
    /// delay, which only its timer ends).
    fn maybe_complete_join(&mut self, ctx: &GroupContext) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let initial_delay = matches!(
            self.rebalance,
            Some(RebalanceTimer {
                wait: RebalanceWait::Join {
                    initial_remaining: Some(_)
                },
                ..
            })
        );
        let all_joined = self.pending_members.is_empty()
            && self
                .members
                .values()
                .all(|member| member.awaiting_join.is_some());
        if !initial_delay && all_joined {
            self.complete_join(ctx);
        }
    }

    /// Ends the join phase: members that did not rejoin are removed, the next generation
    /// starts, and every waiting JoinGroup is answered.
    fn complete_join(&mut self, ctx: &GroupContext) {
        self.stop_rebalance_timer();
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|member| member.awaiting_join.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in absent {
            tracing::debug!(%member_id, "member did not rejoin in time; removed");
            self.remove_member(&member_id);
        }
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol_name = None;
            self.empty_since_ms = Some(now_ms());
            return;
        }
        self.protocol_name = select_protocol(self.members.values().map(|m| &m.protocols));
        self.state = GroupState::CompletingRebalance;
        self.subscribed_topics = self.compute_subscribed_topics();
        self.empty_since_ms = None;
        let leader_is_member = self
            .leader_id
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader));
        if !leader_is_member {
            self.leader_id = self.members.keys().next().cloned();
        }
        let now = Instant::now();
        let outcomes: Vec<(String, JoinOutcome)> = self
            .members
            .keys()
            .map(|member_id| {
                (
                    member_id.clone(),
                    self.current_join_outcome(member_id, false),
                )
            })
            .collect();
        for (member_id, outcome) in outcomes {
            if let Some(member) = self.members.get_mut(&member_id) {
                member.answer_join(|_| outcome);
                member.heard_from(now);
            }
            self.pending_sync.insert(member_id);
        }
        let wait = RebalanceWait::Sync {
            generation_id: self.generation_id,
        };
        let timeout = self.rebalance_timeout();
        self.start_rebalance_timer(ctx, wait, timeout);
        tracing::debug!(
            generation_id = self.generation_id,
            members = self.members.len(),
            protocol = ?self.protocol_name,
            "join phase complete"
        );
    }

    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol_name = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            let metadata = metadata_for(&member.protocols, protocol_name);
            topics.extend(protocol::subscribed_topics(&metadata)?);
        }
        Some(topics)
    }

    /// Removes a member without starting a rebalance (the caller decides).
    fn remove_member(&mut self, member_id: &str) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        member.stop_timer();
        member.answer_join(|_| JoinOutcome::error(member_id, ResponseError::UnknownMemberId));
        member.answer_sync(SyncOutcome::error(ResponseError::UnknownMemberId));
        if let Some(instance_id) = &member.group_instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            let next = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .or_else(|| self.members.values().next());
            self.leader_id = next.map(|m| m.member_id.clone());
        }
    }

    /// A member left or expired: the others must rebalance.
    fn remove_member_and_update_group(&mut self, ctx: &GroupContext, member_id: &str) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(ctx),
            GroupState::PreparingRebalance => self.maybe_complete_join(ctx),
            GroupState::Empty | GroupState::Dead => {}
        }
        self.maybe_complete_join(ctx);
    }

    pub fn sync(&mut self, request: SyncRequest) -> Reply<SyncOutcome> {
        if self.state == GroupState::Dead {
            return Reply::Now(SyncOutcome::error(ResponseError::CoordinatorNotAvailable));
        }
        let member_id = request.member_id.as_str();
        if let Err(error) = self.check_member(member_id, request.group_instance_id.as_deref()) {
            return Reply::Now(SyncOutcome::error(error));
        }
        if request.generation_id != self.generation_id {
            return Reply::Now(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        let type_differs =
            request.protocol_type.is_some() && request.protocol_type != self.protocol_type;
        let name_differs =
            request.protocol_name.is_some() && request.protocol_name != self.protocol_name;
        if type_differs || name_differs {
            return Reply::Now(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty => Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => self.sync_completing(request),
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let now = Instant::now();
                let outcome = self.members.get_mut(member_id).map(|member| {
                    member.heard_from(now);
                    member.assignment.clone()
                });
                Reply::Now(self.sync_outcome(outcome.unwrap_or_default()))
            }
            GroupState::Dead => {
                Reply::Now(SyncOutcome::error(ResponseError::CoordinatorNotAvailable))
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn sync_completing(&mut self, request: SyncRequest) -> Reply<SyncOutcome> {
        let member_id = request.member_id;
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        if is_leader {
            let bytes: usize = request
                .assignments
                .iter()
                .map(|(id, a)| id.len() + a.len())
                .sum();
            if bytes > GROUP_ASSIGNMENT_BYTES_MAX {
                // Kafka fails the group's too-large metadata write with this code.
                tracing::warn!(bytes, "SyncGroup assignments over the limit");
                return Reply::Now(SyncOutcome::error(ResponseError::UnknownServerError));
            }
        }
        let (sender, receiver) = oneshot::channel();
        self.pending_sync.remove(&member_id);
        if let Some(member) = self.members.get_mut(&member_id) {
            member.answer_sync(SyncOutcome::error(ResponseError::RebalanceInProgress));
            member.awaiting_sync = Some(sender);
            member.heard_from(Instant::now());
        }
        if is_leader {
            let mut assignments: HashMap<String, Bytes> = request.assignments.into_iter().collect();
            let outcome_base = self.sync_outcome(Bytes::new());
            for member in self.members.values_mut() {
                member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
                let outcome = SyncOutcome {
                    assignment: member.assignment.clone(),
                    ..outcome_base.clone()
                };
                member.answer_sync(outcome);
            }
            self.state = GroupState::Stable;
            if self.pending_sync.is_empty() {
                self.stop_rebalance_timer();
            }
            tracing::debug!(generation_id = self.generation_id, "group stable");
        }
        Reply::Later(receiver)
    }

    pub fn heartbeat(&mut self, member: &MemberRef) -> Result<(), ResponseError> {
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty => return Err(ResponseError::UnknownMemberId),
            _ => {}
        }
        self.check_member(&member.member_id, member.group_instance_id.as_deref())?;
        if member.generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if let Some(found) = self.members.get_mut(&member.member_id) {
            found.heard_from(Instant::now());
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup: per member NONE, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID; the group
    /// rebalances once for the whole batch.
    pub fn leave(
        &mut self,
        ctx: &GroupContext,
        leaving: &[LeavingMember],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        for member in leaving {
            let result = self.resolve_leaving(member).map(|member_id| {
                if let Some(timer) = self.pending_members.remove(&member_id) {
                    timer.abort();
                    self.maybe_complete_join(ctx);
                } else {
                    tracing::debug!(%member_id, "member left");
                    self.remove_member_and_update_group(ctx, &member_id);
                }
            });
            results.push(result);
        }
        Ok(results)
    }

    fn resolve_leaving(&self, member: &LeavingMember) -> Result<String, ResponseError> {
        if let Some(instance_id) = &member.group_instance_id {
            let current = self
                .static_members
                .get(instance_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            if !member.member_id.is_empty() && *current != member.member_id {
                return Err(ResponseError::FencedInstanceId);
            }
            return Ok(current.clone());
        }
        let known = self.members.contains_key(&member.member_id)
            || self.pending_members.contains_key(&member.member_id);
        if known {
            Ok(member.member_id.clone())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// Whether `member` may commit offsets now (Kafka's rules, in Kafka's order): generation
    /// -1 with no member id is a standalone (`assign()`) consumer, allowed while the group is
    /// Empty. A member's commit counts as a heartbeat.
    pub fn validate_commit(&mut self, member: &MemberRef) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(instance_id) = &member.group_instance_id {
            if let Some(current) = self.static_members.get(instance_id) {
                if *current != member.member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if member.generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        let Some(found) = self.members.get_mut(&member.member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if member.generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        found.heard_from(Instant::now());
        Ok(())
    }

    /// TxnOffsetCommit (Kafka's `validateOffsetCommit` with `isTransactional`): the member
    /// fields are optional (clients before KIP-447 send none), and a rebalance in progress
    /// does not refuse it.
    pub fn validate_txn_commit(&mut self, member: &MemberRef) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if member.generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        let named = member.generation_id >= 0
            || !member.member_id.is_empty()
            || member.group_instance_id.is_some();
        if !named {
            return Ok(());
        }
        if let Some(instance_id) = &member.group_instance_id {
            match self.static_members.get(instance_id) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if *current != member.member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                Some(_) => {}
            }
        }
        if !self.members.contains_key(&member.member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if member.generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol_name = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = self
            .members
            .values()
            .map(|member| DescribedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: if stable {
                    metadata_for(&member.protocols, &protocol_name)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name,
            members,
        }
    }

    /// The member's session timer fired: `Some(deadline)` to sleep again, `None` when done.
    pub fn on_member_timer(&mut self, ctx: &GroupContext, member_id: &str) -> Option<Instant> {
        let now = Instant::now();
        let member = self.members.get_mut(member_id)?;
        if now < member.heartbeat_deadline {
            return Some(member.heartbeat_deadline);
        }
        if member.keeps_alive() {
            member.heard_from(now);
            return Some(member.heartbeat_deadline);
        }
        tracing::info!(member_id, "session timeout: member removed");
        // Taken so remove_member does not abort the task running this very callback.
        member.timer = None;
        self.remove_member_and_update_group(ctx, member_id);
        None
    }

    /// A member id handed out with MEMBER_ID_REQUIRED was not used within the session timeout.
    pub fn on_pending_timeout(&mut self, ctx: &GroupContext, member_id: &str) {
        if self.pending_members.remove(member_id).is_some() {
            tracing::debug!(member_id, "pending member expired");
            self.maybe_complete_join(ctx);
        }
    }

    pub fn on_rebalance_timer(&mut self, ctx: &GroupContext, sequence: u64) {
        if sequence != self.rebalance_sequence {
            return;
        }
        let Some(timer) = self.rebalance.take() else {
            return;
        };
        match timer.wait {
            RebalanceWait::Join { initial_remaining } => {
                if self.state != GroupState::PreparingRebalance {
                    return;
                }
                if let Some(remaining) = initial_remaining {
                    if self.new_member_added && !remaining.is_zero() {
                        self.new_member_added = false;
                        let delay = ctx.config.initial_rebalance_delay.min(remaining);
                        let wait = RebalanceWait::Join {
                            initial_remaining: Some(remaining - delay),
                        };
                        self.start_rebalance_timer(ctx, wait, delay);
                        return;
                    }
                }
                self.complete_join(ctx);
            }
            RebalanceWait::Sync { generation_id } => {
                let syncing = matches!(
                    self.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                );
                if !syncing || generation_id != self.generation_id || self.pending_sync.is_empty() {
                    return;
                }
                let late: Vec<String> = self.pending_sync.drain().collect();
                for member_id in &late {
                    tracing::info!(%member_id, "no SyncGroup within the rebalance timeout");
                    self.remove_member(member_id);
                }
                self.prepare_rebalance(ctx);
                self.maybe_complete_join(ctx);
            }
        }
    }
}

/// Timeouts were checked by the coordinator; a negative one cannot reach here, but must not
/// panic either.
fn timeout_duration(timeout_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0))
}
