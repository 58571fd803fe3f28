//! Partition replication: leaders track their followers' fetch offsets, move the high
//! watermark and ask the controller to change the ISR (Kafka's AlterPartition); followers
//! fetch from their leader (Fetch with a replica id, as Kafka's `ReplicaFetcherThread`) after
//! cutting any divergent tail (OffsetForLeaderEpoch, KIP-101/279).
//!
//! Roles come only from the metadata image: the publisher calls [`on_image`] after each new
//! view, which switches replicas between leader and follower and starts fetchers.

mod fetcher;
mod isr;
mod peer;
pub use peer::Peer;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_raft::image::LEADER_NONE;
use tokio::time::Instant;

use crate::broker::{now_ms, Broker, FollowerProgress, Partition, Replica, Role, TopicsImage};

pub use isr::spawn_isr_maintenance;
pub use throttle::ReassignmentThrottle;

/// Applies the roles of `topics` to this node's replicas.
pub fn on_image(broker: &Arc<Broker>, topics: &TopicsImage) {
    let node = broker.node_id();
    let mut high_watermark_moved = false;
    for topic in topics.by_name.values() {
        for partition in &topic.partitions {
            let Some(replica) = &partition.replica else {
                continue;
            };
            let role = role_of(node, partition);
            high_watermark_moved |= apply_role(broker, replica, role, node);
        }
    }
    if high_watermark_moved {
        broker.notify_appended();
    }
}

fn role_of(node: i32, partition: &Partition) -> Role {
    let registration = &partition.registration;
    if registration.leader == node {
        Role::Leader {
            leader_epoch: registration.leader_epoch,
            partition_epoch: registration.partition_epoch,
            isr: registration.isr.clone(),
        }
    } else if registration.leader == LEADER_NONE {
        Role::None
    } else {
        Role::Follower {
            leader: registration.leader,
            leader_epoch: registration.leader_epoch,
        }
    }
}

/// Returns whether the high watermark moved.
fn apply_role(broker: &Arc<Broker>, replica: &Arc<Replica>, role: Role, node: i32) -> bool {
    let mut progress = replica.progress();
    if progress.role == role {
        drop(progress);
        return matches!(role, Role::Leader { .. }) && recompute_high_watermark(replica);
    }
    let was_leader_epoch = match &progress.role {
        Role::Leader { leader_epoch, .. } => Some(*leader_epoch),
        _ => None,
    };
    progress.role = role.clone();
    progress.isr_change_pending = false;
    progress.isr_joining.clear();
    match role {
        Role::Leader {
            leader_epoch, isr, ..
        } => {
            if was_leader_epoch != Some(leader_epoch) {
                become_leader(replica, &mut progress, leader_epoch, &isr, node);
            }
            drop(progress);
            recompute_high_watermark(replica)
        }
        Role::Follower {
            leader,
            leader_epoch,
        } => {
            progress.followers.clear();
            if progress.fetcher_epoch != Some(leader_epoch) {
                progress.fetcher_epoch = Some(leader_epoch);
                fetcher::spawn(broker.clone(), replica.clone(), leader, leader_epoch);
            }
            false
        }
        Role::None => false,
    }
}

fn become_leader(
    replica: &Replica,
    progress: &mut crate::broker::Progress,
    leader_epoch: i32,
    isr: &[i32],
    node: i32,
) {
    if let Err(error) = replica.log.assign_epoch(leader_epoch) {
        tracing::error!(%error, topic = %replica.topic, "recording the leader epoch");
    }
    // Every ISR member gets a full lag allowance from now: a new leader knows nothing of them.
    let now = now_ms();
    progress.followers.clear();
    for follower in isr.iter().filter(|member| **member != node) {
        progress.followers.insert(
            *follower,
            FollowerProgress {
                log_end_offset: -1,
                last_caught_up_ms: now,
                leader_end_at_last_fetch: replica.log.log_end_offset(),
                last_fetch_ms: now,
                high_watermark_sent: -1,
            },
        );
    }
    progress.fetcher_epoch = None;
    progress.leader_epoch_start_offset = replica.log.log_end_offset();
    tracing::info!(topic = %replica.topic, partition = replica.index, leader_epoch, "leading");
}

/// Leader: the high watermark is the smallest log end among ISR members (this node's
/// included). Returns whether it moved.
pub fn recompute_high_watermark(replica: &Replica) -> bool {
    let progress = replica.progress();
    let Role::Leader { isr, .. } = &progress.role else {
        return false;
    };
    let node_end = replica.log.log_end_offset();
    let mut minimum = node_end;
    // The leader itself has no entry in `followers`. Members joining in a pending ISR change
    // count already (Kafka's maximal ISR).
    for member in isr.iter().chain(&progress.isr_joining) {
        if let Some(follower) = progress.followers.get(member) {
            minimum = minimum.min(follower.log_end_offset.max(0));
        }
    }
    // Moved while the progress lock is held, so an ISR change judged under it sees the high
    // watermark its joiners are counted against.
    replica.advance_high_watermark(minimum)
}

