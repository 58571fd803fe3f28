//! acks=all against the ISR on a real 3-node cluster, with raw Produce and Fetch requests:
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrinks below min.insync.replicas while a
//! produce waits (the record stays in the log), NOT_ENOUGH_REPLICAS before appending once it
//! has, KIP-951 leader hints on NOT_LEADER_OR_FOLLOWER answers to Produce and Fetch, and
//! idempotent producers' state on a new leader.

use std::collections::BTreeSet;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::{
    fetch_request, idempotent_record_batch, produce_request, record_batch, RawClient, TestRecord,
};
use sluice_integration_tests::{topic_name, wait_until, Broker};

const METADATA_VERSION: i16 = 12;
/// The newest Produce that names topics (v13 uses ids); carries leader hints (v10+).
const PRODUCE_HINT_VERSION: i16 = 12;
/// The first Fetch with node endpoints (KIP-951).
const FETCH_HINT_VERSION: i16 = 16;
const CREATE_TOPICS_VERSION: i16 = 7;

/// One cluster at a time: three on two cores could starve heartbeats and move leaders the
/// tests are pinning down.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn my_turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn metadata(node: &Broker, topic: &str) -> Option<MetadataResponse> {
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = false;
    client.try_request(METADATA_VERSION, &request).ok()
}

/// `(leader, leader epoch, isr)` of partition 0, if it has a leader.
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, i32, BTreeSet<i32>)> {
    let response = metadata(node, topic)?;
    let partition = response.topics.first()?.partitions.first()?;
    let isr = partition.isr_nodes.iter().map(|id| id.0).collect();
    (partition.leader_id.0 > 0).then_some((partition.leader_id.0, partition.leader_epoch, isr))
}

fn create_topic(node: &Broker, topic: &str, min_insync: &str) {
    create_topic_replicated(node, topic, min_insync, 3);
}

