//! Elastic clusters: a 4th node joins a loaded 3-node cluster and the balancer moves replicas
//! and preferred leaders onto it until every broker holds within one of the even share, the
//! catch-up never faster than the reassignment throttle; then `sluice node drain` empties one
//! node. Throughout, a Java idempotent acks=all producer and a consumer group run: no send
//! fails, and every acknowledged record is in the log exactly once, where it was acknowledged.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_integration_tests::cluster::{Cluster, ClusterPlan};
use sluice_integration_tests::java_stream::{check_log_against_acks, read_partition, Stream};
use sluice_integration_tests::kafka_cli::{kafka_tool_ok, CLUSTER};
use sluice_integration_tests::metrics::sample;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{kcat, run_command, sluice_bin, topic_name, wait_until, Broker};

const PARTITIONS: i32 = 12;
const REPLICATION_FACTOR: usize = 3;
/// Bytes/s a node may fetch for replicas being added to it.
const THROTTLE_BYTES_PER_SEC: u64 = 250_000;
/// Measured catch-up may exceed the throttle by this factor, plus one batch per concurrent
/// move at a window's edge (each throttled fetch is paid for after it arrives, and returns at
/// least one whole batch, as Kafka's fetches do).
const THROTTLE_TOLERANCE: f64 = 1.1;
/// The fill producer's largest batch (librdkafka `batch.size`).
const BULK_BATCH_BYTES: usize = 65_536;
/// Concurrent moves (the broker default `--reassignment-moves-max`).
const MOVES_MAX: usize = 4;
/// Shortest window the catch-up rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);
const BULK_RECORDS: usize = 8_000;
const BULK_VALUE_BYTES: usize = 1_000;
const BALANCE_DEADLINE: Duration = Duration::from_secs(180);
const METADATA_VERSION: i16 = 12;
const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Per broker: replicas held and partitions led, over `topics`; `None` unless every
/// partition has a leader and a full ISR and its replica set is settled.
fn placement(
    node: &Broker,
    topics: &[&str],
) -> Option<(BTreeMap<i32, usize>, BTreeMap<i32, usize>)> {
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|name| {
                let mut wanted = MetadataRequestTopic::default();
                wanted.name = Some(TopicName(StrBytes::from_string(name.to_string())));
                wanted
            })
            .collect(),
    );
    request.allow_auto_topic_creation = false;
    let response = client.try_request(METADATA_VERSION, &request).ok()?;
    let mut replicas = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    for broker in &response.brokers {
        replicas.insert(broker.node_id.0, 0);
        leaders.insert(broker.node_id.0, 0);
    }
    for topic in &response.topics {
        if topic.error_code != 0 || topic.partitions.is_empty() {
            return None;
        }
        for partition in &topic.partitions {
            let settled = partition.leader_id.0 >= 0
                && partition.replica_nodes.len() == REPLICATION_FACTOR
                && partition.isr_nodes.len() == REPLICATION_FACTOR;
            if !settled {
                return None;
            }
            for id in &partition.replica_nodes {
                *replicas.entry(id.0).or_insert(0) += 1;
            }
            *leaders.entry(partition.leader_id.0).or_insert(0) += 1;
        }
    }
    Some((replicas, leaders))
}

/// Every count of `brokers` within one of the even share of `total`.
fn even(counts: &BTreeMap<i32, usize>, brokers: &[i32], total: usize) -> bool {
    let share = total as f64 / brokers.len() as f64;
    brokers.iter().all(|id| {
        let count = counts.get(id).copied().unwrap_or(0) as f64;
        (count - share).abs() <= 1.0
    }) && counts
        .iter()
        .filter(|(id, _)| !brokers.contains(id))
        .all(|(_, count)| *count == 0)
}

fn balanced(node: &Broker, topics: &[&str], brokers: &[i32]) -> bool {
    placement(node, topics).is_some_and(|(replicas, leaders)| {
        even(&replicas, brokers, replicas.values().sum())
            && even(&leaders, brokers, leaders.values().sum())
    })
}

/// Each node's last warnings and ISR changes, for failure messages.
fn warnings(cluster: &Cluster) -> String {
    let mut text = String::new();
    for id in cluster.ids() {
        let log = cluster.node(id).stderr_all();
        let _ = std::fs::write(format!("/tmp/sluice-balance-node{id}.log"), &log);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ISR") || l.contains("following"))
            .collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        text.push_str(&format!("--- node {id} ---\n{}\n", tail.join("\n")));
    }
    text
}

/// Every partition's replicas, ISR and leader, for failure messages.
fn describe(node: &Broker, topics: &[&str]) -> String {
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|name| {
                let mut wanted = MetadataRequestTopic::default();
                wanted.name = Some(TopicName(StrBytes::from_string(name.to_string())));
                wanted
            })
            .collect(),
    );
    let response = client.request(METADATA_VERSION, &request);
    let mut lines = Vec::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            let ids = |list: &[kafka_protocol::messages::BrokerId]| {
                list.iter().map(|id| id.0).collect::<Vec<_>>()
            };
            lines.push(format!(
                "{:?}-{} leader {} replicas {:?} isr {:?}",
                topic.name.as_ref().map(|n| n.as_str()),
                p.partition_index,
                p.leader_id.0,
                ids(&p.replica_nodes),
                ids(&p.isr_nodes)
            ));
        }
    }
    lines.join("\n")
}

