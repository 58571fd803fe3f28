//! Network partitions: `sluice` nodes, each in its own network namespace, and nodes cut off
//! from everyone (their links down) while clients keep writing. No split brain:
//!
//! - an isolated partition leader is fenced by the majority, which elects a new leader from
//!   the ISR and keeps acknowledging acks=all writes; the isolated node acknowledges no
//!   acks=all write, and whatever it took as a stale leader (acks=1) is truncated when it
//!   returns and never reaches a consumer;
//! - an isolated controller loses the quorum: the majority elects another, the isolated one
//!   commits nothing alone, and after the heal there is one controller again;
//! - with five nodes, the controller and another partition's leader cut off at once leave a
//!   majority of three that carries on;
//! - after the heal every replica holds exactly the acknowledged records, identically.
//!
//! Needs root (network namespaces): without it the lab panics with the reason.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;

use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::netns::NetworkLab;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{
    kcat, run_command, run_command_output, topic_name, wait_until, Broker, ProgramOutput,
};

const NODES: i32 = 3;
/// Five, so that on five nodes (RF=3, placement spreads replicas evenly) some partition has
/// no replica on a given node: the five-node test needs one without the controller.
const PARTITIONS: i32 = 5;
/// kcat's message.timeout.ms for writes that must be acknowledged: rides out a leader change.
const ACKED_TIMEOUT_MS: u32 = 30_000;
/// kcat's message.timeout.ms for writes the isolated side must not acknowledge: longer than a
/// broker's acks=all wait (the request timeout), so a wrongly given ack would arrive in time.
const UNANSWERED_TIMEOUT_MS: u32 = 8_000;

/// While a node is cut off, openraft warns about every failed RPC several times a second;
/// the tail of a failing node's log should show the broker's story instead.
const QUIET_RAFT_LOGS: [&str; 2] = [
    "--log-level",
    "info,openraft=error,sluice_raft::network=warn",
];

/// The scenarios run one after the other: two 3-node clusters at once on a two-core machine
/// would stretch failure detection past the test's deadlines.
static SERIAL: Mutex<()> = Mutex::new(());

/// Nodes before the lab: brokers are killed before their namespaces go away.
struct Partitioned {
    cluster: Cluster,
    lab: NetworkLab,
}

impl Partitioned {
    fn start(nodes: i32) -> Partitioned {
        let lab = NetworkLab::new(nodes);
        let cluster = Cluster::start_in_lab(&lab, nodes as usize, &QUIET_RAFT_LOGS);
        Partitioned { cluster, lab }
    }

    /// Node ids, 1..=n.
    fn all(&self) -> Vec<i32> {
        self.cluster.ids().collect()
    }

    /// Every node but the `cut` ones.
    fn others(&self, cut: &[i32]) -> Vec<i32> {
        self.cluster.ids().filter(|id| !cut.contains(id)).collect()
    }

    fn node(&self, id: i32) -> &Broker {
        self.cluster.node(id)
    }

    /// A kcat running in the root namespace (the test's own side of the bridge).
    fn kcat_outside(&self) -> Command {
        Command::new(kcat())
    }

    /// A kcat running inside node `id`'s namespace: cut off together with it.
    fn kcat_inside(&self, id: i32) -> Command {
        self.lab.command(id, kcat())
    }

    fn bootstrap(&self, ids: &[i32]) -> String {
        let addresses: Vec<String> = ids.iter().map(|id| self.node(*id).bootstrap()).collect();
        addresses.join(",")
    }
}

/// One node's Metadata, as `kcat -L` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    brokers: BTreeSet<i32>,
    controller: Option<i32>,
    partitions: Vec<PartitionView>,
    topics: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionView {
    index: i32,
    leader: i32,
    replicas: BTreeSet<i32>,
    isr: BTreeSet<i32>,
}

impl PartitionView {
    /// A leader, and every replica in sync.
    fn is_whole(&self) -> bool {
        self.leader > 0 && self.isr == self.replicas
    }
}

impl View {
    fn partition(&self, index: i32) -> Option<&PartitionView> {
        self.partitions.iter().find(|p| p.index == index)
    }
}

