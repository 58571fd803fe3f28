//! The transactional data path against a real broker, with markers written by the test:
//! transactional batches sent as raw Produce requests (after InitProducerId and
//! AddPartitionsToTxn at the coordinator, so KIP-890 verification passes), markers written
//! with WriteTxnMarkers as a coordinator sends them (the test never sends EndTxn), then read_committed Fetch and ListOffsets checked exactly,
//! kcat (librdkafka) and the Java consumer reading read_committed and read_uncommitted
//! (aborted records dropped, markers skipped), the marker errors, and all
//! of it again after kill -9 of the broker, including a transaction left open across it;
//! and on 3 nodes, that followers hold the same transactions and a new leader after a kill -9
//! of the old one ends a transaction the old one saw begin.

use std::process::Command;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    BrokerId, ListOffsetsRequest, ProducerId, TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::{
    fetch_request, produce_request, RawClient, FETCH_VERSION, LIST_OFFSETS_VERSION, OFFSET_LATEST,
    PRODUCE_VERSION,
};
use sluice_integration_tests::transactions::{
    add_partitions, find_coordinator, init_at_coordinator,
};
use sluice_integration_tests::{kcat, run_command, run_java, topic_name, wait_until, Broker};

const READ_COMMITTED: i8 = 1;
const WRITE_TXN_MARKERS_VERSION: i16 = 1;
/// Long enough that the coordinator never aborts a test's transaction on its own.
const TRANSACTION_TIMEOUT_MS: i32 = 600_000;
/// Errors a transactional Produce may get while the coordinator (re)loads; retried.
const COORDINATOR_MOVING: [i16; 4] = [14, 15, 16, 51];

/// A transactional producer: its id, producer id and epoch, with partition 0 of `topic`
/// added to its transaction at the coordinator (`address_of` maps a node id to its address).
fn transactional_producer(
    address_of: &dyn Fn(i32) -> String,
    id: &str,
    topic: &str,
) -> (String, i64) {
    let mut any = RawClient::connect(&address_of(1));
    let coordinator = find_coordinator(&mut any, id);
    let mut client = RawClient::connect(&address_of(coordinator));
    let (error, producer_id, epoch) = init_at_coordinator(&mut client, id, TRANSACTION_TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0), "InitProducerId {id}");
    assert_eq!(
        add_partitions(&mut client, id, (producer_id, 0), &[(topic, 0)]),
        vec![0]
    );
    (id.to_string(), producer_id)
}

/// A Produce (acks=all) to partition 0 as transactional producer `id`: (error, base offset),
/// retried while the coordinator that verifies it is moving or loading.
fn produce_as(client: &mut RawClient, id: &str, topic: &str, batch: Bytes) -> (i16, i64) {
    wait_until(CLUSTER_DEADLINE, "a settled transactional produce", || {
        let mut request = produce_request(topic, 0, -1, Some(batch.clone()));
        request.transactional_id = Some(TransactionalId(StrBytes::from_string(id.to_string())));
        let response = client.request(PRODUCE_VERSION, &request);
        let answer = &response.responses[0].partition_responses[0];
        (!COORDINATOR_MOVING.contains(&answer.error_code))
            .then_some((answer.error_code, answer.base_offset))
    })
}

/// A batch as an idempotent (`transactional`: transactional) producer sends it, one record
/// per value; producer id -1 for a plain batch.
fn batch(
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    values: &[&str],
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(at, value)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: at as i64,
            sequence: if sequence < 0 {
                -1
            } else {
                sequence + at as i32
            },
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode");
    out.freeze()
}

fn transactional_batch(producer_id: i64, epoch: i16, sequence: i32, values: &[&str]) -> Bytes {
    batch(producer_id, epoch, sequence, values, true)
}

fn produce(client: &mut RawClient, topic: &str, batch: Bytes) -> (i16, i64) {
    let answer = client
        .produce(topic, 0, -1, batch)
        .expect("acks=all answers");
    (answer.error_code, answer.base_offset)
}

