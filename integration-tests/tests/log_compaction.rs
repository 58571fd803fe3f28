//! Compacted topics (cleanup.policy=compact) with real clients: confluent-kafka creates the
//! topic with its AdminClient (what Kafka Connect does for its internal topics), writes many
//! updates of a few hundred keys plus tombstones, and a consumer from offset 0 then reads
//! exactly the latest record of every live key, at its original offset, once the cleaner ran
//! and the tombstones' delete.retention.ms passed. Also: kill -9 in the middle of a cleaning,
//! three replicas converging, and kafka-configs turning compaction on for an existing topic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kafka_protocol::records::RecordBatchDecoder;
use serde_json::Value;
use sluice_integration_tests::cluster::Cluster;
use sluice_integration_tests::kafka_cli::{kafka_tool, CONFIGS, TOPICS};
use sluice_integration_tests::metrics::sum;
use sluice_integration_tests::records::{array, parse_output};
use sluice_integration_tests::{run_java, run_python, topic_name, wait_until, Broker};

const SCRIPT: &str = "confluent_compaction.py";
const KEYS: usize = 300;
const ROUNDS: usize = 8;
const DELETE_RETENTION_MS: u64 = 2_000;
const CLEANER_ARGS: [&str; 2] = ["--log-cleaner-backoff-ms", "100"];
const METRIC_DEADLINE: Duration = Duration::from_secs(120);
const RUNS: &str = "sluice_log_cleaner_runs_total";

/// Creates the compacted topic and writes every round; returns the produced records.
fn produce(bootstrap: &str, topic: &str, replication: u32, codec: &str) -> Vec<Value> {
    let (replication, keys, rounds) = (
        replication.to_string(),
        KEYS.to_string(),
        ROUNDS.to_string(),
    );
    let retention = DELETE_RETENTION_MS.to_string();
    let args = [
        "produce",
        bootstrap,
        topic,
        &replication,
        &keys,
        &rounds,
        codec,
        &retention,
    ];
    let output = parse_output(&run_python(SCRIPT, &args));
    assert_eq!(output["null_key_error"], "INVALID_RECORD");
    let configs = &output["configs"];
    assert_eq!(configs["cleanup.policy"], "compact");
    assert_eq!(
        configs["delete.retention.ms"],
        DELETE_RETENTION_MS.to_string()
    );
    assert_eq!(configs["min.cleanable.dirty.ratio"], "0.01");
    assert_eq!(configs["min.compaction.lag.ms"], "0");
    assert_eq!(configs["max.compaction.lag.ms"], "9223372036854775807");
    assert_eq!(configs["retention.ms"], "604800000");
    let produced = array(&output, "produced").to_vec();
    let tombstones = KEYS.div_ceil(10);
    let once = (0..KEYS).filter(|key| key % 7 == 1).count();
    assert_eq!(
        produced.len(),
        KEYS * ROUNDS - once * (ROUNDS - 1) + tombstones
    );
    produced
}

/// The latest record of every key, by offset, without the tombstoned keys.
fn latest_live(produced: &[Value]) -> Vec<Value> {
    let mut latest: BTreeMap<String, &Value> = BTreeMap::new();
    for record in produced {
        latest.insert(record["key"].as_str().expect("key").to_string(), record);
    }
    let mut live: Vec<Value> = latest
        .into_values()
        .filter(|record| !record["value"].is_null())
        .cloned()
        .collect();
    live.sort_by_key(|record| record["offset"].as_i64());
    live
}

/// Reads the topic from offset 0 until it shows exactly `expected` (or fails at the
/// script's deadline); returns how many reads it took.
fn read_until(
    bootstrap: &str,
    topic: &str,
    end: usize,
    expected: &[Value],
    isolation: &str,
) -> i64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("expected.json");
    std::fs::write(&path, serde_json::to_vec(expected).expect("json")).expect("write expected");
    let end = end.to_string();
    let path = path.to_str().expect("utf-8 path");
    let args = ["read", bootstrap, topic, &end, path, isolation];
    let output = parse_output(&run_python(SCRIPT, &args));
    assert_eq!(array(&output, "records"), expected);
    output["attempts"].as_i64().expect("attempts")
}

