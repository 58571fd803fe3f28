//! Clients of the Kafka 0.8-0.10 era against sluice, side by side with modern clients on the
//! same topics: kafka-python forced to old protocols (`api_version` 0.8.x-0.10.x: no
//! ApiVersions, Produce v0-v2, Fetch v0-v3, ListOffsets v0, OffsetCommit v0-v2, OffsetFetch
//! v0-v1, message formats v0/v1 with every codec of the time) and librdkafka forced to the
//! pre-0.10 protocol (`api.version.request=false`, `broker.version.fallback=0.9.0`) through
//! kcat and confluent-kafka. What old clients write, modern clients (librdkafka and the Java
//! client) read exactly, and the reverse.

use std::process::Command;

use serde_json::{json, Value};
use sluice_integration_tests::records::{array, assert_exact_round_trip, parse_output};
use sluice_integration_tests::{kcat, run_command, run_java, run_python, topic_name, Broker};

const SCRIPT: &str = "legacy_clients.py";
const RECORD_COUNT: usize = 24;
const PARTITIONS: usize = 2;

fn python(args: &[&str]) -> Value {
    parse_output(&run_python(SCRIPT, args))
}

fn create(broker: &Broker, topic: &str) {
    let partitions = PARTITIONS.to_string();
    let created = python(&["create", &broker.bootstrap(), topic, &partitions]);
    assert_eq!(created["created"], json!(topic));
}

/// Whether a reader of `api_version` gets message format v0, which has no timestamps.
fn reads_format_v0(api_version: &str) -> bool {
    matches!(api_version, "0.8.0" | "0.8.1" | "0.8.2" | "0.9")
}

/// `records` as a format-v0 reader sees them: every timestamp is -1.
fn without_timestamps(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|record| {
            let mut record = record.clone();
            record["timestamp"] = json!(-1);
            record
        })
        .collect()
}

fn old_produce(broker: &Broker, topic: &str, api_version: &str, codec: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = [
        "old-produce",
        &bootstrap,
        topic,
        api_version,
        codec,
        &count,
        &partitions,
    ];
    array(&python(&args), "produced").clone()
}

fn old_consume(broker: &Broker, topic: &str, api_version: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = [
        "old-consume",
        &bootstrap,
        topic,
        api_version,
        &count,
        &partitions,
    ];
    array(&python(&args), "consumed").clone()
}

fn modern_consume(broker: &Broker, topic: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["modern-consume", &bootstrap, topic, &count, &partitions];
    array(&python(&args), "consumed").clone()
}

/// kafka-python at `api_version` produces with every codec of its era; a modern librdkafka
/// consumer and the old client itself read every record back exactly.
fn old_producer_round_trips(api_version: &str) {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let topic = topic_name(&format!("legacy-{}-{codec}", api_version.replace('.', "")));
        create(&broker, &topic);
        let produced = old_produce(&broker, &topic, api_version, codec);
        assert_eq!(produced.len(), RECORD_COUNT);
        if reads_format_v0(api_version) {
            let timestamps: Vec<&Value> = produced.iter().map(|r| &r["timestamp"]).collect();
            assert!(
                timestamps.iter().all(|t| **t == json!(-1)),
                "{timestamps:?}"
            );
        }
        assert_exact_round_trip(&produced, &modern_consume(&broker, &topic), true);
        assert_exact_round_trip(&produced, &old_consume(&broker, &topic, api_version), true);
    }
}

#[test]
fn kafka_python_0_8_2_produce_v0_every_codec() {
    old_producer_round_trips("0.8.2");
}

#[test]
fn kafka_python_0_9_produce_v1_every_codec() {
    old_producer_round_trips("0.9");
}

#[test]
fn kafka_python_0_10_0_produce_v2_every_codec() {
    old_producer_round_trips("0.10.0");
}

/// confluent-kafka produces v2 batches (zstd included, which no old format has); old readers
/// of every Fetch version get them converted down, and modern readers get them unchanged.
#[test]
fn modern_produce_old_consume() {
    let broker = Broker::start();
    for codec in ["gzip", "zstd"] {
        let topic = topic_name(&format!("legacy-modern-{codec}"));
        create(&broker, &topic);
        let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
        let bootstrap = broker.bootstrap();
        let args = [
            "modern-produce",
            &bootstrap,
            &topic,
            codec,
            &count,
            &partitions,
        ];
        let produced = array(&python(&args), "produced").clone();
        assert_exact_round_trip(&produced, &modern_consume(&broker, &topic), true);
        // Fetch v0 (0.8.2), v1 (0.9), v2 (0.10.0), v3 (0.10.1).
        for api_version in ["0.8.2", "0.9", "0.10.0", "0.10.1"] {
            let consumed = old_consume(&broker, &topic, api_version);
            let expected = if reads_format_v0(api_version) {
                without_timestamps(&produced)
            } else {
                produced.clone()
            };
            assert_exact_round_trip(&expected, &consumed, true);
        }
    }
}

