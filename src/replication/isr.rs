//! The leader's ISR upkeep: followers that fell behind for `--replica-lag-time-max-ms` leave
//! the ISR; followers that caught up with the high watermark and with the start of the
//! leader's epoch join it again. Both go through the controller (AlterPartition), so the ISR
//! in the image is the one that counts.

use std::sync::Arc;
use std::time::Duration;

use sluice_raft::controller::{AlterPartitionRequest, Operation, OperationResponse};

use crate::broker::{now_ms, Broker, Replica, Role};

/// How often leaders look at their followers' progress.
const ISR_CHECK_INTERVAL: Duration = Duration::from_millis(250);

pub fn spawn_isr_maintenance(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(ISR_CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let topics = broker.topics();
            for replica in topics.local_replicas() {
                if let Some(request) = isr_change(&broker, replica) {
                    propose(&broker, replica, request).await;
                }
            }
        }
    })
}

/// The AlterPartition this leader should ask for now, if any.
fn isr_change(broker: &Broker, replica: &Replica) -> Option<AlterPartitionRequest> {
    let lag_max_ms = i64::try_from(broker.config.replica_lag_time_max_ms).unwrap_or(i64::MAX);
    let node = broker.node_id();
    let now = now_ms();
    // Under the progress lock, like every high watermark move: a follower judged caught up
    // here is counted by the high watermark before it can move again.
    let mut progress = replica.progress();
    let high_watermark = replica.high_watermark();
    let Role::Leader {
        leader_epoch,
        partition_epoch,
        isr,
    } = &progress.role
    else {
        return None;
    };
    if progress.isr_change_pending {
        return None;
    }
    let topics = broker.topics();
    let registration = &topics
        .by_id
        .get(&replica.topic_id)?
        .partition(replica.index)?
        .registration;
    let mut new_isr: Vec<i32> = isr
        .iter()
        .copied()
        .filter(|member| {
            *member == node
                || progress
                    .followers
                    .get(member)
                    .is_some_and(|f| now - f.last_caught_up_ms <= lag_max_ms)
        })
        .collect();
    let rejoin_offset = high_watermark.max(progress.leader_epoch_start_offset);
    for follower in &registration.replicas {
        let caught_up = progress.followers.get(follower).is_some_and(|f| {
            f.log_end_offset >= rejoin_offset && now - f.last_caught_up_ms <= lag_max_ms
        });
        let active = topics.metadata.cluster.is_active(*follower);
        if !new_isr.contains(follower) && caught_up && active {
            new_isr.push(*follower);
        }
    }
    if new_isr == *isr {
        return None;
    }
    let joining: Vec<i32> = new_isr
        .iter()
        .copied()
        .filter(|member| !isr.contains(member))
        .collect();
    let request = AlterPartitionRequest {
        broker_id: node,
        incarnation_id: broker.incarnation_id,
        topic_id: replica.topic_id,
        partition_index: replica.index,
        leader_epoch: *leader_epoch,
        partition_epoch: *partition_epoch,
        new_isr,
    };
    progress.isr_change_pending = true;
    progress.isr_joining = joining;
    Some(request)
}

async fn propose(broker: &Broker, replica: &Replica, request: AlterPartitionRequest) {
    tracing::info!(
        topic = %replica.topic,
        partition = replica.index,
        new_isr = ?request.new_isr,
        "asking to change the ISR"
    );
    let old_isr = match &replica.progress().role {
        Role::Leader { isr, .. } => isr.clone(),
        _ => Vec::new(),
    };
    let new_isr = request.new_isr.clone();
    let outcome = broker.submit(Operation::AlterPartition(request)).await;
    match outcome {
        // The joiners stay counted until the new ISR reaches this replica's role.
        Ok(OperationResponse::AlterPartition(answer)) if answer.error_code == 0 => {
            if old_isr.iter().any(|member| !new_isr.contains(member)) {
                broker.metrics.isr_shrinks.inc();
            }
            if new_isr.iter().any(|member| !old_isr.contains(member)) {
                broker.metrics.isr_expands.inc();
            }
        }
        other => {
            tracing::warn!(?other, topic = %replica.topic, "ISR change refused");
            replica.progress().isr_joining.clear();
        }
    }
    // The applied change (or none) reaches the replica through the image; allow a new try.
    replica.progress().isr_change_pending = false;
}
