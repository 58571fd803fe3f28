//! Apache Kafka's own tools against the transaction coordinator: `kafka-transactions.sh list`
//! and `describe` (ListTransactions, DescribeTransactions), and the console consumer with
//! Kafka's `TransactionLogMessageFormatter` reading `__transaction_state`, which shows our
//! records are in Kafka's schema.

use sluice_integration_tests::kafka_cli::{kafka_tool, CONSOLE_CONSUMER};
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, end_txn, find_coordinator, init, produce_transactional, transactional_batch,
    wait_state, TIMEOUT_MS,
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
    let records = tool(
        &broker,
        CONSOLE_CONSUMER,
        &[
            "--topic",
            "__transaction_state",
            "--from-beginning",
            "--max-messages",
            "4",
            "--timeout-ms",
            "60000",
            "--formatter",
            TRANSACTION_LOG_FORMATTER,
        ],
    );
    // Kafka 4.1's formatter writes the records without a separator between them.
    let lines: Vec<&str> = records
        .split("{\"key\":")
        .filter(|line| line.contains(&id))
        .collect();
    assert_eq!(lines.len(), 4, "{records}");
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
