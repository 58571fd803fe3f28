//! Moving partitions with Apache Kafka's own tools against real `sluice` processes:
//! `kafka-reassign-partitions` (execute with a throttle, list, verify) moves a replica and its
//! leadership to another node without losing or duplicating a record, within the throttle;
//! `kafka-leader-election` returns leadership to the preferred replica after a failover; and
//! the Kafka error codes of AlterPartitionReassignments / ElectLeaders, from a raw client.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::kafka_cli::{kafka_tool_ok, TOPICS};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{kcat, run_command, sluice_bin, topic_name, wait_until, Broker};

/// `kafka-reassign-partitions.sh`.
const REASSIGN_PARTITIONS: &str = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
/// `kafka-leader-election.sh`.
const LEADER_ELECTION: &str = "org.apache.kafka.tools.LeaderElectionCommand";

/// Bytes/s for the moving replica: low enough that a catch-up of `RECORD_COUNT` records
/// takes several seconds, so `--list` sees it and the rate can be measured.
const THROTTLE_BYTES_PER_SEC: u64 = 200_000;
const RECORD_COUNT: u32 = 12_000;
/// Each record's value: an 8-digit sequence number padded to this many bytes.
const VALUE_BYTES: usize = 100;

/// (leader, replicas, isr) of partition 0 as `node` sees it (kcat -L).
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, Vec<i32>, BTreeSet<i32>)> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-L", "-m", "5", "-t", topic]);
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let line = text.lines().find(|l| l.contains("partition 0,"))?;
    let field = |name: &str| -> Option<String> {
        let rest = line.split(name).nth(1)?;
        Some(rest.split([' ']).next()?.trim_end_matches(',').to_string())
    };
    let ids = |text: &str| -> Vec<i32> {
        text.split(',')
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    };
    let leader = field("leader ")?.parse().ok()?;
    let replicas = ids(&field("replicas: ")?);
    let isr = ids(&field("isrs: ")?).into_iter().collect();
    Some((leader, replicas, isr))
}

fn value(sequence: u32) -> String {
    format!("{sequence:08}{}", "x".repeat(VALUE_BYTES - 8))
}

fn produce(node: &Broker, topic: &str, values: std::ops::Range<u32>) {
    produce_to(node, topic, 0, values);
}

fn produce_to(node: &Broker, topic: &str, partition: i32, values: std::ops::Range<u32>) {
    let input: String = values.map(|v| format!("{}\n", value(v))).collect();
    let partition = partition.to_string();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-p", &partition]);
    command.args(["-X", "acks=all", "-X", "enable.idempotence=true"]);
    command.args(["-X", "message.timeout.ms=30000", "-z", "none"]);
    run_command(command, input.as_bytes(), "kcat produce");
}

fn consume_all(node: &Broker, topic: &str) -> Vec<String> {
    consume_partition(node, topic, 0)
}

fn consume_partition(node: &Broker, topic: &str, partition: i32) -> Vec<String> {
    let partition = partition.to_string();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-C", "-t", topic, "-p", &partition]);
    command.args(["-o", "beginning", "-e", "-q"]);
    let out = run_command(command, b"", "kcat consume");
    out.lines().map(str::to_string).collect()
}

