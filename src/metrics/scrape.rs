//! Gauges computed when /metrics is scraped, from the topics image, the partition logs and
//! the group coordinator: nothing on the request path maintains them.

use std::collections::HashMap;

use sluice_raft::image::{Admission, LEADER_NONE};

use super::{BrokerLabels, LagLabels, Metrics, PartitionLabels, LAG_GROUPS_EXPORTED_MAX};
use crate::broker::{Broker, TopicsImage};

/// A committed offset: topic, partition, offset.
type CommittedAt = (String, i32, i64);

pub(super) fn refresh(metrics: &Metrics, broker: &Broker) {
    let topics = broker.topics();
    refresh_partitions(metrics, broker.node_id(), &topics);
    refresh_admission(metrics, &topics);
    refresh_lag(metrics, broker, &topics);
}

fn refresh_partitions(metrics: &Metrics, node: i32, topics: &TopicsImage) {
    let mut under_replicated = 0i64;
    let mut offline = 0i64;
    let mut reassigning = 0i64;
    metrics.log_size.clear();
    for topic in topics.by_name.values() {
        for partition in &topic.partitions {
            let registration = &partition.registration;
            if registration.is_reassigning() {
                reassigning += 1;
            }
            if registration.leader == node && registration.isr.len() < registration.replicas.len() {
                under_replicated += 1;
            }
            let Some(replica) = &partition.replica else {
                continue;
            };
            if registration.leader == LEADER_NONE {
                offline += 1;
            }
            let labels = PartitionLabels {
                topic: topic.name.clone(),
                partition: partition.index,
            };
            let size = i64::try_from(replica.log.size_bytes()).unwrap_or(i64::MAX);
            metrics.log_size.get_or_create(&labels).set(size);
        }
    }
    metrics.under_replicated_partitions.set(under_replicated);
    metrics.offline_partitions.set(offline);
    metrics.partitions_reassigning.set(reassigning);
    let queued = topics.metadata.topics.queued_reassignments.len();
    metrics
        .partitions_reassignment_queued
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
}

fn refresh_admission(metrics: &Metrics, topics: &TopicsImage) {
    metrics.broker_admission_refused.clear();
    for (broker_id, registration) in &topics.metadata.cluster.brokers {
        let refused = matches!(registration.admission, Admission::Refused(_));
        let labels = BrokerLabels {
            broker_id: *broker_id,
        };
        metrics
            .broker_admission_refused
            .get_or_create(&labels)
            .set(i64::from(refused));
    }
}

/// Lag = the partition's high watermark (what a consumer can read up to) minus the group's
/// committed offset, for partitions this node holds a replica of (it knows their high
/// watermark); others are left to the nodes that hold them.
fn refresh_lag(metrics: &Metrics, broker: &Broker, topics: &TopicsImage) {
    metrics.consumer_lag.clear();
    let mut high_watermarks: HashMap<(&str, i32), i64> = HashMap::new();
    for topic in topics.by_name.values() {
        for partition in &topic.partitions {
            if let Some(replica) = &partition.replica {
                high_watermarks.insert(
                    (topic.name.as_str(), partition.index),
                    replica.high_watermark(),
                );
            }
        }
    }
    for (group, offsets) in committed_offsets(broker) {
        for (topic, partition, committed) in offsets {
            let Some(&end) = high_watermarks.get(&(topic.as_str(), partition)) else {
                continue;
            };
            let labels = LagLabels {
                group: group.clone(),
                topic,
                partition,
            };
            metrics
                .consumer_lag
                .get_or_create(&labels)
                .set((end - committed).max(0));
        }
    }
}

/// Committed offsets of the groups this node coordinates, first [`LAG_GROUPS_EXPORTED_MAX`]
/// by id. The only place metrics read group state: offsets come from the coordinator's
/// in-memory view (what OffsetFetch answers with), loaded from `__consumer_offsets`.
fn committed_offsets(broker: &Broker) -> Vec<(String, Vec<CommittedAt>)> {
    // `list` answers only the groups this node coordinates.
    let listings = broker.groups.list();
    listings
        .into_iter()
        .take(LAG_GROUPS_EXPORTED_MAX)
        .filter_map(|listing| {
            let offsets = broker.groups.fetch_offsets(&listing.group_id, None).ok()?;
            let offsets = offsets
                .into_iter()
                .filter_map(|(topic, partition, committed)| {
                    committed.map(|c| (topic, partition, c.offset))
                })
                .collect();
            Some((listing.group_id, offsets))
        })
        .collect()
}
