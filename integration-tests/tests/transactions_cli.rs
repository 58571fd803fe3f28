//! Apache Kafka's own tools against the transaction coordinator: `kafka-transactions.sh list`
//! and `describe` (ListTransactions, DescribeTransactions), and the console consumer with
//! Kafka's `TransactionLogMessageFormatter` reading `__transaction_state`, which shows our
//! records are in Kafka's schema (value version 0, and version 1 with transaction version
//! 2's tagged fields).

use sluice_integration_tests::kafka_cli::{kafka_tool, CONSOLE_CONSUMER};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, end_txn, end_txn_v2, find_coordinator, init, produce_transactional,
    produce_transactional_v2, transactional_batch, wait_state, TIMEOUT_MS,
};
use sluice_integration_tests::{topic_name, Broker};

/// `kafka-transactions.sh`.
const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";
const TRANSACTION_LOG_FORMATTER: &str =
    "org.apache.kafka.tools.consumer.TransactionLogMessageFormatter";

fn tool(broker: &Broker, main_class: &str, args: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let all = [&["--bootstrap-server", bootstrap.as_str()][..], args].concat();
    kafka_tool(main_class, &all, b"").success(&format!("{main_class} {args:?}"))
}

/// The whitespace-split row of a tool table whose first column is `first`.
fn row(output: &str, first: &str) -> Vec<String> {
    output
        .lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|columns| columns.first().is_some_and(|column| column == first))
        .unwrap_or_else(|| panic!("no row {first} in {output}"))
}

#[test]
fn kafka_transactions_tool_lists_and_describes_and_the_log_is_kafkas_format() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-cli");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let id = format!("{topic}-id");
    find_coordinator(&mut client, &id);
    let (_, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, epoch);
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    let batch = transactional_batch(producer, 0, &["v"]);
    assert_eq!(produce_transactional(&mut client, &id, &topic, batch), 0);

    let listed = tool(&broker, TRANSACTIONS, &["list"]);
    assert_eq!(
        row(&listed, &id),
        vec![
            id.clone(),
            "1".to_string(),
            producer_id.to_string(),
            "Ongoing".to_string()
        ],
        "{listed}"
    );
    // ListTransactions v2 (KIP-1152) and v1 (KIP-994) filters.
    let pattern = format!("{topic}-.*");
    let matching = tool(
        &broker,
        TRANSACTIONS,
        &["list", "--transactional-id-pattern", &pattern],
    );
    assert_eq!(row(&matching, &id)[0], id, "{matching}");
    assert_eq!(matching.lines().count(), 2, "{matching}");
    let other = tool(
        &broker,
        TRANSACTIONS,
        &["list", "--transactional-id-pattern", "other-.*"],
    );
    assert!(!other.contains(&id), "{other}");
    // Started just now: not older than an hour.
    let old = tool(
        &broker,
        TRANSACTIONS,
        &["list", "--duration-filter", "3600000"],
    );
    assert!(!old.contains(&id), "{old}");
    let any_age = tool(&broker, TRANSACTIONS, &["list", "--duration-filter", "-1"]);
    assert_eq!(row(&any_age, &id)[0], id, "{any_age}");
    let described = tool(
        &broker,
        TRANSACTIONS,
        &["describe", "--transactional-id", &id],
    );
    let columns = row(&described, "1");
    assert_eq!(
        columns[..5],
        [
            "1".to_string(),
            id.clone(),
            producer_id.to_string(),
            epoch.to_string(),
            "Ongoing".to_string()
        ],
        "{described}"
    );
    assert!(described.contains(&format!("{topic}-0")), "{described}");

    assert_eq!(end_txn(&mut client, &id, producer, true), 0);
    wait_state(&mut client, &id, "CompleteCommit");
    // Empty (InitProducerId), Ongoing, PrepareCommit, CompleteCommit.
    let lines = transaction_log_records(&broker, &id, 4);
    for (line, status) in lines.iter().zip(["0", "1", "2", "4"]) {
        assert!(
            line.contains(&format!("\"transactionStatus\":{status}")),
            "status {status} in {line}"
        );
        assert!(
            line.contains(&format!("\"producerId\":{producer_id}")),
            "{line}"
        );
    }
}

#[test]
fn kafkas_formatter_reads_transaction_version_2_records() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-cli-v2");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let id = format!("{topic}-id");
    find_coordinator(&mut client, &id);
    let (_, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!(epoch, 0);
    let batch = transactional_batch((producer_id, 0), 0, &["v"]);
    assert_eq!(
        produce_transactional_v2(&mut client, &id, &topic, 0, batch),
        0
    );
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 0), true),
        (0, producer_id, 1)
    );
    wait_state(&mut client, &id, "CompleteCommit");
    // Empty (InitProducerId, version 0), then Ongoing, PrepareCommit, CompleteCommit of a
    // version 2 client (value version 1); the end's epoch bump is in the Prepare record.
    let lines = transaction_log_records(&broker, &id, 4);
    let expected = [
        ("0", 0, None),
        ("1", 0, Some(2)),
        ("2", 1, Some(2)),
        ("4", 1, Some(2)),
    ];
    for (line, (status, epoch, client_version)) in lines.iter().zip(expected) {
        assert!(
            line.contains(&format!("\"transactionStatus\":{status}")),
            "status {status} in {line}"
        );
        assert!(
            line.contains(&format!("\"producerEpoch\":{epoch}")),
            "epoch {epoch} in {line}"
        );
        match client_version {
            Some(version) => assert!(
                line.contains(&format!("\"clientTransactionVersion\":{version}")),
                "{line}"
            ),
            None => assert!(!line.contains("clientTransactionVersion"), "{line}"),
        }
    }
}

/// The first `count` records of `__transaction_state`, as Kafka's formatter prints them, that
/// belong to transactional id `id`.
fn transaction_log_records(broker: &Broker, id: &str, count: usize) -> Vec<String> {
    let count = count.to_string();
    let records = tool(
        broker,
        CONSOLE_CONSUMER,
        &[
            "--topic",
            "__transaction_state",
            "--from-beginning",
            "--max-messages",
            &count,
            "--timeout-ms",
            "60000",
            "--formatter",
            TRANSACTION_LOG_FORMATTER,
        ],
    );
    // Kafka 4.1's formatter writes the records without a separator between them.
    let lines: Vec<String> = records
        .split("{\"key\":")
        .filter(|line| line.contains(id))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len().to_string(), count, "{records}");
    lines
}
