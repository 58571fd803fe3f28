//! In-process clusters on 127.0.0.1: election, replication, failover, restart, snapshots,
//! learners, bootstrapping rules and bad input on the Raft listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_raft::controller::{
    error_code, BrokerHeartbeatRequest, CreatableTopic, CreateTopicsRequest, Operation,
    OperationResponse, RegisterBrokerRequest,
};
use sluice_raft::image::{Listener, MetadataImage};
use sluice_raft::quorum::{MetadataQuorum, ProposeError, QuorumConfig, QuorumError};
use sluice_raft::raft_types::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    dir: tempfile::TempDir,
    voters: BTreeMap<NodeId, String>,
    nodes: BTreeMap<NodeId, Arc<MetadataQuorum>>,
    invariants: Invariants,
    logs_kept_after_snapshot: u64,
}

impl Cluster {
    async fn start(voter_count: u64, logs_kept_after_snapshot: u64) -> Cluster {
        let voters: BTreeMap<NodeId, String> = (1..=voter_count)
            .map(|id| (id, format!("127.0.0.1:{}", free_port())))
            .collect();
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            voters: voters.clone(),
            nodes: BTreeMap::new(),
            invariants: Invariants::default(),
            logs_kept_after_snapshot,
        };
        for id in voters.keys() {
            cluster.start_node(*id).await;
        }
        cluster
    }

    fn config(&self, node_id: NodeId, address: &str) -> QuorumConfig {
        let mut config = QuorumConfig::new(
            node_id,
            self.voters.clone(),
            node_dir(self.dir.path(), node_id),
            address.parse::<SocketAddr>().unwrap(),
        );
        config.heartbeat_interval_ms = 50;
        config.election_timeout_min_ms = 300;
        config.election_timeout_max_ms = 600;
        config.snapshot_logs_since_last = 10_000;
        config.logs_kept_after_snapshot = self.logs_kept_after_snapshot;
        config
    }

    async fn start_node(&mut self, node_id: NodeId) {
        let address = self.voters[&node_id].clone();
        self.start_node_at(node_id, &address).await;
    }

    async fn start_node_at(&mut self, node_id: NodeId, address: &str) {
        let config = self.config(node_id, address);
        let node = Arc::new(MetadataQuorum::start_with(config).await.unwrap());
        self.invariants.watch(&node);
        self.nodes.insert(node_id, node);
    }

    async fn stop_node(&mut self, node_id: NodeId) {
        let node = self.nodes.remove(&node_id).unwrap();
        node.shutdown().await.unwrap();
    }

    /// The leader all running nodes agree on.
    async fn leader(&self) -> NodeId {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leaders: Vec<Option<NodeId>> = self
                .nodes
                .values()
                .map(|node| node.metrics().borrow().current_leader)
                .collect();
            if let Some(Some(leader)) = leaders.first() {
                let agreed = leaders.iter().all(|l| *l == Some(*leader));
                if agreed && self.nodes.contains_key(leader) {
                    return *leader;
                }
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn propose(&self, operation: Operation) -> OperationResponse {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let leader = self.leader().await;
            match self.nodes[&leader].propose(operation.clone()).await {
                Ok(response) => return response,
                Err(error) => {
                    assert!(Instant::now() < deadline, "proposal failed: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// Waits until every running node has applied the same index and holds the same image.
    async fn converged(&self) -> Arc<MetadataImage> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let images: Vec<Arc<MetadataImage>> =
                self.nodes.values().map(|node| node.image()).collect();
            if images.iter().all(|image| **image == *images[0]) {
                return images[0].clone();
            }
            assert!(Instant::now() < deadline, "images never converged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn register_brokers(&self) {
        for broker_id in self.voters.keys() {
            let broker_id = *broker_id as i32;
            let incarnation_id = Uuid::from_u128(broker_id as u128);
            let registered = self
                .propose(Operation::RegisterBroker(RegisterBrokerRequest {
                    broker_id,
                    incarnation_id,
                    listeners: vec![Listener {
                        name: "PLAINTEXT".into(),
                        host: "127.0.0.1".into(),
                        port: 9092,
                    }],
                    rack: None,
                }))
                .await;
            assert_eq!(
                registered,
                OperationResponse::RegisterBroker(
                    sluice_raft::controller::RegisterBrokerResponse {
                        error_code: error_code::NONE
                    }
                )
            );
            let heartbeat = self
                .propose(Operation::BrokerHeartbeat(BrokerHeartbeatRequest {
                    broker_id,
                    incarnation_id,
                    want_fence: false,
                    want_shutdown: false,
                    partition_loads: vec![],
                }))
                .await;
            let OperationResponse::BrokerHeartbeat(heartbeat) = heartbeat else {
                panic!("unexpected {heartbeat:?}");
            };
            assert!(!heartbeat.is_fenced);
        }
    }

    async fn create_topic(&self, name: &str, replication_factor: i16) {
        let response = self
            .propose(create_topic_operation(name, replication_factor))
            .await;
        let OperationResponse::CreateTopics(created) = response else {
            panic!("unexpected {response:?}");
        };
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].error_code, error_code::NONE, "{:?}", created[0]);
    }

    async fn shutdown(mut self) {
        for node_id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.stop_node(node_id).await;
        }
        self.invariants.check();
    }
}

fn node_dir(root: &Path, node_id: NodeId) -> PathBuf {
    root.join(format!("node-{node_id}"))
}

fn create_topic_operation(name: &str, replication_factor: i16) -> Operation {
    Operation::CreateTopics(CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: name.to_string(),
            num_partitions: 3,
            replication_factor,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        }],
        validate_only: false,
    })
}

