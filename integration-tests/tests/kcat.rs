//! kcat (librdkafka's command-line client): metadata, produce with keys and headers (plain and
//! compressed), consume from the beginning to the end with exact output.

use std::process::Command;

use serde_json::{json, Value};
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::{kcat, run_command, topic_name, Broker};

const RECORDS_PER_ROUND: usize = 25;

fn kcat_command(broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(kcat());
    command.arg("-b").arg(broker.bootstrap()).args(args);
    command
}

/// Produces `key-N:value-N` lines to partition 0 of `topic`, auto-creating it.
fn produce(broker: &Broker, topic: &str, first: usize, codec: &str) {
    let input: String = (first..first + RECORDS_PER_ROUND)
        .map(|index| format!("key-{index}:value-{index}-{codec}\n"))
        .collect();
    let args = [
        "-P", "-t", topic, "-p", "0", "-K:", "-H", "a=1", "-H", "b=two", "-z", codec,
    ];
    run_command(kcat_command(broker, &args), input.as_bytes(), "kcat -P");
}

#[test]
fn kcat_metadata_produce_consume() {
    let _matrix = covers(
        "kcat",
        &["produce_none", "produce_gzip"],
        "kcat_metadata_produce_consume",
    );
    let broker = Broker::start();
    let topic = topic_name("kcat");
    produce(&broker, &topic, 0, "none");
    produce(&broker, &topic, RECORDS_PER_ROUND, "gzip");

    let metadata = run_command(
        kcat_command(&broker, &["-L", "-J", "-t", &topic]),
        b"",
        "kcat -L",
    );
    let metadata: Value = serde_json::from_str(&metadata).expect("kcat -L -J prints JSON");
    assert_eq!(
        metadata["brokers"],
        json!([{"id": 1, "name": broker.bootstrap()}]),
        "{metadata}"
    );
    let expected_topics = json!([{
        "topic": topic,
        "partitions": [{"partition": 0, "leader": 1, "replicas": [{"id": 1}], "isrs": [{"id": 1}]}],
    }]);
    assert_eq!(metadata["topics"], expected_topics, "{metadata}");

    let format = "%k|%s|%h|%o\\n";
    let args = ["-C", "-t", &topic, "-o", "beginning", "-e", "-f", format];
    let consumed = run_command(kcat_command(&broker, &args), b"", "kcat -C");
    let expected: String = (0..2 * RECORDS_PER_ROUND)
        .map(|index| {
            let codec = if index < RECORDS_PER_ROUND {
                "none"
            } else {
                "gzip"
            };
            format!("key-{index}|value-{index}-{codec}|a=1,b=two|{index}\n")
        })
        .collect();
    assert_eq!(consumed, expected);
}