fn wait_for_cleaner_runs(broker: &Broker, runs: f64) {
    wait_until(METRIC_DEADLINE, "the log cleaner to run", || {
        (sum(&broker.scrape(), RUNS) >= runs).then_some(())
    });
}

#[test]
fn a_consumer_reads_the_latest_value_of_every_live_key() {
    let broker = Broker::start_with(&CLEANER_ARGS);
    let topic = topic_name("compacted");
    let bootstrap = broker.bootstrap();
    let produced = produce(&bootstrap, &topic, 1, "lz4");
    wait_for_cleaner_runs(&broker, 1.0);
    let expected = latest_live(&produced);
    assert_eq!(expected.len(), KEYS - KEYS.div_ceil(10));
    read_until(
        &bootstrap,
        &topic,
        produced.len(),
        &expected,
        "read_committed",
    );
    // The Java consumer reads the same (gaps, empty batches, KIP-534 delete horizons).
    let dumped = run_java("IsolationDump", &[&bootstrap, &topic, "read_uncommitted"]);
    let mut want: String = expected
        .iter()
        .map(|record| {
            let value = String::from_utf8(hex(&record["value"])).expect("utf-8 value");
            format!("{value}@{}\n", record["offset"])
        })
        .collect();
    want.push_str(&format!("end={}\n", produced.len()));
    assert_eq!(dumped, want);
    let metrics = broker.scrape();
    assert!(
        sum(&metrics, "sluice_log_cleaner_bytes_reclaimed_total") > 0.0,
        "{metrics}"
    );
    assert!(
        sum(&metrics, RUNS) >= 2.0,
        "tombstones go in a later cleaning"
    );
}

/// Waits until a cleaning is under way in the partition's directory.
fn wait_for_cleaning_in(partition_dir: &Path) {
    wait_until(METRIC_DEADLINE, "a cleaning in progress", || {
        let busy = ["cleaner-work", "cleaner-swap"]
            .iter()
            .any(|name| partition_dir.join(name).exists());
        busy.then_some(())
    });
}

#[test]
fn kill_9_during_a_cleaning_then_restart_gives_the_same_records() {
    // A throttled cleaner, so a cleaning lasts seconds and the kill lands inside it.
    let throttled = [
        &CLEANER_ARGS[..],
        &["--log-cleaner-io-max-bytes-per-second", "20000"],
    ]
    .concat();
    let mut broker = Broker::start_with(&throttled);
    let topic = topic_name("compacted-crash");
    let bootstrap = broker.bootstrap();
    let produced = produce(&bootstrap, &topic, 1, "zstd");
    let partition_dir = broker.data_dir().join(format!("{topic}-0"));
    wait_for_cleaning_in(&partition_dir);
    broker.kill9();
    broker.set_args(&CLEANER_ARGS);
    broker.restart();
    let bootstrap = broker.bootstrap();
    read_until(
        &bootstrap,
        &topic,
        produced.len(),
        &latest_live(&produced),
        "read_committed",
    );
    assert!(!partition_dir.join("cleaner-work").exists());
    assert!(!partition_dir.join("cleaner-swap").exists());
}

/// Key → value of the last record of each key in a stopped node's replica (tombstoned keys
/// absent), and how many records the replica holds.
fn keyed_content(partition_dir: &Path) -> (BTreeMap<Vec<u8>, Vec<u8>>, usize) {
    let config = sluice_storage::LogConfig::default();
    let log = sluice_storage::Log::open(partition_dir, config, 0, 0).expect("open replica");
    let mut content = BTreeMap::new();
    let mut records = 0;
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let mut bytes = log.read(offset, 1 << 20, true).expect("read").records;
        for item in sluice_storage::BatchIter::new(&bytes) {
            offset = item.expect("batch").1.last_offset() + 1;
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).expect("decode") {
            for record in set.records {
                records += 1;
                let key = record.key.expect("keyed").to_vec();
                match record.value {
                    Some(value) => content.insert(key, value.to_vec()),
                    None => content.remove(&key),
                };
            }
        }
    }
    log.close().expect("close");
    (content, records)
}