fn create_topic_replicated(node: &Broker, topic: &str, min_insync: &str, replicas: i16) {
    let mut config = CreatableTopicConfig::default();
    config.name = StrBytes::from_static_str("min.insync.replicas");
    config.value = Some(StrBytes::from_string(min_insync.to_string()));
    let mut creatable = CreatableTopic::default();
    creatable.name = TopicName(StrBytes::from_string(topic.to_string()));
    creatable.num_partitions = 1;
    creatable.replication_factor = replicas;
    creatable.configs.push(config);
    let mut request = CreateTopicsRequest::default();
    request.topics.push(creatable);
    request.timeout_ms = 30_000;
    let response = RawClient::connect(&node.bootstrap()).request(CREATE_TOPICS_VERSION, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

fn batch(value: &str) -> bytes::Bytes {
    record_batch(&[TestRecord::new(b"k", value.as_bytes())])
}

/// acks=all Produce of one record to partition 0 at `node`: `(error code, base offset)`.
fn produce_all(node: &Broker, topic: &str, value: &str) -> (i16, i64) {
    let mut client = RawClient::connect(&node.bootstrap());
    let answer = client
        .produce(topic, 0, -1, batch(value))
        .expect("acks=all answers");
    (answer.error_code, answer.base_offset)
}

#[test]
fn acks_all_answers_not_enough_replicas_after_and_before_append() {
    let _turn = my_turn();
    let mut cluster = Cluster::start(3);
    let topic = topic_name("acks-isr");
    wait_until(CLUSTER_DEADLINE, "3 brokers", || {
        let response = metadata(cluster.node(1), &topic)?;
        (response.brokers.len() == 3).then_some(())
    });
    // min.insync.replicas = RF: losing one follower is enough to refuse acks=all, while the
    // two survivors keep a metadata quorum that can shrink the ISR.
    create_topic(cluster.node(1), &topic, "3");
    let (leader, _, _) = wait_until(CLUSTER_DEADLINE, "the full ISR", || {
        partition_state(cluster.node(1), &topic).filter(|(_, _, isr)| isr.len() == 3)
    });
    wait_until(CLUSTER_DEADLINE, "the leader to see the full ISR", || {
        partition_state(cluster.node(leader), &topic).filter(|(_, _, isr)| isr.len() == 3)
    });
    let leader_node = cluster.node(leader);
    assert_eq!(produce_all(leader_node, &topic, "first"), (0, 0));

    let follower = cluster.ids().find(|id| *id != leader).expect("a follower");
    cluster.kill9(follower);
    // Appended at once, then acknowledged only once the ISR without the dead follower let
    // the high watermark pass it: too few replicas for min.insync.replicas.
    let code = ResponseError::NotEnoughReplicasAfterAppend.code();
    assert_eq!(
        produce_all(cluster.node(leader), &topic, "second"),
        (code, -1)
    );
    let (_, _, isr) = partition_state(cluster.node(leader), &topic).expect("metadata");
    assert!(!isr.contains(&follower), "{isr:?}");
    // Now refused before appending.
    let code = ResponseError::NotEnoughReplicas.code();
    assert_eq!(
        produce_all(cluster.node(leader), &topic, "refused"),
        (code, -1)
    );

    cluster.restart(follower);
    wait_until(CLUSTER_DEADLINE, "the follower back in the ISR", || {
        partition_state(cluster.node(leader), &topic).filter(|(_, _, isr)| isr.len() == 3)
    });
    assert_eq!(produce_all(cluster.node(leader), &topic, "third"), (0, 2));
    // The record answered NOT_ENOUGH_REPLICAS_AFTER_APPEND stayed, as in Kafka; the refused
    // one was never written.
    let mut client = RawClient::connect(&cluster.node(leader).bootstrap());
    let values: Vec<(i64, String)> = client
        .fetch_all_from(&topic, 0, 0)
        .into_iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect();
    let expected = [(0, "first"), (1, "second"), (2, "third")];
    let expected: Vec<(i64, String)> = expected.iter().map(|(o, v)| (*o, v.to_string())).collect();
    assert_eq!(values, expected);
}

#[test]
fn not_leader_answers_name_the_leader_and_its_endpoint() {
    let _turn = my_turn();
    let cluster = Cluster::start(3);
    let topic = topic_name("leader-hint");
    wait_until(CLUSTER_DEADLINE, "3 brokers", || {
        let response = metadata(cluster.node(1), &topic)?;
        (response.brokers.len() == 3).then_some(())
    });
    create_topic(cluster.node(1), &topic, "1");
    let (leader, epoch, _) = wait_until(CLUSTER_DEADLINE, "a leader", || {
        partition_state(cluster.node(1), &topic)
    });
    let topic_id = metadata(cluster.node(1), &topic).expect("metadata").topics[0].topic_id;
    let other = cluster.ids().find(|id| *id != leader).expect("a follower");
    wait_until(
        CLUSTER_DEADLINE,
        "the other node to know the leader",
        || {
            partition_state(cluster.node(other), &topic)
                .filter(|(l, e, _)| (*l, *e) == (leader, epoch))
        },
    );
    let leader_address = cluster.node(leader).bootstrap();
    let (leader_host, leader_port) = leader_address.rsplit_once(':').expect("host:port");
    let leader_port: i32 = leader_port.parse().expect("port");
    let mut client = RawClient::connect(&cluster.node(other).bootstrap());

    let request: ProduceRequest = produce_request(&topic, 0, 1, Some(batch("misdirected")));
    let response = client.request(PRODUCE_HINT_VERSION, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(
        (
            answer.current_leader.leader_id.0,
            answer.current_leader.leader_epoch
        ),
        (leader, epoch)
    );
    let endpoints: Vec<(i32, String, i32)> = response
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.host.to_string(), e.port))
        .collect();
    assert_eq!(endpoints, [(leader, leader_host.to_string(), leader_port)]);

    // A follower serves consumers' Fetches itself (KIP-392): a Fetch gets the hint from a
    // node that holds no replica, of a one-replica topic.
    let single = topic_name("leader-hint-single");
    create_topic_replicated(cluster.node(1), &single, "1", 1);
    let (single_leader, single_epoch, _) = wait_until(CLUSTER_DEADLINE, "a leader", || {
        partition_state(cluster.node(1), &single)
    });
    let outsider = cluster
        .ids()
        .find(|id| *id != single_leader)
        .expect("a node without the replica");
    wait_until(CLUSTER_DEADLINE, "the outsider to know the leader", || {
        partition_state(cluster.node(outsider), &single)
            .filter(|(l, e, _)| (*l, *e) == (single_leader, single_epoch))
    });
    let single_id = metadata(cluster.node(1), &single).expect("metadata").topics[0].topic_id;
    let single_address = cluster.node(single_leader).bootstrap();
    let (single_host, single_port) = single_address.rsplit_once(':').expect("host:port");
    let single_port: i32 = single_port.parse().expect("port");
    let mut request: FetchRequest = fetch_request(&single, 0, 0);
    request.topics[0].topic_id = single_id;
    let mut outsider_client = RawClient::connect(&cluster.node(outsider).bootstrap());
    let response = outsider_client.request(FETCH_HINT_VERSION, &request);
    let answer = &response.responses[0].partitions[0];
    assert_eq!(answer.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(
        (
            answer.current_leader.leader_id.0,
            answer.current_leader.leader_epoch
        ),
        (single_leader, single_epoch)
    );
    let endpoints: Vec<(i32, String, i32)> = response
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.host.to_string(), e.port))
        .collect();
    assert_eq!(
        endpoints,
        [(single_leader, single_host.to_string(), single_port)]
    );

    // An epoch newer than the leader's is UNKNOWN_LEADER_EPOCH: no hint, as in Kafka.
    let mut leader_client = RawClient::connect(&leader_address);
    let mut request: FetchRequest = fetch_request(&topic, 0, 0);
    request.topics[0].topic_id = topic_id;
    request.topics[0].partitions[0].current_leader_epoch = epoch + 1;
    let response = leader_client.request(FETCH_HINT_VERSION, &request);
    let answer = &response.responses[0].partitions[0];
    assert_eq!(answer.error_code, ResponseError::UnknownLeaderEpoch.code());
    assert!(response.node_endpoints.is_empty(), "{response:?}");
}

