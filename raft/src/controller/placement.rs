//! Replica placement: spread partitions' replicas evenly over active brokers, and over racks.

use std::collections::BTreeMap;

use crate::image::{BrokerId, ClusterImage};

/// Active brokers ordered so that neighbours sit on different racks when racks are set:
/// one broker of each rack in turn (Kafka's rack-alternated list). Brokers without a rack form
/// one more group of their own.
pub fn rack_alternated_brokers(cluster: &ClusterImage) -> Vec<BrokerId> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
    for broker in cluster.brokers.values().filter(|broker| !broker.fenced) {
        by_rack
            .entry(broker.rack.as_deref())
            .or_default()
            .push(broker.broker_id);
    }
    let rounds = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut ordered = Vec::new();
    for round in 0..rounds {
        for brokers in by_rack.values() {
            if let Some(broker_id) = brokers.get(round) {
                ordered.push(*broker_id);
            }
        }
    }
    assert_eq!(ordered.len(), cluster.active_broker_ids().len());
    ordered
}

/// Replicas of `partition_count` partitions, `replication_factor` each. Partition `p` takes
/// `replication_factor` consecutive brokers from the rack-alternated list starting at
/// `start + p`, so leaders (first replicas) rotate over brokers and each replica set spans as
/// many racks as it can. `start` varies per topic so that small topics do not all pile up on
/// the lowest broker ids.
pub fn place_replicas(
    brokers: &[BrokerId],
    partition_count: usize,
    replication_factor: usize,
    start: usize,
) -> Vec<Vec<BrokerId>> {
    assert!(replication_factor > 0);
    assert!(replication_factor <= brokers.len(), "checked by the caller");
    (0..partition_count)
        .map(|partition| {
            (0..replication_factor)
                .map(|replica| brokers[(start + partition + replica) % brokers.len()])
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerRegistration;
    use uuid::Uuid;

    fn cluster(racks: &[(BrokerId, Option<&str>, bool)]) -> ClusterImage {
        let mut cluster = ClusterImage::default();
        for (broker_id, rack, fenced) in racks {
            cluster.brokers.insert(
                *broker_id,
                BrokerRegistration {
                    broker_id: *broker_id,
                    incarnation_id: Uuid::nil(),
                    listeners: vec![],
                    rack: rack.map(str::to_string),
                    fenced: *fenced,
                    admission: crate::image::Admission::Admitted,
                },
            );
        }
        cluster
    }

    #[test]
    fn racks_alternate_and_fenced_brokers_are_skipped() {
        let cluster = cluster(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
            (5, Some("c"), true),
            (6, Some("c"), false),
        ]);
        assert_eq!(rack_alternated_brokers(&cluster), vec![1, 3, 6, 2, 4]);
    }

    #[test]
    fn leaders_rotate_and_replica_sets_span_racks() {
        let cluster = cluster(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
            (4, Some("b"), false),
        ]);
        let brokers = rack_alternated_brokers(&cluster);
        let placement = place_replicas(&brokers, 4, 2, 0);
        assert_eq!(
            placement,
            vec![vec![1, 3], vec![3, 2], vec![2, 4], vec![4, 1]]
        );
        let racks = |id: BrokerId| if id <= 2 { "a" } else { "b" };
        for replicas in &placement {
            assert_ne!(racks(replicas[0]), racks(replicas[1]));
        }
    }
}
