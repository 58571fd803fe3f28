//! Transactional producers and read_committed consumers of real clients: the Java client
//! (kafka-clients 4.1, `java/src/main/java/sluice/it/TransactionalProduce.java`) committing
//! and aborting (with transaction version 2, and with 1 when the broker finalizes 1), and a
//! zombie producer fenced by a newer instance of its transactional id;
//! confluent-kafka (`python/confluent_transactions.py`) and kcat committing and aborting.

use std::process::Command;

use serde_json::{json, Value};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{kcat, run_command, run_java, run_python, topic_name, Broker};

/// Values `prefix-i` for `i` in `0..count` that the program sends to `partition` (of 3).
fn values(prefix: &str, count: usize, partition: usize) -> Vec<String> {
    (0..count)
        .filter(|index| index % 3 == partition)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}

fn per_partition(prefixes: &[&str], count: usize) -> Value {
    let partitions: Vec<Vec<String>> = (0..3)
        .map(|partition| {
            prefixes
                .iter()
                .flat_map(|prefix| values(prefix, count, partition))
                .collect()
        })
        .collect();
    json!(partitions)
}

#[test]
fn java_committed_transactions_are_read_and_aborted_ones_are_not() {
    let broker = Broker::start();
    let topic = topic_name("java-txn");
    let count = 30;
    let output = parse_output(&run_java(
        "TransactionalProduce",
        &[
            "commit-abort",
            &broker.bootstrap(),
            &topic,
            &format!("{topic}-id"),
            &count.to_string(),
        ],
    ));
    assert_eq!(output["transactions"], 3);
    assert_eq!(
        output["read_committed"],
        per_partition(&["commit1", "commit2"], count),
        "read_committed sees exactly the committed transactions"
    );
    assert_eq!(
        output["read_uncommitted"],
        per_partition(&["commit1", "abort", "commit2"], count),
        "read_uncommitted sees every record, markers skipped"
    );
    // Transaction version 2: each of the three ends bumped the epoch its markers carry.
    assert_eq!(output["producer_epochs"], json!([3, 3, 3]));
}

#[test]
fn java_stays_on_transaction_version_1_when_the_broker_finalizes_it() {
    let broker = Broker::start_with(&["--transaction-version", "1"]);
    let topic = topic_name("java-txn-v1");
    let count = 6;
    let output = parse_output(&run_java(
        "TransactionalProduce",
        &[
            "commit-abort",
            &broker.bootstrap(),
            &topic,
            &format!("{topic}-id"),
            &count.to_string(),
        ],
    ));
    assert_eq!(
        output["read_committed"],
        per_partition(&["commit1", "commit2"], count)
    );
    // Transaction version 1: one epoch for the producer's whole life.
    assert_eq!(output["producer_epochs"], json!([0, 0, 0]));
}

#[test]
fn java_zombie_producer_is_fenced_and_its_transaction_aborted() {
    // Transaction version 2: the zombie's write reaches the leader, which adds the partition;
    // the coordinator's PRODUCER_FENCED is INVALID_PRODUCER_EPOCH to a producer (as Kafka's
    // AddPartitionsToTxnManager maps it). Its fenced transaction was aborted with two bumps
    // (fence, then the end), the new instance's init and commit add two more.
    java_zombie(&[], "InvalidProducerEpochException", 4);
}

#[test]
fn java_zombie_producer_is_fenced_under_transaction_version_1() {
    // Version 1: the zombie's AddPartitionsToTxn is refused as fenced.
    java_zombie(
        &["--transaction-version", "1"],
        "ProducerFencedException",
        2,
    );
}

fn java_zombie(broker_args: &[&str], zombie_error: &str, last_epoch: i16) {
    let broker = Broker::start_with(broker_args);
    let topic = topic_name("java-zombie");
    let output = parse_output(&run_java(
        "TransactionalProduce",
        &[
            "zombie",
            &broker.bootstrap(),
            &topic,
            &format!("{topic}-id"),
        ],
    ));
    assert_eq!(output["zombie_error"], zombie_error, "{output}");
    assert_eq!(output["producer_epochs"], json!([last_epoch, -1, -1]));
    assert_eq!(
        output["read_committed"],
        json!([["current-1"], [], []]),
        "the zombie's records are aborted"
    );
    assert_eq!(
        output["read_uncommitted"],
        json!([["zombie-1", "current-1"], [], []]),
    );
}

#[test]
fn confluent_kafka_committed_transactions_are_read_and_aborted_ones_are_not() {
    let broker = Broker::start();
    let topic = topic_name("confluent-txn");
    let count = 30;
    let output = parse_output(&run_python(
        "confluent_transactions.py",
        &[
            &broker.bootstrap(),
            &topic,
            &format!("{topic}-id"),
            &count.to_string(),
        ],
    ));
    assert_eq!(
        output["read_committed"],
        per_partition(&["commit1", "commit2"], count)
    );
    assert_eq!(
        output["read_uncommitted"],
        per_partition(&["commit1", "abort", "commit2"], count)
    );
}

fn kcat_command(broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(kcat());
    command.arg("-b").arg(broker.bootstrap()).args(args);
    command
}

/// kcat -P with a transactional id commits its input as one transaction at the end.
#[test]
fn kcat_transactional_produce_and_read_committed_consume() {
    let broker = Broker::start();
    let topic = topic_name("kcat-txn");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let input: String = (0..20).map(|index| format!("value-{index}\n")).collect();
    let produce = ["-P", "-t", &topic, "-p", "0"];
    let mut command = kcat_command(&broker, &produce);
    command.args(["-X", &format!("transactional.id={topic}-id")]);
    run_command(command, input.as_bytes(), "kcat -P transactional");
    let consume = [
        "-C",
        "-t",
        &topic,
        "-p",
        "0",
        "-o",
        "beginning",
        "-e",
        "-f",
        "%s\\n",
        "-X",
        "isolation.level=read_committed",
    ];
    let expected: Vec<String> = (0..20).map(|index| format!("value-{index}")).collect();
    let output = sluice_integration_tests::wait_until(
        std::time::Duration::from_secs(30),
        "kcat read_committed sees the committed transaction",
        || {
            let output = run_command(kcat_command(&broker, &consume), b"", "kcat -C");
            let lines: Vec<String> = output.lines().map(str::to_string).collect();
            (lines.len() >= expected.len()).then_some(lines)
        },
    );
    assert_eq!(output, expected);
}
