//! Reachable-address admission on a 3-node cluster of real processes: a node whose advertised
//! address cannot be reached (wrong host, wrong port, or a path that stops answering while the
//! node itself runs, or a name that does not resolve) is never in any client's Metadata, says why in its log and in
//! `sluice brokers`, and the cluster keeps serving; fixing the address admits it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;

use kafka_protocol::messages::MetadataRequest;
use sluice_integration_tests::cluster::{
    Cluster, ClusterPlan, CLUSTER_DEADLINE, FAST_FAILURE_DETECTION, LAB_CLIENT_PORT, LAB_RAFT_PORT,
};
use sluice_integration_tests::metrics::sample;
use sluice_integration_tests::netns::NetworkLab;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::tcp_proxy::TcpProxy;
use sluice_integration_tests::{kcat, run_command, sluice_bin, topic_name, wait_until, Broker};

const METADATA_VERSION: i16 = 12;

/// The broker ids `node` hands to clients in Metadata.
fn advertised_ids(node: &Broker) -> BTreeSet<i32> {
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![]);
    let response = client.request(METADATA_VERSION, &request);
    response.brokers.iter().map(|b| b.node_id.0).collect()
}

/// Whether `node` closes the connection on a Metadata request instead of answering.
fn refuses_metadata(node: &Broker) -> bool {
    let Ok(mut client) = RawClient::try_connect(&node.bootstrap()) else {
        return true;
    };
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![]);
    client.try_request(METADATA_VERSION, &request).is_err()
}

/// `(id, port)` of every broker `node` hands to clients.
fn advertised_ports(node: &Broker) -> BTreeSet<(i32, i32)> {
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![]);
    let response = client.request(METADATA_VERSION, &request);
    response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.port))
        .collect()
}

/// `sluice_broker_admission_refused` for broker `id`, as `node` exports it.
fn admission_refused(node: &Broker, id: i32) -> Option<f64> {
    let id = id.to_string();
    sample(
        &node.scrape(),
        "sluice_broker_admission_refused",
        &[("broker_id", &id)],
    )
}

fn sluice_brokers(node: &Broker) -> String {
    let mut command = Command::new(sluice_bin());
    command.args(["brokers", "--bootstrap-server", &node.bootstrap()]);
    run_command(command, b"", "sluice brokers")
}

/// `sluice brokers`' line for broker `id`, once it shows `state` and contains `reason`.
fn broker_line(node: &Broker, id: i32, state: &str, reason: &str) -> Option<String> {
    let text = sluice_brokers(node);
    text.lines()
        .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
        .filter(|line| line.split_whitespace().nth(3) == Some(state) && line.contains(reason))
        .map(str::to_string)
}

fn wait_for_ids(nodes: &[&Broker], ids: &[i32], what: &str) {
    let expected: BTreeSet<i32> = ids.iter().copied().collect();
    for node in nodes {
        wait_until(CLUSTER_DEADLINE, what, || {
            (advertised_ids(node) == expected).then_some(())
        });
    }
}

fn produce_and_consume(node: &Broker, topic: &str) {
    let input: String = (0..50).map(|i| format!("v{i}\n")).collect();
    let mut produce = Command::new(kcat());
    produce.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-p", "0"]);
    produce.args(["-X", "acks=all"]);
    run_command(produce, input.as_bytes(), "kcat produce");
    let mut consume = Command::new(kcat());
    consume.args(["-b", &node.bootstrap(), "-C", "-t", topic, "-p", "0"]);
    consume.args(["-o", "beginning", "-e", "-q"]);
    assert_eq!(run_command(consume, b"", "kcat consume"), input);
}

