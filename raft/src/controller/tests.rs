//! Controller operations against small images, with exact records and responses.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::image::{
    Admission, ConfigResource, Listener, MetadataDelta, MetadataImage, PartitionRegistration,
    LEADER_NONE,
};

fn incarnation(broker_id: i32) -> Uuid {
    Uuid::from_u128(1000 + broker_id as u128)
}

fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    let mut delta = MetadataDelta::new(Arc::new(image.clone()));
    for record in records {
        delta.replay(record).unwrap();
    }
    delta.apply()
}

/// Brokers 1..=count, registered and unfenced.
fn cluster(count: i32) -> MetadataImage {
    let mut image = MetadataImage::empty();
    for broker_id in 1..=count {
        let request = RegisterBrokerRequest {
            broker_id,
            incarnation_id: incarnation(broker_id),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + broker_id as u16,
            }],
            rack: None,
        };
        image = apply(&image, &register_broker(&image, &request).records);
        image = apply(
            &image,
            &heartbeat(
                &image,
                &beat(broker_id, false),
                &ControllerConfig::default(),
            )
            .records,
        );
    }
    image
}

fn beat(broker_id: i32, want_fence: bool) -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest {
        broker_id,
        incarnation_id: incarnation(broker_id),
        want_fence,
        want_shutdown: false,
        partition_loads: vec![],
    }
}

fn topic(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor,
        assignments: BTreeMap::new(),
        configs: BTreeMap::new(),
    }
}

fn create(
    image: &MetadataImage,
    topics: Vec<CreatableTopic>,
) -> ControllerResult<Vec<CreatedTopic>> {
    let request = CreateTopicsRequest {
        topics,
        validate_only: false,
    };
    let mut next_id = 0u128;
    create_topics(image, &request, &ControllerConfig::default(), &mut || {
        next_id += 1;
        Uuid::from_u128(next_id)
    })
}

#[test]
fn create_topics_spreads_replicas_and_writes_exact_records() {
    let image = cluster(3);
    let mut with_config = topic("orders", 3, 2);
    with_config
        .configs
        .insert("retention.ms".into(), "1000".into());
    let result = create(&image, vec![with_config]);
    let id = Uuid::from_u128(1);
    let partition = |index: i32, replicas: Vec<i32>| MetadataRecord::Partition {
        topic_id: id,
        partition_index: index,
        leader: replicas[0],
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    };
    assert_eq!(
        result.records,
        vec![
            MetadataRecord::Topic {
                topic_id: id,
                name: "orders".into()
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            partition(0, vec![1, 2]),
            partition(1, vec![2, 3]),
            partition(2, vec![3, 1]),
        ]
    );
    assert_eq!(result.response[0].error_code, error_code::NONE);
    assert_eq!(result.response[0].topic_id, id);
    assert_eq!(result.response[0].num_partitions, 3);
    assert_eq!(result.response[0].replication_factor, 2);
}

#[test]
fn create_topics_refuses_bad_requests_per_topic() {
    let image = cluster(2);
    let image = apply(&image, &create(&image, vec![topic("taken", 1, 1)]).records);
    let result = create(
        &image,
        vec![
            topic("taken", 1, 1),
            topic("too-many-replicas", 1, 3),
            topic("no-partitions", 0, 1),
            topic("bad/name", 1, 1),
            topic("twice", 1, 1),
            topic("twice", 1, 1),
            topic("huge", RECORDS_PER_OPERATION_MAX as i32, 1),
            topic("fine", 1, 2),
        ],
    );
    let codes: Vec<i16> = result.response.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            error_code::TOPIC_ALREADY_EXISTS,
            error_code::INVALID_REPLICATION_FACTOR,
            error_code::INVALID_PARTITIONS,
            error_code::INVALID_TOPIC_EXCEPTION,
            error_code::INVALID_REQUEST,
            error_code::INVALID_REQUEST,
            error_code::POLICY_VIOLATION,
            error_code::NONE,
        ]
    );
    // Only "fine" was written: its topic and one partition.
    assert_eq!(result.records.len(), 2);
    let validate = CreateTopicsRequest {
        topics: vec![topic("dry", 1, 1)],
        validate_only: true,
    };
    let dry = create_topics(
        &image,
        &validate,
        &ControllerConfig::default(),
        &mut Uuid::new_v4,
    );
    assert!(dry.records.is_empty());
    assert_eq!(dry.response[0].error_code, error_code::NONE);
}

