//! confluent-kafka (librdkafka) against sluice: every codec under acks 0/1/all, assign + seek,
//! the AdminClient, offsets by timestamp and ListOffsets. The scripts live in `python/`.

use serde_json::{json, Value};
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::records::{array, assert_exact_round_trip, parse_output};
use sluice_integration_tests::{run_python, topic_name, Broker};

const RECORD_COUNT: usize = 60;

fn produce_consume(codec: &str) {
    let broker = Broker::start();
    let prefix = topic_name(&format!("confluent-{codec}"));
    let count = RECORD_COUNT.to_string();
    let args = [broker.bootstrap(), prefix, codec.to_string(), count];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = parse_output(&run_python("confluent_produce_consume.py", &args));
    assert_eq!(output["codec"], codec);
    let runs = array(&output, "runs");
    let acks: Vec<&Value> = runs.iter().map(|run| &run["acks"]).collect();
    assert_eq!(acks, [&json!("0"), &json!("1"), &json!("all")]);
    for run in runs {
        let produced = array(run, "produced");
        assert_eq!(produced.len(), RECORD_COUNT);
        let offsets_known = run["acks"] != "0";
        assert_exact_round_trip(produced, array(run, "consumed"), offsets_known);
    }
}

#[test]
fn produce_consume_uncompressed() {
    let _matrix = covers(
        "confluent-kafka",
        &["produce_none", "headers_timestamps"],
        "produce_consume_uncompressed",
    );
    produce_consume("none");
}

#[test]
fn produce_consume_gzip() {
    let _matrix = covers("confluent-kafka", &["produce_gzip"], "produce_consume_gzip");
    produce_consume("gzip");
}

#[test]
fn produce_consume_snappy() {
    let _matrix = covers(
        "confluent-kafka",
        &["produce_snappy"],
        "produce_consume_snappy",
    );
    produce_consume("snappy");
}

#[test]
fn produce_consume_lz4() {
    let _matrix = covers("confluent-kafka", &["produce_lz4"], "produce_consume_lz4");
    produce_consume("lz4");
}

#[test]
fn produce_consume_zstd() {
    let _matrix = covers("confluent-kafka", &["produce_zstd"], "produce_consume_zstd");
    produce_consume("zstd");
}

#[test]
fn assign_at_middle_offset_then_seek_back() {
    let _matrix = covers(
        "confluent-kafka",
        &["consume_assign"],
        "assign_at_middle_offset_then_seek_back",
    );
    let broker = Broker::start();
    let topic = topic_name("confluent-seek");
    let bootstrap = broker.bootstrap();
    let args = [bootstrap.as_str(), topic.as_str(), "30", "20", "7"];
    let output = parse_output(&run_python("confluent_seek.py", &args));
    let produced = array(&output, "produced");
    assert_eq!(produced.len(), 30);
    assert_eq!(array(&output, "from_start").as_slice(), &produced[20..]);
    assert_eq!(array(&output, "from_seek").as_slice(), &produced[7..]);
    for (index, record) in produced.iter().enumerate() {
        assert_eq!(record["offset"], json!(index));
    }
}

#[test]
fn admin_client_topics_configs_partitions() {
    let _matrix = covers(
        "confluent-kafka",
        &[
            "admin_create_topics",
            "admin_describe_topics",
            "admin_describe_configs",
            "admin_delete_topics",
        ],
        "admin_client_topics_configs_partitions",
    );
    let broker = Broker::start();
    let prefix = topic_name("confluent-admin");
    let output = parse_output(&run_python(
        "confluent_admin.py",
        &[&broker.bootstrap(), &prefix],
    ));
    assert_eq!(output["brokers"], json!({"1": broker.bootstrap()}));
    let partitions: Vec<Value> = (0..3)
        .map(|id| json!({"id": id, "leader": 1, "replicas": [1], "isr": [1]}))
        .collect();
    assert_eq!(output["described"]["partitions"], json!(partitions));
    // librdkafka names Kafka's INVALID_TOPIC_EXCEPTION (17) TOPIC_EXCEPTION.
    let errors = json!({
        "existing": [36, "TOPIC_ALREADY_EXISTS"],
        "bad_name": [17, "TOPIC_EXCEPTION"],
        "zero_partitions": [37, "INVALID_PARTITIONS"],
    });
    assert_eq!(output["errors"], errors);
    let configs = &output["configs"];
    assert_eq!(configs["created"]["value"], "86400000");
    assert_eq!(configs["altered"]["value"], "7200000");
    assert_eq!(configs["incremental"]["value"], "3600000");
    assert_eq!(configs["incremental"]["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(output["partitions_after_create_partitions"], 5);
    assert_eq!(output["deleted"], true);
    assert_eq!(output["dry_run_created"], false);
}

#[test]
fn offsets_for_times_and_list_offsets() {
    let broker = Broker::start();
    let topic = topic_name("confluent-offsets");
    let output = parse_output(&run_python(
        "confluent_offsets.py",
        &[&broker.bootstrap(), &topic],
    ));
    let expected = json!({
        "before_first": 0,
        "at_first": 0,
        "at_fourth": 4,
        "between_fourth_and_fifth": 5,
        "at_last": 9,
        "after_last": -1,
    });
    assert_eq!(output["offsets_for_times"], expected);
    assert_eq!(output["watermarks"], json!([0, 10]));
    let listed = &output["list_offsets"];
    assert_eq!(listed["earliest"]["offset"], 0);
    assert_eq!(listed["latest"]["offset"], 10);
    let base_ms = output["base_ms"].as_i64().expect("base_ms");
    assert_eq!(
        listed["for_timestamp"],
        json!({"offset": 5, "timestamp": base_ms + 5000})
    );
}