fn with_args(plan: &ClusterPlan, id: i32, extra: &[String]) -> Vec<String> {
    let mut args = plan.node_args(id);
    args.extend(["--default-replication-factor".to_string(), "2".to_string()]);
    args.extend(extra.iter().cloned());
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn unreachable_advertised_addresses_never_reach_clients() {
    let plan = ClusterPlan::new(3);
    let port_3 = plan.client_port(3);
    // Node 3 binds 127.0.0.1 but advertises 127.0.0.77: nothing answers there.
    let wrong_host = with_args(
        &plan,
        3,
        &[
            "--advertised-address".into(),
            format!("127.0.0.77:{port_3}"),
        ],
    );
    let (node_1, node_2, mut node_3) = std::thread::scope(|scope| {
        let first = scope.spawn(|| Broker::start_with(&as_strs(&with_args(&plan, 1, &[]))));
        let second = scope.spawn(|| Broker::start_with(&as_strs(&with_args(&plan, 2, &[]))));
        let third = scope.spawn(|| Broker::start_unadmitted(&as_strs(&wrong_host)));
        (
            first.join().expect("node 1"),
            second.join().expect("node 2"),
            third.join().expect("node 3"),
        )
    });

    // Refused with the reason, in node 3's own log and in `sluice brokers`.
    let line = wait_until(CLUSTER_DEADLINE, "node 3 refused for its host", || {
        broker_line(&node_1, 3, "fenced", "127.0.0.77:")
            .filter(|line| line.contains("is not reachable"))
    });
    assert!(line.contains("connect failed"), "{line}");
    wait_until(CLUSTER_DEADLINE, "node 3 logs its refusal", || {
        let log = node_3.stderr_tail();
        (log.contains("not admitted: staying fenced") && log.contains("127.0.0.77")).then_some(())
    });
    assert_eq!(
        admission_refused(&node_2, 3),
        Some(1.0),
        "the refusal is a metric"
    );
    // Never handed to a client by any node; node 3 itself answers nothing but ApiVersions
    // until it is admitted (it closes the connection). The cluster keeps serving.
    wait_for_ids(&[&node_1, &node_2], &[1, 2], "Metadata without node 3");
    produce_and_consume(&node_1, &topic_name("admission"));
    assert!(
        refuses_metadata(&node_3),
        "an unadmitted node answered Metadata"
    );

    // Right host, wrong port.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let wrong_port = with_args(
        &plan,
        3,
        &[
            "--advertised-address".into(),
            format!("127.0.0.1:{closed_port}"),
        ],
    );
    node_3.set_args(&as_strs(&wrong_port));
    node_3.restart_unadmitted();
    let line = wait_until(CLUSTER_DEADLINE, "node 3 refused for its port", || {
        broker_line(
            &node_2,
            3,
            "fenced",
            &format!("127.0.0.1:{closed_port} is not reachable"),
        )
    });
    assert!(line.contains("connect failed"), "{line}");
    assert_eq!(advertised_ids(&node_1), BTreeSet::from([1, 2]));
    assert_eq!(advertised_ids(&node_2), BTreeSet::from([1, 2]));

    // Fixed: admitted, and every node hands it out.
    node_3.set_args(&as_strs(&with_args(&plan, 3, &[])));
    node_3.restart();
    wait_for_ids(&[&node_1, &node_2, &node_3], &[1, 2, 3], "node 3 admitted");
    assert!(broker_line(&node_1, 3, "active", "-").is_some());
    assert_eq!(admission_refused(&node_2, 3), Some(0.0));
    let cluster = Cluster::from_nodes(vec![node_1, node_2, node_3]);
    produce_and_consume(cluster.node(3), &topic_name("admission-fixed"));
}

#[test]
fn a_node_that_stops_answering_at_its_address_is_fenced_until_it_answers_again() {
    let plan = ClusterPlan::new(3);
    let target: SocketAddr = format!("127.0.0.1:{}", plan.client_port(3))
        .parse()
        .expect("address");
    // Node 3 is reached only through a proxy the test can cut: the node keeps running and
    // heartbeating, but nobody can dial what it advertises (a one-way failure).
    let mut proxy = TcpProxy::start(target);
    let through_proxy = with_args(
        &plan,
        3,
        &[
            "--advertised-address".into(),
            format!("127.0.0.1:{}", proxy.port()),
        ],
    );
    let nodes = std::thread::scope(|scope| {
        let handles: Vec<_> = [
            with_args(&plan, 1, &[]),
            with_args(&plan, 2, &[]),
            through_proxy,
        ]
        .into_iter()
        .map(|args| scope.spawn(move || Broker::start_with(&as_strs(&args))))
        .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node starts"))
            .collect::<Vec<_>>()
    });
    let cluster = Cluster::from_nodes(nodes);
    let proxy_port = i32::from(proxy.port());
    wait_until(CLUSTER_DEADLINE, "node 3 advertised at the proxy", || {
        advertised_ports(cluster.node(1))
            .contains(&(3, proxy_port))
            .then_some(())
    });

    proxy.stop();
    wait_for_ids(
        &[cluster.node(1), cluster.node(2)],
        &[1, 2],
        "node 3 fenced",
    );
    let line = wait_until(CLUSTER_DEADLINE, "the refusal is shown", || {
        broker_line(cluster.node(1), 3, "fenced", "connect failed")
    });
    assert!(line.contains(&format!("127.0.0.1:{proxy_port}")), "{line}");
    produce_and_consume(cluster.node(1), &topic_name("one-way"));

    proxy.resume();
    wait_for_ids(
        &[cluster.node(1), cluster.node(2)],
        &[1, 2, 3],
        "node 3 admitted again",
    );
}