/// An idempotent producer's state moves with leadership: after the leader is killed, the new
/// leader (a former follower) answers a retry of an acknowledged batch with its original
/// offset and writes nothing, and answers a sequence gap OUT_OF_ORDER_SEQUENCE_NUMBER.
#[test]
fn a_new_leader_dedups_retries_and_checks_sequences_of_the_old_leaders_producers() {
    let _turn = my_turn();
    let mut cluster = Cluster::start(3);
    let topic = topic_name("idempotent-failover");
    wait_until(CLUSTER_DEADLINE, "3 brokers", || {
        let response = metadata(cluster.node(1), &topic)?;
        (response.brokers.len() == 3).then_some(())
    });
    create_topic(cluster.node(1), &topic, "2");
    let (leader, _, _) = wait_until(CLUSTER_DEADLINE, "the full ISR", || {
        partition_state(cluster.node(1), &topic).filter(|(_, _, isr)| isr.len() == 3)
    });
    wait_until(CLUSTER_DEADLINE, "the leader to see the full ISR", || {
        partition_state(cluster.node(leader), &topic).filter(|(_, _, isr)| isr.len() == 3)
    });
    let mut client = RawClient::connect(&cluster.node(leader).bootstrap());
    let grant = client.init_producer_id(-1, -1);
    assert_eq!(grant.error_code, 0);
    let records = |from: usize| -> Vec<TestRecord> {
        (from..from + 3)
            .map(|at| TestRecord::new(b"k", format!("r{at}").as_bytes()))
            .collect()
    };
    let idempotent = |sequence: i32| {
        idempotent_record_batch(
            &records(sequence as usize),
            grant.producer_id,
            grant.producer_epoch,
            sequence,
        )
    };
    for sequence in [0, 3] {
        let answer = client.produce(&topic, 0, -1, idempotent(sequence)).unwrap();
        assert_eq!(
            (answer.error_code, answer.base_offset),
            (0, i64::from(sequence))
        );
    }
    drop(client);

    cluster.kill9(leader);
    let survivor = cluster.ids().find(|id| *id != leader).expect("a survivor");
    let (new_leader, _, _) = wait_until(CLUSTER_DEADLINE, "a new leader", || {
        partition_state(cluster.node(survivor), &topic).filter(|(l, _, _)| *l != leader)
    });
    wait_until(CLUSTER_DEADLINE, "the new leader to know it leads", || {
        partition_state(cluster.node(new_leader), &topic).filter(|(l, _, _)| *l == new_leader)
    });
    let mut client = RawClient::connect(&cluster.node(new_leader).bootstrap());
    // The retry of the last batch: its original offset, nothing written.
    let answer = client.produce(&topic, 0, -1, idempotent(3)).unwrap();
    assert_eq!((answer.error_code, answer.base_offset), (0, 3));
    // A gap: sequence 9 where 6 is due.
    let answer = client.produce(&topic, 0, -1, idempotent(9)).unwrap();
    let code = ResponseError::OutOfOrderSequenceNumber.code();
    assert_eq!(answer.error_code, code, "{answer:?}");
    let answer = client.produce(&topic, 0, -1, idempotent(6)).unwrap();
    assert_eq!((answer.error_code, answer.base_offset), (0, 6));
    let offsets: Vec<i64> = client
        .fetch_all_from(&topic, 0, 0)
        .iter()
        .map(|record| record.offset)
        .collect();
    assert_eq!(offsets, (0..9).collect::<Vec<i64>>());
}
