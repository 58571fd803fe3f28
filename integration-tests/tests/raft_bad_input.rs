//! Bad input on the Raft listener of a running 3-node cluster, as on the client port: every
//! malformed, oversized, truncated or foreign frame closes its connection; a peer declaring
//! huge frames and sending little holds little memory; and meanwhile the quorum and the
//! brokers keep serving (a topic is created, acks=all records are produced and consumed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::{kcat, run_command, topic_name, wait_until, Broker};
use sluice_raft::controller::Operation;
use sluice_raft::network::frame::{
    cluster_fingerprint, encode_frame, RpcEnvelope, RpcRequest, RpcResponse, RAFT_FRAME_BYTES_MAX,
};

const NODES: i32 = 3;
/// How long the listener may take to close a connection after bad input.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections per node that declare the largest frame and then stall.
const STALLED_CONNECTIONS: usize = 8;
/// What each stalled connection sends of its declared frame.
const STALLED_SENT_BYTES: usize = 4096;
/// Resident memory a node may gain while the stalled connections are open: far below the
/// `STALLED_CONNECTIONS * RAFT_FRAME_BYTES_MAX` (512 MiB) they declare.
const STALLED_RSS_GROWTH_BYTES_MAX: u64 = 64 << 20;

/// A broker id no node has: a well-formed operation the tests send must never change a
/// real broker.
const BROKER_ID_UNKNOWN: i32 = 99;

fn metadata(node: &Broker) -> Option<String> {
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-L", "-m", "5"]);
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every node lists all brokers and the same controller.
fn wait_formed(cluster: &Cluster) {
    wait_until(
        CLUSTER_DEADLINE,
        "one controller, all brokers listed",
        || {
            let mut controllers = BTreeSet::new();
            for id in cluster.ids() {
                let text = metadata(cluster.node(id))?;
                let brokers = text.lines().filter(|l| l.contains("  broker ")).count();
                let controller = text.lines().find(|l| l.contains("(controller)"))?;
                if brokers != NODES as usize {
                    return None;
                }
                controllers.insert(controller.trim().to_string());
            }
            (controllers.len() == 1).then_some(())
        },
    );
}

fn fingerprint(cluster: &Cluster) -> u64 {
    let voters: BTreeMap<u64, String> = cluster
        .ids()
        .map(|id| (id as u64, cluster.raft_address(id).to_string()))
        .collect();
    cluster_fingerprint(&voters)
}

/// A forwarded operation that changes nothing (the broker does not exist).
fn forward_frame(cluster_fingerprint: u64, target: i32) -> Vec<u8> {
    let envelope = RpcEnvelope {
        cluster_fingerprint,
        target: target as u64,
        request: RpcRequest::Forward(Operation::FenceBroker {
            broker_id: BROKER_ID_UNKNOWN,
        }),
    };
    encode_frame(&envelope).expect("encode a frame")
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect to the raft listener");
    stream
        .set_read_timeout(Some(CLOSE_DEADLINE))
        .expect("read timeout");
    stream
}

/// Reads until the listener closes the connection; fails if it answers or keeps it open.
fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(count) => panic!("{what}: the raft listener answered {count} bytes"),
        Err(error) => panic!("{what}: the raft listener kept the connection open ({error})"),
    }
}

/// Sends `bytes` on a fresh connection (then ends the stream when `end` is set) and expects
/// the listener to close it.
fn send_expect_closed(address: &str, bytes: &[u8], end: bool, what: &str) {
    let mut stream = connect(address);
    stream.write_all(bytes).expect("send");
    if end {
        stream.shutdown(Shutdown::Write).expect("end the stream");
    }
    expect_closed(&mut stream, what);
}

/// Sends a well-formed forwarded operation and reads the answer: proves the frames these
/// tests build are right, so a refusal is about what was wrong on purpose.
fn expect_answered(stream: &mut TcpStream, frame: &[u8]) {
    stream.write_all(frame).expect("send");
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("answer's length");
    let length = u32::from_be_bytes(prefix) as usize;
    assert!(
        length > 0 && length <= RAFT_FRAME_BYTES_MAX,
        "length {length}"
    );
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).expect("answer");
    let response: RpcResponse = postcard_decode(&payload);
    assert!(matches!(response, RpcResponse::Forward(_)), "{response:?}");
}