/// The segment files of partition 0 on one node, concatenated; `None` without a directory.
fn log_bytes(node: &Broker, topic: &str) -> Option<Vec<u8>> {
    let dir = node.data_dir().join(format!("{topic}-0"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    let mut bytes = Vec::new();
    for name in names {
        bytes.extend(std::fs::read(name).ok()?);
    }
    Some(bytes)
}

fn create_topic(cluster: &Cluster, topic: &str, assignment: &str) {
    kafka_tool_ok(
        TOPICS,
        &[
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--create",
            "--topic",
            topic,
            "--replica-assignment",
            assignment,
        ],
    );
}

fn reassign(cluster: &Cluster, json: &Path, action: &[&str]) -> String {
    let bootstrap = cluster.bootstrap();
    let json = json.to_str().expect("utf-8 path");
    let mut args = vec![
        "--bootstrap-server",
        &bootstrap,
        "--reassignment-json-file",
        json,
    ];
    args.extend_from_slice(action);
    kafka_tool_ok(REASSIGN_PARTITIONS, &args)
}

#[test]
fn kafka_reassign_partitions_moves_replica_and_leader_within_the_throttle() {
    let _matrix = covers(
        "kafka CLI tools",
        &["reassign_partitions"],
        "kafka_reassign_partitions_moves_replica_and_leader_within_the_throttle",
    );
    let cluster = Cluster::start(3);
    let topic = topic_name("reassign");
    // RF=2 on nodes 1 (preferred leader) and 2.
    create_topic(&cluster, &topic, "1:2");
    produce(cluster.node(2), &topic, 0..RECORD_COUNT);
    let (leader, replicas, isr) = wait_until(CLUSTER_DEADLINE, "RF=2 in sync", || {
        partition_state(cluster.node(1), &topic).filter(|(_, _, isr)| isr.len() == 2)
    });
    assert_eq!(
        (leader, replicas, isr),
        (1, vec![1, 2], BTreeSet::from([1, 2]))
    );
    let leader_bytes = wait_until(CLUSTER_DEADLINE, "replica logs equal", || {
        let bytes = log_bytes(cluster.node(1), &topic)?;
        (log_bytes(cluster.node(2), &topic)? == bytes).then_some(bytes)
    });
    assert!(leader_bytes.len() > RECORD_COUNT as usize * VALUE_BYTES);

    // Move to 3,2: node 3 is added, node 1 (the leader) removed.
    let scratch = tempfile::tempdir().expect("scratch");
    let json = scratch.path().join("reassign.json");
    let plan = format!(
        r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[3,2]}}]}}"#
    );
    std::fs::write(&json, plan).expect("write plan");
    let started = Instant::now();
    let throttle = THROTTLE_BYTES_PER_SEC.to_string();
    let executed = reassign(&cluster, &json, &["--execute", "--throttle", &throttle]);
    assert!(
        executed.contains("Successfully started partition reassignment"),
        "{executed}"
    );

    // In progress: --list shows the replica being added and the one being removed.
    let listed = kafka_tool_ok(
        REASSIGN_PARTITIONS,
        &["--bootstrap-server", &cluster.bootstrap(), "--list"],
    );
    let moving = format!("{topic}-0: replicas: 3,2,1. adding: 3. removing: 1.");
    assert!(listed.contains(&moving), "{listed}");
    // `sluice reassignments` shows the same move and how many bytes node 3 still lacks.
    let mut command = Command::new(sluice_bin());
    command.args(["reassignments", "--bootstrap-server", &cluster.bootstrap()]);
    let shown = run_command(command, b"", "sluice reassignments");
    let rows: Vec<Vec<&str>> = shown
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{shown}");
    assert_eq!(
        rows[1][..7],
        [topic.as_str(), "0", "3,2,1", "3", "1", "1", "3"],
        "{shown}"
    );
    let lag_bytes: usize = rows[1][7].parse().expect("lag in bytes");
    assert!(lag_bytes > 0 && lag_bytes <= leader_bytes.len(), "{shown}");

    let completed = format!("Reassignment of partition {topic}-0 is completed.");
    let verified = wait_until(
        Duration::from_secs(120),
        "the reassignment to complete",
        || {
            let out = reassign(&cluster, &json, &["--verify"]);
            out.contains(&completed).then_some(out)
        },
    );
    let elapsed = started.elapsed();
    assert!(
        verified.contains("Clearing broker-level throttles"),
        "{verified}"
    );
    let rate = leader_bytes.len() as f64 / elapsed.as_secs_f64();
    eprintln!(
        "moved {} bytes in {elapsed:?}: {rate:.0} bytes/s",
        leader_bytes.len()
    );
    assert!(
        rate <= THROTTLE_BYTES_PER_SEC as f64,
        "caught up at {rate:.0} bytes/s, over the {THROTTLE_BYTES_PER_SEC} throttle ({elapsed:?})"
    );

    // The new replica set and leader, seen from every node.
    for id in cluster.ids() {
        let (leader, _, isr) = wait_until(CLUSTER_DEADLINE, "new replica set", || {
            partition_state(cluster.node(id), &topic).filter(|(_, replicas, _)| replicas == &[3, 2])
        });
        assert_eq!((leader, isr), (3, BTreeSet::from([2, 3])), "node {id}");
    }
    // Every record, exactly once and in order, from the new leader.
    let expected: Vec<String> = (0..RECORD_COUNT).map(value).collect();
    assert_eq!(consume_all(cluster.node(3), &topic), expected);
    // Node 1 deleted its replica; node 3 holds the leader's bytes exactly.
    wait_until(CLUSTER_DEADLINE, "node 1's partition removed", || {
        let dir = cluster.node(1).data_dir().join(format!("{topic}-0"));
        (!dir.exists()).then_some(())
    });
    assert_eq!(
        log_bytes(cluster.node(3), &topic),
        Some(leader_bytes.clone())
    );
    assert_eq!(log_bytes(cluster.node(2), &topic), Some(leader_bytes));
}

