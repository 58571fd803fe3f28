//! Legacy requests through `dispatch` against a real broker on a temporary directory: old
//! message sets in, v2 batches stored, old message sets out, and nothing written for corrupt
//! input. Compression codecs and real clients are covered by wire's unit tests and
//! `integration-tests/tests/legacy_clients.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use sluice_wire::legacy::fetch::{LegacyFetchPartition, LegacyFetchRequest};
use sluice_wire::legacy::list_offsets::{LegacyListOffsetsPartition, LegacyListOffsetsRequest};
use sluice_wire::legacy::message_set::MessageToWrite;
use sluice_wire::legacy::offset_commit::{LegacyOffsetCommitPartition, LegacyOffsetCommitRequest};
use sluice_wire::legacy::offset_fetch::LegacyOffsetFetchRequest;
use sluice_wire::legacy::produce::{LegacyProducePartition, LegacyProduceRequest};
use sluice_wire::legacy::{LegacyRequest, LegacyResponse, LegacyTopic};

use super::dispatch;
use crate::broker::{Broker, Endpoint};
use crate::config::Config;
use crate::handlers::RequestContext;

const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;
const TIMESTAMP_MS: i64 = 1_650_000_000_000;

struct Fixture {
    broker: Arc<Broker>,
    _data_dir: tempfile::TempDir,
}

impl Fixture {
    async fn open(topics: &[(&str, BTreeMap<String, String>)]) -> Fixture {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let data_dir_text = data_dir.path().to_str().expect("utf-8").to_string();
        let config = Config::try_parse_from([
            "sluice",
            "--data-dir",
            &data_dir_text,
            "--raft-listen-address",
            "127.0.0.1:0",
            "--admission-check",
            "false",
        ]);
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let (broker, _publisher) = crate::start_broker(config.expect("config"), endpoint)
            .await
            .expect("broker");
        for (name, overrides) in topics {
            let created = broker
                .create_topic(name, 1, -1, BTreeMap::new(), overrides.clone(), false)
                .await;
            created.expect("topic");
        }
        Fixture {
            broker,
            _data_dir: data_dir,
        }
    }

    async fn send(&self, api_version: i16, request: LegacyRequest) -> Option<LegacyResponse> {
        let context = RequestContext {
            broker: &self.broker,
            api_version,
            peer: "127.0.0.1:1".parse().expect("address"),
            client_id: Some("legacy-test".into()),
            listener_name: "PLAINTEXT",
            connection: &Default::default(),
            principal: crate::security::ANONYMOUS,
            authorizer: None,
        };
        dispatch(&context, request).await
    }

    fn log_end_offset(&self, topic: &str) -> i64 {
        let image = self.broker.topics();
        image.by_name[topic]
            .partition(0)
            .expect("p0")
            .replica
            .as_ref()
            .expect("local replica")
            .log
            .log_end_offset()
    }
}

fn message(
    magic: i8,
    offset: i64,
    key: &'static [u8],
    value: &'static [u8],
) -> MessageToWrite<'static> {
    MessageToWrite {
        offset,
        magic,
        codec: Compression::None,
        log_append_time: false,
        timestamp_ms: TIMESTAMP_MS + offset,
        key: Some(key),
        value: Some(value),
    }
}

fn set_of(messages: &[MessageToWrite<'_>]) -> Bytes {
    let mut out = BytesMut::new();
    for message in messages {
        message.write(&mut out);
    }
    out.freeze()
}

fn produce(topic: &str, acks: i16, message_set: Bytes) -> LegacyRequest {
    LegacyRequest::Produce(LegacyProduceRequest {
        acks,
        timeout_ms: 1000,
        topics: vec![LegacyTopic {
            name: topic.into(),
            partitions: vec![LegacyProducePartition {
                partition: 0,
                message_set: Some(message_set),
            }],
        }],
    })
}

/// `(error_code, base_offset)` of the only partition.
fn produce_answer(response: Option<LegacyResponse>) -> (i16, i64) {
    let Some(LegacyResponse::Produce(response)) = response else {
        panic!("{response:?}");
    };
    let partition = response.topics[0].partitions[0];
    (partition.error_code, partition.base_offset)
}

fn fetch(topic: &str, fetch_offset: i64) -> LegacyRequest {
    LegacyRequest::Fetch(LegacyFetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: None,
        topics: vec![LegacyTopic {
            name: topic.into(),
            partitions: vec![LegacyFetchPartition {
                partition: 0,
                fetch_offset,
                partition_max_bytes: 1 << 20,
            }],
        }],
    })
}

/// `(error_code, high_watermark, message_set)` of the only partition.
fn fetch_answer(response: Option<LegacyResponse>) -> (i16, i64, Bytes) {
    let Some(LegacyResponse::Fetch(response)) = response else {
        panic!("{response:?}");
    };
    let partition = response.topics[0].partitions[0].clone();
    (
        partition.error_code,
        partition.high_watermark,
        partition.message_set,
    )
}

