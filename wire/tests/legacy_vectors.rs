//! Requests captured from a real old client, byte for byte: kafka-python 3.0.12 forced to
//! `api_version` (0, 8, 1), (0, 8, 2), (0, 9), (0, 10, 0) and (0, 10, 1), recorded by
//! `vectors/capture.py` (a loopback proxy in front of sluice). File names say
//! `<client api_version>-<scenario>-<api>-v<version>.bin`; each is one frame without its length
//! prefix. The producers sent key-i / value-i for i in 0..3 to partition 0 with acks=1.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use sluice_wire::legacy::compression::lz4_descriptor_checksum;
use sluice_wire::legacy::convert::up_convert;
use sluice_wire::legacy::fetch::LegacyFetchPartition;
use sluice_wire::legacy::list_offsets::LegacyListOffsetsPartition;
use sluice_wire::legacy::message_set::parse_message_set;
use sluice_wire::legacy::offset_commit::LegacyOffsetCommitPartition;
use sluice_wire::legacy::{LegacyRequest, LegacyTopic};
use sluice_wire::{decode_request, Decoded};

const CLIENT_ID: &str = "kafka-python-3.0.12";
const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

fn vector(name: &str) -> Bytes {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Decodes a captured legacy frame; checks the header against the file name.
fn legacy(name: &str, api_key: ApiKey, api_version: i16) -> LegacyRequest {
    let decoded = decode_request(vector(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let context = decoded.context();
    assert_eq!(
        (context.api_key, context.api_version),
        (api_key, api_version)
    );
    match decoded {
        Decoded::Legacy { header, request } => {
            assert!(header
                .client_id
                .is_some_and(|id| id.starts_with("kafka-python")));
            request
        }
        other => panic!("{name}: {other:?}"),
    }
}

fn expected_values() -> Vec<(Option<Bytes>, Option<Bytes>)> {
    (0..3)
        .map(|i| {
            let key = Bytes::from(format!("key-{i}"));
            (Some(key), Some(Bytes::from(format!("value-{i}"))))
        })
        .collect()
}

/// Produce v0 (0.8.2), v1 (0.9) and v2 (0.10.0) with every codec of their era.
#[test]
fn captured_produce_requests_decode_and_convert_exactly() {
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
    ];
    for (label, api_version, magic) in [("kp082", 0, 0), ("kp09", 1, 0), ("kp0100", 2, 1)] {
        for (codec_name, codec) in codecs {
            let name = format!("{label}-{codec_name}-produce-v{api_version}.bin");
            let LegacyRequest::Produce(request) = legacy(&name, ApiKey::Produce, api_version)
            else {
                panic!("{name}: not a produce");
            };
            assert_eq!((request.acks, request.timeout_ms), (1, 30_000), "{name}");
            assert_eq!(request.topics.len(), 1);
            assert_eq!(
                request.topics[0].name,
                format!("capture-{label}-{codec_name}")
            );
            let partitions = &request.topics[0].partitions;
            assert_eq!(partitions.len(), 1);
            assert_eq!(partitions[0].partition, 0);
            let set = partitions[0].message_set.clone().expect("records");
            // offset i64, size i32, crc u32, then the first message's magic.
            assert_eq!(set[16], magic, "{name}: message format");

            let parsed = parse_message_set(set.clone(), DECOMPRESSED_BYTES_MAX).unwrap();
            assert_eq!(parsed.compression, codec, "{name}");
            let seen: Vec<_> = parsed
                .messages
                .iter()
                .map(|m| (m.key.clone(), m.value.clone()))
                .collect();
            assert_eq!(seen, expected_values(), "{name}");
            for message in &parsed.messages {
                if magic == 0 {
                    assert_eq!(message.timestamp_ms, -1, "{name}");
                } else {
                    assert!(message.timestamp_ms > 1_600_000_000_000, "{name}");
                }
            }

            let (batch, count) = up_convert(set, DECOMPRESSED_BYTES_MAX).unwrap();
            assert_eq!(count, 3);
            let stored = RecordBatchDecoder::decode(&mut batch.freeze()).unwrap();
            assert_eq!(stored.compression, codec, "{name}: codec kept");
            let stored: Vec<_> = stored
                .records
                .iter()
                .map(|r| (r.key.clone(), r.value.clone()))
                .collect();
            assert_eq!(stored, expected_values(), "{name}");
        }
    }
}

/// kafka-python writes Kafka 0.8/0.9's wrong LZ4 descriptor checksum for magic 0 (KAFKA-3160)
/// and the right one for magic 1; both vectors must parse (above), and they must really
/// differ in that byte for the test to mean anything.
#[test]
fn captured_lz4_magic_0_has_the_broken_descriptor_checksum() {
    for (name, broken) in [
        ("kp082-lz4-produce-v0.bin", true),
        ("kp0100-lz4-produce-v2.bin", false),
    ] {
        let api_version = if broken { 0 } else { 2 };
        let LegacyRequest::Produce(request) = legacy(name, ApiKey::Produce, api_version) else {
            panic!("{name}");
        };
        let set = request.topics[0].partitions[0].message_set.clone().unwrap();
        // The wrapper's value: after offset, size, crc, magic, attributes, [timestamp],
        // key (-1) and the value length.
        let value_at = 12 + 4 + 1 + 1 + if broken { 0 } else { 8 } + 4 + 4;
        let frame = &set[value_at..];
        assert_eq!(
            &frame[..4],
            &[0x04, 0x22, 0x4d, 0x18],
            "{name}: LZ4 frame magic"
        );
        let flags = frame[4];
        // FLG, BD, then an 8-byte content size when FLG bit 3 is set (no dictionary ids here).
        assert_eq!(flags & 0x01, 0, "{name}: no dictionary id");
        let checksum_at = 6 + if flags & 0x08 != 0 { 8 } else { 0 };
        let standard = lz4_descriptor_checksum(&frame[4..checksum_at]);
        assert_eq!(frame[checksum_at] != standard, broken, "{name}");
    }
}

#[test]
fn captured_fetch_requests_of_every_old_version() {
    for (name, api_version, max_bytes) in [
        ("kp081-consume-fetch-v0.bin", 0, None),
        ("kp09-consume-fetch-v1.bin", 1, None),
        ("kp0100-consume-fetch-v2.bin", 2, None),
        ("kp0101-consume-fetch-v3.bin", 3, Some(52_428_800)),
    ] {
        let LegacyRequest::Fetch(request) = legacy(name, ApiKey::Fetch, api_version) else {
            panic!("{name}");
        };
        assert_eq!(
            (request.replica_id, request.max_wait_ms, request.min_bytes),
            (-1, 500, 1),
            "{name}"
        );
        assert_eq!(request.max_bytes, max_bytes, "{name}");
        assert_eq!(
            request.topics,
            vec![LegacyTopic {
                name: "capture-kp09-gzip".into(),
                partitions: vec![LegacyFetchPartition {
                    partition: 0,
                    fetch_offset: 0,
                    partition_max_bytes: 1_048_576,
                }],
            }],
            "{name}"
        );
    }
}

#[test]
fn captured_offset_requests_of_kafka_0_8() {
    let LegacyRequest::ListOffsets(list) =
        legacy("kp081-consume-list_offsets-v0.bin", ApiKey::ListOffsets, 0)
    else {
        panic!("list offsets");
    };
    assert_eq!(list.replica_id, -1);
    assert_eq!(
        list.topics,
        vec![LegacyTopic {
            name: "capture-kp09-gzip".into(),
            partitions: vec![LegacyListOffsetsPartition {
                partition: 0,
                timestamp: -2,
                max_num_offsets: 1,
            }],
        }]
    );

    for (name, api_version, group) in [
        ("kp081-consume-offset_commit-v0.bin", 0, "capture-kp081"),
        ("kp082-consume-offset_commit-v1.bin", 1, "capture-kp082"),
    ] {
        let LegacyRequest::OffsetCommit(commit) = legacy(name, ApiKey::OffsetCommit, api_version)
        else {
            panic!("{name}");
        };
        assert_eq!(commit.group_id, group);
        assert_eq!((commit.generation_id, commit.member_id.as_str()), (-1, ""));
        assert_eq!(
            commit.topics,
            vec![LegacyTopic {
                name: "capture-kp09-gzip".into(),
                partitions: vec![LegacyOffsetCommitPartition {
                    partition: 0,
                    committed_offset: 3,
                    commit_timestamp_ms: -1,
                    committed_metadata: Some(String::new()),
                }],
            }],
            "{name}"
        );
    }

    let LegacyRequest::OffsetFetch(fetch) =
        legacy("kp081-consume-offset_fetch-v0.bin", ApiKey::OffsetFetch, 0)
    else {
        panic!("offset fetch");
    };
    assert_eq!(fetch.group_id, "capture-kp081");
    assert_eq!(
        fetch.topics,
        vec![LegacyTopic {
            name: "capture-kp09-gzip".into(),
            partitions: vec![0],
        }]
    );
}

/// Metadata v0 and GroupCoordinator (FindCoordinator) v0 are kafka-protocol's own.
#[test]
fn captured_requests_the_crate_decodes() {
    let metadata = decode_request(vector("kp081-consume-metadata-v0.bin")).unwrap();
    let Decoded::Request {
        header,
        body: RequestKind::Metadata(metadata),
    } = metadata
    else {
        panic!("{metadata:?}");
    };
    assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
    let names: Vec<_> = metadata
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.name.map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, vec![Some("capture-kp09-gzip".to_string())]);

    let coordinator = decode_request(vector("kp09-consume-find_coordinator-v0.bin")).unwrap();
    let Decoded::Request {
        body: RequestKind::FindCoordinator(coordinator),
        ..
    } = coordinator
    else {
        panic!("{coordinator:?}");
    };
    assert_eq!(coordinator.key.as_str(), "capture-kp09");
}

/// Every captured frame cut short anywhere is an error, never a panic.
#[test]
fn captured_frames_truncated_anywhere_are_errors() {
    let dir = format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let frame = Bytes::from(std::fs::read(&path).unwrap());
        assert!(decode_request(frame.clone()).is_ok(), "{}", path.display());
        for cut in 0..frame.len() {
            // Fields end at many cuts; what matters is that no cut panics and that cuts inside
            // the fixed header are refused.
            let result = decode_request(frame.slice(..cut));
            if cut < 8 {
                assert!(result.is_err());
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 22, "every stored vector");
}