fn marker(producer_id: i64, epoch: i16, commit: bool, topic: &str) -> WritableTxnMarker {
    let mut wanted = WritableTxnMarkerTopic::default();
    wanted.name = TopicName(StrBytes::from_string(topic.to_string()));
    wanted.partition_indexes = vec![0];
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(producer_id);
    marker.producer_epoch = epoch;
    marker.transaction_result = commit;
    marker.coordinator_epoch = 0;
    marker.topics = vec![wanted];
    marker
}

/// Sends the markers; returns each partition's error code, in request order.
fn write_markers(client: &mut RawClient, markers: Vec<WritableTxnMarker>) -> Vec<i16> {
    let mut request = WriteTxnMarkersRequest::default();
    request.markers = markers;
    let response = client.request(WRITE_TXN_MARKERS_VERSION, &request);
    response
        .markers
        .iter()
        .flat_map(|marker| marker.topics.iter())
        .flat_map(|topic| topic.partitions.iter())
        .map(|partition| partition.error_code)
        .collect()
}

fn fetch(client: &mut RawClient, topic: &str, offset: i64, isolation_level: i8) -> PartitionData {
    let mut request = fetch_request(topic, 0, offset);
    request.isolation_level = isolation_level;
    let response = client.request(FETCH_VERSION, &request);
    response.responses[0].partitions[0].clone()
}

/// (offset, value) of every data record in a fetch answer; control batches skipped.
fn data_records(data: &PartitionData) -> Vec<(i64, String)> {
    let mut records = data.records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !records.is_empty() {
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).unwrap();
        for record in set.records.iter().filter(|record| !record.control) {
            let value = record.value.clone().unwrap_or_default();
            out.push((record.offset, String::from_utf8(value.to_vec()).unwrap()));
        }
    }
    out
}

/// The aborted transactions of a fetch answer as (producer id, first offset).
fn aborted(data: &PartitionData) -> Vec<(i64, i64)> {
    data.aborted_transactions
        .iter()
        .flatten()
        .map(|txn| (txn.producer_id.0, txn.first_offset))
        .collect()
}

