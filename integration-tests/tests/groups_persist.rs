//! Group membership survives a broker restart: a Java KIP-848 consumer
//! (`group.protocol=consumer`) keeps consuming while its only broker is killed with SIGKILL and
//! started again. The broker rebuilds the group from `__consumer_offsets`, so the member keeps
//! its member id and epoch, is never told its partitions were revoked or lost, and consumes
//! every record exactly once; likewise on 3 nodes when the coordinator's node is killed and
//! another node loads the group from its replica. The program is `java/src/main/java/sluice/it/MemberAcrossRestart.java`.

use std::collections::BTreeSet;
use std::fs::File;
use std::process::{Child, Stdio};
use std::time::Duration;

use sluice_integration_tests::cluster::Cluster;
use sluice_integration_tests::kafka_cli::{kafka_tool_ok, CONSUMER_GROUPS};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{java_command, topic_name, wait_until, Broker};

/// Records the program sends before and after the restart.
const BATCH: usize = 600;
const CONSUME_DEADLINE: Duration = Duration::from_secs(120);
/// Members heartbeat every 500 ms, so they find the coordinator again quickly.
const HEARTBEAT_FLAGS: [&str; 2] = ["--group-consumer-heartbeat-interval-ms", "500"];

/// The Java program, killed on drop.
struct Program {
    child: Child,
    scratch: tempfile::TempDir,
}

impl Program {
    fn stdout(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("stdout")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let stderr =
            std::fs::read_to_string(self.scratch.path().join("stderr")).unwrap_or_default();
        let stdout = self.stdout();
        let tail = |text: &str| text[text.len().saturating_sub(4_000)..].to_string();
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&stdout),
            tail(&stderr)
        )
    }

    /// Complete lines starting with `word`, without it.
    fn lines(&self, word: &str) -> Vec<String> {
        let text = self.stdout();
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete
            .lines()
            .filter_map(|line| line.strip_prefix(word).map(|rest| rest.trim().to_string()))
            .collect()
    }

    /// Distinct (partition, offset) consumed, and how many consumed lines there were.
    fn consumed(&self) -> (BTreeSet<(i32, i64)>, usize) {
        let lines = self.lines("consumed ");
        let distinct = lines
            .iter()
            .map(|line| {
                let words: Vec<&str> = line.split(' ').collect();
                (words[0].parse().unwrap(), words[1].parse().unwrap())
            })
            .collect();
        (distinct, lines.len())
    }

    fn wait_consumed(&mut self, count: usize, what: &str) {
        wait_until(CONSUME_DEADLINE, what, || {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("the program exited early ({status})\n{}", self.logs());
            }
            (self.consumed().0.len() >= count).then_some(())
        });
    }

    fn touch(&self, name: &str) {
        File::create(self.scratch.path().join(name)).expect("create a control file");
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the program: it creates `topic` with `replicas`, sends the first batch and
/// consumes as a member of `group`.
fn start_program(bootstrap: &str, topic: &str, group: &str, replicas: usize) -> Program {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let dir = scratch.path().to_str().expect("utf-8").to_string();
    let replicas = replicas.to_string();
    let args = [bootstrap, topic, group, &dir, &replicas];
    let mut command = java_command("MemberAcrossRestart", &args);
    command
        .stdin(Stdio::null())
        .stdout(File::create(scratch.path().join("stdout")).expect("stdout file"))
        .stderr(File::create(scratch.path().join("stderr")).expect("stderr file"));
    let child = command.spawn().expect("spawn MemberAcrossRestart");
    Program { child, scratch }
}

/// Once the first batch is consumed: the member's "id epoch" line.
fn first_batch(program: &mut Program) -> String {
    program.wait_consumed(BATCH, "the first batch consumed");
    let before = program.lines("member ");
    assert_eq!(before.len(), 1, "{}", program.logs());
    let epoch: i32 = before[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(epoch >= 1, "{before:?}");
    before[0].clone()
}

/// After the coordinator went away: the second batch is consumed and the member carried on
/// as `member` ("id epoch") without any rebalance.
fn carried_on(mut program: Program, member: &str, bootstrap: &str, group: &str) {
    program.touch("produce");
    program.wait_consumed(
        2 * BATCH,
        "the second batch consumed after the coordinator moved",
    );
    // kafka-consumer-groups lists the member, with its 12 partitions, while it still runs.
    let args = [
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--group",
        group,
        "--members",
    ];
    let table = kafka_tool_ok(CONSUMER_GROUPS, &args);
    let member_id = member.split(' ').next().unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|line| line.contains(member_id))
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(
        (rows[0][0], rows[0][1], rows[0].last().copied()),
        (group, member_id, Some("12")),
        "{table}"
    );
    program.touch("stop");
    let status = wait_until(CONSUME_DEADLINE, "the program to exit", || {
        program.child.try_wait().expect("try_wait")
    });
    assert!(status.success(), "{}", program.logs());
    assert_eq!(program.lines("done").len(), 1, "{}", program.logs());
    // Every record once: nothing consumed twice (no rewind to a committed offset).
    let (distinct, lines) = program.consumed();
    assert_eq!(
        (distinct.len(), lines),
        (2 * BATCH, 2 * BATCH),
        "{}",
        program.logs()
    );
    // The same member at the same epoch throughout: no rebalance, nothing revoked or lost.
    assert_eq!(program.lines("member "), [member], "{}", program.logs());
    assert_eq!(program.lines("assigned "), ["12"], "{}", program.logs());
    assert!(program.lines("revoked ").is_empty(), "{}", program.logs());
    assert!(program.lines("lost ").is_empty(), "{}", program.logs());
    assert_eq!(
        program.lines("revoked-on-close "),
        ["12"],
        "{}",
        program.logs()
    );
    // ConsumerGroupDescribe at the new coordinator lists the member at its epoch.
    let epoch = member.split(' ').nth(1).unwrap();
    assert_eq!(
        program.lines("described "),
        [format!("{member} 12")],
        "{}",
        program.logs()
    );
    assert_eq!(program.lines("group-epoch "), [epoch], "{}", program.logs());
}

#[test]
fn a_kip848_member_carries_on_across_a_broker_kill_and_restart() {
    let mut broker = Broker::start_with(&HEARTBEAT_FLAGS);
    let topic = topic_name("member-restart");
    let group = format!("{topic}-group");
    let mut program = start_program(&broker.bootstrap(), &topic, &group, 1);
    let member = first_batch(&mut program);
    broker.kill9();
    broker.restart();
    carried_on(program, &member, &broker.bootstrap(), &group);
}

#[test]
fn a_kip848_member_carries_on_when_its_coordinator_node_dies() {
    let mut cluster = Cluster::start_with(3, &HEARTBEAT_FLAGS);
    let topic = topic_name("member-failover");
    let group = format!("{topic}-group");
    let mut program = start_program(&cluster.bootstrap(), &topic, &group, 3);
    let member = first_batch(&mut program);
    let mut client = RawClient::connect(&cluster.node(1).bootstrap());
    let found = &client.find_group_coordinators(&[&group])[0];
    assert_eq!(found.error_code, 0);
    drop(client);
    cluster.kill9(found.node_id.0);
    let survivor = if found.node_id.0 == 1 { 2 } else { 1 };
    carried_on(
        program,
        &member,
        &cluster.node(survivor).bootstrap(),
        &group,
    );
}
