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
