//! kafka-python against sluice: KafkaAdminClient create/describe/delete, KafkaProducer with
//! acks=all and a codec, KafkaConsumer with assign + seek_to_beginning and no group.

use serde_json::json;
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::records::{array, assert_exact_round_trip, parse_output};
use sluice_integration_tests::{run_python, topic_name, Broker};

const RECORD_COUNT: usize = 80;

fn round_trip(codec: &str) {
    let broker = Broker::start();
    let prefix = topic_name("kafka-python");
    let count = RECORD_COUNT.to_string();
    let output = parse_output(&run_python(
        "kafka_python_clients.py",
        &[&broker.bootstrap(), &prefix, codec, &count],
    ));
    let partitions: Vec<_> = (0..2)
        .map(|id| json!({"id": id, "leader": 1, "replicas": [1], "isr": [1]}))
        .collect();
    assert_eq!(output["described"]["partitions"], json!(partitions));
    let produced = array(&output, "produced");
    assert_eq!(produced.len(), RECORD_COUNT);
    assert_exact_round_trip(produced, array(&output, "consumed"), true);
    assert_eq!(
        output["end_offsets"],
        json!({"0": RECORD_COUNT / 2, "1": RECORD_COUNT / 2})
    );
    assert_eq!(output["deleted"], true);
}

#[test]
fn kafka_python_uncompressed() {
    let _matrix = covers(
        "kafka-python",
        &[
            "produce_none",
            "headers_timestamps",
            "consume_assign",
            "admin_create_topics",
            "admin_describe_topics",
            "admin_delete_topics",
        ],
        "kafka_python_uncompressed",
    );
    round_trip("none");
}

#[test]
fn kafka_python_gzip() {
    let _matrix = covers("kafka-python", &["produce_gzip"], "kafka_python_gzip");
    round_trip("gzip");
}

#[test]
fn kafka_python_snappy() {
    let _matrix = covers("kafka-python", &["produce_snappy"], "kafka_python_snappy");
    round_trip("snappy");
}

#[test]
fn kafka_python_lz4() {
    let _matrix = covers("kafka-python", &["produce_lz4"], "kafka_python_lz4");
    round_trip("lz4");
}

#[test]
fn kafka_python_zstd() {
    let _matrix = covers("kafka-python", &["produce_zstd"], "kafka_python_zstd");
    round_trip("zstd");
}
