//! A cluster of real `sluice` processes started together: every node a voter (or with the
//! `--process-roles` a test gives), on 127.0.0.1 or each in its own network namespace of a
//! [`NetworkLab`].

use std::time::Duration;

use crate::netns::NetworkLab;
use crate::Broker;

/// How long a test waits for a cluster to form or to recover.
pub const CLUSTER_DEADLINE: Duration = Duration::from_secs(60);
/// A node's client and Raft ports inside its own network namespace.
pub const LAB_CLIENT_PORT: u16 = 9092;
pub const LAB_RAFT_PORT: u16 = 9093;
/// Ports below the kernel's ephemeral range: a peer dialing a port that is not listening yet
/// could otherwise be handed that very port as its source and connect to itself.
const PORT_FIRST: u16 = 20_000;
const PORT_LAST: u16 = 32_000;

/// Flags every test cluster gets: failure detection fast enough for tests.
pub const FAST_FAILURE_DETECTION: [&str; 6] = [
    "--broker-session-timeout-ms",
    "2000",
    "--broker-heartbeat-interval-ms",
    "300",
    "--replica-lag-time-max-ms",
    "3000",
];

/// `count` distinct ports that are free now, below the ephemeral range.
pub fn free_low_ports(count: usize) -> Vec<u16> {
    let seed = u64::from(std::process::id()) * 7919 + u64::from(nanos_now());
    let span = u64::from(PORT_LAST - PORT_FIRST);
    let mut ports = Vec::new();
    for step in 0..span {
        let port = PORT_FIRST + ((seed + step * 104_729) % span) as u16;
        if !ports.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
        if ports.len() == count {
            return ports;
        }
    }
    panic!("no {count} free ports in {PORT_FIRST}..{PORT_LAST}");
}

fn nanos_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// The ports and voter set of a cluster of `count` nodes on 127.0.0.1, before it starts; for
/// tests that start nodes with different flags.
pub struct ClusterPlan {
    /// Nodes 1..=voters are voters; the rest are broker-only (Raft learners).
    voters: usize,
    /// `--balancer-interval-ms`: 0 (off) unless a test turns the balancer on, so that no
    /// test's replica placement moves under it.
    balancer_interval_ms: u64,
    count: usize,
    ports: Vec<u16>,
}

impl ClusterPlan {
    /// `count` voters.
    pub fn new(count: usize) -> ClusterPlan {
        ClusterPlan::with_brokers_only(count, 0)
    }

    /// `voters` voters (ids 1..=voters), then `brokers_only` broker-only nodes.
    pub fn with_brokers_only(voters: usize, brokers_only: usize) -> ClusterPlan {
        assert!(voters > 0);
        let count = voters + brokers_only;
        ClusterPlan {
            voters,
            balancer_interval_ms: 0,
            count,
            ports: free_low_ports(2 * count),
        }
    }

    /// Runs the balancer every `interval_ms` on the active controller.
    pub fn with_balancer(mut self, interval_ms: u64) -> ClusterPlan {
        self.balancer_interval_ms = interval_ms;
        self
    }

    /// Node `id`'s client port.
    pub fn client_port(&self, id: i32) -> u16 {
        self.ports[Self::index(id)]
    }

    /// Flags that make node `id` a voter of this cluster, fast failure detection included.
    pub fn node_args(&self, id: i32) -> Vec<String> {
        let voters: Vec<String> = (0..self.voters)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, self.ports[self.count + i]))
            .collect();
        let index = Self::index(id);
        let mut args = vec![
            "--node-id".to_string(),
            id.to_string(),
            "--listen-address".to_string(),
            format!("127.0.0.1:{}", self.ports[index]),
            "--raft-listen-address".to_string(),
            format!("127.0.0.1:{}", self.ports[self.count + index]),
            "--voters".to_string(),
            voters.join(","),
        ];
        if index >= self.voters {
            args.extend(["--process-roles".to_string(), "broker".to_string()]);
        }
        args.extend(FAST_FAILURE_DETECTION.iter().map(|arg| arg.to_string()));
        args.extend([
            "--balancer-interval-ms".to_string(),
            self.balancer_interval_ms.to_string(),
        ]);
        args
    }

    fn index(id: i32) -> usize {
        usize::try_from(id - 1).expect("node ids start at 1")
    }
}

/// Nodes with ids 1..=n; node `id` is `nodes[id - 1]`. Dropping the cluster kills every node.
pub struct Cluster {
    nodes: Vec<Broker>,
    /// Node `id`'s Raft listener is `raft_addresses[id - 1]`.
    raft_addresses: Vec<String>,
}

/// Where one node runs and listens.
struct NodeSpec {
    command_prefix: Vec<String>,
    listen: String,
    raft: String,
    /// `--process-roles`.
    roles: String,
}

/// Kafka's combined mode: every node a broker and a controller voter.
const ROLES_COMBINED: &str = "broker,controller";

impl Cluster {
    /// `count` nodes, all voters, with `--default-replication-factor min(count, 3)`.
    pub fn start(count: usize) -> Cluster {
        let replication_factor = count.min(3).to_string();
        Cluster::start_with(
            count,
            &["--default-replication-factor", &replication_factor],
        )
    }

