//! The client compatibility matrix: each client program in `integration-tests/compat/` runs
//! the same scenario against its own broker and prints one JSON line per feature. Every line
//! is appended to the results file (see `sluice_integration_tests::compat`) before anything
//! is asserted, so a failing client still shows up in `COMPATIBILITY.md` as failing; then
//! every expected feature must be there and ok. A client that cannot run fails loudly.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use sluice_integration_tests::compat::{self, FEATURES};
use sluice_integration_tests::{run_command_output, topic_name, Broker};

/// Groups form fast: the scenario's consumers join one at a time.
const BROKER_ARGS: [&str; 2] = ["--group-initial-rebalance-delay-ms", "100"];

/// Runs `command BOOTSTRAP PREFIX` for `client`, records every line, then asserts that each
/// feature outside `unsupported` (feature, why) reported ok exactly once.
fn run_client(client: &str, mut command: Command, unsupported: &[(&str, &str)]) {
    let broker = Broker::start_with(&BROKER_ARGS);
    let prefix = topic_name(&format!("compat-{client}"));
    command.arg(broker.bootstrap()).arg(&prefix);
    let output = run_command_output(command, b"", client);

    let mut reported: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
    let mut stray = Vec::new();
    for line in output.stdout.lines().filter(|line| !line.trim().is_empty()) {
        match parse_line(client, line) {
            Some((feature, ok, detail)) => {
                compat::record(client, &feature, Some(ok), &detail);
                reported.entry(feature).or_default().push((ok, detail));
            }
            None => stray.push(line.to_string()),
        }
    }
    for (feature, why) in unsupported {
        compat::record(client, feature, None, why);
    }
    let mut failures = Vec::new();
    for feature in FEATURES {
        let expected = !unsupported.iter().any(|(name, _)| *name == feature);
        let results = reported.remove(feature).unwrap_or_default();
        match (expected, results.as_slice()) {
            (true, [(true, _)]) | (false, []) => {}
            (true, []) => {
                compat::record(client, feature, Some(false), "no result (program failed)");
                failures.push(format!("{feature}: no result"));
            }
            (_, results) => failures.push(format!("{feature}: {results:?}")),
        }
    }
    failures.extend(
        reported
            .keys()
            .map(|feature| format!("unknown feature {feature}")),
    );
    failures.extend(
        stray
            .iter()
            .map(|line| format!("not a result line: {line}")),
    );
    let exited_ok = output.status.is_some_and(|status| status.success());
    assert!(
        failures.is_empty() && exited_ok,
        "{client}: {failures:#?}\n{}",
        output.failure(client)
    );
}

/// `(feature, ok, detail)` of a result line of `client`; `None` for anything else.
fn parse_line(client: &str, line: &str) -> Option<(String, bool, String)> {
    let value: Value = serde_json::from_str(line).ok()?;
    if value["client"] != client {
        return None;
    }
    let feature = value["feature"].as_str()?;
    if !FEATURES.contains(&feature) {
        return None;
    }
    let ok = value["ok"].as_bool()?;
    let detail = value["detail"].as_str().unwrap_or_default();
    Some((feature.to_string(), ok, detail.to_string()))
}

#[test]
fn aiokafka() {
    run_client("aiokafka", compat::aiokafka_command(), &[]);
}

#[test]
fn franz_go() {
    run_client("franz-go", compat::go_command("franz-go"), &[]);
}

#[test]
fn sarama() {
    run_client("sarama", compat::go_command("sarama"), &[]);
}

#[test]
fn kafkajs() {
    let unsupported = [(
        "consume_assign",
        "kafkajs has no manual partition assignment",
    )];
    run_client("kafkajs", compat::node_command("kafkajs"), &unsupported);
}

#[test]
fn confluent_kafka_javascript() {
    let unsupported = [(
        "admin_describe_configs",
        "the 1.x admin client has no describeConfigs",
    )];
    let command = compat::node_command("confluent-kafka-javascript");
    run_client("confluent-kafka-javascript", command, &unsupported);
}

#[test]
fn rdkafka_rust() {
    run_client("rdkafka", compat::rdkafka_command(), &[]);
}