fn one_partition(image: &MetadataImage) -> (Uuid, PartitionRegistration) {
    let topic = image.topics.topic_by_name("p").unwrap();
    (topic.topic_id, topic.partitions[&0].clone())
}

#[test]
fn fencing_moves_leadership_within_the_isr_and_unfencing_takes_orphans() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 2)]).records);
    let (topic_id, before) = one_partition(&image);
    assert_eq!((before.leader, before.isr.clone()), (1, vec![1, 2]));

    let fenced = fence_broker(&image, 1);
    assert_eq!(fenced.response.error_code, error_code::NONE);
    let image = apply(&image, &fenced.records);
    let (_, after) = one_partition(&image);
    assert_eq!(
        after,
        PartitionRegistration {
            replicas: vec![1, 2],
            isr: vec![2],
            leader: 2,
            leader_epoch: 1,
            partition_epoch: 1,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }
    );
    assert!(image.cluster.broker(1).unwrap().fenced);

    // The last ISR member stays in the ISR but cannot lead while fenced.
    let image = apply(&image, &fence_broker(&image, 2).records);
    let (_, orphan) = one_partition(&image);
    assert_eq!((orphan.leader, orphan.isr.clone()), (LEADER_NONE, vec![2]));
    // Fencing again changes nothing.
    assert!(fence_broker(&image, 2).records.is_empty());

    let back = heartbeat(&image, &beat(2, false), &ControllerConfig::default());
    assert!(!back.response.is_fenced);
    let image = apply(&image, &back.records);
    let (_, led) = one_partition(&image);
    assert_eq!((led.leader, led.leader_epoch), (2, 3));
    assert!(image.topics.partition(topic_id, 0).is_some());
}

#[test]
fn controlled_shutdown_moves_leadership_then_allows_the_stop() {
    let image = cluster(2);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 2)]).records);
    let request = BrokerHeartbeatRequest {
        want_shutdown: true,
        ..beat(1, false)
    };
    let result = heartbeat(&image, &request, &ControllerConfig::default());
    assert!(result.response.should_shut_down);
    assert!(result.response.is_fenced);
    let image = apply(&image, &result.records);
    assert_eq!(one_partition(&image).1.leader, 2);
}

#[test]
fn registration_rules() {
    let image = cluster(1);
    let again = RegisterBrokerRequest {
        broker_id: 1,
        incarnation_id: Uuid::from_u128(77),
        listeners: vec![],
        rack: None,
    };
    let refused = register_broker(&image, &again);
    assert_eq!(
        refused.response.error_code,
        error_code::DUPLICATE_BROKER_REGISTRATION
    );
    assert!(refused.records.is_empty());
    // Once fenced (its session expired), a new incarnation may register.
    let image = apply(&image, &fence_broker(&image, 1).records);
    let accepted = register_broker(&image, &again);
    assert_eq!(accepted.response.error_code, error_code::NONE);
    assert_eq!(accepted.records.len(), 1);
    let stale = heartbeat(
        &apply(&image, &accepted.records),
        &beat(1, false),
        &ControllerConfig::default(),
    );
    assert_eq!(stale.response.error_code, error_code::STALE_BROKER_EPOCH);
}

