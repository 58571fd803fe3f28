//! Exactly-once consume-transform-produce with the Java client (`TransactionalStream`): a
//! read_committed consumer and a transactional producer with sendOffsetsToTransaction turn
//! every input record into one output record, aborting every third transaction, while the
//! test kill -9s the broker between and inside transactions. The program's checker reads the
//! output both ways: read_committed sees each input's output exactly once and nothing of an
//! aborted transaction; read_uncommitted sees every aborted record, and no markers.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use sluice_integration_tests::cluster::Cluster;
use sluice_integration_tests::raw_client::{RawClient, FIND_COORDINATOR_VERSION};
use sluice_integration_tests::{java_command, topic_name, wait_until, Broker};

/// Input records: enough transactions (25 records each at most) for kills to land inside.
const INPUT_COUNT: usize = 3_000;
/// Broker kills during the processing.
const KILLS: usize = 3;
/// Committed transactions between two kills.
const COMMITS_BETWEEN_KILLS: usize = 12;
const SEED_WAIT: Duration = Duration::from_secs(120);
const COMMITS_WAIT: Duration = Duration::from_secs(180);
const JAVA_RUN_DURATION_MAX: Duration = Duration::from_secs(600);

/// The transactional id `TransactionalStream` uses for `group`.
fn transactional_id(group: &str) -> String {
    format!("{group}-txn")
}

/// The consumer's `group.protocol`: the classic protocol or KIP-848's.
#[derive(Clone, Copy)]
enum Protocol {
    Classic,
    Consumer,
}

fn spawn_stream(
    scratch: &Path,
    bootstrap: &str,
    group: &str,
    replicas: usize,
    protocol: Protocol,
) -> Child {
    let count = INPUT_COUNT.to_string();
    let (input, output) = (topic_name("eos-in"), topic_name("eos-out"));
    let replicas = replicas.to_string();
    let protocol = match protocol {
        Protocol::Classic => "classic",
        Protocol::Consumer => "consumer",
    };
    let args = [
        bootstrap, &input, &output, &count, group, &replicas, protocol,
    ];
    let mut command = java_command("TransactionalStream", &args);
    command
        .stdin(Stdio::null())
        .stdout(File::create(scratch.join("stdout")).unwrap())
        .stderr(File::create(scratch.join("stderr")).unwrap());
    command.spawn().expect("spawn TransactionalStream")
}

fn stdout(scratch: &Path) -> String {
    std::fs::read_to_string(scratch.join("stdout")).unwrap_or_default()
}

fn committed_so_far(scratch: &Path) -> usize {
    stdout(scratch)
        .lines()
        .filter(|line| line.starts_with("committed "))
        .count()
}

fn java_output(scratch: &Path, status: &str) -> String {
    let stderr = std::fs::read_to_string(scratch.join("stderr")).unwrap_or_default();
    let tail = |text: &str| text[text.len().saturating_sub(8_000)..].to_string();
    format!(
        "TransactionalStream {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        tail(&stdout(scratch)),
        tail(&stderr)
    )
}

