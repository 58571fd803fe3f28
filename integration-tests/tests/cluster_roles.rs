//! A broker-only node (`--process-roles broker`) joins a running 3-voter cluster: it follows
//! the metadata log as a Raft learner, is handed to clients by every node, hosts replicas, and
//! rejoins after a kill -9. It never votes: the voters alone keep the quorum.

use std::collections::BTreeSet;
use std::process::Command;

use kafka_protocol::messages::MetadataRequest;
use sluice_integration_tests::cluster::{Cluster, ClusterPlan, CLUSTER_DEADLINE};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{kcat, run_command, topic_name, wait_until, Broker};

const METADATA_VERSION: i16 = 12;

/// (broker ids, controller id, replicas of every partition of `topic`) as `node` sees them.
fn view(node: &Broker, topic: &str) -> (BTreeSet<i32>, i32, Vec<Vec<i32>>) {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = MetadataRequest::default();
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    request.topics = Some(vec![wanted]);
    request.allow_auto_topic_creation = false;
    let response = client.request(METADATA_VERSION, &request);
    let brokers = response.brokers.iter().map(|b| b.node_id.0).collect();
    let replicas = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.replica_nodes.iter().map(|id| id.0).collect())
        .collect();
    (brokers, response.controller_id.0, replicas)
}

fn produce(node: &Broker, topic: &str, partition: i32, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic]);
    command.args(["-p", &partition.to_string(), "-X", "acks=all"]);
    run_command(command, input.as_bytes(), "kcat produce");
}

fn consume(node: &Broker, topic: &str, partition: i32) -> Vec<String> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-C", "-t", topic]);
    command.args(["-p", &partition.to_string(), "-o", "beginning", "-e", "-q"]);
    let out = run_command(command, b"", "kcat consume");
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_broker_only_node_joins_hosts_replicas_and_rejoins_after_a_crash() {
    let plan = ClusterPlan::with_brokers_only(3, 1);
    let voters = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=3)
            .map(|id| {
                let args = plan.node_args(id);
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    Broker::start_with(&args)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("voter starts"))
            .collect::<Vec<_>>()
    });
    let learner_args = plan.node_args(4);
    let learner_args: Vec<&str> = learner_args.iter().map(String::as_str).collect();
    let learner = Broker::start_with(&learner_args);
    let mut nodes = voters;
    nodes.push(learner);
    let mut cluster = Cluster::from_nodes(nodes);

    let all = BTreeSet::from([1, 2, 3, 4]);
    let topic = topic_name("roles");
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    // 8 partitions × RF 2 over 4 brokers: placement puts replicas on node 4 too.
    assert_eq!(
        client.create_topic_replicated(&topic, 8, 2, &[("min.insync.replicas", "1")]),
        0
    );
    for id in cluster.ids() {
        wait_until(CLUSTER_DEADLINE, "every node sees 4 brokers", || {
            let (brokers, controller, replicas) = view(cluster.node(id), &topic);
            (brokers == all && replicas.len() == 8 && (1..=3).contains(&controller)).then_some(())
        });
    }
    let (_, _, replicas) = view(cluster.node(4), &topic);
    let on_learner: Vec<i32> = (0..8)
        .filter(|p| replicas[*p as usize].contains(&4))
        .collect();
    assert!(!on_learner.is_empty(), "no replica on node 4: {replicas:?}");
    let partition = on_learner[0];
    let values: Vec<String> = (0..100).map(|i| format!("v{i:03}")).collect();
    produce(cluster.node(4), &topic, partition, &values);
    assert_eq!(consume(cluster.node(4), &topic, partition), values);

    cluster.kill9(4);
    cluster.restart(4);
    wait_until(CLUSTER_DEADLINE, "node 4 back in every view", || {
        (view(cluster.node(1), &topic).0 == all && view(cluster.node(4), &topic).0 == all)
            .then_some(())
    });
    let more: Vec<String> = (100..150).map(|i| format!("v{i:03}")).collect();
    produce(cluster.node(1), &topic, partition, &more);
    let everything: Vec<String> = values.iter().chain(&more).cloned().collect();
    wait_until(CLUSTER_DEADLINE, "node 4 serves every record", || {
        (consume(cluster.node(4), &topic, partition) == everything).then_some(())
    });
}