fn latest(client: &mut RawClient, topic: &str, isolation_level: i8) -> i64 {
    let mut wanted = ListOffsetsPartition::default();
    wanted.partition_index = 0;
    wanted.timestamp = OFFSET_LATEST;
    wanted.current_leader_epoch = -1;
    let mut list_topic = ListOffsetsTopic::default();
    list_topic.name = TopicName(StrBytes::from_string(topic.to_string()));
    list_topic.partitions.push(wanted);
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.isolation_level = isolation_level;
    request.topics.push(list_topic);
    let response = client.request(LIST_OFFSETS_VERSION, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{response:?}");
    partition.offset
}

/// Every value kcat prints for partition 0 of `topic` from the beginning to the end.
fn kcat_values(broker: &Broker, topic: &str, isolation_level: &str) -> String {
    let mut command = Command::new(kcat());
    command
        .arg("-b")
        .arg(broker.bootstrap())
        .args(["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e"])
        .args(["-X", &format!("isolation.level={isolation_level}")])
        .args(["-f", "%s@%o\\n"]);
    run_command(command, b"", "kcat -C")
}

/// What the Java consumer reads of partition 0 (`value@offset` lines, then `end=N`).
fn java_values(broker: &Broker, topic: &str, isolation_level: &str) -> String {
    run_java(
        "IsolationDump",
        &[&broker.bootstrap(), topic, isolation_level],
    )
}

/// Producer 1 writes a-0, a-1 (offsets 0-1) and a-2 (3) and aborts (marker 4); producer 2
/// writes b-0 (2) and commits (marker 5); then a plain record at 6.
fn write_interleaved(
    client: &mut RawClient,
    topic: &str,
    producers: (&(String, i64), &(String, i64)),
) {
    let ((first_id, first), (second_id, second)) = (producers.0, producers.1);
    let (first, second) = (*first, *second);
    let a = transactional_batch(first, 0, 0, &["a-0", "a-1"]);
    assert_eq!(produce_as(client, first_id, topic, a), (0, 0));
    assert_eq!(latest(client, topic, READ_COMMITTED), 0);
    assert_eq!(latest(client, topic, 0), 2);
    let b = transactional_batch(second, 0, 0, &["b-0"]);
    assert_eq!(produce_as(client, second_id, topic, b), (0, 2));
    let a = transactional_batch(first, 0, 2, &["a-2"]);
    assert_eq!(produce_as(client, first_id, topic, a), (0, 3));
    // Nothing is stable yet: read_committed sees nothing, read_uncommitted everything.
    let open = fetch(client, topic, 0, READ_COMMITTED);
    assert_eq!((open.high_watermark, open.last_stable_offset), (4, 0));
    assert_eq!(data_records(&open), vec![]);
    assert_eq!(data_records(&fetch(client, topic, 0, 0)).len(), 4);
    let errors = write_markers(
        client,
        vec![
            marker(first, 0, false, topic),
            marker(second, 0, true, topic),
        ],
    );
    assert_eq!(errors, vec![0, 0]);
    let plain = batch(-1, -1, -1, &["plain"], false);
    assert_eq!(produce(client, topic, plain), (0, 6));
}

fn expected_committed_view(client: &mut RawClient, topic: &str, first_producer: i64) {
    let committed = fetch(client, topic, 0, READ_COMMITTED);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (7, 7)
    );
    assert_eq!(aborted(&committed), vec![(first_producer, 0)]);
    // The client drops the aborted producer's records itself; the broker returns all.
    assert_eq!(data_records(&committed).len(), 5);
    assert_eq!(latest(client, topic, READ_COMMITTED), 7);
    // A fetch starting after the aborted transaction's marker gets no aborted entry.
    assert_eq!(aborted(&fetch(client, topic, 5, READ_COMMITTED)), vec![]);
    // read_uncommitted carries no aborted list at all.
    assert_eq!(fetch(client, topic, 0, 0).aborted_transactions, None);
}

#[test]
fn read_committed_sees_committed_transactions_only_and_survives_kill_9() {
    let mut broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-log");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let address = broker.bootstrap();
    let address_of = |_node: i32| address.clone();
    let first = transactional_producer(&address_of, &format!("{topic}-1"), &topic);
    let second = transactional_producer(&address_of, &format!("{topic}-2"), &topic);
    write_interleaved(&mut client, &topic, (&first, &second));
    let (third_id, third) = transactional_producer(&address_of, &format!("{topic}-3"), &topic);
    let first = first.1;
    expected_committed_view(&mut client, &topic, first);
    let committed = "b-0@2\nplain@6\n";
    let everything = "a-0@0\na-1@1\nb-0@2\na-2@3\nplain@6\n";
    assert_eq!(kcat_values(&broker, &topic, "read_committed"), committed);
    assert_eq!(kcat_values(&broker, &topic, "read_uncommitted"), everything);
    assert_eq!(
        java_values(&broker, &topic, "read_committed"),
        format!("{committed}end=7\n")
    );
    assert_eq!(
        java_values(&broker, &topic, "read_uncommitted"),
        format!("{everything}end=7\n")
    );

    // A third producer's transaction stays open across a crash.
    let c = transactional_batch(third, 0, 0, &["c-0"]);
    assert_eq!(produce_as(&mut client, &third_id, &topic, c), (0, 7));
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    let open = fetch(&mut client, &topic, 0, READ_COMMITTED);
    assert_eq!((open.high_watermark, open.last_stable_offset), (8, 7));
    assert_eq!(aborted(&open), vec![(first, 0)]);
    assert_eq!(kcat_values(&broker, &topic, "read_committed"), committed);
    assert_eq!(
        java_values(&broker, &topic, "read_committed"),
        format!("{committed}end=7\n")
    );
    // The coordinator fences producer 3 (epoch 1) and aborts its transaction.
    assert_eq!(
        write_markers(&mut client, vec![marker(third, 1, false, &topic)]),
        vec![0]
    );
    let zombie = transactional_batch(third, 0, 1, &["zombie"]);
    let fenced = produce_as(&mut client, &third_id, &topic, zombie);
    assert_eq!(fenced.0, ResponseError::InvalidProducerEpoch.code());
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    let done = fetch(&mut client, &topic, 0, READ_COMMITTED);
    assert_eq!((done.high_watermark, done.last_stable_offset), (9, 9));
    assert_eq!(aborted(&done), vec![(first, 0), (third, 7)]);
    assert_eq!(kcat_values(&broker, &topic, "read_committed"), committed);
    assert_eq!(
        kcat_values(&broker, &topic, "read_uncommitted"),
        format!("{everything}c-0@7\n")
    );
    assert_eq!(
        java_values(&broker, &topic, "read_committed"),
        format!("{committed}end=9\n")
    );
}