/// `(id, fenced)` of every registered broker (DescribeCluster v2, fenced ones included).
fn registered_brokers(node: &Broker) -> Vec<(i32, bool)> {
    use kafka_protocol::messages::DescribeClusterRequest;
    let mut client = RawClient::connect(&node.bootstrap());
    let mut request = DescribeClusterRequest::default();
    request.include_fenced_brokers = true;
    let response = client.request(2, &request);
    response
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.is_fenced))
        .collect()
}

fn leader_of(node: &Broker, topic: &str, partition: i32) -> i32 {
    let mut client = RawClient::connect(&node.bootstrap());
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![wanted]);
    let response = client.request(METADATA_VERSION, &request);
    response.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .map(|p| p.leader_id.0)
        .expect("partition in metadata")
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) if entry.path().extension().is_some_and(|x| x == "log") => {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            }
            _ => 0,
        })
        .sum()
}

fn fill(node: &Broker, topic: &str) {
    let value = "x".repeat(BULK_VALUE_BYTES);
    let input: String = (0..BULK_RECORDS).map(|_| format!("{value}\n")).collect();
    let mut command = Command::new(kcat());
    command.args(["-b", &node.bootstrap(), "-P", "-t", topic, "-X", "acks=all"]);
    command.args(["-X", &format!("batch.size={BULK_BATCH_BYTES}")]);
    run_command(command, input.as_bytes(), "kcat fill");
}

/// Node `id`'s args: the plan's, plus the throttle.
fn node_args(plan: &ClusterPlan, id: i32) -> Vec<String> {
    let mut args = plan.node_args(id);
    args.extend([
        "--reassignment-throttle-bytes-per-sec".to_string(),
        THROTTLE_BYTES_PER_SEC.to_string(),
        "--default-replication-factor".to_string(),
        REPLICATION_FACTOR.to_string(),
    ]);
    args
}

fn start(args: &[String]) -> Broker {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Broker::start_with(&args)
}

