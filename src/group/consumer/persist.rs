//! A consumer group's durable copy: the records of `consumer_records` that describe it now,
//! what of them differs from what was last written, and the group rebuilt from a replay.
//!
//! The coordinator writes the difference after every heartbeat (under the group's lock, so the
//! log orders the group's changes as they happened), which covers every state change:
//! members that join, leave or reconcile, the group epoch, target assignments. Members a
//! timer fenced are written with the next heartbeat (or come back after a restart with a new
//! session and are fenced again).

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::super::consumer_member::{ConsumerMember, MemberState};
use super::super::consumer_records::{
    self as records, ConsumerKey, CurrentAssignment, MemberMetadata, MEMBER_STATE_STABLE,
    MEMBER_STATE_UNRELEASED, MEMBER_STATE_UNREVOKED,
};
use super::super::offset_records::{ConsumerRecords, RecordError};
use super::super::{timers, GroupContext};
use super::ConsumerGroup;

/// One record to write: a new value, or `None` to delete the key.
pub type ConsumerChange = (ConsumerKey, Option<Bytes>);

fn state_byte(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => MEMBER_STATE_STABLE,
        MemberState::UnrevokedPartitions => MEMBER_STATE_UNREVOKED,
        MemberState::UnreleasedPartitions => MEMBER_STATE_UNRELEASED,
    }
}