#[test]
fn markers_and_control_batches_get_kafkas_errors() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-errors");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let address = broker.bootstrap();
    let address_of = |_node: i32| address.clone();
    let (id, producer) = transactional_producer(&address_of, &format!("{topic}-x"), &topic);
    let first = transactional_batch(producer, 0, 0, &["x"]);
    assert_eq!(produce_as(&mut client, &id, &topic, first), (0, 0));
    let mut missing_partition = marker(producer, 1, true, &topic);
    missing_partition.topics[0].partition_indexes = vec![9];
    // The coordinator bumped the epoch (1) and commits with coordinator epoch 4.
    let mut newer_coordinator = marker(producer, 1, true, &topic);
    newer_coordinator.coordinator_epoch = 4;
    let mut older_coordinator = marker(producer, 1, true, &topic);
    older_coordinator.coordinator_epoch = 3;
    let errors = write_markers(
        &mut client,
        vec![
            marker(producer, 1, true, "no-such-topic"),
            missing_partition,
            newer_coordinator,
            // An older producer epoch than the partition now knows.
            marker(producer, 0, true, &topic),
            older_coordinator,
        ],
    );
    let expected = vec![
        ResponseError::UnknownTopicOrPartition.code(),
        ResponseError::UnknownTopicOrPartition.code(),
        0,
        ResponseError::InvalidProducerEpoch.code(),
        ResponseError::TransactionCoordinatorFenced.code(),
    ];
    assert_eq!(errors, expected);
    // A client's control batch is an invalid record; nothing is written.
    let mut control = transactional_batch(producer, 0, 1, &["fake-marker"]);
    let control = kafka_protocol::records::RecordBatchDecoder::decode(&mut control)
        .map(|set| {
            let records: Vec<Record> = set
                .records
                .into_iter()
                .map(|record| Record {
                    control: true,
                    ..record
                })
                .collect();
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
            out.freeze()
        })
        .unwrap();
    assert_eq!(control[22] & 0x20, 0x20, "the control attribute is set");
    let refused = produce_as(&mut client, &id, &topic, control);
    assert_eq!(refused.0, ResponseError::InvalidRecord.code());
    // A non-transactional batch of a producer whose transaction is open.
    let (other_id, other) = transactional_producer(&address_of, &format!("{topic}-y"), &topic);
    let open = transactional_batch(other, 0, 0, &["y"]);
    assert_eq!(produce_as(&mut client, &other_id, &topic, open), (0, 2));
    let plain = batch(other, 0, 1, &["z"], false);
    let refused = produce(&mut client, &topic, plain);
    assert_eq!(refused.0, ResponseError::InvalidTxnState.code());
    let end = fetch(&mut client, &topic, 0, 0).high_watermark;
    assert_eq!(end, 3, "only the two batches and the commit marker");
}

/// (leader, ISR size) of partition 0 of `topic` as `node` sees it.
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, usize)> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::MetadataRequest;
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![wanted]);
    let response = client.try_request(12, &request).ok()?;
    let partition = response.topics.first()?.partitions.first()?;
    (partition.error_code == 0 && partition.leader_id.0 > 0)
        .then_some((partition.leader_id.0, partition.isr_nodes.len()))
}