/// Leader: whether an answer carrying `high_watermark` tells `follower` something new; if
/// so it is recorded as told. Kafka answers a follower's fetch at once then, instead of
/// waiting for records, so followers (and consumers reading from them, KIP-392) learn the
/// high watermark within a round trip.
pub fn high_watermark_news(replica: &Replica, follower: i32, high_watermark: i64) -> bool {
    let mut progress = replica.progress();
    if !matches!(progress.role, Role::Leader { .. }) {
        return false;
    }
    let Some(entry) = progress.followers.get_mut(&follower) else {
        return false;
    };
    if high_watermark <= entry.high_watermark_sent {
        return false;
    }
    entry.high_watermark_sent = high_watermark;
    true
}

/// Leader: a follower fetched from `fetch_offset`, so it holds everything below it.
/// Returns whether the high watermark moved.
pub fn record_follower_fetch(replica: &Replica, follower: i32, fetch_offset: i64) -> bool {
    let now = now_ms();
    let leader_end = replica.log.log_end_offset();
    {
        let mut progress = replica.progress();
        if !matches!(progress.role, Role::Leader { .. }) {
            return false;
        }
        let entry = progress
            .followers
            .entry(follower)
            .or_insert(FollowerProgress {
                log_end_offset: fetch_offset,
                last_caught_up_ms: 0,
                leader_end_at_last_fetch: leader_end,
                last_fetch_ms: now,
                high_watermark_sent: -1,
            });
        if fetch_offset >= leader_end {
            entry.last_caught_up_ms = now;
        } else if fetch_offset >= entry.leader_end_at_last_fetch {
            entry.last_caught_up_ms = entry.last_caught_up_ms.max(entry.last_fetch_ms);
        }
        entry.log_end_offset = fetch_offset;
        entry.leader_end_at_last_fetch = leader_end;
        entry.last_fetch_ms = now;
    }
    recompute_high_watermark(replica)
}

/// Kafka's delayed produce: done when the high watermark passes `last_offset` (every ISR
/// member holds it), REQUEST_TIMED_OUT after `timeout`, NOT_LEADER_OR_FOLLOWER once the
/// records are truncated away (this node lost leadership and them with it). The ISR that
/// moved the high watermark there must still have `min_insync` members, or the records (which
/// stay in the log) are answered NOT_ENOUGH_REPLICAS_AFTER_APPEND: fewer copies than asked
/// for may hold them.
pub async fn wait_replicated(
    broker: &Broker,
    replica: &Replica,
    last_offset: i64,
    timeout: Duration,
    min_insync: usize,
) -> Result<(), ResponseError> {
    let deadline = Instant::now() + timeout;
    let mut changes = broker.subscribe_appends();
    loop {
        changes.borrow_and_update();
        if replica.high_watermark() > last_offset {
            // The ISR read after the high watermark: a shrink installs the smaller ISR before
            // it lets the high watermark pass the followers that left, and a follower joins
            // only holding everything below the high watermark, so every member read now
            // holds these records.
            let isr_size = match &replica.progress().role {
                Role::Leader { isr, .. } => Some(isr.len()),
                _ => None,
            };
            return match isr_size {
                Some(size) if size >= min_insync => Ok(()),
                Some(_) => Err(ResponseError::NotEnoughReplicasAfterAppend),
                None => Err(ResponseError::NotLeaderOrFollower),
            };
        }
        if replica.log.log_end_offset() <= last_offset {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Err(ResponseError::RequestTimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_storage::{Log, LogConfig};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_follower_is_told_each_high_watermark_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), LogConfig::default(), 0, 0).unwrap();
        let replica = Replica::new(log, "t".into(), Uuid::nil(), 0);
        let isr = vec![1, 2];
        {
            let mut progress = replica.progress();
            progress.role = Role::Leader {
                leader_epoch: 0,
                partition_epoch: 0,
                isr: isr.clone(),
            };
            become_leader(&replica, &mut progress, 0, &isr, 1);
        }
        assert!(high_watermark_news(&replica, 2, 0));
        assert!(!high_watermark_news(&replica, 2, 0));
        assert!(high_watermark_news(&replica, 2, 7));
        assert!(!high_watermark_news(&replica, 2, 5));
        // Not a follower this leader knows.
        assert!(!high_watermark_news(&replica, 3, 9));
    }
}