    /// `count` nodes, all voters, each also given `extra_args`.
    pub fn start_with(count: usize, extra_args: &[&str]) -> Cluster {
        assert!(count > 0);
        let ports = free_low_ports(2 * count);
        let nodes: Vec<NodeSpec> = (0..count)
            .map(|i| NodeSpec {
                command_prefix: Vec::new(),
                listen: format!("127.0.0.1:{}", ports[i]),
                raft: format!("127.0.0.1:{}", ports[count + i]),
                roles: ROLES_COMBINED.to_string(),
            })
            .collect();
        Cluster::start_nodes(nodes, extra_args)
    }

    /// One node per entry of `roles` (Kafka's process.roles: `broker,controller`, `broker`
    /// or `controller`) on 127.0.0.1; the nodes with the controller role are the voters.
    pub fn start_with_roles(roles: &[&str], extra_args: &[&str]) -> Cluster {
        let count = roles.len();
        let ports = free_low_ports(2 * count);
        let nodes: Vec<NodeSpec> = roles
            .iter()
            .enumerate()
            .map(|(i, roles)| NodeSpec {
                command_prefix: Vec::new(),
                listen: format!("127.0.0.1:{}", ports[i]),
                raft: format!("127.0.0.1:{}", ports[count + i]),
                roles: roles.to_string(),
            })
            .collect();
        Cluster::start_nodes(nodes, extra_args)
    }

    /// One voter in each of `lab`'s namespaces, on Kafka's usual ports there (every
    /// namespace has its own port space): node `id` listens on `<lab.node_ip(id)>:9092`
    /// and its Raft listener on `:9093`. Fast failure detection, plus `extra_args`.
    pub fn start_in_lab(lab: &NetworkLab, count: usize, extra_args: &[&str]) -> Cluster {
        let nodes: Vec<NodeSpec> = (1..=count as i32)
            .map(|id| NodeSpec {
                command_prefix: lab.exec_prefix(id),
                listen: format!("{}:{LAB_CLIENT_PORT}", lab.node_ip(id)),
                raft: format!("{}:{LAB_RAFT_PORT}", lab.node_ip(id)),
                roles: ROLES_COMBINED.to_string(),
            })
            .collect();
        Cluster::start_nodes(nodes, extra_args)
    }

    fn start_nodes(specs: Vec<NodeSpec>, extra_args: &[&str]) -> Cluster {
        let voters: Vec<String> = specs
            .iter()
            .enumerate()
            .filter(|(_, spec)| spec.roles.contains("controller"))
            .map(|(i, spec)| format!("{}@{}", i + 1, spec.raft))
            .collect();
        let voters = voters.join(",");
        // Each node answers only once a quorum exists: start them together.
        let nodes = std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(i, spec)| {
                    let node_id = (i + 1).to_string();
                    let voters = voters.clone();
                    scope.spawn(move || {
                        let mut args = vec![
                            "--node-id",
                            &node_id,
                            "--listen-address",
                            &spec.listen,
                            "--raft-listen-address",
                            &spec.raft,
                            "--voters",
                            &voters,
                            "--process-roles",
                            &spec.roles,
                        ];
                        args.extend_from_slice(&FAST_FAILURE_DETECTION);
                        args.extend_from_slice(extra_args);
                        Broker::start_with_prefix(&spec.command_prefix, &args)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("node starts"))
                .collect()
        });
        let raft_addresses = specs.into_iter().map(|spec| spec.raft).collect();
        Cluster {
            nodes,
            raft_addresses,
        }
    }

    /// Adds a node the caller started as the next id (`len() + 1`).
    pub fn add(&mut self, node: Broker) {
        self.nodes.push(node);
    }

    /// A cluster of nodes the caller started from a [`ClusterPlan`], node `i + 1` at `i`.
    pub fn from_nodes(nodes: Vec<Broker>) -> Cluster {
        Cluster {
            nodes,
            raft_addresses: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node ids, 1..=len.
    pub fn ids(&self) -> impl Iterator<Item = i32> {
        1..=self.nodes.len() as i32
    }

    pub fn node(&self, id: i32) -> &Broker {
        &self.nodes[Self::index(id)]
    }

    pub fn node_mut(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[Self::index(id)]
    }

    /// Node `id`'s Raft listener, `host:port`.
    pub fn raft_address(&self, id: i32) -> &str {
        assert!(
            !self.raft_addresses.is_empty(),
            "a cluster made with from_nodes does not know its Raft addresses"
        );
        &self.raft_addresses[Self::index(id)]
    }

    pub fn kill9(&mut self, id: i32) {
        self.node_mut(id).kill9();
    }

    /// Starts a stopped or killed node again, same port and data dir.
    pub fn restart(&mut self, id: i32) {
        self.node_mut(id).restart();
    }

    /// Every node's address, comma-separated (a client bootstrap list).
    pub fn bootstrap(&self) -> String {
        let addresses: Vec<String> = self.nodes.iter().map(Broker::bootstrap).collect();
        addresses.join(",")
    }

    fn index(id: i32) -> usize {
        usize::try_from(id - 1).expect("node ids start at 1")
    }
}