/// Group consumption with commits: 0.9 joins the group (JoinGroup/SyncGroup/Heartbeat v0) and
/// commits with OffsetCommit v2; 0.8.1 and 0.8.2 assign partitions and commit with
/// OffsetCommit v0 / v1 and read back with OffsetFetch v0 / v1. A modern consumer of the same
/// group sees the same committed offsets.
#[test]
fn old_group_consume_with_commits() {
    let broker = Broker::start();
    let topic = topic_name("legacy-group");
    create(&broker, &topic);
    let produced = old_produce(&broker, &topic, "0.10.0", "gzip");
    let per_partition = RECORD_COUNT / PARTITIONS;
    let committed = json!({"0": per_partition, "1": per_partition});
    for api_version in ["0.8.1", "0.8.2", "0.9"] {
        let group = topic_name(&format!("legacy-group-{}", api_version.replace('.', "")));
        let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
        let bootstrap = broker.bootstrap();
        let args = [
            "old-group",
            &bootstrap,
            &topic,
            api_version,
            &group,
            &count,
            &partitions,
        ];
        let output = python(&args);
        let expected = if reads_format_v0(api_version) {
            without_timestamps(&produced)
        } else {
            produced.clone()
        };
        assert_exact_round_trip(&expected, array(&output, "consumed"), true);
        assert_eq!(output["committed"], committed, "{api_version}");
        assert_eq!(output["committed_modern"], committed, "{api_version}");
    }
}

fn kcat_command(broker: &Broker, old: bool, args: &[&str]) -> Command {
    let mut command = Command::new(kcat());
    command.arg("-b").arg(broker.bootstrap());
    if old {
        // librdkafka as a 0.9 client: no ApiVersions, Produce v1 / Fetch v1, message format v0.
        command.args([
            "-X",
            "api.version.request=false",
            "-X",
            "broker.version.fallback=0.9.0",
        ]);
    }
    command.args(args);
    command
}

/// librdkafka forced to the pre-0.10 protocol produces with each codec (including LZ4 with
/// the old frame checksum) and consumes; a modern kcat reads the same records (timestamps -1:
/// format v0 has none).
#[test]
fn kcat_forced_to_0_9_produces_and_consumes() {
    let broker = Broker::start();
    let topic = topic_name("legacy-kcat");
    let codecs = ["none", "gzip", "snappy", "lz4"];
    for codec in codecs {
        let input = format!("key-{codec}-1:value-{codec}-1\nkey-{codec}-2:value-{codec}-2\n");
        let args = ["-P", "-t", &topic, "-p", "0", "-K:", "-z", codec];
        run_command(
            kcat_command(&broker, true, &args),
            input.as_bytes(),
            "old kcat -P",
        );
    }
    let format = "%k|%s|%o|%T\\n";
    let args = ["-C", "-t", &topic, "-o", "beginning", "-e", "-f", format];
    let expected = |timestamp: i64| -> String {
        codecs
            .iter()
            .enumerate()
            .flat_map(|(index, codec)| {
                (1..=2).map(move |n| {
                    let offset = index * 2 + n - 1;
                    format!("key-{codec}-{n}|value-{codec}-{n}|{offset}|{timestamp}\n")
                })
            })
            .collect()
    };
    let old = run_command(kcat_command(&broker, true, &args), b"", "old kcat -C");
    // librdkafka shows a format-v0 message's missing timestamp as 0.
    assert_eq!(old, expected(0));
    let modern = run_command(kcat_command(&broker, false, &args), b"", "modern kcat -C");
    assert_eq!(modern, expected(-1));
}

const CONFLUENT_SCRIPT: &str = "confluent_legacy.py";

/// The Java program that reads and writes beside the old clients.
const JAVA_PROGRAM: &str = "LegacyInterop";

/// The per-partition end offsets a group commits after consuming all of a topic.
fn committed_at_end() -> Value {
    let per_partition = RECORD_COUNT / PARTITIONS;
    json!({"0": per_partition, "1": per_partition})
}

fn confluent_old(args: &[&str]) -> Value {
    parse_output(&run_python(CONFLUENT_SCRIPT, args))
}

/// confluent-kafka forced to 0.9 produces `RECORD_COUNT` records compressed with `codec`.
fn confluent_old_produce(broker: &Broker, topic: &str, codec: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["old-produce", &bootstrap, topic, codec, &count, &partitions];
    array(&confluent_old(&args), "produced").clone()
}

/// confluent-kafka forced to 0.9 reads every partition from the beginning (assign).
fn confluent_old_consume(broker: &Broker, topic: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["old-consume", &bootstrap, topic, &count, &partitions];
    array(&confluent_old(&args), "consumed").clone()
}

/// confluent-kafka (modern) produces `RECORD_COUNT` records compressed with `codec`.
fn modern_produce(broker: &Broker, topic: &str, codec: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = [
        "modern-produce",
        &bootstrap,
        topic,
        codec,
        &count,
        &partitions,
    ];
    array(&python(&args), "produced").clone()
}

