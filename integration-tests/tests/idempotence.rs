//! The idempotent producer against a real broker: exact wire replays of acknowledged batches
//! (also across a crash), sequence gaps, old epochs, producer ids that are never reused, and
//! the Java producer's default settings through a kill -9 of the broker mid-stream.

use std::fs::File;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use serde_json::json;
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::raw_client::{
    idempotent_record_batch, RawClient, TestRecord, OFFSET_LATEST,
};
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{java_command, topic_name, wait_until, Broker};

/// Records the Java producer streams; paced at about ten per millisecond.
const JAVA_RECORD_COUNT: usize = 30_000;
/// Kills of the broker during the stream. Each has a chance to land between a write and its
/// acknowledgement (the producer then retries a batch that is in the log); several make such
/// a duplicate near certain.
const KILLS_MAX: usize = 5;
/// New acknowledgements awaited before each kill, so the producer is streaming again (not
/// still reconnecting) when the broker dies.
const ACKED_BETWEEN_KILLS: usize = 2_500;
const JAVA_RUN_DURATION_MAX: Duration = Duration::from_secs(300);

fn records(prefix: &str, count: usize) -> Vec<TestRecord> {
    (0..count)
        .map(|at| TestRecord::new(prefix.as_bytes(), format!("{prefix}-{at}").as_bytes()))
        .collect()
}

/// A fresh topic and a fresh producer id (epoch 0) on `client`.
fn topic_and_producer(client: &mut RawClient, test: &str) -> (String, i64) {
    let topic = topic_name(test);
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let grant = client.init_producer_id(-1, -1);
    assert_eq!(
        (grant.error_code, grant.producer_epoch),
        (0, 0),
        "{grant:?}"
    );
    assert!(grant.producer_id >= 0);
    (topic, grant.producer_id)
}

/// Produces `batch` with acks=all; returns (error code, base offset).
fn produce(client: &mut RawClient, topic: &str, batch: &Bytes) -> (i16, i64) {
    let response = client
        .produce(topic, 0, -1, batch.clone())
        .expect("acks=all answers");
    (response.error_code, response.base_offset)
}

/// Every record value in the partition, in offset order.
fn values(client: &mut RawClient, topic: &str) -> Vec<String> {
    client
        .fetch_all_from(topic, 0, 0)
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

fn strings(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|at| format!("{prefix}-{at}")).collect()
}

#[test]
fn a_replayed_batch_is_acknowledged_with_its_original_offset_and_stored_once() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let (topic, producer_id) = topic_and_producer(&mut client, "idem-replay");
    let first = idempotent_record_batch(&records("a", 3), producer_id, 0, 0);
    let second = idempotent_record_batch(&records("b", 2), producer_id, 0, 3);
    assert_eq!(produce(&mut client, &topic, &first), (0, 0));
    assert_eq!(produce(&mut client, &topic, &second), (0, 3));
    // The exact same bytes again, as a producer retrying after a lost response.
    assert_eq!(produce(&mut client, &topic, &first), (0, 0));
    assert_eq!(produce(&mut client, &topic, &second), (0, 3));
    let mut expected = strings("a", 0..3);
    expected.extend(strings("b", 0..2));
    assert_eq!(values(&mut client, &topic), expected);
    assert_eq!(client.list_offset(&topic, 0, OFFSET_LATEST), 5);
}

#[test]
fn a_sequence_gap_and_an_old_epoch_are_refused() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let (topic, producer_id) = topic_and_producer(&mut client, "idem-refuse");
    let first = idempotent_record_batch(&records("a", 2), producer_id, 0, 0);
    assert_eq!(produce(&mut client, &topic, &first), (0, 0));

    let gap = idempotent_record_batch(&records("gap", 1), producer_id, 0, 5);
    let (error, offset) = produce(&mut client, &topic, &gap);
    assert_eq!(
        (error, offset),
        (ResponseError::OutOfOrderSequenceNumber.code(), -1)
    );
    assert_eq!(error, 45);

    // The client bumps its own epoch (KIP-360) and restarts its sequences at 0.
    let bumped = idempotent_record_batch(&records("e1", 1), producer_id, 1, 0);
    assert_eq!(produce(&mut client, &topic, &bumped), (0, 2));
    let zombie = idempotent_record_batch(&records("zombie", 1), producer_id, 0, 2);
    let (error, _) = produce(&mut client, &topic, &zombie);
    assert_eq!(error, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(error, 47);

    let mut expected = strings("a", 0..2);
    expected.extend(strings("e1", 0..1));
    assert_eq!(values(&mut client, &topic), expected);
}

#[test]
fn duplicates_are_recognized_after_a_crash() {
    let mut broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let (topic, producer_id) = topic_and_producer(&mut client, "idem-crash");
    let batches: Vec<Bytes> = (0..4i32)
        .map(|at| idempotent_record_batch(&records(&format!("c{at}"), 2), producer_id, 0, at * 2))
        .collect();
    for (at, batch) in batches.iter().enumerate() {
        assert_eq!(
            produce(&mut client, &topic, batch),
            (0, i64::try_from(at * 2).unwrap())
        );
    }
    drop(client);
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    for (at, batch) in batches.iter().enumerate() {
        assert_eq!(
            produce(&mut client, &topic, batch),
            (0, i64::try_from(at * 2).unwrap()),
            "replay of batch {at} after the crash"
        );
    }
    let next = idempotent_record_batch(&records("c4", 1), producer_id, 0, 8);
    assert_eq!(produce(&mut client, &topic, &next), (0, 8));
    let gap = idempotent_record_batch(&records("gap", 1), producer_id, 0, 10);
    assert_eq!(produce(&mut client, &topic, &gap).0, 45);
    let stored = client.fetch_all_from(&topic, 0, 0);
    assert_eq!(stored.len(), 9);
    assert_eq!(
        stored
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (0..9).collect::<Vec<i64>>()
    );
}