#[test]
fn three_replicas_converge_to_the_same_keyed_content() {
    // The cluster's nodes detect failures fast (`FAST_FAILURE_DETECTION`): a stopped
    // replica leaves the ISR within seconds.
    let args = [&["--default-replication-factor", "3"][..], &CLEANER_ARGS].concat();
    let mut cluster = Cluster::start_with(3, &args);
    let topic = topic_name("compacted-rf3");
    let bootstrap = cluster.bootstrap();
    let produced = produce(&bootstrap, &topic, 3, "gzip");
    let expected = latest_live(&produced);
    read_until(
        &bootstrap,
        &topic,
        produced.len(),
        &expected,
        "read_committed",
    );
    // Every replica compacts its own copy.
    let ids: Vec<i32> = cluster.ids().collect();
    for &id in &ids {
        wait_for_cleaner_runs(cluster.node(id), 1.0);
    }
    // A replica that lost its disk refetches everything from a compacted leader (offset gaps,
    // empty batches) and rejoins the ISR.
    let wiped = 3;
    let partition_dir =
        |cluster: &Cluster, id: i32| cluster.node(id).data_dir().join(format!("{topic}-0"));
    cluster.node_mut(wiped).stop();
    let under_replicated = |cluster: &Cluster| -> f64 {
        ids.iter()
            .filter(|&&id| id != wiped || cluster.node(id).pid().is_some())
            .map(|&id| {
                sum(
                    &cluster.node(id).scrape(),
                    "sluice_under_replicated_partitions",
                )
            })
            .sum()
    };
    wait_until(METRIC_DEADLINE, "the ISR to drop the stopped node", || {
        (under_replicated(&cluster) > 0.0).then_some(())
    });
    std::fs::remove_dir_all(partition_dir(&cluster, wiped)).expect("wipe the replica");
    cluster.restart(wiped);
    wait_until(
        METRIC_DEADLINE,
        "the wiped replica to rejoin the ISR",
        || (under_replicated(&cluster) == 0.0).then_some(()),
    );
    let want: BTreeMap<Vec<u8>, Vec<u8>> = expected
        .iter()
        .map(|record| (hex(&record["key"]), hex(&record["value"])))
        .collect();
    for &id in &ids {
        cluster.node_mut(id).stop();
        let (content, records) = keyed_content(&partition_dir(&cluster, id));
        assert_eq!(content, want, "node {id}");
        assert!(
            records < produced.len(),
            "node {id} holds an uncompacted log"
        );
    }
}

fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("hex string");
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn kafka_configs_turns_compaction_on_for_an_existing_topic() {
    let broker = Broker::start();
    let topic = topic_name("compact-later");
    let bootstrap = broker.bootstrap();
    let create = [
        "--bootstrap-server",
        &bootstrap,
        "--create",
        "--topic",
        &topic,
        "--partitions",
        "1",
        "--replication-factor",
        "1",
    ];
    kafka_tool(TOPICS, &create, b"").success("create");
    let alter = [
        "--bootstrap-server",
        &bootstrap,
        "--entity-type",
        "topics",
        "--entity-name",
        &topic,
        "--alter",
        "--add-config",
        "cleanup.policy=compact,min.cleanable.dirty.ratio=0.2",
    ];
    let altered = kafka_tool(CONFIGS, &alter, b"").success("alter");
    assert_eq!(
        altered,
        format!("Completed updating config for topic {topic}.\n")
    );
    let describe = [
        "--bootstrap-server",
        &bootstrap,
        "--entity-type",
        "topics",
        "--entity-name",
        &topic,
        "--describe",
    ];
    let described = kafka_tool(CONFIGS, &describe, b"").success("describe");
    assert_eq!(
        described,
        format!(
            "Dynamic configs for topic {topic} are:\n  cleanup.policy=compact sensitive=false \
             synonyms={{DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, \
             DEFAULT_CONFIG:log.cleanup.policy=delete}}\n  min.cleanable.dirty.ratio=0.2 \
             sensitive=false synonyms={{DYNAMIC_TOPIC_CONFIG:min.cleanable.dirty.ratio=0.2, \
             DEFAULT_CONFIG:log.cleaner.min.cleanable.ratio=0.5}}\n"
        )
    );
    let bad = [
        "--bootstrap-server",
        &bootstrap,
        "--entity-type",
        "topics",
        "--entity-name",
        &topic,
        "--alter",
        "--add-config",
        "min.cleanable.dirty.ratio=2",
    ];
    let refused = kafka_tool(CONFIGS, &bad, b"");
    assert_eq!(refused.status.code(), Some(1), "{refused}");
    assert!(
        refused
            .stderr
            .contains("Invalid value 2 for configuration min.cleanable.dirty.ratio"),
        "{refused}"
    );
}

