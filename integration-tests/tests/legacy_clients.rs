//! Clients of the Kafka 0.8-0.10 era against sluice, side by side with modern clients on the
//! same topics: kafka-python forced to old protocols (`api_version` 0.8.x-0.10.x: no
//! ApiVersions, Produce v0-v2, Fetch v0-v3, ListOffsets v0, OffsetCommit v0-v2, OffsetFetch
//! v0-v1, message formats v0/v1 with every codec of the time) and librdkafka forced to the
//! pre-0.10 protocol (kcat with `api.version.request=false`, `broker.version.fallback=0.9.0`).
//! What old clients write, modern clients read exactly, and the reverse.

use std::process::Command;

use serde_json::{json, Value};
use sluice_integration_tests::records::{array, assert_exact_round_trip, parse_output};
use sluice_integration_tests::{kcat, run_command, run_python, topic_name, Broker};

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
