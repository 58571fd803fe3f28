//! Fetch from follower (KIP-392): which replica serves a consumer's Fetch.
//!
//! The leader answers a consumer whose `rack_id` (client.rack) differs from its own rack with
//! `preferred_read_replica`, an in-sync follower in the client's rack (Kafka's
//! `RackAwareReplicaSelector`), and no records; the consumer then fetches from that
//! follower. A follower serves consumers (Fetch v11+, the versions that carry client
//! metadata) up to the high watermark it learned from its leader's fetch responses.

use std::sync::Arc;

use kafka_protocol::ResponseError;

use crate::broker::{check_epoch, Partition, Replica, Role, TopicsImage};

/// Fetch v11 added `rack_id` and `preferred_read_replica`: older consumers only read from
/// leaders (Kafka's `fetchOnlyLeader` when there is no client metadata).
pub const FETCH_VERSION_MIN: i16 = 11;

/// Who this node is for a partition a Fetch asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    Leader,
    /// A follower serving a consumer, up to its own high watermark.
    Follower,
}

/// This node's replica of `partition`, if it may serve the fetch: the leader serves everyone;
/// a follower serves consumers (`replica_id` < 0) on Fetch v11+. Errors as Kafka's
/// `getPartitionOrError` and leader epoch check.
pub fn serving_replica(
    partition: &Partition,
    node_id: i32,
    current_leader_epoch: i32,
    follower_may_serve: bool,
) -> Result<(&Arc<Replica>, Serving), ResponseError> {
    if partition.registration.leader == node_id {
        let replica = partition.leader_replica(node_id, current_leader_epoch)?;
        return Ok((replica, Serving::Leader));
    }
    let replica = match &partition.replica {
        Some(replica)
            if follower_may_serve && partition.registration.replicas.contains(&node_id) =>
        {
            replica
        }
        _ => return Err(ResponseError::NotLeaderOrFollower),
    };
    check_epoch(current_leader_epoch, partition.registration.leader_epoch)?;
    // The image may name this node a follower before the replication task took the role over
    // (or after the leader left): only a running follower knows a high watermark to serve.
    if !matches!(replica.progress().role, Role::Follower { .. }) {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    Ok((replica, Serving::Follower))
}

/// A replica the leader could send a consumer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub broker_id: i32,
    pub rack: Option<&'a str>,
    pub log_end_offset: i64,
}

/// Leader: the replica a consumer in `client_rack` should read `fetch_offset` from, when it is
/// not this leader. Candidates are unfenced ISR followers that already hold `fetch_offset`.
pub fn preferred_read_replica(
    image: &TopicsImage,
    partition: &Partition,
    replica: &Replica,
    node_id: i32,
    client_rack: &str,
    fetch_offset: i64,
) -> Option<i32> {
    if client_rack.is_empty() {
        return None;
    }
    let cluster = &image.metadata.cluster;
    let rack_of = |id: i32| cluster.broker(id).and_then(|b| b.rack.as_deref());
    let progress = replica.progress();
    let candidates: Vec<Candidate<'_>> = partition
        .registration
        .isr
        .iter()
        .filter(|id| **id != node_id && cluster.is_active(**id))
        .filter_map(|id| {
            let follower = progress.followers.get(id)?;
            Some(Candidate {
                broker_id: *id,
                rack: rack_of(*id),
                log_end_offset: follower.log_end_offset,
            })
        })
        .filter(|candidate| candidate.log_end_offset >= fetch_offset)
        .collect();
    drop(progress);
    select(rack_of(node_id), &candidates, client_rack)
}

/// Kafka's `RackAwareReplicaSelector`: the leader when it is in the client's rack; else the
/// replica in that rack with the most data (lowest id on a tie, so answers are stable);
/// else the leader (None).
pub fn select(
    leader_rack: Option<&str>,
    candidates: &[Candidate<'_>],
    client_rack: &str,
) -> Option<i32> {
    if leader_rack == Some(client_rack) {
        return None;
    }
    candidates
        .iter()
        .filter(|candidate| candidate.rack == Some(client_rack))
        .max_by(|a, b| {
            a.log_end_offset
                .cmp(&b.log_end_offset)
                .then(b.broker_id.cmp(&a.broker_id))
        })
        .map(|candidate| candidate.broker_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(broker_id: i32, rack: &str, log_end_offset: i64) -> Candidate<'_> {
        Candidate {
            broker_id,
            rack: Some(rack),
            log_end_offset,
        }
    }

    #[test]
    fn a_client_in_the_leaders_rack_reads_from_the_leader() {
        let candidates = [candidate(2, "a", 10)];
        assert_eq!(select(Some("a"), &candidates, "a"), None);
    }

    #[test]
    fn a_client_in_a_followers_rack_is_sent_to_that_follower() {
        let candidates = [candidate(2, "b", 10), candidate(3, "c", 10)];
        assert_eq!(select(Some("a"), &candidates, "c"), Some(3));
        assert_eq!(select(None, &candidates, "b"), Some(2));
    }

    #[test]
    fn the_follower_with_most_data_wins_then_the_lowest_id() {
        let candidates = [
            candidate(4, "b", 10),
            candidate(2, "b", 10),
            candidate(3, "b", 9),
        ];
        assert_eq!(select(Some("a"), &candidates, "b"), Some(2));
        let candidates = [candidate(2, "b", 9), candidate(3, "b", 10)];
        assert_eq!(select(Some("a"), &candidates, "b"), Some(3));
    }

    #[test]
    fn a_rack_without_a_candidate_reads_from_the_leader() {
        let candidates = [
            candidate(2, "b", 10),
            Candidate {
                broker_id: 3,
                rack: None,
                log_end_offset: 10,
            },
        ];
        assert_eq!(select(Some("a"), &candidates, "z"), None);
    }
}
