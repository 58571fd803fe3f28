//! A 3-node cluster of real `sluice` processes on 127.0.0.1: it forms (every node lists the
//! same 3 brokers and controller), replicates an RF=3 topic with acks=all, survives a kill -9
//! of the partition leader and then of the controller, and a restarted node rejoins the ISR
//! with a log identical to the others'.

use std::collections::BTreeSet;
use std::process::Command;

use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{kcat, run_command, topic_name, wait_until, Broker};

const NODES: i32 = 3;

/// `kcat -L` of one node; `None` if it cannot answer now.
fn metadata(node: &Broker, topic: Option<&str>) -> Option<String> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-L", "-m", "5"]);
    if let Some(topic) = topic {
        command.args(["-t", topic]);
    }
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// (leader, isr) of partition 0 as `node` sees it.
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, BTreeSet<i32>)> {
    let text = metadata(node, Some(topic))?;
    let line = text.lines().find(|l| l.contains("partition 0,"))?;
    let leader = line
        .split("leader ")
        .nth(1)?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()?;
    let isr = line.split("isrs: ").nth(1)?;
    let isr = isr
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect();
    Some((leader, isr))
}

fn produce(node: &Broker, topic: &str, values: std::ops::Range<u32>) {
    let input: String = values.map(|v| format!("{v:08}\n")).collect();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-p", "0"]);
    command.args(["-X", "acks=all", "-X", "enable.idempotence=true"]);
    command.args(["-X", "message.timeout.ms=30000"]);
    run_command(command, input.as_bytes(), "kcat produce");
}

fn consume_all(node: &Broker, topic: &str) -> Vec<String> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-C", "-t", topic, "-p", "0"]);
    command.args(["-o", "beginning", "-e", "-q"]);
    let out = run_command(command, b"", "kcat consume");
    out.lines().map(str::to_string).collect()
}

fn expected(count: u32) -> Vec<String> {
    (0..count).map(|v| format!("{v:08}")).collect()
}

/// The segment files of partition 0 on one node, concatenated.
fn log_bytes(node: &Broker, topic: &str) -> Vec<u8> {
    let dir = node.data_dir().join(format!("{topic}-0"));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read segment"))
        .collect()
}

fn find_coordinator(node: &Broker, group: &str) -> i32 {
    use kafka_protocol::messages::FindCoordinatorRequest;
    use kafka_protocol::protocol::StrBytes;
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = FindCoordinatorRequest::default();
    request.key_type = 0;
    request.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
    let response = client.request(4, &request);
    let coordinator = response.coordinators.first().expect("one coordinator");
    assert_eq!(coordinator.error_code, 0, "{coordinator:?}");
    coordinator.node_id.0
}

#[test]
fn three_nodes_replicate_fail_over_and_rejoin_without_losing_acknowledged_records() {
    let mut cluster = Cluster::start(NODES as usize);
    // Every node lists 3 brokers and the same controller.
    let controllers: BTreeSet<String> = (1..=NODES)
        .map(|id| {
            wait_until(CLUSTER_DEADLINE, "3 brokers in metadata", || {
                let text = metadata(cluster.node(id), None)?;
                let brokers = text.lines().filter(|l| l.contains("  broker ")).count();
                let controller = text.lines().find(|l| l.contains("(controller)"))?;
                (brokers == 3).then(|| controller.trim().to_string())
            })
        })
        .collect();
    assert_eq!(
        controllers.len(),
        1,
        "nodes disagree on the controller: {controllers:?}"
    );

    // Every node names the same coordinator for a group, so a group's members meet on one node
    // whichever broker they ask.
    for group in ["orders", "billing", "group-7", "x"] {
        let answers: BTreeSet<i32> = (1..=NODES)
            .map(|id| find_coordinator(cluster.node(id), group))
            .collect();
        assert_eq!(answers.len(), 1, "coordinators for {group}: {answers:?}");
        assert!((1..=NODES).contains(answers.iter().next().expect("one answer")));
    }

    let topic = topic_name("cluster");
    produce(cluster.node(1), &topic, 0..500);
    let (leader, isr) = wait_until(CLUSTER_DEADLINE, "RF=3 partition", || {
        partition_state(cluster.node(1), &topic).filter(|(_, isr)| isr.len() == 3)
    });
    assert_eq!(isr, BTreeSet::from([1, 2, 3]));

    // Kill the partition leader: a new one from the ISR serves every acknowledged record.
    cluster.node_mut(leader).kill9();
    let survivor = (1..=NODES).find(|id| *id != leader).expect("a survivor");
    let (new_leader, _) = wait_until(CLUSTER_DEADLINE, "a new leader", || {
        partition_state(cluster.node(survivor), &topic).filter(|(l, _)| *l != leader && *l > 0)
    });
    produce(cluster.node(survivor), &topic, 500..1000);
    assert_eq!(consume_all(cluster.node(survivor), &topic), expected(1000));

    // The killed node restarts, catches up and returns to the ISR.
    cluster.node_mut(leader).restart();
    wait_until(
        CLUSTER_DEADLINE,
        "the restarted node back in the ISR",
        || partition_state(cluster.node(survivor), &topic).filter(|(_, isr)| isr.contains(&leader)),
    );

    // Kill the controller (the Raft leader) too; the cluster keeps serving.
    let controller: i32 = controllers
        .iter()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .expect("controller id");
    let alive: Vec<i32> = (1..=NODES).filter(|id| *id != controller).collect();
    cluster.node_mut(controller).kill9();
    wait_until(
        CLUSTER_DEADLINE,
        "a leader after the controller died",
        || {
            partition_state(cluster.node(alive[0]), &topic)
                .filter(|(l, _)| *l != controller && *l > 0)
        },
    );
    produce(cluster.node(alive[0]), &topic, 1000..1500);
    assert_eq!(consume_all(cluster.node(alive[1]), &topic), expected(1500));
    cluster.node_mut(controller).restart();
    wait_until(CLUSTER_DEADLINE, "all three in the ISR", || {
        partition_state(cluster.node(alive[0]), &topic).filter(|(_, isr)| isr.len() == 3)
    });
    // Every replica holds the same bytes: same records at the same offsets, same epochs.
    let reference = log_bytes(cluster.node(1), &topic);
    wait_until(CLUSTER_DEADLINE, "identical replica logs", || {
        (2..=NODES)
            .all(|id| log_bytes(cluster.node(id), &topic) == reference)
            .then_some(())
    });
    assert!(!reference.is_empty());
    let _ = new_leader;
}