/// Waits until balanced over `brokers`, sampling `watched`'s data dir; returns the samples.
fn wait_balanced(
    cluster: &Cluster,
    topics: &[&str],
    brokers: &[i32],
    watched: Option<i32>,
) -> Vec<(Instant, u64)> {
    let mut samples = Vec::new();
    let started = Instant::now();
    loop {
        if let Some(id) = watched {
            samples.push((Instant::now(), dir_bytes(cluster.node(id).data_dir())));
        }
        if balanced(cluster.node(1), topics, brokers) {
            return samples;
        }
        assert!(
            started.elapsed() < BALANCE_DEADLINE,
            "not balanced over {brokers:?} within {BALANCE_DEADLINE:?}: {:?}\n{}\n{}",
            placement(cluster.node(1), topics),
            describe(cluster.node(1), topics),
            warnings(cluster)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The fastest catch-up over any window of at least [`RATE_WINDOW`], bytes/s.
fn fastest_rate(samples: &[(Instant, u64)]) -> f64 {
    let mut fastest: f64 = 0.0;
    for (i, (start, bytes_start)) in samples.iter().enumerate() {
        for (end, bytes_end) in &samples[i + 1..] {
            let elapsed = end.duration_since(*start);
            if elapsed >= RATE_WINDOW {
                let rate = bytes_end.saturating_sub(*bytes_start) as f64 / elapsed.as_secs_f64();
                fastest = fastest.max(rate);
            }
        }
    }
    fastest
}

#[test]
fn a_joining_node_gets_its_share_throttled_and_a_drained_node_is_emptied() {
    let plan = ClusterPlan::with_brokers_only(3, 1).with_balancer(1_000);
    let voters = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=3)
            .map(|id| {
                let args = node_args(&plan, id);
                scope.spawn(move || start(&args))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("voter starts"))
            .collect::<Vec<_>>()
    });
    let mut cluster = Cluster::from_nodes(voters);
    let bulk = topic_name("bulk");
    let streamed = topic_name("streamed");
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let replication_factor = REPLICATION_FACTOR as i16;
    assert_eq!(
        client.create_topic_replicated(&bulk, PARTITIONS, replication_factor, &[]),
        0
    );
    fill(cluster.node(1), &bulk);
    let stream = Stream::start(
        &cluster.bootstrap(),
        &streamed,
        PARTITIONS,
        REPLICATION_FACTOR,
        Some("balance-group"),
    );
    wait_until(BALANCE_DEADLINE, "the stream to run", || {
        let output = stream.output();
        (output.acked.len() >= 200 && output.consumed.len() >= 200).then_some(())
    });
    // The balancer evens out every replica the brokers hold, the offsets topic's too.
    let topics = [bulk.as_str(), streamed.as_str(), OFFSETS_TOPIC];

    // A 4th node joins: the balancer spreads replicas and leaders onto it, throttled.
    let joined = start(&node_args(&plan, 4));
    let bytes_at_join = dir_bytes(joined.data_dir());
    cluster.add(joined);
    let samples = wait_balanced(&cluster, &topics, &[1, 2, 3, 4], Some(4));
    let moved = dir_bytes(cluster.node(4).data_dir()).saturating_sub(bytes_at_join);
    // Enough data moved that the catch-up spanned several rate windows at the throttle.
    let window_bytes = THROTTLE_BYTES_PER_SEC as f64 * RATE_WINDOW.as_secs_f64();
    assert!(
        moved as f64 > window_bytes,
        "too little moved to measure the throttle: {moved} bytes"
    );
    let fastest = fastest_rate(&samples);
    let burst = (MOVES_MAX * BULK_BATCH_BYTES) as f64 / RATE_WINDOW.as_secs_f64();
    let allowed = THROTTLE_BYTES_PER_SEC as f64 * THROTTLE_TOLERANCE + burst;
    assert!(
        fastest <= allowed,
        "catch-up at {fastest:.0} B/s over {RATE_WINDOW:?}, allowed {allowed:.0} \
         (throttle {THROTTLE_BYTES_PER_SEC})"
    );
    // The moves show in the metrics: the active controller counted what it submitted, and
    // nothing is left reassigning once balanced.
    let moves: f64 = cluster
        .ids()
        .map(|id| {
            sample(
                &cluster.node(id).scrape(),
                "sluice_balancer_moves_total",
                &[],
            )
        })
        .map(|moves| moves.unwrap_or(0.0))
        .sum();
    assert!(moves > 0.0, "no balancer moves counted");
    wait_until(BALANCE_DEADLINE, "no partition left reassigning", || {
        let text = cluster.node(1).scrape();
        let reassigning = sample(&text, "sluice_partitions_reassigning", &[]);
        let queued = sample(&text, "sluice_partitions_reassignment_queued", &[]);
        (reassigning == Some(0.0) && queued == Some(0.0)).then_some(())
    });
    let before_drain = stream.output();

    // Drain node 2: every replica and leadership moves off it.
    let mut drain = Command::new(sluice_bin());
    drain.args([
        "node",
        "drain",
        "2",
        "--bootstrap-server",
        &cluster.node(1).bootstrap(),
    ]);
    run_command(drain, b"", "sluice node drain");
    wait_balanced(&cluster, &topics, &[1, 3, 4], None);
    wait_until(
        BALANCE_DEADLINE,
        "the stream to go on after the drain",
        || {
            let now = stream.output();
            (now.acked.len() >= before_drain.acked.len() + 200
                && now.consumed.len() > before_drain.consumed.len())
            .then_some(())
        },
    );

    // Decommission the drained node for good: stop it, unregister it with Kafka's tool; it
    // leaves the brokers and, being a controller, the voters. The cluster goes on with two.
    cluster.node_mut(2).stop();
    let bootstrap_1 = cluster.node(1).bootstrap();
    wait_until(BALANCE_DEADLINE, "node 2 fenced", || {
        (!registered_brokers(cluster.node(1)).contains(&(2, false))).then_some(())
    });
    kafka_tool_ok(
        CLUSTER,
        &[
            "unregister",
            "--bootstrap-server",
            &bootstrap_1,
            "--id",
            "2",
        ],
    );
    wait_until(BALANCE_DEADLINE, "node 2 gone from every view", || {
        let gone = |id: i32| {
            registered_brokers(cluster.node(id))
                .iter()
                .all(|(b, _)| *b != 2)
        };
        (gone(1) && gone(3) && gone(4)).then_some(())
    });
    let after = topic_name("after-unregister");
    let mut client = RawClient::connect(&bootstrap_1);
    assert_eq!(client.create_topic_replicated(&after, 1, 3, &[]), 0);
    let before_stop = stream.output();
    wait_until(
        BALANCE_DEADLINE,
        "the stream to go on after the unregister",
        || (stream.output().acked.len() >= before_stop.acked.len() + 100).then_some(()),
    );

    let output = stream.finish();
    assert!(
        output.failed.is_empty(),
        "sends failed: {:?}",
        output.failed
    );
    assert!(
        output.consumer_errors.is_empty(),
        "consumer errors: {:?}",
        output.consumer_errors
    );
    let (_, leaders) = placement(cluster.node(1), &topics).expect("settled placement");
    assert_eq!(leaders.get(&2).copied().unwrap_or(0), 0);
    for partition in 0..PARTITIONS {
        let leader = leader_of(cluster.node(1), &streamed, partition);
        let log = read_partition(cluster.node(leader), &streamed, partition);
        check_log_against_acks(&log, &output.acked, partition);
    }
}