/// A node whose advertised name does not resolve (in a network lab where names come from the
/// lab's own hosts table and no DNS query can leave) stays out of every client's Metadata; the
/// cluster keeps serving; advertised under its right name, it is admitted.
#[test]
fn a_node_advertising_a_name_that_does_not_resolve_is_kept_out() {
    let lab = NetworkLab::new(3);
    let names: Vec<String> = (1..=3).map(|id| format!("node{id}.sluice.test")).collect();
    let hosts: Vec<(&str, std::net::Ipv4Addr)> = (1..=3)
        .map(|id| (names[id - 1].as_str(), lab.node_ip(id as i32)))
        .collect();
    lab.set_hosts(&hosts);
    // Nodes 1 and 2: the quorum, advertised by address. Node 3: a broker that joins it.
    let mut cluster = Cluster::start_in_lab(&lab, 2, &["--default-replication-factor", "2"]);
    let voters: Vec<String> = (1..=2)
        .map(|id| format!("{id}@{}:{LAB_RAFT_PORT}", lab.node_ip(id)))
        .collect();
    let node_3_args = |advertised: &str| -> Vec<String> {
        let ip = lab.node_ip(3);
        let mut args: Vec<String> = [
            "--node-id",
            "3",
            "--process-roles",
            "broker",
            "--voters",
            &voters.join(","),
            "--listen-address",
            &format!("{ip}:{LAB_CLIENT_PORT}"),
            "--raft-listen-address",
            &format!("{ip}:{LAB_RAFT_PORT}"),
            "--advertised-address",
            &format!("{advertised}:{LAB_CLIENT_PORT}"),
        ]
        .map(str::to_string)
        .to_vec();
        args.extend(FAST_FAILURE_DETECTION.iter().map(|arg| arg.to_string()));
        args
    };
    let bogus = node_3_args("bogus.sluice.test");
    let mut node_3 = Broker::start_unadmitted_with_prefix(&lab.exec_prefix(3), &as_strs(&bogus));

    let line = wait_until(CLUSTER_DEADLINE, "node 3 refused for its name", || {
        broker_line(cluster.node(1), 3, "fenced", "cannot resolve")
    });
    assert!(line.contains("bogus.sluice.test"), "{line}");
    wait_until(CLUSTER_DEADLINE, "node 3 logs its refusal", || {
        let log = node_3.stderr_tail();
        (log.contains("not admitted: staying fenced") && log.contains("bogus.sluice.test"))
            .then_some(())
    });
    wait_for_ids(
        &[cluster.node(1), cluster.node(2)],
        &[1, 2],
        "Metadata without node 3",
    );
    assert!(
        refuses_metadata(&node_3),
        "an unadmitted node answered Metadata"
    );
    produce_and_consume(cluster.node(1), &topic_name("unresolved"));

    // Advertised under its real name: admitted, and handed out under that name.
    node_3.set_args(&as_strs(&node_3_args(&names[2])));
    node_3.restart_unadmitted();
    cluster.add(node_3);
    wait_for_ids(
        &[cluster.node(1), cluster.node(2)],
        &[1, 2, 3],
        "node 3 admitted",
    );
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![]);
    let response = client.request(METADATA_VERSION, &request);
    let host_3 = response
        .brokers
        .iter()
        .find(|b| b.node_id.0 == 3)
        .map(|b| b.host.to_string());
    assert_eq!(host_3.as_deref(), Some(names[2].as_str()));
    // Nodes before the lab: brokers die before their namespaces go.
    drop(cluster);
    drop(lab);
}