#[test]
fn alter_partition_checks_leader_epochs_and_eligibility() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 3)]).records);
    let (topic_id, partition) = one_partition(&image);
    let request = AlterPartitionRequest {
        broker_id: 1,
        incarnation_id: incarnation(1),
        topic_id,
        partition_index: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        new_isr: vec![1, 2],
    };
    let code =
        |request: &AlterPartitionRequest| alter_partition(&image, request).response.error_code;
    assert_eq!(
        code(&AlterPartitionRequest {
            leader_epoch: 5,
            ..request.clone()
        }),
        error_code::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        code(&AlterPartitionRequest {
            partition_epoch: 5,
            ..request.clone()
        }),
        error_code::INVALID_UPDATE_VERSION
    );
    assert_eq!(
        code(&AlterPartitionRequest {
            broker_id: 2,
            incarnation_id: incarnation(2),
            ..request.clone()
        }),
        error_code::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        code(&AlterPartitionRequest {
            new_isr: vec![2, 3],
            ..request.clone()
        }),
        error_code::INVALID_REQUEST
    );
    let shrunk = alter_partition(&image, &request);
    assert_eq!(shrunk.response.error_code, error_code::NONE);
    let image = apply(&image, &shrunk.records);
    assert_eq!(
        image.topics.partition(topic_id, 0),
        shrunk.response.partition.as_ref()
    );
    // Broker 3 is fenced: it cannot rejoin the ISR.
    let image = apply(&image, &fence_broker(&image, 3).records);
    let expand = AlterPartitionRequest {
        partition_epoch: partition.partition_epoch + 1,
        new_isr: vec![1, 2, 3],
        ..request
    };
    assert_eq!(
        alter_partition(&image, &expand).response.error_code,
        error_code::INELIGIBLE_REPLICA
    );
}

#[test]
fn preferred_and_unclean_elections() {
    let image = cluster(2);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 2)]).records);
    let (topic_id, _) = one_partition(&image);
    let elect = |image: &MetadataImage, election_type| {
        elect_leaders(
            image,
            &ElectLeadersRequest {
                election_type,
                partitions: Some(vec![(topic_id, 0), (topic_id, 9)]),
            },
        )
    };
    let result = elect(&image, ElectionType::Preferred);
    let codes: Vec<i16> = result.response.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            error_code::ELECTION_NOT_NEEDED,
            error_code::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );
    // Leader 1 fenced → 2 leads; 1 back → preferred election returns leadership to 1?
    // No: 1 left the ISR when fenced, so it is not available until AlterPartition adds it.
    let image = apply(&image, &fence_broker(&image, 1).records);
    let image = apply(
        &image,
        &heartbeat(&image, &beat(1, false), &ControllerConfig::default()).records,
    );
    let result = elect(&image, ElectionType::Preferred);
    assert_eq!(
        result.response[0].error_code,
        error_code::PREFERRED_LEADER_NOT_AVAILABLE
    );
    // Both fenced, then only 1 returns: an unclean election makes it leader with ISR [1].
    let image = apply(&image, &fence_broker(&image, 1).records);
    let image = apply(&image, &fence_broker(&image, 2).records);
    let image = apply(
        &image,
        &heartbeat(&image, &beat(1, false), &ControllerConfig::default()).records,
    );
    let result = elect(&image, ElectionType::Unclean);
    assert_eq!(result.response[0].error_code, error_code::NONE);
    let image = apply(&image, &result.records);
    let (_, partition) = one_partition(&image);
    assert_eq!((partition.leader, partition.isr), (1, vec![1]));
}

#[test]
fn producer_id_blocks_are_consecutive_and_never_reused() {
    let image = cluster(1);
    let request = AllocateProducerIdsRequest {
        broker_id: 1,
        incarnation_id: incarnation(1),
    };
    let config = ControllerConfig::default();
    let first = allocate_producer_ids(&image, &request, &config);
    let image = apply(&image, &first.records);
    let second = allocate_producer_ids(&image, &request, &config);
    assert_eq!(
        (first.response.first_producer_id, first.response.count),
        (0, 1000)
    );
    assert_eq!(second.response.first_producer_id, 1000);
    let unknown = AllocateProducerIdsRequest {
        broker_id: 9,
        ..request
    };
    assert_eq!(
        allocate_producer_ids(&image, &unknown, &config)
            .response
            .error_code,
        error_code::BROKER_ID_NOT_REGISTERED
    );
}

