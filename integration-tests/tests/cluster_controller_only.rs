//! Every process role at once, as KRaft's process.roles: nodes 1 and 2 are brokers and
//! controller voters, node 3 is a controller only (a voter hosting no partitions, not listed as
//! a broker), node 4 a broker only (it follows the metadata log as a Raft learner). Metadata
//! names a broker as controller even while node 3 leads; the broker-only node serves Metadata
//! from its own image, hosts replicas and takes acks=all writes while each voter dies in turn.

use std::collections::BTreeSet;
use std::process::Command;

use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{kcat, run_command, topic_name, wait_until, Broker};

const ROLES: [&str; 4] = [
    "broker,controller",
    "broker,controller",
    "controller",
    "broker",
];
const CONTROLLER_ONLY: i32 = 3;
const BROKER_ONLY: i32 = 4;
const PARTITIONS: i32 = 3;

/// (brokers, controller) in `node`'s Metadata; `None` if it cannot answer now.
fn brokers_and_controller(node: &Broker) -> Option<(BTreeSet<i32>, i32)> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-L", "-m", "5"]);
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut brokers = BTreeSet::new();
    let mut controller = None;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("broker ") else {
            continue;
        };
        let id: i32 = rest.split_whitespace().next()?.parse().ok()?;
        brokers.insert(id);
        if line.ends_with("(controller)") {
            controller = Some(id);
        }
    }
    Some((brokers, controller?))
}

/// Waits until every node in `ids` lists exactly `brokers` and the same controller, other than
/// `not`; returns the controller.
fn wait_agreed(cluster: &Cluster, ids: &[i32], brokers: &BTreeSet<i32>, not: Option<i32>) -> i32 {
    wait_until(
        CLUSTER_DEADLINE,
        "every node agrees on brokers and controller",
        || {
            let mut controllers = BTreeSet::new();
            for id in ids {
                let (listed, controller) = brokers_and_controller(cluster.node(*id))?;
                if listed != *brokers || Some(controller) == not {
                    return None;
                }
                controllers.insert(controller);
            }
            let controller = *controllers.iter().next()?;
            (controllers.len() == 1).then_some(controller)
        },
    )
}

fn values(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|v| format!("{v:08}")).collect()
}

fn produce(node: &Broker, topic: &str, partition: i32, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let partition = partition.to_string();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-p", &partition]);
    command.args(["-X", "acks=all", "-X", "enable.idempotence=true"]);
    command.args(["-X", "message.timeout.ms=30000"]);
    run_command(command, input.as_bytes(), "kcat produce");
}

fn consume_all(node: &Broker, topic: &str, partition: i32) -> Vec<String> {
    let partition = partition.to_string();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-C", "-t", topic, "-p", &partition]);
    command.args(["-o", "beginning", "-e", "-q"]);
    let out = run_command(command, b"", "kcat consume");
    out.lines().map(str::to_string).collect()
}

/// Partition directories of `topic` in a node's data dir.
fn hosted_partitions(node: &Broker, topic: &str) -> BTreeSet<i32> {
    let prefix = format!("{topic}-");
    std::fs::read_dir(node.data_dir())
        .expect("data dir")
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&prefix)?.parse().ok()
        })
        .collect()
}

#[test]
fn a_controller_only_voter_hosts_nothing_and_brokers_serve_through_every_voter_failure() {
    let mut cluster = Cluster::start_with_roles(&ROLES, &["--default-replication-factor", "3"]);
    let all: Vec<i32> = cluster.ids().collect();
    let brokers: BTreeSet<i32> = [1, 2, BROKER_ONLY].into();
    // Every node, the broker-only learner included, serves the same view from its image;
    // the controller-only node is not a broker.
    // Metadata names a broker as controller (KRaft does too: a controller-only leader is
    // no broker a client can reach; admin requests sent to the one named are forwarded).
    let controller = wait_agreed(&cluster, &all, &brokers, None);
    assert!(brokers.contains(&controller), "controller {controller}");

    // RF=3 over three brokers: every partition has a replica on the broker-only node.
    let topic = topic_name("roles");
    let mut client = RawClient::connect(&cluster.node(BROKER_ONLY).bootstrap());
    let code = client.create_topic_replicated(&topic, PARTITIONS, 3, &[]);
    assert_eq!(code, 0, "CreateTopics through the broker-only node");
    for partition in 0..PARTITIONS {
        produce(
            cluster.node(BROKER_ONLY),
            &topic,
            partition,
            &values(0..200),
        );
    }
    for partition in 0..PARTITIONS {
        assert_eq!(
            consume_all(cluster.node(BROKER_ONLY), &topic, partition),
            values(0..200)
        );
    }
    let every_partition: BTreeSet<i32> = (0..PARTITIONS).collect();
    assert_eq!(
        hosted_partitions(cluster.node(BROKER_ONLY), &topic),
        every_partition
    );
    assert_eq!(
        hosted_partitions(cluster.node(CONTROLLER_ONLY), &topic),
        BTreeSet::new()
    );

    // Each voter dies in turn (one of them is the Raft leader then): the learner follows
    // whichever controller comes next and keeps taking acks=all writes.
    let mut acknowledged = 200;
    for victim in [CONTROLLER_ONLY, 1, 2] {
        cluster.kill9(victim);
        let alive: Vec<i32> = all.iter().copied().filter(|id| *id != victim).collect();
        let listed: BTreeSet<i32> = brokers.iter().copied().filter(|id| *id != victim).collect();
        wait_agreed(&cluster, &alive, &listed, Some(victim));
        produce(
            cluster.node(BROKER_ONLY),
            &topic,
            0,
            &values(acknowledged..acknowledged + 100),
        );
        acknowledged += 100;
        assert_eq!(
            consume_all(cluster.node(BROKER_ONLY), &topic, 0),
            values(0..acknowledged)
        );
        cluster.restart(victim);
        wait_agreed(&cluster, &all, &brokers, None);
    }
}