/// `kcat -L` against `node` only; `None` when it cannot answer now.
fn view(mut command: Command, node: &Broker, topic: Option<&str>) -> Option<View> {
    command.args(["-b", &node.bootstrap(), "-L", "-m", "3"]);
    if let Some(topic) = topic {
        command.args(["-t", topic]);
    }
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(parse_view(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_view(text: &str) -> View {
    let mut view = View {
        brokers: BTreeSet::new(),
        controller: None,
        partitions: Vec::new(),
        topics: BTreeSet::new(),
    };
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("broker ") {
            let Some(id) = rest
                .split_whitespace()
                .next()
                .and_then(|id| id.parse().ok())
            else {
                continue;
            };
            view.brokers.insert(id);
            if line.ends_with("(controller)") {
                view.controller = Some(id);
            }
        } else if let Some(rest) = line.strip_prefix("topic \"") {
            if let Some((name, _)) = rest.split_once('"') {
                view.topics.insert(name.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("partition ") {
            let field = |name: &str| rest.split(name).nth(1).unwrap_or("");
            let index = rest.split(',').next().and_then(|i| i.trim().parse().ok());
            let leader = field("leader ")
                .split(',')
                .next()
                .and_then(|l| l.trim().parse().ok());
            let ids = |name: &str| -> BTreeSet<i32> {
                field(name)
                    .split(',')
                    .map_while(|id| id.trim().parse().ok())
                    .collect()
            };
            if let (Some(index), Some(leader)) = (index, leader) {
                view.partitions.push(PartitionView {
                    index,
                    leader,
                    replicas: ids("replicas: "),
                    isr: ids("isrs: "),
                });
            }
        }
    }
    view
}

/// Waits until every node lists all brokers and names the same controller; returns it.
fn wait_formed(setup: &Partitioned) -> i32 {
    let all: BTreeSet<i32> = setup.all().into_iter().collect();
    wait_until(
        CLUSTER_DEADLINE,
        "one controller, all brokers listed",
        || {
            let views: Vec<View> = setup
                .all()
                .into_iter()
                .map(|id| view(setup.kcat_outside(), setup.node(id), None))
                .collect::<Option<_>>()?;
            let controllers: BTreeSet<Option<i32>> = views.iter().map(|v| v.controller).collect();
            let agreed = controllers.len() == 1 && views.iter().all(|v| v.brokers == all);
            agreed.then(|| views[0].controller).flatten()
        },
    )
}

/// An RF=3 topic with min.insync.replicas=2, every partition with its full ISR; returns
/// each partition as node 1 sees it then.
fn create_replicated_topic(setup: &Partitioned, topic: &str) -> Vec<PartitionView> {
    let mut client = RawClient::connect(&setup.node(1).bootstrap());
    let code =
        client.create_topic_replicated(topic, PARTITIONS, 3, &[("min.insync.replicas", "2")]);
    assert_eq!(code, 0, "CreateTopics {topic}");
    wait_until(
        CLUSTER_DEADLINE,
        "every partition with its full ISR",
        || {
            let view = view(setup.kcat_outside(), setup.node(1), Some(topic))?;
            (0..PARTITIONS)
                .map(|index| {
                    let partition = view.partition(index)?;
                    (partition.is_whole() && partition.replicas.len() == 3)
                        .then(|| partition.clone())
                })
                .collect()
        },
    )
}

fn values(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|v| format!("{prefix}{v:06}")).collect()
}

/// kcat -P of `values` to one partition; the outcome is judged by the caller.
fn produce(
    mut command: Command,
    bootstrap: &str,
    topic: &str,
    partition: i32,
    acks: &str,
    values: &[String],
    message_timeout_ms: u32,
) -> ProgramOutput {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    let partition = partition.to_string();
    command.args(["-b", bootstrap, "-P", "-t", topic, "-p", &partition]);
    command.args(["-X", &format!("acks={acks}")]);
    command.args(["-X", &format!("message.timeout.ms={message_timeout_ms}")]);
    command.args(["-X", "request.timeout.ms=5000"]);
    run_command_output(command, input.as_bytes(), "kcat produce")
}

/// Produces `values` with acks=all and idempotence; every one must be acknowledged.
fn produce_acknowledged(
    setup: &Partitioned,
    ids: &[i32],
    topic: &str,
    partition: i32,
    values: &[String],
) {
    let mut command = setup.kcat_outside();
    command.args(["-X", "enable.idempotence=true"]);
    let bootstrap = setup.bootstrap(ids);
    let output = produce(
        command,
        &bootstrap,
        topic,
        partition,
        "all",
        values,
        ACKED_TIMEOUT_MS,
    );
    assert!(
        output.status.is_some_and(|s| s.success())
            && !output.stderr_tail.contains("Delivery failed"),
        "{}",
        output.failure("acks=all produce to the majority")
    );
}

/// Whether a kcat producer got every message acknowledged.
fn all_delivered(output: &ProgramOutput) -> bool {
    output.status.is_some_and(|s| s.success())
        && !output.stderr_tail.contains("Delivery failed")
        && !output.stderr_tail.contains("ERROR")
}

fn consume_all(setup: &Partitioned, id: i32, topic: &str, partition: i32) -> Vec<String> {
    consume_all_with(setup.kcat_outside(), setup, id, topic, partition)
}

/// kcat -C of one partition from `id` alone, up to its high watermark.
fn consume_all_with(
    mut command: Command,
    setup: &Partitioned,
    id: i32,
    topic: &str,
    partition: i32,
) -> Vec<String> {
    let partition = partition.to_string();
    command.args([
        "-b",
        &setup.node(id).bootstrap(),
        "-C",
        "-t",
        topic,
        "-p",
        &partition,
    ]);
    command.args(["-o", "beginning", "-e", "-q"]);
    let out = run_command(command, b"", "kcat consume");
    out.lines().map(str::to_string).collect()
}

/// The segment files of one partition on one node, concatenated.
fn log_bytes(node: &Broker, topic: &str, partition: i32) -> Vec<u8> {
    let dir = node.data_dir().join(format!("{topic}-{partition}"));
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every replica of `partition` holds the same bytes, and none holds a record with one of
/// `never` as prefix.
fn wait_identical_replicas(
    setup: &Partitioned,
    topic: &str,
    partition: &PartitionView,
    never: &[&str],
) {
    let replicas: Vec<i32> = partition.replicas.iter().copied().collect();
    let index = partition.index;
    wait_until(CLUSTER_DEADLINE, "identical replica logs", || {
        let reference = log_bytes(setup.node(replicas[0]), topic, index);
        replicas[1..]
            .iter()
            .all(|id| log_bytes(setup.node(*id), topic, index) == reference)
            .then_some(())
    });
    let reference = log_bytes(setup.node(replicas[0]), topic, index);
    assert!(!reference.is_empty());
    for prefix in never {
        assert!(
            !contains(&reference, prefix.as_bytes()),
            "a replica log still holds {prefix}... records"
        );
    }
}

/// The majority's view once it fenced the `cut` nodes and moved `partition`'s leadership off
/// them: returns the new leader.
fn wait_majority_failed_over(setup: &Partitioned, cut: &[i32], topic: &str, partition: i32) -> i32 {
    let majority = setup.others(cut);
    let majority_set: BTreeSet<i32> = majority.iter().copied().collect();
    poll("the majority fenced the cut nodes", || {
        let views = views(setup, &majority, Some(topic))?;
        let leaders: BTreeSet<i32> = views
            .iter()
            .filter_map(|view| {
                let found = view.partition(partition)?;
                let fenced =
                    view.brokers == majority_set && found.isr.iter().all(|id| !cut.contains(id));
                let controller_ok = view.controller.is_some_and(|c| !cut.contains(&c));
                let leader = found.leader;
                (fenced && controller_ok && majority_set.contains(&leader)).then_some(leader)
            })
            .collect();
        match leaders.iter().next() {
            Some(leader) if leaders.len() == 1 && views.len() == majority.len() => Ok(*leader),
            _ => Err(format!("{views:#?}")),
        }
    })
}

fn wait_healed(setup: &Partitioned, topic: &str) {
    let ids = setup.all();
    let all: BTreeSet<i32> = ids.iter().copied().collect();
    poll("every node back, one controller, full ISRs", || {
        let views = views(setup, &ids, Some(topic))?;
        let controllers: BTreeSet<Option<i32>> = views.iter().map(|v| v.controller).collect();
        let leaders: BTreeSet<Vec<i32>> = views
            .iter()
            .map(|v| v.partitions.iter().map(|p| p.leader).collect())
            .collect();
        let full = views.iter().all(|v| {
            v.brokers == all
                && v.partitions.len() == PARTITIONS as usize
                && v.partitions.iter().all(PartitionView::is_whole)
        });
        let healed = controllers.len() == 1 && !controllers.contains(&None) && leaders.len() == 1;
        if healed && full {
            Ok(())
        } else {
            Err(format!("{views:#?}"))
        }
    });
}

/// Each of `ids`' views from the root namespace; `Err` names a node that did not answer.
fn views(setup: &Partitioned, ids: &[i32], topic: Option<&str>) -> Result<Vec<View>, String> {
    ids.iter()
        .map(|id| {
            view(setup.kcat_outside(), setup.node(*id), topic)
                .ok_or_else(|| format!("node {id} did not answer Metadata"))
        })
        .collect()
}

/// Polls `f` until it returns `Ok`, for at most [`CLUSTER_DEADLINE`]; the panic shows the last
/// `Err` (what the cluster looked like).
fn poll<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let started = std::time::Instant::now();
    loop {
        match f() {
            Ok(value) => return value,
            Err(last) if started.elapsed() > CLUSTER_DEADLINE => {
                panic!("timed out after {CLUSTER_DEADLINE:?} waiting for {what}; last:\n{last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn an_isolated_partition_leader_is_fenced_acks_nothing_and_rejoins_without_split_brain() {
    let _serial = serial();
    let setup = Partitioned::start(NODES);
    let controller = wait_formed(&setup);
    let topic = topic_name("partition");
    let partitions = create_replicated_topic(&setup, &topic);
    // A partition led by a node that is not the controller: this scenario isolates a
    // partition leader alone (the next one isolates the controller).
    let chosen = partitions
        .iter()
        .find(|p| p.leader != controller)
        .expect("placement spreads leaders over the brokers");
    let (partition, leader) = (chosen.index, chosen.leader);
    let all = setup.all();
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 0..200));

    setup.lab.cut(leader);
    let majority = setup.others(&[leader]);
    // The isolated leader still believes it leads, but its followers stopped fetching: an
    // acks=all write is appended there and never acknowledged.
    let isolated = setup.node(leader).bootstrap();
    let lost = values("lost-", 0..20);
    let attempt = produce(
        setup.kcat_inside(leader),
        &isolated,
        &topic,
        partition,
        "all",
        &lost,
        UNANSWERED_TIMEOUT_MS,
    );
    assert!(
        !all_delivered(&attempt),
        "the isolated leader acknowledged acks=all writes:\n{}",
        attempt.failure("kcat inside the cut namespace")
    );
    // acks=1 on the stale leader: what it takes must be truncated after the heal.
    let stale = values("stale-", 0..20);
    let stale_attempt = produce(
        setup.kcat_inside(leader),
        &isolated,
        &topic,
        partition,
        "1",
        &stale,
        UNANSWERED_TIMEOUT_MS,
    );
    // Kafka's leader takes acks=1 writes until it learns of the next epoch; this isolated one
    // never does while cut, so it takes them (which the heal below must undo).
    assert!(
        all_delivered(&stale_attempt),
        "{}",
        stale_attempt.failure("acks=1 produce to the stale leader")
    );
    let diverged = log_bytes(setup.node(leader), &topic, partition);
    assert!(contains(&diverged, b"lost-") && contains(&diverged, b"stale-"));
    // Its high watermark cannot move without followers: a consumer on its side of the cut
    // reads exactly what was acknowledged before, none of what it took since.
    let inside = consume_all_with(setup.kcat_inside(leader), &setup, leader, &topic, partition);
    assert_eq!(inside, values("ack-", 0..200));

    // The majority fenced it and elected a new leader from the ISR (all three were in it).
    let new_leader = wait_majority_failed_over(&setup, &[leader], &topic, partition);
    assert_ne!(new_leader, leader);
    produce_acknowledged(
        &setup,
        &majority,
        &topic,
        partition,
        &values("ack-", 200..400),
    );
    let acknowledged: Vec<String> = values("ack-", 0..400);
    assert_eq!(
        consume_all(&setup, majority[0], &topic, partition),
        acknowledged
    );

    setup.lab.heal(leader);
    wait_healed(&setup, &topic);
    let back = view(setup.kcat_outside(), setup.node(leader), Some(&topic)).expect("view");
    assert_eq!(
        back.partition(partition).map(|p| p.leader),
        Some(new_leader)
    );
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 400..500));
    let acknowledged: Vec<String> = values("ack-", 0..500);
    for id in all {
        assert_eq!(consume_all(&setup, id, &topic, partition), acknowledged);
    }
    wait_identical_replicas(&setup, &topic, chosen, &["lost-", "stale-"]);
}

#[test]
fn an_isolated_controller_commits_nothing_alone_and_one_controller_remains() {
    let _serial = serial();
    let setup = Partitioned::start(NODES);
    let controller = wait_formed(&setup);
    let topic = topic_name("controller");
    let partitions = create_replicated_topic(&setup, &topic);
    // Prefer a partition the controller leads, so its leadership moves too.
    let chosen = partitions
        .iter()
        .find(|p| p.leader == controller)
        .unwrap_or(&partitions[0]);
    let partition = chosen.index;
    let all = setup.all();
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 0..200));

    setup.lab.cut(controller);
    let majority = setup.others(&[controller]);
    // The majority elects a controller of its own and fences the cut one.
    wait_majority_failed_over(&setup, &[controller], &topic, partition);
    // Meanwhile the old controller asks itself for a new topic: it cannot commit it, so its
    // own image never shows it; and the brokers whose heartbeats it stopped hearing stay
    // unfenced there, as fencing them needs a quorum too.
    let ghost = topic_name("ghost");
    let isolated = setup.node(controller).bootstrap();
    let attempt = produce(
        setup.kcat_inside(controller),
        &isolated,
        &ghost,
        0,
        "all",
        &values("ghost-", 0..3),
        UNANSWERED_TIMEOUT_MS,
    );
    assert!(
        !all_delivered(&attempt),
        "the isolated controller created a topic alone:\n{}",
        attempt.failure("kcat inside the cut namespace")
    );
    let stale = view(setup.kcat_inside(controller), setup.node(controller), None)
        .expect("the isolated node still answers clients on its side");
    assert!(!stale.topics.contains(&ghost), "{stale:?}");
    assert_eq!(stale.brokers, all.iter().copied().collect(), "{stale:?}");
    for id in &majority {
        let view = view(setup.kcat_outside(), setup.node(*id), None).expect("majority view");
        assert!(!view.topics.contains(&ghost), "{view:?}");
    }
    produce_acknowledged(
        &setup,
        &majority,
        &topic,
        partition,
        &values("ack-", 200..400),
    );

    setup.lab.heal(controller);
    wait_healed(&setup, &topic);
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 400..500));
    let acknowledged: Vec<String> = values("ack-", 0..500);
    assert_eq!(
        consume_all(&setup, controller, &topic, partition),
        acknowledged
    );
    wait_identical_replicas(&setup, &topic, chosen, &["ghost-"]);
}