#[test]
fn alter_configs_and_delete_topics() {
    let image = cluster(1);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 1)]).records);
    let request = AlterConfigsRequest {
        resources: vec![
            AlterConfigsResource {
                resource: ConfigResource::Topic("p".into()),
                ops: vec![ConfigOp::Set {
                    name: "cleanup.policy".into(),
                    value: "compact".into(),
                }],
            },
            AlterConfigsResource {
                resource: ConfigResource::Topic("missing".into()),
                ops: vec![],
            },
            AlterConfigsResource {
                resource: ConfigResource::Broker(1),
                ops: vec![ConfigOp::Set {
                    name: String::new(),
                    value: "x".into(),
                }],
            },
        ],
        validate_only: false,
    };
    let result = alter_configs(&image, &request);
    let codes: Vec<i16> = result.response.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            error_code::NONE,
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            error_code::INVALID_CONFIG
        ]
    );
    let image = apply(&image, &result.records);
    assert_eq!(
        image
            .configs
            .topic_configs("p")
            .unwrap()
            .get("cleanup.policy"),
        Some(&"compact".to_string())
    );
    let id = image.topics.topic_by_name("p").unwrap().topic_id;
    let deleted = delete_topics(
        &image,
        &DeleteTopicsRequest {
            names: vec!["p".into(), "nope".into()],
            topic_ids: vec![id, Uuid::from_u128(42)],
        },
    );
    assert_eq!(
        deleted.records,
        vec![MetadataRecord::RemoveTopic { topic_id: id }]
    );
    let codes: Vec<i16> = deleted.response.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        vec![
            error_code::NONE,
            error_code::UNKNOWN_TOPIC_OR_PARTITION,
            error_code::NONE,
            error_code::UNKNOWN_TOPIC_ID
        ]
    );
    let image = apply(&image, &deleted.records);
    assert!(image.topics.by_id.is_empty());
    assert!(image.configs.resources.is_empty());
}

fn reassign(
    image: &MetadataImage,
    topic: &str,
    partition_index: i32,
    replicas: Option<Vec<i32>>,
) -> ControllerResult<Vec<ReassignmentResult>> {
    alter_reassignments(
        image,
        &AlterReassignmentsRequest {
            targets: vec![ReassignmentTarget {
                topic: topic.into(),
                partition_index,
                replicas,
            }],
            allow_replication_factor_change: true,
        },
        4,
    )
}

fn reassign_code(image: &MetadataImage, topic: &str, index: i32, target: Option<Vec<i32>>) -> i16 {
    let result = reassign(image, topic, index, target);
    assert_eq!(result.response.len(), 1);
    if result.response[0].error_code != error_code::NONE {
        assert!(result.records.is_empty());
    }
    result.response[0].error_code
}

/// The leader of the partition asks for `new_isr`.
fn expand_isr(
    image: &MetadataImage,
    new_isr: Vec<i32>,
) -> ControllerResult<AlterPartitionResponse> {
    let (topic_id, partition) = one_partition(image);
    alter_partition(
        image,
        &AlterPartitionRequest {
            broker_id: partition.leader,
            incarnation_id: incarnation(partition.leader),
            topic_id,
            partition_index: 0,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
            new_isr,
        },
    )
}

