//! TopicsImageTest-style properties over record lists the controller really produces:
//! an image written as records and replayed from empty is equal to it, replaying any prefix in
//! one delta equals applying it record by record, and the encoding round-trips.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use sluice_raft::controller::{
    self, AllocateProducerIdsRequest, AlterConfigsRequest, AlterConfigsResource,
    AlterPartitionRequest, BrokerHeartbeatRequest, ConfigOp, ControllerConfig, CreatableTopic,
    CreateTopicsRequest, DeleteTopicsRequest, ElectLeadersRequest, ElectionType, Operation,
    RegisterBrokerRequest,
};
use sluice_raft::image::{
    decode_batch, encode_batch, ConfigResource, Listener, MetadataDelta, MetadataImage,
    MetadataRecord, Provenance,
};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Step {
    Register {
        broker: i32,
        rack: u8,
    },
    Heartbeat {
        broker: i32,
        want_fence: bool,
    },
    Fence {
        broker: i32,
    },
    Create {
        topic: u8,
        partitions: i32,
        replication_factor: i16,
    },
    Delete {
        topic: u8,
    },
    Config {
        topic: u8,
        key: u8,
        value: Option<u8>,
    },
    Elect {
        unclean: bool,
    },
    ShrinkIsr {
        topic: u8,
    },
    ProducerIds {
        broker: i32,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1..5i32, 0..3u8).prop_map(|(broker, rack)| Step::Register { broker, rack }),
        (1..5i32, any::<bool>())
            .prop_map(|(broker, want_fence)| Step::Heartbeat { broker, want_fence }),
        (1..5i32).prop_map(|broker| Step::Fence { broker }),
        (0..4u8, 1..4i32, 1..4i16).prop_map(|(topic, partitions, replication_factor)| {
            Step::Create {
                topic,
                partitions,
                replication_factor,
            }
        }),
        (0..4u8).prop_map(|topic| Step::Delete { topic }),
        (0..4u8, 0..3u8, proptest::option::of(0..3u8))
            .prop_map(|(topic, key, value)| Step::Config { topic, key, value }),
        any::<bool>().prop_map(|unclean| Step::Elect { unclean }),
        (0..4u8).prop_map(|topic| Step::ShrinkIsr { topic }),
        (1..5i32).prop_map(|broker| Step::ProducerIds { broker }),
    ]
}

fn incarnation(broker: i32) -> Uuid {
    Uuid::from_u128(broker as u128 + 100)
}

fn operation(image: &MetadataImage, step: &Step) -> Option<Operation> {
    let name = |topic: &u8| format!("topic-{topic}");
    let operation = match step {
        Step::Register { broker, rack } => Operation::RegisterBroker(RegisterBrokerRequest {
            broker_id: *broker,
            incarnation_id: incarnation(*broker),
            listeners: vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
            }],
            rack: (*rack > 0).then(|| format!("rack-{rack}")),
        }),
        Step::Heartbeat { broker, want_fence } => {
            Operation::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id: *broker,
                incarnation_id: incarnation(*broker),
                want_fence: *want_fence,
                want_shutdown: false,
                partition_loads: vec![],
            })
        }
        Step::Fence { broker } => Operation::FenceBroker { broker_id: *broker },
        Step::Create {
            topic,
            partitions,
            replication_factor,
        } => Operation::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name(topic),
                num_partitions: *partitions,
                replication_factor: *replication_factor,
                assignments: BTreeMap::new(),
                configs: BTreeMap::new(),
            }],
            validate_only: false,
        }),
        Step::Delete { topic } => Operation::DeleteTopics(DeleteTopicsRequest {
            names: vec![name(topic)],
            topic_ids: vec![],
        }),
        Step::Config { topic, key, value } => Operation::AlterConfigs(AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource: ConfigResource::Topic(name(topic)),
                ops: vec![match value {
                    Some(value) => ConfigOp::Set {
                        name: format!("key.{key}"),
                        value: value.to_string(),
                    },
                    None => ConfigOp::Delete {
                        name: format!("key.{key}"),
                    },
                }],
            }],
            validate_only: false,
        }),
        Step::Elect { unclean } => Operation::ElectLeaders(ElectLeadersRequest {
            election_type: if *unclean {
                ElectionType::Unclean
            } else {
                ElectionType::Preferred
            },
            partitions: None,
        }),
        Step::ShrinkIsr { topic } => {
            let topic = image.topics.topic_by_name(&name(topic))?;
            let partition = topic.partitions.get(&0).filter(|p| p.leader >= 0)?;
            Operation::AlterPartition(AlterPartitionRequest {
                broker_id: partition.leader,
                incarnation_id: incarnation(partition.leader),
                topic_id: topic.topic_id,
                partition_index: 0,
                leader_epoch: partition.leader_epoch,
                partition_epoch: partition.partition_epoch,
                new_isr: vec![partition.leader],
            })
        }
        Step::ProducerIds { broker } => {
            Operation::AllocateProducerIds(AllocateProducerIdsRequest {
                broker_id: *broker,
                incarnation_id: incarnation(*broker),
            })
        }
    };
    Some(operation)
}