fn member_state(byte: i8) -> MemberState {
    match byte {
        MEMBER_STATE_UNREVOKED => MemberState::UnrevokedPartitions,
        MEMBER_STATE_UNRELEASED => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

impl ConsumerGroup {
    /// Every record that describes the group as it is now.
    fn durable_view(&self) -> ConsumerRecords {
        let mut view = ConsumerRecords::new();
        if self.group_epoch == 0 && self.members.is_empty() {
            return view;
        }
        view.insert(ConsumerKey::Group, records::encode_epoch(self.group_epoch));
        let assignment_epoch = records::encode_epoch(self.assignment_epoch);
        view.insert(ConsumerKey::TargetAssignment, assignment_epoch);
        for member in self.members.values() {
            let id = &member.member_id;
            let metadata = MemberMetadata {
                instance_id: member.instance_id.clone(),
                rack_id: member.rack_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                subscribed_topic_names: member.subscribed_topic_names.iter().cloned().collect(),
                subscribed_topic_regex: None,
                rebalance_timeout_ms: i32::try_from(member.rebalance_timeout.as_millis())
                    .unwrap_or(i32::MAX),
                server_assignor: member.server_assignor.clone(),
            };
            view.insert(
                ConsumerKey::Member(id.clone()),
                records::encode_member(&metadata),
            );
            let current = CurrentAssignment {
                member_epoch: member.member_epoch,
                previous_member_epoch: member.previous_member_epoch,
                state: state_byte(member.state),
                assigned: member.assigned.clone(),
                pending_revocation: member.pending_revocation.clone(),
            };
            view.insert(
                ConsumerKey::CurrentAssignment(id.clone()),
                records::encode_current(&current),
            );
        }
        for (id, target) in &self.target {
            view.insert(
                ConsumerKey::TargetMember(id.clone()),
                records::encode_target_member(target),
            );
        }
        view
    }

    /// What must be written for the log to describe the group as it is now: changed or new
    /// records, and tombstones for records of what is gone. Empty when nothing changed.
    pub fn durable_changes(&self) -> (Vec<ConsumerChange>, ConsumerRecords) {
        let view = self.durable_view();
        let mut changes: Vec<ConsumerChange> = self
            .written
            .keys()
            .filter(|key| !view.contains_key(*key))
            .map(|key| (key.clone(), None))
            .collect();
        for (key, value) in &view {
            if self.written.get(key) != Some(value) {
                changes.push((key.clone(), Some(value.clone())));
            }
        }
        (changes, view)
    }

    /// `view` (from [`Self::durable_changes`]) is in the log now.
    pub fn mark_written(&mut self, view: ConsumerRecords) {
        self.written = view;
    }

    /// Tombstones for every record the log holds of the group (DeleteGroups).
    pub fn durable_tombstones(&self) -> Vec<ConsumerChange> {
        self.written.keys().map(|key| (key.clone(), None)).collect()
    }

    /// The group as replayed from its records. Members get a fresh session (as in Kafka); at
    /// most `ctx.config.group_size_max` of them are kept, and a record that does not decode is
    /// skipped with a warning.
    pub fn restore(
        ctx: &GroupContext,
        group_id: &str,
        replayed: &ConsumerRecords,
    ) -> ConsumerGroup {
        let mut group = ConsumerGroup::new(None);
        let now = Instant::now();
        for (key, value) in replayed {
            if let Err(error) = group.restore_record(ctx, key, value, now) {
                tracing::warn!(%error, group_id, ?key, "skipping a consumer group record");
            }
        }
        for member in group.members.values() {
            for partition in member.held() {
                group.holders.insert(partition, member.member_id.clone());
            }
            for name in &member.subscribed_topic_names {
                *group.subscribed.entry(name.clone()).or_default() += 1;
            }
            if let Some(instance_id) = &member.instance_id {
                let id = member.member_id.clone();
                group.static_members.insert(instance_id.clone(), id);
            }
        }
        group.target.retain(|id, _| group.members.contains_key(id));
        // The subscribed topics as the target assignment saw them were not written; the first
        // heartbeat reads them without moving the group epoch.
        group.topics_unknown = true;
        if group.members.is_empty() {
            group.empty_since_ms = Some(crate::broker::now_ms());
        }
        group.written = group.durable_view();
        tracing::info!(
            group_id,
            group_epoch = group.group_epoch,
            members = group.members.len(),
            "consumer group restored"
        );
        group
    }

    fn restore_record(
        &mut self,
        ctx: &GroupContext,
        key: &ConsumerKey,
        value: &[u8],
        now: Instant,
    ) -> Result<(), RecordError> {
        match key {
            ConsumerKey::Group => self.group_epoch = records::decode_epoch(value)?,
            ConsumerKey::TargetAssignment => self.assignment_epoch = records::decode_epoch(value)?,
            ConsumerKey::TargetMember(id) => {
                let target = records::decode_target_member(value)?;
                self.target.insert(id.clone(), target);
            }
            ConsumerKey::Member(id) => {
                let metadata = records::decode_member(value)?;
                if self.members.len() >= ctx.config.group_size_max {
                    tracing::warn!(member_id = %id, "group full: a restored member is dropped");
                    return Ok(());
                }
                let member = self.restored_member(ctx, id, now);
                member.instance_id = metadata.instance_id;
                member.rack_id = metadata.rack_id;
                member.client_id = metadata.client_id;
                member.client_host = metadata.client_host;
                member.subscribed_topic_names =
                    metadata.subscribed_topic_names.into_iter().collect();
                let timeout_ms = u64::try_from(metadata.rebalance_timeout_ms).unwrap_or(0);
                member.rebalance_timeout = Duration::from_millis(timeout_ms);
                member.server_assignor = metadata.server_assignor;
            }
            ConsumerKey::CurrentAssignment(id) => {
                let current = records::decode_current(value)?;
                // Keys sort member metadata before current assignments, so the member exists
                // unless its metadata was lost or dropped; then this record goes too.
                let Some(member) = self.members.get_mut(id) else {
                    return Ok(());
                };
                member.member_epoch = current.member_epoch;
                member.previous_member_epoch = current.previous_member_epoch;
                member.state = member_state(current.state);
                member.assigned = current.assigned;
                member.pending_revocation = current.pending_revocation;
            }
        }
        Ok(())
    }

    /// A member with nothing but its id and a fresh session.
    fn restored_member(
        &mut self,
        ctx: &GroupContext,
        id: &str,
        now: Instant,
    ) -> &mut ConsumerMember {
        let session_deadline = now + ctx.config.consumer_session_timeout;
        let member = ConsumerMember {
            member_id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout: Duration::ZERO,
            subscribed_topic_names: BTreeSet::new(),
            server_assignor: None,
            assigned: Default::default(),
            pending_revocation: Default::default(),
            session_deadline,
            revocation_deadline: None,
            timer: Some(timers::spawn_consumer_member_timer(
                ctx,
                id,
                session_deadline,
            )),
        };
        self.members.entry(id.to_string()).or_insert(member)
    }
}
