//! The balancer's plans on small images, applied until nothing is left to move.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::image::{MetadataDelta, MetadataRecord};

fn broker(broker_id: BrokerId, rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id: Uuid::from_u128(broker_id as u128),
        listeners: vec![],
        rack: rack.map(str::to_string),
        fenced: false,
    }
}

/// A topic with the given replica lists (leader = first replica, ISR = all).
fn topic(topic_id: u128, name: &str, assignment: &[Vec<BrokerId>]) -> Vec<MetadataRecord> {
    let topic_id = Uuid::from_u128(topic_id);
    let mut records = vec![MetadataRecord::Topic {
        topic_id,
        name: name.into(),
    }];
    for (index, replicas) in assignment.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic_id,
            partition_index: index as i32,
            replicas: replicas.clone(),
            isr: replicas.clone(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    records
}

fn image_of(records: &[MetadataRecord]) -> MetadataImage {
    let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
    for record in records {
        delta.replay(record).unwrap();
    }
    delta.apply()
}

/// Applies moves as completed reassignments (the new replica list, leader = first).
fn apply_moves(image: &MetadataImage, moves: &[Move]) -> MetadataImage {
    let records: Vec<MetadataRecord> = image
        .to_records()
        .into_iter()
        .map(|record| match record {
            MetadataRecord::Partition {
                topic_id,
                partition_index,
                leader_epoch,
                partition_epoch,
                ..
            } => match moves
                .iter()
                .find(|m| m.topic_id == topic_id && m.partition_index == partition_index)
            {
                Some(step) => MetadataRecord::Partition {
                    topic_id,
                    partition_index,
                    replicas: step.replicas.clone(),
                    isr: step.replicas.clone(),
                    leader: step.replicas[0],
                    leader_epoch: leader_epoch + 1,
                    partition_epoch: partition_epoch + 1,
                },
                None => record,
            },
            other => other,
        })
        .collect();
    image_of(&records)
}

/// Plans and applies until the plan is empty; returns the final image and the move count.
fn settle(mut image: MetadataImage, draining: &BTreeSet<BrokerId>) -> (MetadataImage, usize) {
    let moving = BTreeSet::new();
    let mut total = 0;
    for _ in 0..100 {
        let input = BalanceInput {
            loads: None,
            draining,
            moving: &moving,
            moves_max: 4,
        };
        let moves = plan_moves(&image, &input);
        if moves.is_empty() {
            return (image, total);
        }
        total += moves.len();
        image = apply_moves(&image, &moves);
    }
    panic!("the balancer never settles");
}

fn counts(image: &MetadataImage) -> (BTreeMap<BrokerId, usize>, BTreeMap<BrokerId, usize>) {
    let mut replicas = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    for topic in image.topics.by_id.values() {
        for partition in topic.partitions.values() {
            for id in &partition.replicas {
                *replicas.entry(*id).or_insert(0) += 1;
            }
            *leaders.entry(partition.replicas[0]).or_insert(0) += 1;
        }
    }
    (replicas, leaders)
}

fn assert_within_one(counts: &BTreeMap<BrokerId, usize>, brokers: &[BrokerId]) {
    let values: Vec<usize> = brokers
        .iter()
        .map(|id| counts.get(id).copied().unwrap_or(0))
        .collect();
    let (min, max) = (values.iter().min().unwrap(), values.iter().max().unwrap());
    assert!(max - min <= 1, "{counts:?}");
}

/// 12 partitions, RF 3, on brokers 1..=3, leaders rotating.
fn three_broker_topic() -> Vec<MetadataRecord> {
    let assignment: Vec<Vec<BrokerId>> = (0..12)
        .map(|p| (0..3).map(|r| (p + r) % 3 + 1).collect())
        .collect();
    topic(1, "t", &assignment)
}

#[test]
fn a_new_broker_gets_an_even_share_of_replicas_and_leaders() {
    let mut records = vec![broker(1, None), broker(2, None), broker(3, None)];
    records.extend(three_broker_topic());
    records.push(broker(4, None));
    let (image, moves) = settle(image_of(&records), &BTreeSet::new());
    let (replicas, leaders) = counts(&image);
    assert_eq!(replicas, BTreeMap::from([(1, 9), (2, 9), (3, 9), (4, 9)]));
    assert_within_one(&leaders, &[1, 2, 3, 4]);
    assert_eq!(leaders[&4], 3, "{leaders:?}");
    // 9 replicas had to move to node 4; leader reorders come on top.
    assert!(moves >= 9, "{moves}");
    // Every partition still has 3 distinct replicas.
    for partition in image
        .topics
        .by_id
        .values()
        .flat_map(|t| t.partitions.values())
    {
        let distinct: BTreeSet<_> = partition.replicas.iter().collect();
        assert_eq!(distinct.len(), 3, "{partition:?}");
    }
}

#[test]
fn a_balanced_cluster_plans_nothing() {
    let mut records = vec![broker(1, None), broker(2, None), broker(3, None)];
    records.extend(three_broker_topic());
    let (_, moves) = settle(image_of(&records), &BTreeSet::new());
    assert_eq!(moves, 0);
}

#[test]
fn a_draining_broker_is_emptied_onto_the_others() {
    let mut records = vec![
        broker(1, None),
        broker(2, None),
        broker(3, None),
        broker(4, None),
    ];
    let assignment: Vec<Vec<BrokerId>> = (0..12)
        .map(|p| (0..2).map(|r| (p + r) % 4 + 1).collect())
        .collect();
    records.extend(topic(1, "t", &assignment));
    let draining = BTreeSet::from([2]);
    let (image, _) = settle(image_of(&records), &draining);
    let (replicas, leaders) = counts(&image);
    assert_eq!(replicas.get(&2), None, "{replicas:?}");
    assert_eq!(replicas.values().sum::<usize>(), 24);
    assert_within_one(&replicas, &[1, 3, 4]);
    assert_within_one(&leaders, &[1, 3, 4]);
}

#[test]
fn moves_keep_partitions_on_both_racks() {
    let mut records = vec![
        broker(1, Some("a")),
        broker(2, Some("b")),
        broker(3, Some("a")),
        broker(4, Some("b")),
    ];
    let assignment: Vec<Vec<BrokerId>> = (0..8)
        .map(|p| if p % 2 == 0 { vec![1, 2] } else { vec![2, 1] })
        .collect();
    records.extend(topic(1, "t", &assignment));
    let (image, _) = settle(image_of(&records), &BTreeSet::new());
    let (replicas, _) = counts(&image);
    assert_within_one(&replicas, &[1, 2, 3, 4]);
    for partition in image
        .topics
        .by_id
        .values()
        .flat_map(|t| t.partitions.values())
    {
        let racks: BTreeSet<Option<String>> = partition
            .replicas
            .iter()
            .map(|id| image.cluster.broker(*id).unwrap().rack.clone())
            .collect();
        assert_eq!(racks.len(), 2, "{partition:?}");
    }
}

#[test]
fn the_hot_partition_is_moved_first_and_moving_ones_are_left_alone() {
    let records = {
        let mut records = vec![broker(1, None), broker(2, None)];
        let assignment: Vec<Vec<BrokerId>> = (0..4).map(|_| vec![1]).collect();
        records.extend(topic(1, "t", &assignment));
        records
    };
    let image = image_of(&records);
    let topic_id = Uuid::from_u128(1);
    // Moving p2 leaves the two brokers closest to even (1.7 MB/s in all).
    let loads = PartitionLoads::from([
        ((topic_id, 1), 100_000),
        ((topic_id, 2), 1_000_000),
        ((topic_id, 3), 600_000),
    ]);
    let none = BTreeSet::new();
    let not_moving = BTreeSet::new();
    let input = BalanceInput {
        loads: Some(&loads),
        draining: &none,
        moving: &not_moving,
        moves_max: 1,
    };
    let moves = plan_moves(&image, &input);
    assert_eq!(
        moves,
        vec![Move {
            topic_id,
            topic: "t".into(),
            partition_index: 2,
            replicas: vec![2],
        }]
    );
    let moving = BTreeSet::from([(topic_id, 2)]);
    let input = BalanceInput {
        loads: Some(&loads),
        draining: &none,
        moving: &moving,
        moves_max: 4,
    };
    let moves = plan_moves(&image, &input);
    // p2 still counts on broker 1 while it moves: two more even the counts out (2 and 2).
    assert!(moves.iter().all(|m| m.partition_index != 2), "{moves:?}");
    assert_eq!(moves.len(), 2, "{moves:?}");
}

#[test]
fn leaders_away_from_their_preferred_replica_are_found() {
    let mut records = vec![broker(1, None), broker(2, None)];
    records.extend(topic(1, "t", &[vec![1, 2], vec![2, 1]]));
    records.push(MetadataRecord::PartitionChange {
        topic_id: Uuid::from_u128(1),
        partition_index: 0,
        leader: Some(2),
        isr: None,
    });
    let image = image_of(&records);
    assert_eq!(
        preferred_leader_drift(&image),
        vec![(Uuid::from_u128(1), 0)]
    );
}

#[test]
fn leaders_even_out_when_the_extremes_share_no_partition() {
    let mut records = vec![
        broker(1, None),
        broker(2, None),
        broker(3, None),
        broker(4, None),
    ];
    // Node 1 leads three partitions shared only with node 3; node 4 leads nothing.
    let assignment = vec![vec![1, 3], vec![1, 3], vec![1, 3], vec![2, 4], vec![2, 4]];
    records.extend(topic(1, "t", &assignment));
    let (image, _) = settle(image_of(&records), &BTreeSet::new());
    let (replicas, leaders) = counts(&image);
    assert_within_one(&leaders, &[1, 2, 3, 4]);
    assert_within_one(&replicas, &[1, 2, 3, 4]);
}