/// Waits for `predicate` on the program's output, failing (with the output) if the program
/// exits first or `within` passes.
fn wait_output(
    child: &mut Child,
    scratch: &Path,
    within: Duration,
    what: &str,
    predicate: impl Fn(&Path) -> bool,
) {
    let started = Instant::now();
    while !predicate(scratch) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "{}",
                java_output(scratch, &format!("exited early: {status}"))
            );
        }
        if started.elapsed() > within {
            panic!(
                "{}",
                java_output(scratch, &format!("no {what} within {within:?}"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The running program and where its output goes.
struct Stream {
    child: Child,
    scratch: tempfile::TempDir,
}

impl Stream {
    fn start(bootstrap: &str, group: &str, replicas: usize, protocol: Protocol) -> Stream {
        let scratch = tempfile::tempdir().unwrap();
        let mut child = spawn_stream(scratch.path(), bootstrap, group, replicas, protocol);
        wait_output(&mut child, scratch.path(), SEED_WAIT, "seeded", |s| {
            stdout(s).lines().any(|line| line == "seeded")
        });
        Stream { child, scratch }
    }

    /// Waits for `COMMITS_BETWEEN_KILLS` more committed transactions.
    fn wait_commits(&mut self) -> usize {
        let threshold = committed_so_far(self.scratch.path()) + COMMITS_BETWEEN_KILLS;
        let scratch = self.scratch.path();
        wait_output(
            &mut self.child,
            scratch,
            COMMITS_WAIT,
            "committed transactions",
            |s| committed_so_far(s) >= threshold,
        );
        committed_so_far(scratch)
    }

    /// Waits for the program to end and checks its summary exactly.
    fn finish_and_check(mut self) {
        let scratch = self.scratch.path();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > JAVA_RUN_DURATION_MAX {
                panic!("{}", java_output(scratch, "timed out"));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let report = java_output(scratch, &format!("exited with {status}"));
        assert!(status.success(), "{report}");
        let summary: Value = stdout(scratch)
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or_else(|| panic!("no summary\n{report}"));
        println!("TransactionalStream summary: {summary}");
        check_summary(&summary, &report);
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Exactly once among committed records, aborted ones only read_uncommitted, no markers.
fn check_summary(summary: &Value, report: &str) {
    let aborted_sent = summary["aborted_sent"].clone();
    let expected = json!({
        "inputs": INPUT_COUNT,
        "transactions": summary["transactions"],
        "committed_transactions": summary["committed_transactions"],
        "aborted_transactions": summary["aborted_transactions"],
        "failed_transactions": summary["failed_transactions"],
        "read_committed": INPUT_COUNT,
        "distinct_outputs": INPUT_COUNT,
        "missing": 0,
        "duplicated": 0,
        "committed_from_aborted": 0,
        "committed_not_outputs": 0,
        "read_uncommitted": summary["read_uncommitted"],
        "aborted_sent": aborted_sent,
        "aborted_seen_uncommitted": aborted_sent,
        "uncommitted_not_outputs": 0,
    });
    assert_eq!(summary, &expected, "{report}");
    // Every third transaction was aborted on purpose, so read_uncommitted holds more.
    let aborted = summary["aborted_transactions"].as_u64().unwrap();
    assert!(aborted >= 10, "{aborted} aborted transactions\n{report}");
    let uncommitted = summary["read_uncommitted"].as_u64().unwrap();
    let sent_aborted = summary["aborted_sent"].as_u64().unwrap();
    assert!(
        uncommitted >= INPUT_COUNT as u64 + sent_aborted,
        "read_uncommitted {uncommitted}\n{report}"
    );
}

/// The node FindCoordinator (key_type 1) names for `transactional_id`.
fn transaction_coordinator(bootstrap: &str, transactional_id: &str) -> i32 {
    let mut client = RawClient::connect(bootstrap);
    wait_until(Duration::from_secs(60), "a transaction coordinator", || {
        let mut request = FindCoordinatorRequest::default();
        request.key_type = 1;
        request.coordinator_keys = vec![StrBytes::from_string(transactional_id.to_string())];
        let response = client.request(FIND_COORDINATOR_VERSION, &request);
        let found = &response.coordinators[0];
        (found.error_code == 0).then_some(found.node_id.0)
    })
}

#[test]
fn java_exactly_once_stream_survives_broker_kill9s() {
    let mut broker = Broker::start();
    let mut stream = Stream::start(&broker.bootstrap(), "eos-group", 1, Protocol::Classic);
    for _ in 0..KILLS {
        stream.wait_commits();
        broker.kill9();
        broker.restart();
    }
    stream.finish_and_check();
}

#[test]
fn java_exactly_once_stream_survives_kill9s_of_the_transaction_coordinators_node() {
    let mut cluster = Cluster::start(3);
    let group = "eos-cluster-group";
    let mut stream = Stream::start(&cluster.bootstrap(), group, 3, Protocol::Classic);
    // Asked of a node that was not just restarted (one still registering closes requests).
    let mut asked = 1;
    for _ in 0..KILLS {
        stream.wait_commits();
        let bootstrap = cluster.node(asked).bootstrap();
        let coordinator = transaction_coordinator(&bootstrap, &transactional_id(group));
        asked = if coordinator == 1 { 2 } else { 1 };
        cluster.kill9(coordinator);
        // The stream goes on without the node (its partitions' leaders move), then it returns.
        stream.wait_commits();
        cluster.restart(coordinator);
    }
    stream.finish_and_check();
}

#[test]
fn java_exactly_once_stream_in_a_kip848_consumer_group_survives_a_broker_kill9() {
    // The member epoch stands in for the generation in TxnOffsetCommit (KIP-848 + KIP-447).
    let mut broker = Broker::start();
    let mut stream = Stream::start(&broker.bootstrap(), "eos-848", 1, Protocol::Consumer);
    stream.wait_commits();
    broker.kill9();
    broker.restart();
    stream.finish_and_check();
}