#[test]
fn reassignment_adds_then_switches_moving_leadership_off_a_removed_leader() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 2)]).records);
    let (topic_id, before) = one_partition(&image);
    assert_eq!((before.replicas.clone(), before.leader), (vec![1, 2], 1));

    // 1,2 → 3,2: 3 is added, 1 (the leader) will be removed.
    let started = reassign(&image, "p", 0, Some(vec![3, 2]));
    assert_eq!(started.response[0].error_code, error_code::NONE);
    assert_eq!(
        started.records,
        vec![MetadataRecord::PartitionReassignment {
            topic_id,
            partition_index: 0,
            replicas: vec![3, 2, 1],
            adding_replicas: vec![3],
            removing_replicas: vec![1],
        }]
    );
    let image = apply(&image, &started.records);
    let (_, moving) = one_partition(&image);
    assert_eq!(
        moving,
        PartitionRegistration {
            replicas: vec![3, 2, 1],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 1,
            adding_replicas: vec![3],
            removing_replicas: vec![1],
        }
    );
    // The snapshot of a moving partition replays to the same image.
    let replayed = MetadataImage::from_records(&image.to_records(), image.provenance).unwrap();
    assert_eq!(replayed, image);

    // 3 caught up: the leader adds it to the ISR, and the reassignment completes with it.
    let expanded = expand_isr(&image, vec![1, 2, 3]);
    assert_eq!(expanded.response.error_code, error_code::NONE);
    assert_eq!(
        expanded.records,
        vec![
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index: 0,
                leader: None,
                isr: Some(vec![1, 2, 3]),
            },
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index: 0,
                leader: Some(3),
                isr: Some(vec![2, 3]),
            },
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_index: 0,
                replicas: vec![3, 2],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
        ]
    );
    let image = apply(&image, &expanded.records);
    let done = PartitionRegistration {
        replicas: vec![3, 2],
        isr: vec![2, 3],
        leader: 3,
        leader_epoch: 1,
        partition_epoch: 4,
        adding_replicas: vec![],
        removing_replicas: vec![],
    };
    assert_eq!(one_partition(&image).1, done);
    assert_eq!(expanded.response.partition, Some(done));
}

#[test]
fn reassignment_to_in_sync_replicas_completes_at_once_and_same_set_is_a_no_op() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 3)]).records);
    let (topic_id, _) = one_partition(&image);
    // Dropping a replica: every target replica is in the ISR already.
    let shrink = reassign(&image, "p", 0, Some(vec![2, 3]));
    assert_eq!(
        shrink.records,
        vec![
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index: 0,
                leader: Some(2),
                isr: Some(vec![2, 3]),
            },
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_index: 0,
                replicas: vec![2, 3],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
        ]
    );
    let same = reassign(&image, "p", 0, Some(vec![1, 2, 3]));
    assert_eq!(same.response[0].error_code, error_code::NONE);
    assert!(same.records.is_empty());
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 1)]).records);
    let original = one_partition(&image).1;
    assert_eq!(original.replicas, vec![1]);
    let image = apply(&image, &reassign(&image, "p", 0, Some(vec![2])).records);
    assert_eq!(one_partition(&image).1.replicas, vec![2, 1]);
    // A new target while one runs restarts from the original set.
    let image = apply(&image, &reassign(&image, "p", 0, Some(vec![3])).records);
    let (_, moving) = one_partition(&image);
    assert_eq!(
        (
            moving.replicas,
            moving.adding_replicas,
            moving.removing_replicas
        ),
        (vec![3, 1], vec![3], vec![1])
    );
    let cancelled = reassign(&image, "p", 0, None);
    assert_eq!(cancelled.response[0].error_code, error_code::NONE);
    let image = apply(&image, &cancelled.records);
    let (_, back) = one_partition(&image);
    assert_eq!(
        (back.is_reassigning(), back.replicas, back.isr, back.leader),
        (false, vec![1], vec![1], 1)
    );
    assert_eq!(
        reassign_code(&image, "p", 0, None),
        error_code::NO_REASSIGNMENT_IN_PROGRESS
    );
}

#[test]
fn reassignment_errors_are_kafkas() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 1, 1)]).records);
    let invalid = error_code::INVALID_REPLICA_ASSIGNMENT;
    assert_eq!(reassign_code(&image, "p", 0, Some(vec![2, 2])), invalid);
    assert_eq!(reassign_code(&image, "p", 0, Some(vec![9])), invalid);
    assert_eq!(reassign_code(&image, "p", 0, Some(vec![])), invalid);
    let unknown = error_code::UNKNOWN_TOPIC_OR_PARTITION;
    assert_eq!(reassign_code(&image, "p", 1, Some(vec![2])), unknown);
    assert_eq!(reassign_code(&image, "q", 0, Some(vec![2])), unknown);
}