/// Five nodes; the controller and the leader of another partition are cut off at once (each
/// alone). The three left are a majority: they elect a controller and a leader, fence both,
/// and keep acknowledging; the cut leader acknowledges nothing; after the heal all five agree.
#[test]
fn five_nodes_lose_the_controller_and_a_partition_leader_at_once_without_split_brain() {
    let _serial = serial();
    let setup = Partitioned::start(5);
    wait_formed(&setup);
    let topic = topic_name("five");
    let partitions = create_replicated_topic(&setup, &topic);
    // Read after the topic exists: the controller is the one the cut must take.
    let controller = wait_formed(&setup);
    // Its replicas must not include the controller: cutting both would leave one in-sync
    // replica, below min.insync.replicas, and acks=all could never succeed on the majority.
    let chosen = partitions
        .iter()
        .find(|p| !p.replicas.contains(&controller))
        .unwrap_or_else(|| {
            panic!("placement left a partition off node {controller}: {partitions:#?}")
        });
    let (partition, leader) = (chosen.index, chosen.leader);
    let all = setup.all();
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 0..200));

    let cut = [controller, leader];
    for id in cut {
        setup.lab.cut(id);
    }
    let majority = setup.others(&cut);
    let isolated = setup.node(leader).bootstrap();
    let attempt = produce(
        setup.kcat_inside(leader),
        &isolated,
        &topic,
        partition,
        "all",
        &values("lost-", 0..20),
        UNANSWERED_TIMEOUT_MS,
    );
    assert!(
        !all_delivered(&attempt),
        "the isolated leader acknowledged acks=all writes:\n{}",
        attempt.failure("kcat inside the cut namespace")
    );
    let new_leader = wait_majority_failed_over(&setup, &cut, &topic, partition);
    assert!(majority.contains(&new_leader));
    produce_acknowledged(
        &setup,
        &majority,
        &topic,
        partition,
        &values("ack-", 200..400),
    );

    for id in cut {
        setup.lab.heal(id);
    }
    wait_healed(&setup, &topic);
    produce_acknowledged(&setup, &all, &topic, partition, &values("ack-", 400..500));
    let acknowledged: Vec<String> = values("ack-", 0..500);
    for id in cut {
        assert_eq!(consume_all(&setup, id, &topic, partition), acknowledged);
    }
    wait_identical_replicas(&setup, &topic, chosen, &["lost-"]);
}

#[test]
fn a_lab_is_removed_even_when_its_test_panics() {
    let made: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let outcome = std::panic::catch_unwind(|| {
        let lab = NetworkLab::new(2);
        let mut names = made.lock().unwrap_or_else(|p| p.into_inner());
        for id in 1..=2 {
            names.push(lab.exec_prefix(id)[3].clone());
        }
        drop(names);
        panic!("a test failing while its lab exists");
    });
    assert!(outcome.is_err());
    let made = made.into_inner().unwrap_or_else(|p| p.into_inner());
    assert_eq!(made.len(), 2);
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip");
    let listed = String::from_utf8_lossy(&output.stdout);
    for namespace in &made {
        assert!(
            !listed.contains(namespace.as_str()),
            "{namespace} left behind"
        );
    }
}