fn apply_one(image: &MetadataImage, record: &MetadataRecord) -> MetadataImage {
    let mut delta = MetadataDelta::new(Arc::new(image.clone()));
    delta.replay(record).unwrap();
    delta.apply()
}

/// Runs the steps through the controller and returns every record it wrote.
fn records_of(steps: &[Step]) -> Vec<MetadataRecord> {
    let mut image = MetadataImage::empty();
    let mut records = Vec::new();
    let mut next_id = 0u128;
    for step in steps {
        let Some(operation) = operation(&image, step) else {
            continue;
        };
        let result = controller::execute(
            &image,
            &operation,
            &ControllerConfig::default(),
            &mut || {
                next_id += 1;
                Uuid::from_u128(next_id)
            },
        );
        for record in &result.records {
            // The controller only writes records that fit the image they land on.
            image = apply_one(&image, record);
        }
        records.extend(result.records);
    }
    records
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_prefix_replays_to_the_incremental_image(steps in proptest::collection::vec(step(), 0..60)) {
        let records = records_of(&steps);
        let mut incremental = MetadataImage::empty();
        for prefix in 0..=records.len() {
            let replayed = MetadataImage::from_records(&records[..prefix], Provenance::default()).unwrap();
            prop_assert_eq!(&replayed, &incremental);
            // The image written as records (a snapshot) replays to itself.
            let rewritten = MetadataImage::from_records(&incremental.to_records(), Provenance::default()).unwrap();
            prop_assert_eq!(&rewritten, &incremental);
            if prefix < records.len() {
                incremental = apply_one(&incremental, &records[prefix]);
            }
        }
        let decoded = decode_batch(&encode_batch(&records), usize::MAX).unwrap();
        prop_assert_eq!(decoded, records);
    }
}

#[test]
fn a_busy_history_produces_every_kind_of_record() {
    // Guards the generator: the property above must see more than trivial lists.
    let steps = vec![
        Step::Register { broker: 1, rack: 1 },
        Step::Register { broker: 2, rack: 2 },
        Step::Heartbeat {
            broker: 1,
            want_fence: false,
        },
        Step::Heartbeat {
            broker: 2,
            want_fence: false,
        },
        Step::Create {
            topic: 0,
            partitions: 2,
            replication_factor: 2,
        },
        Step::Config {
            topic: 0,
            key: 0,
            value: Some(1),
        },
        Step::ShrinkIsr { topic: 0 },
        Step::Fence { broker: 1 },
        Step::ProducerIds { broker: 2 },
        Step::Delete { topic: 0 },
    ];
    let records = records_of(&steps);
    let kinds: std::collections::BTreeSet<u16> =
        records.iter().map(MetadataRecord::type_id).collect();
    assert_eq!(kinds, [1, 3, 4, 5, 6, 7, 8, 9, 10].into_iter().collect());
}