#[test]
fn reassignments_beyond_the_move_limit_wait_in_the_queue() {
    let image = cluster(3);
    let image = apply(&image, &create(&image, vec![topic("p", 3, 1)]).records);
    let topic_id = image.topics.topic_by_name("p").unwrap().topic_id;
    let config = ControllerConfig {
        reassignment_moves_max: 1,
        ..ControllerConfig::default()
    };
    let target = |partition_index: i32, replicas: Option<Vec<i32>>| ReassignmentTarget {
        topic: "p".into(),
        partition_index,
        replicas,
    };
    // Partitions 0, 1, 2 live on 1, 2, 3. Move 0 and 1 onto 3 with one slot: 1 waits.
    let request = Operation::AlterReassignments(AlterReassignmentsRequest {
        targets: vec![target(0, Some(vec![3])), target(1, Some(vec![3]))],
        allow_replication_factor_change: true,
    });
    let result = execute(&image, &request, &config, &mut Uuid::new_v4);
    assert_eq!(
        result.records,
        vec![
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_index: 0,
                replicas: vec![3, 1],
                adding_replicas: vec![3],
                removing_replicas: vec![1],
            },
            MetadataRecord::QueueReassignment {
                topic_id,
                partition_index: 1,
                target: Some(vec![3]),
            },
        ]
    );
    let image = apply(&image, &result.records);
    let replayed = MetadataImage::from_records(&image.to_records(), image.provenance).unwrap();
    assert_eq!(replayed, image);

    // Partition 0's move completes when 3 joins its ISR; partition 1's starts in the same entry.
    let alter = Operation::AlterPartition(AlterPartitionRequest {
        broker_id: 1,
        incarnation_id: incarnation(1),
        topic_id,
        partition_index: 0,
        leader_epoch: 0,
        partition_epoch: 1,
        new_isr: vec![1, 3],
    });
    let result = execute(&image, &alter, &config, &mut Uuid::new_v4);
    let image = apply(&image, &result.records);
    let partition = |index: i32| image.topics.partition(topic_id, index).unwrap().clone();
    assert_eq!((partition(0).replicas, partition(0).leader), (vec![3], 3));
    assert_eq!(
        (partition(1).replicas, partition(1).adding_replicas),
        (vec![3, 2], vec![3])
    );
    assert!(image.topics.queued_reassignments.is_empty());

    // A queued move can be cancelled before it starts.
    let queue_again = Operation::AlterReassignments(AlterReassignmentsRequest {
        targets: vec![target(2, Some(vec![1]))],
        allow_replication_factor_change: true,
    });
    let image = apply(
        &image,
        &execute(&image, &queue_again, &config, &mut Uuid::new_v4).records,
    );
    assert_eq!(image.topics.queued_reassignments.len(), 1);
    let cancel = Operation::AlterReassignments(AlterReassignmentsRequest {
        targets: vec![target(2, None)],
        allow_replication_factor_change: true,
    });
    let result = execute(&image, &cancel, &config, &mut Uuid::new_v4);
    assert_eq!(
        result.records,
        vec![MetadataRecord::QueueReassignment {
            topic_id,
            partition_index: 2,
            target: None,
        }]
    );
}

fn checked() -> ControllerConfig {
    ControllerConfig {
        admission_check: true,
        ..ControllerConfig::default()
    }
}

fn verdict(broker_id: i32, refusal: Option<&str>) -> Operation {
    Operation::RecordAdmission(AdmissionVerdict {
        broker_id,
        incarnation_id: incarnation(broker_id),
        refusal: refusal.map(str::to_string),
    })
}

fn run(image: &MetadataImage, operation: &Operation) -> (MetadataImage, OperationResponse) {
    let result = execute(image, operation, &checked(), &mut Uuid::new_v4);
    (apply(image, &result.records), result.response)
}