#[test]
fn producer_ids_are_never_reused_and_epochs_restart_at_zero() {
    let mut broker = Broker::start();
    let mut seen = Vec::new();
    for restart in 0..3 {
        let mut client = RawClient::connect(&broker.bootstrap());
        for _ in 0..3 {
            let grant = client.init_producer_id(-1, -1);
            assert_eq!((grant.error_code, grant.producer_epoch), (0, 0));
            seen.push(grant.producer_id);
        }
        // A producer re-initializing with its id and epoch gets a new id (Kafka, without a
        // transactional id), never a bump of someone else's id.
        let previous = *seen.last().unwrap();
        let grant = client.init_producer_id(previous, 3);
        assert_eq!(grant.error_code, 0);
        assert_eq!(grant.producer_epoch, 0);
        seen.push(grant.producer_id);
        // An id without an epoch (or the reverse) is malformed.
        let bad = client.init_producer_id(previous, -1);
        assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
        let bad = client.init_producer_id(-1, 0);
        assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
        drop(client);
        if restart % 2 == 0 {
            broker.kill9();
            broker.restart();
        } else {
            broker.stop();
            broker.restart();
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "every id is fresh: {seen:?}");
    assert_eq!(
        sorted, seen,
        "ids only grow, also across restarts: {seen:?}"
    );
}

/// Spawns `IdempotentStream` with stdout and stderr in files under `scratch`.
fn spawn_java_stream(scratch: &std::path::Path, bootstrap: &str, topic: &str) -> Child {
    let count = JAVA_RECORD_COUNT.to_string();
    let mut command = java_command("IdempotentStream", &[bootstrap, topic, &count]);
    command
        .stdin(Stdio::null())
        .stdout(File::create(scratch.join("stdout")).unwrap())
        .stderr(File::create(scratch.join("stderr")).unwrap());
    command.spawn().expect("spawn the Java producer")
}

/// The largest "acked N" the Java program printed so far.
fn acked_so_far(scratch: &std::path::Path) -> usize {
    let stdout = std::fs::read_to_string(scratch.join("stdout")).unwrap_or_default();
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("acked "))
        .filter_map(|count| count.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

fn java_output(scratch: &std::path::Path, status: &str) -> String {
    let stdout = std::fs::read_to_string(scratch.join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(scratch.join("stderr")).unwrap_or_default();
    let tail = |text: &str| text[text.len().saturating_sub(8_000)..].to_string();
    format!(
        "Java producer {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        tail(&stdout),
        tail(&stderr)
    )
}

#[test]
fn java_idempotent_producer_survives_a_broker_kill9_without_duplicates_or_gaps() {
    let _matrix = covers(
        "java",
        &["idempotent_produce"],
        "java_idempotent_producer_survives_a_broker_kill9_without_duplicates_or_gaps",
    );
    // fsync before each acknowledgement widens the window between "written" and "acked", so
    // the kill almost surely leaves batches in the log that the producer never saw acked and
    // retries: the duplicates under test.
    let mut broker = Broker::start_with(&["--flush-policy", "every-append"]);
    let topic = topic_name("idem-java-kill9");
    let scratch = tempfile::tempdir().unwrap();
    let mut child = spawn_java_stream(scratch.path(), &broker.bootstrap(), &topic);
    let mut acked_at_kills: Vec<usize> = Vec::new();
    let mut acked_after_restart = 0;
    while acked_at_kills.len() < KILLS_MAX {
        let threshold = acked_after_restart + ACKED_BETWEEN_KILLS;
        let acked = wait_until(Duration::from_secs(120), "acknowledgements", || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{}",
                    java_output(scratch.path(), &format!("exited early: {status}"))
                );
            }
            let acked = acked_so_far(scratch.path());
            (acked >= threshold).then_some(acked)
        });
        if acked >= JAVA_RECORD_COUNT - ACKED_BETWEEN_KILLS {
            break; // the stream is (nearly) over: a later kill would test nothing
        }
        broker.kill9();
        broker.restart();
        acked_at_kills.push(acked);
        acked_after_restart = acked_so_far(scratch.path());
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > JAVA_RUN_DURATION_MAX {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}", java_output(scratch.path(), "timed out"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = java_output(scratch.path(), &format!("exited with {status}"));
    assert!(status.success(), "{output}");
    assert!(
        acked_at_kills.len() >= 2,
        "too few kills inside the stream ({acked_at_kills:?}); nothing was tested"
    );
    let stdout = std::fs::read_to_string(scratch.path().join("stdout")).unwrap();
    let summary = parse_output(&stdout);
    let expected = json!({
        "sent": JAVA_RECORD_COUNT,
        "failed": 0,
        "consumed": JAVA_RECORD_COUNT,
        "mismatches": 0,
        "offset_mismatches": 0,
    });
    assert_eq!(summary, expected, "{output}");
    // Our own reading agrees: each partition holds exactly its records, once, in order.
    let mut client = RawClient::connect(&broker.bootstrap());
    for partition in 0..2 {
        let stored = client.fetch_all_from(&topic, partition, 0);
        let got: Vec<String> = stored
            .iter()
            .map(|record| {
                let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
                value.split('|').next().unwrap().to_string()
            })
            .collect();
        let want: Vec<String> = (0..JAVA_RECORD_COUNT)
            .filter(|at| at % 2 == usize::try_from(partition).unwrap())
            .map(|at| format!("record-{at}"))
            .collect();
        assert_eq!(got, want, "partition {partition}");
    }
}