#[test]
fn committed_offsets_survive_the_compaction_of_consumer_offsets() {
    let args = [
        &CLEANER_ARGS[..],
        &["--segment-ms", "300", "--offsets-topic-partitions", "1"],
    ]
    .concat();
    let mut broker = Broker::start_with(&args);
    let topic = topic_name("offsets-compaction");
    let group = format!("{topic}-group");
    let bootstrap = broker.bootstrap();
    let commit = ["commit", &bootstrap, &topic, &group, "3", "300"];
    let output = parse_output(&run_python("confluent_offsets_compaction.py", &commit));
    let want = serde_json::json!({"0": 300, "1": 300, "2": 300});
    assert_eq!(output["committed"], want);
    let size = |broker: &Broker| {
        sluice_integration_tests::metrics::sample(
            &broker.scrape(),
            "sluice_log_size_bytes",
            &[("topic", "__consumer_offsets"), ("partition", "0")],
        )
        .expect("offsets partition size")
    };
    // 300 commits of 3 offsets are ~100 KB; compacted, about the last commit's batch is left.
    wait_until(
        METRIC_DEADLINE,
        "__consumer_offsets to be compacted",
        || {
            let reclaimed = sum(&broker.scrape(), "sluice_log_cleaner_bytes_reclaimed_total");
            (size(&broker) < 2_000.0 && reclaimed > 50_000.0).then_some(())
        },
    );
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    let fetch = ["fetch", &bootstrap, &topic, &group, "3"];
    let output = parse_output(&run_python("confluent_offsets_compaction.py", &fetch));
    assert_eq!(output["committed"], want);
    let describe = [
        "--bootstrap-server",
        &bootstrap,
        "--entity-type",
        "topics",
        "--entity-name",
        "__consumer_offsets",
        "--describe",
    ];
    let described = kafka_tool(CONFIGS, &describe, b"").success("describe");
    assert_eq!(
        described,
        "Dynamic configs for topic __consumer_offsets are:\n  cleanup.policy=compact \
         sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, \
         DEFAULT_CONFIG:log.cleanup.policy=delete}\n"
    );
}

#[test]
fn aborted_transactions_go_and_committed_ones_compact() {
    let broker = Broker::start_with(&CLEANER_ARGS);
    let topic = topic_name("compacted-txn");
    let bootstrap = broker.bootstrap();
    let (keys, rounds) = (50, 7);
    let (keys_text, rounds_text) = (keys.to_string(), rounds.to_string());
    let args = ["produce-txn", &bootstrap, &topic, &keys_text, &rounds_text];
    let output = parse_output(&run_python(SCRIPT, &args));
    let produced = array(&output, "produced");
    // Rounds 1 and 4 abort, and also write 10 keys no committed round writes.
    assert_eq!(produced.len(), keys * rounds + 2 * 10);
    let committed: Vec<Value> = produced
        .iter()
        .filter(|record| record["committed"] == true)
        .map(|record| {
            let mut record = record.clone();
            record.as_object_mut().expect("object").remove("committed");
            record
        })
        .collect();
    assert_eq!(
        committed.len(),
        keys * (rounds - 2),
        "rounds 1 and 4 aborted"
    );
    let expected = latest_live(&committed);
    assert_eq!(expected.len(), keys);
    // The log end is past the last marker.
    let end = produced
        .iter()
        .map(|record| record["offset"].as_u64().expect("offset"))
        .max()
        .expect("records")
        + 2;
    let end = usize::try_from(end).expect("end");
    // read_uncommitted sees no aborted record any more: the cleaner removed them, also those
    // no newer record replaced.
    read_until(&bootstrap, &topic, end, &expected, "read_uncommitted");
    read_until(&bootstrap, &topic, end, &expected, "read_committed");
}