fn postcard_decode(payload: &[u8]) -> RpcResponse {
    sluice_raft::network::frame::decode(payload).expect("a decodable answer")
}

fn bad_inputs_close_connections(address: &str, node: i32, fingerprint: u64) {
    let max = RAFT_FRAME_BYTES_MAX as u32;
    send_expect_closed(address, &u32::MAX.to_be_bytes(), false, "u32::MAX length");
    send_expect_closed(
        address,
        &(max + 1).to_be_bytes(),
        false,
        "length over the limit",
    );
    send_expect_closed(address, &0u32.to_be_bytes(), false, "empty frame");
    let mut garbage = 64u32.to_be_bytes().to_vec();
    garbage.extend((0..64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    send_expect_closed(address, &garbage, false, "garbage body");
    let mut truncated = 1000u32.to_be_bytes().to_vec();
    truncated.extend_from_slice(&[7; 10]);
    send_expect_closed(address, &truncated, true, "truncated body");
    send_expect_closed(address, &[0, 0], true, "truncated length prefix");
    let foreign = forward_frame(fingerprint ^ 1, node);
    send_expect_closed(address, &foreign, false, "foreign voter-set fingerprint");
    let misrouted = forward_frame(fingerprint, node % NODES + 1);
    send_expect_closed(address, &misrouted, false, "frame for another node");
    // A good frame is answered; garbage after it on the same connection closes it.
    let mut stream = connect(address);
    expect_answered(&mut stream, &forward_frame(fingerprint, node));
    stream.write_all(&garbage).expect("send");
    expect_closed(&mut stream, "garbage after a good frame");
}

/// Connections that declare the largest frame, send a little of it, and stall.
fn stall(address: &str) -> Vec<TcpStream> {
    (0..STALLED_CONNECTIONS)
        .map(|_| {
            let mut stream = connect(address);
            let mut bytes = (RAFT_FRAME_BYTES_MAX as u32).to_be_bytes().to_vec();
            bytes.resize(4 + STALLED_SENT_BYTES, 0x5a);
            stream.write_all(&bytes).expect("send");
            stream
        })
        .collect()
}

fn rss_bytes(node: &Broker) -> u64 {
    let pid = node.pid().expect("node runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn values(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|v| format!("{v:08}")).collect()
}

fn produce(cluster: &Cluster, topic: &str, values: &[String]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let mut command = Command::new(kcat());
    command.args(["-b", &cluster.bootstrap(), "-P", "-t", topic, "-p", "0"]);
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

#[test]
fn bad_input_on_the_raft_listener_closes_connections_and_the_cluster_keeps_serving() {
    let cluster = Cluster::start(NODES as usize);
    wait_formed(&cluster);
    let fingerprint = fingerprint(&cluster);
    for id in cluster.ids() {
        bad_inputs_close_connections(cluster.raft_address(id), id, fingerprint);
    }

    // Stalled connections on every node while the cluster works: a topic is created (through
    // the controller, forwarded from wherever kcat asks), records are replicated.
    let rss_before: Vec<u64> = cluster
        .ids()
        .map(|id| rss_bytes(cluster.node(id)))
        .collect();
    let stalled: Vec<Vec<TcpStream>> = cluster
        .ids()
        .map(|id| stall(cluster.raft_address(id)))
        .collect();
    let topic = topic_name("raft-bad-input");
    produce(&cluster, &topic, &values(0..300));
    for id in cluster.ids() {
        assert_eq!(consume_all(cluster.node(id), &topic), values(0..300));
    }
    wait_formed(&cluster);
    for id in cluster.ids() {
        let grown = rss_bytes(cluster.node(id)).saturating_sub(rss_before[(id - 1) as usize]);
        assert!(
            grown < STALLED_RSS_GROWTH_BYTES_MAX,
            "node {id} grew by {grown} bytes while {STALLED_CONNECTIONS} connections declared \
             {RAFT_FRAME_BYTES_MAX}-byte frames"
        );
    }
    drop(stalled);
    produce(&cluster, &topic, &values(300..400));
    assert_eq!(consume_all(cluster.node(1), &topic), values(0..400));
}