#[tokio::test]
async fn old_produce_is_stored_as_v2_and_fetched_in_each_readers_format() {
    let fixture = Fixture::open(&[("old", BTreeMap::new())]).await;
    let magic0 = set_of(&[message(0, 0, b"k0", b"v0"), message(0, 0, b"k1", b"v1")]);
    assert_eq!(
        produce_answer(fixture.send(0, produce("old", 1, magic0)).await),
        (0, 0)
    );
    let magic1 = set_of(&[message(1, 0, b"k2", b"v2")]);
    assert_eq!(
        produce_answer(fixture.send(2, produce("old", -1, magic1)).await),
        (0, 2)
    );
    assert_eq!(fixture.log_end_offset("old"), 3);

    // Stored: v2 batches (what modern readers get, unchanged).
    let image = fixture.broker.topics();
    let partition = image.by_name["old"].partition(0).expect("p0");
    let log = &partition.replica.as_ref().expect("local replica").log;
    let mut stored = log.read(0, 1 << 20, true).expect("read").records;
    let batches = RecordBatchDecoder::decode_all(&mut stored).expect("v2");
    let timestamps: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.timestamp))
        .collect();
    assert_eq!(
        timestamps,
        vec![-1, -1, TIMESTAMP_MS],
        "v0 has no timestamps"
    );

    // v0-v1 readers get magic 0, v2-v3 magic 1; records before the fetch offset are left out.
    for api_version in 0..=3 {
        let magic = if api_version >= 2 { 1 } else { 0 };
        let (error, high_watermark, set) =
            fetch_answer(fixture.send(api_version, fetch("old", 1)).await);
        let mut expected_second = message(magic, 1, b"k1", b"v1");
        expected_second.timestamp_ms = -1;
        let mut expected_third = message(magic, 2, b"k2", b"v2");
        expected_third.timestamp_ms = TIMESTAMP_MS; // as produced, at offset 0 of its set
        let expected = set_of(&[expected_second, expected_third]);
        assert_eq!((error, high_watermark), (0, 3));
        assert_eq!(set, expected, "fetch v{api_version}");
    }
}

#[tokio::test]
async fn corrupt_sets_are_refused_and_nothing_is_written() {
    let fixture = Fixture::open(&[("bad", BTreeMap::new())]).await;
    for magic in 0..=1 {
        let good = set_of(&[message(magic, 0, b"k", b"v")]);
        let mut bad_crc = BytesMut::from(&good[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x55;
        let mut lying = BytesMut::from(&good[..]);
        lying[8..12].copy_from_slice(&10_000_i32.to_be_bytes());
        for corrupt in [bad_crc.freeze(), lying.freeze(), Bytes::new()] {
            let answer = produce_answer(fixture.send(1, produce("bad", 1, corrupt)).await);
            assert_eq!(answer, (CORRUPT_MESSAGE, -1), "magic {magic}");
        }
    }
    assert_eq!(fixture.log_end_offset("bad"), 0);
    // acks=0 gets no response, and still writes nothing corrupt.
    let good = set_of(&[message(0, 0, b"k", b"v")]);
    assert!(fixture.send(0, produce("bad", 0, good)).await.is_none());
    assert_eq!(fixture.log_end_offset("bad"), 1);
}

#[tokio::test]
async fn down_conversion_can_be_refused_per_topic() {
    let mut off = BTreeMap::new();
    off.insert(
        "message.downconversion.enable".to_string(),
        "false".to_string(),
    );
    let fixture = Fixture::open(&[("strict", off)]).await;
    let set = set_of(&[message(1, 0, b"k", b"v")]);
    assert_eq!(
        produce_answer(fixture.send(2, produce("strict", 1, set)).await),
        (0, 0)
    );
    let (error, _, set) = fetch_answer(fixture.send(3, fetch("strict", 0)).await);
    assert_eq!((error, set.len()), (UNSUPPORTED_VERSION, 0));
}

#[tokio::test]
async fn list_offsets_and_commits_of_old_clients() {
    let fixture = Fixture::open(&[("offsets", BTreeMap::new())]).await;
    let set = set_of(&[message(0, 0, b"a", b"1"), message(0, 0, b"b", b"2")]);
    assert_eq!(
        produce_answer(fixture.send(1, produce("offsets", 1, set)).await),
        (0, 0)
    );
    for (timestamp, expected) in [(-1, vec![2]), (-2, vec![0])] {
        let request = LegacyRequest::ListOffsets(LegacyListOffsetsRequest {
            replica_id: -1,
            topics: vec![LegacyTopic {
                name: "offsets".into(),
                partitions: vec![LegacyListOffsetsPartition {
                    partition: 0,
                    timestamp,
                    max_num_offsets: 1,
                }],
            }],
        });
        let Some(LegacyResponse::ListOffsets(response)) = fixture.send(0, request).await else {
            panic!("no ListOffsets response");
        };
        assert_eq!(response.topics[0].partitions[0].offsets, expected);
    }
    // Old clients too ask for the coordinator first (ConsumerMetadataRequest).
    crate::offsets_topic::coordinate_all_for_test(&fixture.broker).await;
    for (api_version, offset) in [(0, 1), (1, 2)] {
        let commit = LegacyRequest::OffsetCommit(LegacyOffsetCommitRequest {
            group_id: "old-group".into(),
            generation_id: -1,
            member_id: String::new(),
            topics: vec![LegacyTopic {
                name: "offsets".into(),
                partitions: vec![LegacyOffsetCommitPartition {
                    partition: 0,
                    committed_offset: offset,
                    commit_timestamp_ms: -1,
                    committed_metadata: Some("m".into()),
                }],
            }],
        });
        let Some(LegacyResponse::OffsetCommit(response)) = fixture.send(api_version, commit).await
        else {
            panic!("no OffsetCommit response");
        };
        assert_eq!(response.topics[0].partitions, vec![(0, 0)]);
        let fetch = LegacyRequest::OffsetFetch(LegacyOffsetFetchRequest {
            group_id: "old-group".into(),
            topics: vec![LegacyTopic {
                name: "offsets".into(),
                partitions: vec![0],
            }],
        });
        let Some(LegacyResponse::OffsetFetch(response)) = fixture.send(0, fetch).await else {
            panic!("no OffsetFetch response");
        };
        let partition = &response.topics[0].partitions[0];
        assert_eq!(
            (
                partition.committed_offset,
                partition.metadata.as_deref(),
                partition.error_code
            ),
            (offset, Some("m"), 0)
        );
    }
}
