//! The transaction coordinator in a 3-node cluster: `__transaction_state` is replicated (RF 3)
//! and a transactional id is coordinated by the leader of its partition. Partition leaders on
//! other nodes verify transactional produces with the coordinator over a peer connection
//! (KIP-890, AddPartitionsToTxn v4 verify_only), the coordinator writes markers to remote
//! leaders (WriteTxnMarkers), and kill -9 of the coordinator's node loses no transaction
//! state: the new coordinator serves it and completes the transaction. Transaction version
//! 2: a remote leader adds the partition of a Produce v12 itself (AddPartitionsToTxn v5).

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::ResponseError;
use sluice_integration_tests::cluster::Cluster;
use sluice_integration_tests::raw_client::{RawClient, CREATE_TOPICS_VERSION};
use sluice_integration_tests::transactions::{
    add_partitions, code, describe, end_txn, end_txn_v2, find_coordinator, init,
    init_at_coordinator, kcat_values, produce_transactional_to, produce_transactional_v2, text,
    transactional_batch, wait_state, TIMEOUT_MS, WAIT,
};
use sluice_integration_tests::{topic_name, wait_until};

const METADATA_VERSION: i16 = 12;
const PARTITIONS: i32 = 3;

fn create_topic(client: &mut RawClient, name: &str) {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(text(name));
    topic.num_partitions = PARTITIONS;
    topic.replication_factor = 3;
    let mut request = CreateTopicsRequest::default();
    request.topics.push(topic);
    request.timeout_ms = 30_000;
    let response = client.request(CREATE_TOPICS_VERSION, &request);
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// Each partition's leader, once every partition has one.
fn leaders(client: &mut RawClient, topic: &str) -> Vec<i32> {
    wait_until(WAIT, "partition leaders", || {
        let mut wanted = MetadataRequestTopic::default();
        wanted.name = Some(TopicName(text(topic)));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![wanted]);
        let response = client.request(METADATA_VERSION, &request);
        let mut partitions = response.topics[0].partitions.clone();
        partitions.sort_by_key(|partition| partition.partition_index);
        let leaders: Vec<i32> = partitions.iter().map(|p| p.leader_id.0).collect();
        (leaders.len() == PARTITIONS as usize && leaders.iter().all(|leader| *leader > 0))
            .then_some(leaders)
    })
}

/// A transactional id whose coordinator is not the leader of partition `partition`.
fn id_coordinated_away_from(client: &mut RawClient, topic: &str, leader: i32) -> (String, i32) {
    for attempt in 0.. {
        let id = format!("{topic}-txn-{attempt}");
        let coordinator = find_coordinator(client, &id);
        if coordinator != leader {
            return (id, coordinator);
        }
    }
    unreachable!()
}