#[test]
fn a_broker_is_unfenced_only_once_its_address_is_admitted() {
    let image = cluster(1);
    let request = RegisterBrokerRequest {
        broker_id: 2,
        incarnation_id: incarnation(2),
        listeners: vec![],
        rack: None,
    };
    let image = apply(&image, &register_broker(&image, &request).records);
    let waiting = heartbeat(&image, &beat(2, false), &checked());
    assert!(waiting.records.is_empty());
    assert!(waiting.response.is_fenced);
    assert_eq!(
        waiting.response.admission_refusal.as_deref(),
        Some(ADMISSION_PENDING)
    );

    let (image, _) = run(&image, &verdict(2, Some("cannot resolve bogus.invalid")));
    let refused = heartbeat(&image, &beat(2, false), &checked());
    assert!(refused.response.is_fenced);
    assert_eq!(
        refused.response.admission_refusal.as_deref(),
        Some("cannot resolve bogus.invalid")
    );
    assert!(!image.cluster.is_active(2));

    let (image, _) = run(&image, &verdict(2, None));
    assert_eq!(
        image.cluster.broker(2).unwrap().admission,
        Admission::Admitted
    );
    let admitted = heartbeat(&image, &beat(2, false), &checked());
    assert!(!admitted.response.is_fenced);
    assert_eq!(admitted.response.admission_refusal, None);
    let image = apply(&image, &admitted.records);
    assert!(image.cluster.is_active(2));
}

#[test]
fn a_refused_unfenced_broker_is_fenced_and_loses_leadership() {
    let image = cluster(2);
    let (image, _) = run(&image, &verdict(1, None));
    let (image, _) = run(&image, &verdict(2, None));
    let created = create_topics(
        &image,
        &CreateTopicsRequest {
            topics: vec![topic("t", 2, 2)],
            validate_only: false,
        },
        &ControllerConfig::default(),
        &mut || Uuid::from_u128(42),
    );
    let image = apply(&image, &created.records);
    let (image, response) = run(&image, &verdict(1, Some("connection refused")));
    assert_eq!(
        response,
        OperationResponse::RecordAdmission(BrokerChangeResponse {
            error_code: error_code::NONE,
            partitions_remaining: false,
        })
    );
    assert!(!image.cluster.is_active(1));
    let topic = image.topics.topic_by_name("t").unwrap();
    for partition in topic.partitions.values() {
        assert_eq!(partition.leader, 2, "{partition:?}");
        assert_eq!(partition.isr, vec![2], "{partition:?}");
    }
    // Same verdict again: nothing changes.
    let again = execute(
        &image,
        &verdict(1, Some("connection refused")),
        &checked(),
        &mut Uuid::new_v4,
    );
    assert!(again.records.is_empty(), "{:?}", again.records);
}

#[test]
fn a_verdict_about_an_older_incarnation_is_ignored() {
    let image = cluster(1);
    let stale = Operation::RecordAdmission(AdmissionVerdict {
        broker_id: 1,
        incarnation_id: Uuid::from_u128(1),
        refusal: Some("connection refused".into()),
    });
    let result = execute(&image, &stale, &checked(), &mut Uuid::new_v4);
    assert!(result.records.is_empty());
    assert_eq!(
        result.response,
        OperationResponse::RecordAdmission(BrokerChangeResponse {
            error_code: error_code::STALE_BROKER_EPOCH,
            partitions_remaining: false,
        })
    );
    assert!(image.cluster.is_active(1));
}

#[test]
fn a_new_incarnation_must_be_admitted_again() {
    let image = cluster(1);
    let (image, _) = run(&image, &verdict(1, None));
    let request = RegisterBrokerRequest {
        broker_id: 1,
        incarnation_id: Uuid::from_u128(99),
        listeners: vec![],
        rack: None,
    };
    let image = apply(&image, &fence_broker(&image, 1).records);
    let image = apply(&image, &register_broker(&image, &request).records);
    assert_eq!(
        image.cluster.broker(1).unwrap().admission,
        Admission::Unchecked
    );
    let snapshot_image = {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for record in image.to_records() {
            delta.replay(&record).unwrap();
        }
        delta.apply()
    };
    assert_eq!(snapshot_image.cluster, image.cluster);
}