#[test]
fn moves_beyond_the_limit_wait_in_the_queue_and_removed_followers_are_deleted() {
    // One move at a time, paced by the flag (no --throttle given to the tool).
    let cluster = Cluster::start_with(
        3,
        &[
            "--reassignment-moves-max",
            "1",
            "--reassignment-throttle-bytes-per-sec",
            "100000",
        ],
    );
    let topic = topic_name("queue");
    create_topic(&cluster, &topic, "1:2,1:2");
    const COUNT: u32 = 3_000;
    for partition in 0..2 {
        produce_to(cluster.node(1), &topic, partition, 0..COUNT);
    }
    let dir = |node: i32, partition: i32| {
        let name = format!("{topic}-{partition}");
        cluster.node(node).data_dir().join(name)
    };
    // Both partitions: follower 2 out, 3 in.
    let scratch = tempfile::tempdir().expect("scratch");
    let json = scratch.path().join("reassign.json");
    let plan = format!(
        r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[1,3]}},{{"topic":"{topic}","partition":1,"replicas":[1,3]}}]}}"#
    );
    std::fs::write(&json, plan).expect("write plan");
    reassign(&cluster, &json, &["--execute"]);
    // Partition 0 moves (≥ 3 s at the throttle); partition 1 waits: node 3 has no replica yet.
    assert!(dir(3, 0).exists());
    assert!(!dir(3, 1).exists());
    let listed = kafka_tool_ok(
        REASSIGN_PARTITIONS,
        &["--bootstrap-server", &cluster.bootstrap(), "--list"],
    );
    for partition in 0..2 {
        let moving = format!("{topic}-{partition}: replicas: 1,3,2. adding: 3. removing: 2.");
        assert!(listed.contains(&moving), "{listed}");
    }
    wait_until(Duration::from_secs(120), "both moves to complete", || {
        let out = reassign(&cluster, &json, &["--verify"]);
        (0..2)
            .all(|p| {
                out.contains(&format!(
                    "Reassignment of partition {topic}-{p} is completed."
                ))
            })
            .then_some(())
    });
    let expected: Vec<String> = (0..COUNT).map(value).collect();
    for partition in 0..2 {
        assert_eq!(
            consume_partition(cluster.node(3), &topic, partition),
            expected
        );
        wait_until(CLUSTER_DEADLINE, "node 2's replica removed", || {
            (!dir(2, partition).exists()).then_some(())
        });
    }
    let (leader, replicas, isr) = partition_state(cluster.node(3), &topic).expect("metadata");
    assert_eq!(
        (leader, replicas, isr),
        (1, vec![1, 3], BTreeSet::from([1, 3]))
    );
}