#[test]
fn remote_leaders_add_the_partitions_of_transaction_version_2_produces() {
    let cluster = Cluster::start(3);
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let topic = topic_name("txn-cluster-v2");
    create_topic(&mut client, &topic);
    let leaders = leaders(&mut client, &topic);
    let (id, coordinator) = id_coordinated_away_from(&mut client, &topic, leaders[0]);
    let mut coordinator_client = RawClient::connect(&cluster.node(coordinator).bootstrap());
    let mut leader_client = RawClient::connect(&cluster.node(leaders[0]).bootstrap());
    let (error, producer_id, epoch) = init_at_coordinator(&mut coordinator_client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    let batch = transactional_batch((producer_id, 0), 0, &["one"]);
    assert_eq!(
        produce_transactional_v2(&mut leader_client, &id, &topic, 0, batch),
        0
    );
    let (_, state, _, partitions) = describe(&mut coordinator_client, &id);
    assert_eq!(
        (state.as_str(), partitions),
        ("Ongoing", vec![(topic.clone(), 0)])
    );
    assert_eq!(
        end_txn_v2(&mut coordinator_client, &id, (producer_id, 0), true),
        (0, producer_id, 1)
    );
    wait_state(&mut coordinator_client, &id, "CompleteCommit");
    // The old epoch is fenced at the remote leader too.
    let late = transactional_batch((producer_id, 0), 1, &["late"]);
    assert_eq!(
        produce_transactional_v2(&mut leader_client, &id, &topic, 0, late),
        code(ResponseError::InvalidProducerEpoch)
    );
    let batch = transactional_batch((producer_id, 1), 0, &["two"]);
    assert_eq!(
        produce_transactional_v2(&mut leader_client, &id, &topic, 0, batch),
        0
    );
    assert_eq!(
        end_txn_v2(&mut coordinator_client, &id, (producer_id, 1), false),
        (0, producer_id, 2)
    );
    wait_state(&mut coordinator_client, &id, "CompleteAbort");
    // Both transactions' records, on the leader the coordinator never was.
    let values: Vec<Option<String>> = leader_client
        .fetch_all_from(&topic, 0, 0)
        .iter()
        .filter(|record| !record.control)
        .map(|record| {
            let value = record.value.clone().unwrap();
            Some(String::from_utf8(value.to_vec()).unwrap())
        })
        .collect();
    assert_eq!(
        values,
        vec![Some("one".to_string()), Some("two".to_string())]
    );
}

#[test]
fn remote_leaders_verify_transactional_produces_with_the_coordinator() {
    let cluster = Cluster::start(3);
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let topic = topic_name("txn-cluster-verify");
    create_topic(&mut client, &topic);
    let leaders = leaders(&mut client, &topic);
    let (id, coordinator) = id_coordinated_away_from(&mut client, &topic, leaders[0]);
    let mut coordinator_client = RawClient::connect(&cluster.node(coordinator).bootstrap());
    let mut leader_client = RawClient::connect(&cluster.node(leaders[0]).bootstrap());
    // Another node is not the coordinator.
    let elsewhere = if coordinator == 1 { 2 } else { 1 };
    let mut other = RawClient::connect(&cluster.node(elsewhere).bootstrap());
    assert_eq!(
        init(&mut other, &id, TIMEOUT_MS).0,
        code(ResponseError::NotCoordinator)
    );
    let (error, producer_id, epoch) = init_at_coordinator(&mut coordinator_client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    let producer = (producer_id, epoch);
    let batch = transactional_batch(producer, 0, &["before-add"]);
    assert_eq!(
        produce_transactional_to(&mut leader_client, &id, &topic, 0, batch),
        code(ResponseError::InvalidTxnState),
        "the remote leader asked the coordinator, which has no such partition in a transaction"
    );
    assert_eq!(
        add_partitions(&mut coordinator_client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    let batch = transactional_batch(producer, 0, &["after-add"]);
    assert_eq!(
        produce_transactional_to(&mut leader_client, &id, &topic, 0, batch),
        0
    );
    let values: Vec<String> = leader_client
        .fetch_all_from(&topic, 0, 0)
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, vec!["after-add".to_string()]);
}

#[test]
fn a_transaction_survives_kill_9_of_its_coordinator_and_completes() {
    let mut cluster = Cluster::start(3);
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let topic = topic_name("txn-cluster-failover");
    create_topic(&mut client, &topic);
    let leaders = leaders(&mut client, &topic);
    let id = format!("{topic}-txn");
    let coordinator = find_coordinator(&mut client, &id);
    let mut coordinator_client = RawClient::connect(&cluster.node(coordinator).bootstrap());
    let (_, producer_id, epoch) = init_at_coordinator(&mut coordinator_client, &id, TIMEOUT_MS);
    let producer = (producer_id, epoch);
    let all: Vec<(&str, i32)> = (0..PARTITIONS).map(|p| (topic.as_str(), p)).collect();
    assert_eq!(
        add_partitions(&mut coordinator_client, &id, producer, &all),
        vec![0; PARTITIONS as usize]
    );
    for (partition, leader) in leaders.iter().enumerate() {
        let mut leader_client = RawClient::connect(&cluster.node(*leader).bootstrap());
        let batch = transactional_batch(producer, 0, &["in-txn"]);
        let partition = partition as i32;
        assert_eq!(
            produce_transactional_to(&mut leader_client, &id, &topic, partition, batch),
            0
        );
    }
    // The first transaction commits with markers on every (remote and local) leader.
    assert_eq!(end_txn(&mut coordinator_client, &id, producer, true), 0);
    wait_state(&mut coordinator_client, &id, "CompleteCommit");
    // A second one is ongoing, with records on every partition, when the coordinator's node
    // dies.
    assert_eq!(
        add_partitions(&mut coordinator_client, &id, producer, &all),
        vec![0; PARTITIONS as usize]
    );
    for (partition, leader) in leaders.iter().enumerate() {
        let mut leader_client = RawClient::connect(&cluster.node(*leader).bootstrap());
        let batch = transactional_batch(producer, 1, &["open"]);
        let partition = partition as i32;
        assert_eq!(
            produce_transactional_to(&mut leader_client, &id, &topic, partition, batch),
            0
        );
    }
    cluster.kill9(coordinator);
    let survivor = if coordinator == 1 { 2 } else { 1 };
    let mut client = RawClient::connect(&cluster.node(survivor).bootstrap());
    let next = wait_until(WAIT, "a new coordinator", || {
        let found = find_coordinator(&mut client, &id);
        (found != coordinator).then_some(found)
    });
    let mut next_client = RawClient::connect(&cluster.node(next).bootstrap());
    let (_, state, described_epoch, partitions) = wait_state(&mut next_client, &id, "Ongoing");
    assert_eq!((state.as_str(), described_epoch), ("Ongoing", epoch));
    assert_eq!(partitions.len(), PARTITIONS as usize);
    // The producer aborts through the new coordinator; markers reach every live leader.
    assert_eq!(end_txn(&mut next_client, &id, producer, false), 0);
    wait_state(&mut next_client, &id, "CompleteAbort");
    assert_eq!(describe(&mut next_client, &id).2, epoch);
    let survivor_bootstrap = cluster.node(survivor).bootstrap();
    for partition in 0..PARTITIONS {
        // CompleteAbort is written only once every marker is: the aborted records are skipped.
        assert_eq!(
            kcat_values(&survivor_bootstrap, &topic, partition, "read_committed"),
            vec!["in-txn".to_string()],
            "partition {partition}"
        );
        assert_eq!(
            kcat_values(&survivor_bootstrap, &topic, partition, "read_uncommitted"),
            vec!["in-txn".to_string(), "open".to_string()],
            "partition {partition}"
        );
    }
}