fn java_consume(broker: &Broker, topic: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["consume", &bootstrap, topic, &count, &partitions];
    array(&parse_output(&run_java(JAVA_PROGRAM, &args)), "consumed").clone()
}

fn java_produce(broker: &Broker, topic: &str, codec: &str) -> Vec<Value> {
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["produce", &bootstrap, topic, codec, &count, &partitions];
    array(&parse_output(&run_java(JAVA_PROGRAM, &args)), "produced").clone()
}

/// librdkafka through confluent-kafka, forced to the pre-0.10 protocol, produces with every
/// codec it has for message format v0 (LZ4 with the old frame checksum); a modern consumer
/// and the forced-old consumer (assign) read every record back exactly, without timestamps.
#[test]
fn confluent_kafka_forced_to_0_9_produces_every_codec() {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let topic = topic_name(&format!("legacy-confluent-{codec}"));
        create(&broker, &topic);
        let produced = confluent_old_produce(&broker, &topic, codec);
        assert_eq!(produced.len(), RECORD_COUNT, "{codec}");
        let timestamps: Vec<&Value> = produced.iter().map(|r| &r["timestamp"]).collect();
        assert!(
            timestamps.iter().all(|t| **t == json!(-1)),
            "{timestamps:?}"
        );
        assert_exact_round_trip(&produced, &modern_consume(&broker, &topic), true);
        assert_exact_round_trip(&produced, &confluent_old_consume(&broker, &topic), true);
    }
}

/// What a modern confluent-kafka producer writes (v2 batches, zstd included, which no old
/// format has) the forced-old confluent consumer reads exactly, converted down to format v0.
#[test]
fn confluent_kafka_forced_to_0_9_reads_modern_records() {
    let broker = Broker::start();
    for codec in ["lz4", "zstd"] {
        let topic = topic_name(&format!("legacy-confluent-modern-{codec}"));
        create(&broker, &topic);
        let produced = modern_produce(&broker, &topic, codec);
        let consumed = confluent_old_consume(&broker, &topic);
        assert_exact_round_trip(&without_timestamps(&produced), &consumed, true);
    }
}

/// confluent-kafka forced to 0.9 joins a group (JoinGroup/SyncGroup v0), consumes what a
/// modern producer wrote, commits synchronously and reads the commits back; a modern client
/// of the same group sees the same offsets.
#[test]
fn confluent_kafka_forced_to_0_9_group_consume_with_commits() {
    let broker = Broker::start();
    let topic = topic_name("legacy-confluent-group");
    create(&broker, &topic);
    let produced = modern_produce(&broker, &topic, "gzip");
    let group = topic_name("legacy-confluent-group");
    let (count, partitions) = (RECORD_COUNT.to_string(), PARTITIONS.to_string());
    let bootstrap = broker.bootstrap();
    let args = ["old-group", &bootstrap, &topic, &group, &count, &partitions];
    let output = confluent_old(&args);
    let consumed = array(&output, "consumed");
    assert_exact_round_trip(&without_timestamps(&produced), consumed, true);
    assert_eq!(output["committed"], committed_at_end());
    assert_eq!(output["committed_modern"], committed_at_end());
}

/// The Java client reads exactly what kafka-python at `api_version` wrote with every codec:
/// keys, values, offsets, and the timestamps of format v1 (-1 for format v0, which has none).
fn java_reads_old_producer(api_version: &str) {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let version = api_version.replace('.', "");
        let topic = topic_name(&format!("legacy-java-{version}-{codec}"));
        create(&broker, &topic);
        let produced = old_produce(&broker, &topic, api_version, codec);
        assert_eq!(produced.len(), RECORD_COUNT, "{codec}");
        assert_exact_round_trip(&produced, &java_consume(&broker, &topic), true);
    }
}

#[test]
fn java_reads_kafka_python_0_9() {
    java_reads_old_producer("0.9");
}

#[test]
fn java_reads_kafka_python_0_10_0() {
    java_reads_old_producer("0.10.0");
}

/// kafka-python at 0.9 (Fetch v1, format v0) and 0.10.0 (Fetch v2, format v1) and the
/// forced-old confluent consumer read exactly what the Java client wrote (v2 batches
/// compressed with codecs the old wrappers share).
#[test]
fn old_clients_read_java_records() {
    let broker = Broker::start();
    for codec in ["snappy", "lz4"] {
        let topic = topic_name(&format!("legacy-from-java-{codec}"));
        create(&broker, &topic);
        let produced = java_produce(&broker, &topic, codec);
        assert_eq!(produced.len(), RECORD_COUNT, "{codec}");
        let timestamps_dropped = without_timestamps(&produced);
        for api_version in ["0.9", "0.10.0"] {
            let expected = if reads_format_v0(api_version) {
                &timestamps_dropped
            } else {
                &produced
            };
            assert_exact_round_trip(expected, &old_consume(&broker, &topic, api_version), true);
        }
        let consumed = confluent_old_consume(&broker, &topic);
        assert_exact_round_trip(&timestamps_dropped, &consumed, true);
    }
}
