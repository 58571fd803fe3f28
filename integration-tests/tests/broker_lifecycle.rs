//! The harness's process control against a real broker: clean stop (SIGTERM, exit 0), crash
//! (SIGKILL), restart on the same port and data dir; records acknowledged before either stay.

use std::process::Command;

use sluice_integration_tests::{kcat, run_command, topic_name, Broker};

const RECORD_COUNT: usize = 20;

fn kcat_command(broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(kcat());
    command.arg("-b").arg(broker.bootstrap()).args(args);
    command
}

fn produce(broker: &Broker, topic: &str, first: usize) {
    let input: String = (first..first + RECORD_COUNT)
        .map(|index| format!("k{index}:v{index}\n"))
        .collect();
    // acks=all: the records are acknowledged (so durable under the default flush policy)
    // before kcat exits.
    let args = ["-P", "-t", topic, "-p", "0", "-K:", "-X", "acks=all"];
    run_command(kcat_command(broker, &args), input.as_bytes(), "kcat -P");
}

fn consume(broker: &Broker, topic: &str) -> String {
    let args = [
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-f",
        "%k|%s|%o\\n",
    ];
    run_command(kcat_command(broker, &args), b"", "kcat -C")
}

fn expected(count: usize) -> String {
    (0..count)
        .map(|index| format!("k{index}|v{index}|{index}\n"))
        .collect()
}

#[test]
fn records_survive_stop_and_kill9_restarts() {
    let mut broker = Broker::start_with(&["--flush-policy", "every-append"]);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("lifecycle");
    produce(&broker, &topic, 0);

    broker.stop();
    broker.restart();
    assert_eq!(broker.bootstrap(), bootstrap, "restart keeps the port");
    assert_eq!(consume(&broker, &topic), expected(RECORD_COUNT));

    produce(&broker, &topic, RECORD_COUNT);
    broker.kill9();
    broker.restart();
    assert_eq!(broker.bootstrap(), bootstrap, "restart keeps the port");
    assert_eq!(consume(&broker, &topic), expected(2 * RECORD_COUNT));
    assert!(broker.data_dir().is_dir());
    broker.stop();
}

/// A Fetch long-polling for data that never comes is answered (empty) when the broker shuts
/// down, not cut off: SIGTERM answers in-flight requests, then exits 0.
#[test]
fn shutdown_answers_a_long_polling_fetch() {
    use kafka_protocol::messages::FetchRequest;
    use sluice_integration_tests::raw_client::{fetch_request, RawClient};

    let mut broker = Broker::start();
    let topic = topic_name("long-poll");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let mut request = fetch_request(&topic, 0, 0);
    // Longer than the broker's whole shutdown grace: only an early answer gets through.
    request.max_wait_ms = 60_000;
    request.min_bytes = 1;
    let correlation_id = client.send_request(12, &request).expect("send fetch");
    // The request is in flight (waiting for data) when SIGTERM arrives.
    broker.stop();
    let response = client
        .read_response::<FetchRequest>(12, correlation_id)
        .expect("the waiting fetch is answered before the broker exits");
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{partition:?}");
    assert_eq!(partition.records.as_ref().map_or(0, |r| r.len()), 0);
}
