//! One member of a classic group: what it joined with, what it was assigned, and the
//! responses it is waiting for.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::outcome::{JoinOutcome, SyncOutcome};
use super::protocol::Protocols;

/// Longest client-chosen prefix of a generated member id (Kafka uses the whole client id or
/// group instance id; bounding it keeps ids small whatever the client sends).
const MEMBER_ID_PREFIX_CHARS_MAX: usize = 255;

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Protocols,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete; `bool`: the request is v9+ and
    /// understands `skip_assignment`.
    pub awaiting_join: Option<(oneshot::Sender<JoinOutcome>, bool)>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is removed if nothing is heard from it by then (see `keeps_alive`).
    pub heartbeat_deadline: Instant,
    /// The session timer task; aborted when the member goes.
    pub timer: Option<AbortHandle>,
}

impl Member {
    pub fn heard_from(&mut self, now: Instant) {
        self.heartbeat_deadline = now + self.session_timeout;
    }

    /// A member waiting in JoinGroup or SyncGroup cannot heartbeat (its connection is
    /// blocked on that request), so it is kept alive: the rebalance timeout bounds the wait.
    pub fn keeps_alive(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }

    /// Answers a waiting JoinGroup, if any.
    pub fn answer_join(&mut self, outcome: impl FnOnce(bool) -> JoinOutcome) {
        if let Some((sender, skip_assignment_supported)) = self.awaiting_join.take() {
            // The requester may have gone (connection closed); nothing to do then.
            let _ = sender.send(outcome(skip_assignment_supported));
        }
    }

    /// Answers a waiting SyncGroup, if any.
    pub fn answer_sync(&mut self, outcome: SyncOutcome) {
        if let Some(sender) = self.awaiting_sync.take() {
            let _ = sender.send(outcome);
        }
    }

    pub fn stop_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

/// A fresh member id: `prefix-uuid`, as Kafka builds them from the client id (dynamic members)
/// or the group instance id (static members).
pub fn new_member_id(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(MEMBER_ID_PREFIX_CHARS_MAX).collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