#[test]
fn kafka_leader_election_returns_leadership_to_the_preferred_replica() {
    let _matrix = covers(
        "kafka CLI tools",
        &["elect_leaders"],
        "kafka_leader_election_returns_leadership_to_the_preferred_replica",
    );
    let mut cluster = Cluster::start(3);
    let topic = topic_name("elect");
    create_topic(&cluster, &topic, "1:2");
    produce(cluster.node(2), &topic, 0..100);
    wait_until(CLUSTER_DEADLINE, "RF=2 in sync, led by 1", || {
        partition_state(cluster.node(2), &topic).filter(|(l, _, isr)| *l == 1 && isr.len() == 2)
    });
    // Fail over to 2, then bring 1 back into the ISR: 2 keeps leading.
    cluster.kill9(1);
    wait_until(CLUSTER_DEADLINE, "2 leads after 1 died", || {
        partition_state(cluster.node(2), &topic).filter(|(l, _, _)| *l == 2)
    });
    produce(cluster.node(2), &topic, 100..200);
    cluster.restart(1);
    wait_until(CLUSTER_DEADLINE, "1 back in the ISR", || {
        partition_state(cluster.node(2), &topic).filter(|(_, _, isr)| isr.contains(&1))
    });
    assert_eq!(
        partition_state(cluster.node(2), &topic).map(|s| s.0),
        Some(2)
    );

    let out = kafka_tool_ok(
        LEADER_ELECTION,
        &[
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--election-type",
            "preferred",
            "--all-topic-partitions",
        ],
    );
    assert!(
        out.contains("Successfully completed leader election (PREFERRED) for partitions")
            && out.contains(&format!("{topic}-0")),
        "{out}"
    );
    for id in cluster.ids() {
        wait_until(CLUSTER_DEADLINE, "1 leads again", || {
            partition_state(cluster.node(id), &topic).filter(|(l, _, _)| *l == 1)
        });
    }
    let expected: Vec<String> = (0..200).map(value).collect();
    assert_eq!(consume_all(cluster.node(1), &topic), expected);

    // Nothing left to do: the same election reports no partition, and succeeds.
    let again = kafka_tool_ok(
        LEADER_ELECTION,
        &[
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--election-type",
            "preferred",
            "--topic",
            &topic,
            "--partition",
            "0",
        ],
    );
    assert!(
        again.contains(&format!(
            "Valid replica already elected for partitions {topic}-0"
        )),
        "{again}"
    );
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn alter_request(
    topic: &str,
    partitions: Vec<(i32, Option<Vec<i32>>)>,
) -> AlterPartitionReassignmentsRequest {
    let mut wanted = ReassignableTopic::default();
    wanted.name = TopicName(text(topic));
    wanted.partitions = partitions
        .into_iter()
        .map(|(index, replicas)| {
            let mut partition = ReassignablePartition::default();
            partition.partition_index = index;
            partition.replicas = replicas.map(|ids| ids.into_iter().map(BrokerId).collect());
            partition
        })
        .collect();
    let mut request = AlterPartitionReassignmentsRequest::default();
    request.allow_replication_factor_change = true;
    request.topics = vec![wanted];
    request
}

#[test]
fn reassignment_and_election_error_codes_are_kafkas() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("codes");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);

    // One partition per request: a request naming a partition twice is refused as a whole.
    let code = |client: &mut RawClient, target: Option<Vec<i32>>| {
        let response = client.request(1, &alter_request(&topic, vec![(0, target)]));
        assert_eq!(response.error_code, 0);
        let partition = &response.responses[0].partitions[0];
        let message = partition.error_message.as_ref().map(|m| m.to_string());
        (partition.error_code, message)
    };
    let no_reassignment = "no reassignment is in progress".to_string();
    assert_eq!(code(&mut client, None), (85, Some(no_reassignment)));
    assert_eq!(code(&mut client, Some(vec![1, 1])).0, 39);
    let unknown_broker = "broker 7 is not registered".to_string();
    assert_eq!(code(&mut client, Some(vec![7])), (39, Some(unknown_broker)));
    assert_eq!(code(&mut client, Some(vec![1])), (0, None));
    let twice = client.request(
        1,
        &alter_request(
            &topic,
            vec![(0, Some(vec![1])), (0, None), (3, Some(vec![1]))],
        ),
    );
    let codes: Vec<i16> = twice.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![0, 42, 3]);
    let unknown_topic =
        client.request(0, &alter_request("no-such-topic", vec![(0, Some(vec![1]))]));
    assert_eq!(unknown_topic.responses[0].partitions[0].error_code, 3);

    // KIP-860: a different replication factor is refused unless allowed.
    let mut grow = alter_request(&topic, vec![(0, Some(vec![1, 7]))]);
    grow.allow_replication_factor_change = false;
    let refused = client.request(1, &grow);
    assert_eq!(refused.responses[0].partitions[0].error_code, 39);
    let mut grow = alter_request(&topic, vec![(0, Some(vec![]))]);
    grow.allow_replication_factor_change = false;
    assert_eq!(
        client.request(1, &grow).responses[0].partitions[0].error_code,
        39
    );

    let listed = client.request(0, &ListPartitionReassignmentsRequest::default());
    assert_eq!((listed.error_code, listed.topics.len()), (0, 0));

    // Preferred: already led by the preferred replica. Unclean: a leader exists.
    for (election_type, expected) in [(0i8, 84i16), (1, 84)] {
        let mut wanted = TopicPartitions::default();
        wanted.topic = TopicName(text(&topic));
        wanted.partitions = vec![0, 5];
        let mut request = ElectLeadersRequest::default();
        request.election_type = election_type;
        request.topic_partitions = Some(vec![wanted]);
        let response = client.request(2, &request);
        assert_eq!(response.error_code, 0);
        let codes: Vec<(i32, i16)> = response.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        assert_eq!(codes, vec![(0, expected), (5, 3)], "type {election_type}");
    }
    // All partitions: nothing needed an election, so nothing is reported.
    let all = client.request(2, &ElectLeadersRequest::default());
    assert_eq!((all.error_code, all.replica_election_results.len()), (0, 0));
}
