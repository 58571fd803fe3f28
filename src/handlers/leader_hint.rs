//! KIP-951: a Produce or Fetch answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH names
//! the partition's current leader and epoch, and the response carries that leader's endpoint,
//! so a client moves to the new leader without first refreshing its metadata.

use kafka_protocol::ResponseError;

use crate::broker::{Partition, TopicsImage};

/// Produce carries the hint from v10 on.
pub const PRODUCE_VERSION_MIN: i16 = 10;
/// Fetch carries the leader endpoints from v16 on (Kafka fills the hint only from there).
pub const FETCH_VERSION_MIN: i16 = 16;

/// The leader a client should go to instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The leader's advertised endpoint, when the image knows one.
    pub endpoint: Option<LeaderEndpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEndpoint {
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Whether an answer with `error_code` carries a leader hint.
pub fn wanted_for(error_code: i16) -> bool {
    error_code == ResponseError::NotLeaderOrFollower.code()
        || error_code == ResponseError::FencedLeaderEpoch.code()
}

/// The current leader of `partition` as `image` knows it.
pub fn leader_hint(image: &TopicsImage, partition: &Partition, listener_name: &str) -> LeaderHint {
    let registration = &partition.registration;
    let endpoint = image
        .metadata
        .cluster
        .broker(registration.leader)
        .and_then(|broker| {
            let listener = crate::net::listeners::listener_named(&broker.listeners, listener_name)?;
            Some(LeaderEndpoint {
                host: listener.host.clone(),
                port: i32::from(listener.port),
                rack: broker.rack.clone(),
            })
        });
    LeaderHint {
        leader_id: registration.leader,
        leader_epoch: registration.leader_epoch,
        endpoint,
    }
}