/// Waits until `node` answers a read_committed fetch with high watermark `end`; returns it.
fn committed_at(node: &Broker, topic: &str, end: i64) -> PartitionData {
    wait_until(
        CLUSTER_DEADLINE,
        "a read_committed answer at the end",
        || {
            let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
            let mut request = fetch_request(topic, 0, 0);
            request.isolation_level = READ_COMMITTED;
            let response = client.try_request(FETCH_VERSION, &request).ok()?;
            let data = response.responses.first()?.partitions.first()?.clone();
            (data.error_code == 0 && data.high_watermark == end).then_some(data)
        },
    )
}

#[test]
fn replicas_keep_transactions_through_a_leader_failover() {
    let mut cluster = Cluster::start(3);
    let topic = topic_name("txn-cluster");
    let created = wait_until(CLUSTER_DEADLINE, "the topic created", || {
        let mut client = RawClient::try_connect(&cluster.node(1).bootstrap()).ok()?;
        let code = client.create_topic_replicated(&topic, 1, 3, &[("min.insync.replicas", "2")]);
        (code == 0).then_some(code)
    });
    assert_eq!(created, 0);
    let (leader, _) = wait_until(CLUSTER_DEADLINE, "RF=3 partition in sync", || {
        partition_state(cluster.node(1), &topic).filter(|(_, isr)| *isr == 3)
    });
    let mut client = RawClient::connect(&cluster.node(leader).bootstrap());
    let address_of = |node: i32| cluster.node(node).bootstrap();
    let first = transactional_producer(&address_of, &format!("{topic}-1"), &topic);
    let second = transactional_producer(&address_of, &format!("{topic}-2"), &topic);
    let (third_id, third) = transactional_producer(&address_of, &format!("{topic}-3"), &topic);
    write_interleaved(&mut client, &topic, (&first, &second));
    let first = first.1;
    let c = transactional_batch(third, 0, 0, &["c-0"]);
    assert_eq!(produce_as(&mut client, &third_id, &topic, c), (0, 7));
    // Every replica (followers serve consumers too, KIP-392) holds the same transactions.
    for id in cluster.ids().collect::<Vec<_>>() {
        let data = committed_at(cluster.node(id), &topic, 8);
        assert_eq!(data.last_stable_offset, 7, "node {id}");
        assert_eq!(aborted(&data), vec![(first, 0)], "node {id}");
    }

    cluster.node_mut(leader).kill9();
    let survivor = cluster.ids().find(|id| *id != leader).expect("a survivor");
    let (new_leader, _) = wait_until(CLUSTER_DEADLINE, "a new leader", || {
        partition_state(cluster.node(survivor), &topic).filter(|(l, _)| *l != leader)
    });
    let mut client = RawClient::connect(&cluster.node(new_leader).bootstrap());
    let open = committed_at(cluster.node(new_leader), &topic, 8);
    assert_eq!(open.last_stable_offset, 7, "producer 3 is still open");
    // The coordinator aborts producer 3 at the new leader.
    let errors = wait_until(CLUSTER_DEADLINE, "the abort marker written", || {
        let errors = write_markers(&mut client, vec![marker(third, 1, false, &topic)]);
        (errors == vec![0]).then_some(errors)
    });
    assert_eq!(errors, vec![0]);
    let done = committed_at(cluster.node(new_leader), &topic, 9);
    assert_eq!(done.last_stable_offset, 9);
    assert_eq!(aborted(&done), vec![(first, 0), (third, 7)]);
    let committed = "b-0@2\nplain@6\n";
    assert_eq!(
        kcat_values(cluster.node(new_leader), &topic, "read_committed"),
        committed
    );

    // The old leader returns as a follower and agrees.
    cluster.node_mut(leader).restart();
    let rejoined = committed_at(cluster.node(leader), &topic, 9);
    assert_eq!(rejoined.last_stable_offset, 9);
    assert_eq!(aborted(&rejoined), vec![(first, 0), (third, 7)]);
}