/// Raft invariants observed while a test runs, as Kafka's simulation checks them: at most one
/// leader per term, and equal images at equal applied indexes.
#[derive(Default, Clone)]
struct Invariants {
    leaders_by_term: Arc<Mutex<BTreeMap<u64, NodeId>>>,
    images_by_index: Arc<Mutex<BTreeMap<u64, Arc<MetadataImage>>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Invariants {
    fn watch(&self, node: &MetadataQuorum) {
        let mut metrics = node.metrics();
        let this = self.clone();
        let node_id = node.node_id();
        tokio::spawn(async move {
            loop {
                let (term, leader) = {
                    let m = metrics.borrow_and_update();
                    (m.current_term, m.current_leader)
                };
                if leader == Some(node_id) {
                    let mut leaders = this.leaders_by_term.lock().unwrap();
                    let previous = *leaders.entry(term).or_insert(node_id);
                    if previous != node_id {
                        this.violation(format!("term {term}: leaders {previous} and {node_id}"));
                    }
                }
                if metrics.changed().await.is_err() {
                    return;
                }
            }
        });
        let mut images = node.subscribe();
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let image = images.borrow_and_update().clone();
                let index = image.provenance.last_applied_index;
                let first = {
                    let mut seen = this.images_by_index.lock().unwrap();
                    seen.entry(index).or_insert_with(|| image.clone()).clone()
                };
                if *first != *image {
                    this.violation(format!("different images at applied index {index}"));
                }
                if images.changed().await.is_err() {
                    return;
                }
            }
        });
    }

    fn violation(&self, message: String) {
        self.violations.lock().unwrap().push(message);
    }

    fn check(&self) {
        let violations = self.violations.lock().unwrap();
        assert!(violations.is_empty(), "invariants violated: {violations:?}");
        assert!(
            !self.leaders_by_term.lock().unwrap().is_empty(),
            "no leader observed"
        );
        assert!(
            self.images_by_index.lock().unwrap().len() > 1,
            "no image observed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_voters_replicate_fail_over_and_restart() {
    let mut cluster = Cluster::start(3, 1000).await;
    let first_leader = cluster.leader().await;
    cluster.register_brokers().await;
    for name in ["a", "b", "c"] {
        cluster.create_topic(name, 3).await;
    }
    let image = cluster.converged().await;
    assert_eq!(image.topics.by_id.len(), 3);
    assert_eq!(image.topics.partition_count(), 9);
    let partition = image.topics.topic_by_name("a").unwrap().partitions[&0].clone();
    assert_eq!(partition.replicas.len(), 3);
    assert_eq!(partition.isr, partition.replicas);
    assert_eq!(partition.leader, partition.replicas[0]);

    // A follower refuses and names the leader.
    let follower = *cluster
        .nodes
        .keys()
        .find(|id| **id != first_leader)
        .unwrap();
    let refused = cluster.nodes[&follower]
        .propose(create_topic_operation("x", 1))
        .await;
    match refused {
        Err(error @ ProposeError::NotController { .. }) => {
            assert_eq!(error.error_code(), error_code::NOT_CONTROLLER);
            let ProposeError::NotController { leader_id, .. } = error else {
                unreachable!()
            };
            assert_eq!(leader_id, Some(first_leader));
        }
        other => panic!("follower proposal gave {other:?}"),
    }

    // Kill the leader: the other two elect a new one and keep taking proposals.
    cluster.stop_node(first_leader).await;
    let second_leader = cluster.leader().await;
    assert_ne!(second_leader, first_leader);
    cluster.create_topic("d", 2).await;
    let image = cluster.converged().await;
    assert_eq!(image.topics.by_id.len(), 4);

    // The old leader restarts from its redb and catches up.
    cluster.start_node(first_leader).await;
    let image = cluster.converged().await;
    assert_eq!(cluster.nodes.len(), 3);
    assert!(image.topics.topic_by_name("d").is_some());
    cluster.create_topic("e", 3).await;
    let image = cluster.converged().await;
    assert_eq!(image.topics.by_id.len(), 5);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_a_purged_log_catches_up_from_a_snapshot() {
    // Nothing kept behind a snapshot: a lagging follower can only be served a snapshot.
    let mut cluster = Cluster::start(3, 0).await;
    let leader = cluster.leader().await;
    cluster.register_brokers().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop_node(follower).await;
    for index in 0..12 {
        cluster.create_topic(&format!("t{index}"), 2).await;
    }
    let leader = cluster.leader().await;
    cluster.nodes[&leader].trigger_snapshot().await.unwrap();
    wait_until("leader snapshot", || {
        cluster.nodes[&leader].metrics().borrow().snapshot.is_some()
    })
    .await;
    cluster.start_node(follower).await;
    let image = cluster.converged().await;
    assert_eq!(image.topics.by_id.len(), 12);
    let installed = cluster.nodes[&follower].metrics().borrow().snapshot;
    assert!(installed.is_some(), "follower did not get the snapshot");

    // Restarted again, the follower starts from its own stored snapshot.
    cluster.stop_node(follower).await;
    cluster.start_node(follower).await;
    let image_after = cluster.nodes[&follower].image();
    assert!(image_after.provenance.last_applied_index >= installed.unwrap().index);
    assert_eq!(image_after.topics.by_id.len(), 12);
    cluster.create_topic("after", 3).await;
    let image = cluster.converged().await;
    assert_eq!(image.topics.by_id.len(), 13);
    cluster.shutdown().await;
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_follows_the_log_and_cannot_propose() {
    let mut cluster = Cluster::start(1, 1000).await;
    let leader = cluster.leader().await;
    cluster.register_brokers().await;
    let learner_address = format!("127.0.0.1:{}", free_port());
    cluster.start_node_at(2, &learner_address).await;
    cluster.nodes[&leader]
        .add_learner(2, learner_address)
        .await
        .unwrap();
    cluster.create_topic("followed", 1).await;
    let image = cluster.converged().await;
    assert!(image.topics.topic_by_name("followed").is_some());
    let refused = cluster.nodes[&2]
        .propose(create_topic_operation("nope", 1))
        .await;
    assert_eq!(
        refused,
        Err(ProposeError::NotController {
            leader_id: Some(leader),
            leader_address: Some(cluster.voters[&leader].clone()),
        })
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_outside_the_voters_joins_as_a_learner_by_itself() {
    let mut cluster = Cluster::start(3, 1000).await;
    let leader = cluster.leader().await;
    cluster.register_brokers().await;
    // No add_learner here: the node asks the voters to add it (RpcRequest::Join).
    let learner_address = format!("127.0.0.1:{}", free_port());
    cluster.start_node_at(4, &learner_address).await;
    assert_eq!(cluster.leader().await, leader);
    cluster.create_topic("joined", 3).await;
    let image = cluster.converged().await;
    assert!(image.topics.topic_by_name("joined").is_some());
    let metrics = cluster.nodes[&leader].metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    assert_eq!(membership.voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(membership.learner_ids().collect::<Vec<_>>(), vec![4]);
    // A learner forwards operations to the leader like any other node.
    let forwarded = cluster.nodes[&4]
        .submit(create_topic_operation("from-the-learner", 1))
        .await
        .unwrap();
    let applied = forwarded.applied_index;
    wait_until("the learner applied its own operation", || {
        cluster.nodes[&4].image().provenance.last_applied_index >= applied
    })
    .await;
    assert!(cluster.nodes[&4]
        .image()
        .topics
        .topic_by_name("from-the-learner")
        .is_some());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_refuses_another_voter_set_and_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let voters: BTreeMap<NodeId, String> = [(1, address.clone())].into_iter().collect();
    let listen: SocketAddr = address.parse().unwrap();
    let node = MetadataQuorum::start(1, voters.clone(), dir.path().to_path_buf(), listen)
        .await
        .unwrap();
    // The same data dir again while running: redb's file lock refuses it.
    let other_listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let second =
        MetadataQuorum::start(1, voters.clone(), dir.path().to_path_buf(), other_listen).await;
    assert!(
        matches!(second, Err(QuorumError::Store(_))),
        "second start was allowed"
    );
    node.shutdown().await.unwrap();
    drop(node);

    let mut other_voters = voters.clone();
    other_voters.insert(2, format!("127.0.0.1:{}", free_port()));
    let restarted = MetadataQuorum::start(1, other_voters, dir.path().to_path_buf(), listen).await;
    match restarted {
        Err(QuorumError::VoterSetMismatch { stored, .. }) => assert_eq!(stored, voters),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("started with a different voter set"),
    }
    // The original voter set still starts.
    let node = MetadataQuorum::start(1, voters, dir.path().to_path_buf(), listen)
        .await
        .unwrap();
    node.shutdown().await.unwrap();
}

/// Sends `bytes` on a fresh connection and expects the listener to close it.
async fn expect_closed(address: SocketAddr, bytes: &[u8]) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, stream.read(&mut buffer)).await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(count)) => panic!("listener answered {count} bytes to bad input"),
        Err(_) => panic!("listener kept the connection open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_the_raft_listener_closes_the_connection() {
    let mut cluster = Cluster::start(1, 1000).await;
    cluster.register_brokers().await;
    let address: SocketAddr = cluster.voters[&1].parse().unwrap();
    // Oversized length prefix: refused before any allocation.
    expect_closed(address, &u32::MAX.to_be_bytes()).await;
    // Empty frame.
    expect_closed(address, &0u32.to_be_bytes()).await;
    // A well-sized frame of garbage.
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 16]);
    expect_closed(address, &garbage).await;
    // A valid vote from another cluster (wrong fingerprint).
    let envelope = sluice_raft::network::frame::RpcEnvelope {
        cluster_fingerprint: 0,
        target: 1,
        request: sluice_raft::network::frame::RpcRequest::Vote(openraft::raft::VoteRequest::new(
            openraft::Vote::new(99, 7),
            None,
        )),
    };
    let mut frame = Vec::new();
    sluice_raft::network::frame::write_message(&mut frame, &envelope)
        .await
        .unwrap();
    expect_closed(address, &frame).await;
    // The node kept working, and did not take the foreign vote.
    cluster.create_topic("still-works", 1).await;
    assert!(cluster.nodes[&1].metrics().borrow().current_term < 99);
    let image = cluster.converged().await;
    assert!(image.topics.topic_by_name("still-works").is_some());
    cluster
        .start_node_at(2, &format!("127.0.0.1:{}", free_port()))
        .await;
    cluster.nodes.remove(&2).unwrap().shutdown().await.unwrap();
    cluster.shutdown().await;
}
