//! The balancer, on the active controller: every `--balancer-interval-ms` it plans moves
//! (`sluice_raft::controller::balance`) that spread replicas and preferred leaders evenly over
//! the active brokers, empties brokers marked `sluice.drain=true`, and submits them as
//! reassignments (it starts new ones only while fewer than `--reassignment-moves-max` run or
//! wait; each is throttled by the reassignment throttle while it catches up). Leaders that drifted off their preferred
//! replica after a failover are moved back by a preferred election.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_raft::controller::balance::{plan_moves, preferred_leader_drift, BalanceInput};
use sluice_raft::controller::{
    AlterReassignmentsRequest, ElectLeadersRequest, ElectionType, Operation, PartitionLoad,
    ReassignmentTarget, PARTITION_LOADS_MAX,
};
use sluice_raft::image::{BrokerId, ConfigResource, MetadataImage};

use crate::broker::{Broker, Role};
use crate::handlers::throttle_configs::DRAIN;

/// Runs on every node; only the active controller plans anything.
pub fn spawn(broker: Arc<Broker>) -> Option<tokio::task::JoinHandle<()>> {
    let interval_ms = broker.config.balancer_interval_ms;
    if interval_ms == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if broker.quorum.leader_id() == Some(broker.quorum.node_id()) {
                balance_once(&broker).await;
            }
        }
    }))
}

async fn balance_once(broker: &Broker) {
    let image = broker.quorum.image();
    let draining = draining_brokers(&image);
    let moving = moving_partitions(&image);
    let room = broker
        .config
        .reassignment_moves_max
        .saturating_sub(moving.len());
    let loads = broker.quorum.partition_loads();
    let input = BalanceInput {
        loads: Some(&loads),
        draining: &draining,
        moving: &moving,
        moves_max: room,
    };
    let moves = plan_moves(&image, &input);
    if !moves.is_empty() {
        tracing::info!(
            moves = moves.len(),
            running = moving.len(),
            "balancer: moving partitions"
        );
        let targets = moves
            .into_iter()
            .map(|step| ReassignmentTarget {
                topic: step.topic,
                partition_index: step.partition_index,
                replicas: Some(step.replicas),
            })
            .collect();
        let request = AlterReassignmentsRequest {
            targets,
            allow_replication_factor_change: false,
        };
        let submitted = targets_len(&request);
        match broker
            .quorum
            .propose(Operation::AlterReassignments(request))
            .await
        {
            Ok(_) => {
                broker.metrics.balancer_moves.inc_by(submitted);
            }
            Err(error) => tracing::warn!(%error, "balancer: submitting moves failed"),
        }
    }
    let drifted: Vec<_> = preferred_leader_drift(&image)
        .into_iter()
        .filter(|partition| !moving.contains(partition))
        .collect();
    if !drifted.is_empty() {
        tracing::info!(
            partitions = drifted.len(),
            "balancer: preferred leader elections"
        );
        let drifted_len = drifted.len();
        let request = ElectLeadersRequest {
            election_type: ElectionType::Preferred,
            partitions: Some(drifted),
        };
        let count = drifted_len as u64;
        match broker
            .quorum
            .propose(Operation::ElectLeaders(request))
            .await
        {
            Ok(_) => {
                broker.metrics.balancer_preferred_elections.inc_by(count);
            }
            Err(error) => tracing::warn!(%error, "balancer: preferred elections failed"),
        }
    }
}

fn targets_len(request: &AlterReassignmentsRequest) -> u64 {
    u64::try_from(request.targets.len()).unwrap_or(u64::MAX)
}

/// Brokers whose `sluice.drain` config is `true`.
pub fn draining_brokers(image: &MetadataImage) -> BTreeSet<BrokerId> {
    image
        .configs
        .resources
        .iter()
        .filter_map(|(resource, configs)| match resource {
            ConfigResource::Broker(id)
                if configs.get(DRAIN).map(String::as_str) == Some("true") =>
            {
                Some(*id)
            }
            _ => None,
        })
        .collect()
}

/// Partitions moving or queued to move.
fn moving_partitions(image: &MetadataImage) -> BTreeSet<(uuid::Uuid, i32)> {
    let running = image.topics.by_id.values().flat_map(|topic| {
        topic
            .partitions
            .iter()
            .filter(|(_, partition)| partition.is_reassigning())
            .map(|(index, _)| (topic.topic_id, *index))
    });
    running
        .chain(image.topics.queued_reassignments.keys().copied())
        .collect()
}

/// Turns the led replicas' traffic counters into rates between two heartbeats.
#[derive(Debug, Default)]
pub struct LoadSampler {
    previous: HashMap<(uuid::Uuid, i32), (u64, Instant)>,
}

impl LoadSampler {
    /// Bytes/s of every partition this node leads since the last sample (the busiest
    /// [`PARTITION_LOADS_MAX`]); a partition seen for the first time reports nothing yet.
    pub fn sample(&mut self, broker: &Broker) -> Vec<PartitionLoad> {
        let now = Instant::now();
        let topics = broker.topics();
        let mut next = HashMap::new();
        let mut loads = Vec::new();
        for replica in topics.local_replicas() {
            if !matches!(replica.progress().role, Role::Leader { .. }) {
                continue;
            }
            let key = (replica.topic_id, replica.index);
            let total = replica.traffic_bytes();
            if let Some((before, at)) = self.previous.get(&key) {
                let elapsed_ms = now.duration_since(*at).as_millis().max(1);
                let bytes = u128::from(total.saturating_sub(*before));
                let rate = u64::try_from(bytes * 1000 / elapsed_ms).unwrap_or(u64::MAX);
                if rate > 0 {
                    loads.push(PartitionLoad {
                        topic_id: replica.topic_id,
                        partition_index: replica.index,
                        bytes_per_sec: rate,
                    });
                }
            }
            next.insert(key, (total, now));
        }
        self.previous = next;
        loads.sort_by_key(|load| std::cmp::Reverse(load.bytes_per_sec));
        loads.truncate(PARTITION_LOADS_MAX);
        loads
    }
}
