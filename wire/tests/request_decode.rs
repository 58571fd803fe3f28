//! decode_request against requests framed the way clients frame them (kafka-protocol's own
//! encoders), plus hostile and truncated input.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ApiKey, RequestKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use sluice_wire::client::{default_request_body, encode_request, request_header};
use sluice_wire::legacy::{is_legacy, LegacyRequest};
use sluice_wire::{decode_request, DecodeError, Decoded, RequestContext, SUPPORTED_APIS};

/// Every (key, version) kafka-protocol decodes for us (the legacy versions are hand-decoded).
fn modern_versions() -> Vec<(ApiKey, i16)> {
    let mut versions = Vec::new();
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            if is_legacy(api.api_key, version) {
                continue;
            }
            versions.push((api.api_key, version));
        }
    }
    versions
}

/// The frame without its length prefix.
fn frame_of(header: &m::RequestHeader, body: &RequestKind) -> Bytes {
    let mut out = BytesMut::new();
    encode_request(header, body, &mut out).unwrap();
    let mut frame = out.freeze();
    assert_eq!(frame.get_i32() as usize, frame.len());
    frame
}

fn assert_round_trip(header: &m::RequestHeader, body: &RequestKind) {
    let decoded = decode_request(frame_of(header, body)).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request {
            header: header.clone(),
            body: body.clone()
        },
        "v{}",
        header.request_api_version
    );
}

#[test]
fn every_supported_version_round_trips_a_default_body() {
    let versions = modern_versions();
    assert_eq!(versions.len(), 227, "update when the table changes");
    for (api_key, version) in versions {
        let header = request_header(api_key, version, 1000 + version as i32, "sluice-test");
        let body = default_request_body(api_key).unwrap();
        assert_round_trip(&header, &body);
    }
}

#[test]
fn context_reports_what_the_client_sent() {
    let header = request_header(ApiKey::Fetch, 12, 77, "rdkafka");
    let decoded = decode_request(frame_of(
        &header,
        &default_request_body(ApiKey::Fetch).unwrap(),
    ));
    assert_eq!(
        decoded.unwrap().context(),
        RequestContext {
            api_key: ApiKey::Fetch,
            api_version: 12,
            correlation_id: 77,
            client_id: Some(StrBytes::from_static_str("rdkafka")),
        }
    );
}

#[test]
fn null_client_id_is_accepted() {
    let header = request_header(ApiKey::Metadata, 4, 1, "x").with_client_id(None);
    assert_round_trip(&header, &default_request_body(ApiKey::Metadata).unwrap());
}

#[test]
fn trailing_bytes_are_tolerated_like_kafka_does() {
    let header = request_header(ApiKey::Metadata, 1, 5, "c");
    let body = default_request_body(ApiKey::Metadata).unwrap();
    let mut frame = BytesMut::from(&frame_of(&header, &body)[..]);
    frame.put_slice(b"junk");
    let decoded = decode_request(frame.freeze()).unwrap();
    assert_eq!(decoded, Decoded::Request { header, body });
}

#[test]
fn record_payloads_are_slices_of_the_frame() {
    let records = Bytes::from_static(b"pretend-record-batch");
    let body = RequestKind::Produce(m::ProduceRequest::default().with_topic_data(vec![
        m::produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![m::produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.clone()))]),
    ]));
    let frame = frame_of(&request_header(ApiKey::Produce, 9, 1, "c"), &body);
    let frame_range = frame.as_ptr_range();
    let Ok(Decoded::Request {
        body: RequestKind::Produce(produce),
        ..
    }) = decode_request(frame.clone())
    else {
        panic!("not a produce request");
    };
    let decoded = produce.topic_data[0].partition_data[0]
        .records
        .clone()
        .unwrap();
    assert_eq!(decoded, records);
    assert!(
        frame_range.contains(&decoded.as_ptr()),
        "records were copied"
    );
}

// ---- rejections ----

/// A frame holding only the fixed header fields plus `rest`.
fn raw_frame(api_key: i16, api_version: i16, correlation_id: i32, rest: &[u8]) -> Bytes {
    let mut frame = BytesMut::new();
    frame.put_i16(api_key);
    frame.put_i16(api_version);
    frame.put_i32(correlation_id);
    frame.put_slice(rest);
    frame.freeze()
}

#[test]
fn unknown_and_unserved_keys_are_rejected() {
    for api_key in [
        -1,
        93,
        9999,
        ApiKey::ShareGroupHeartbeat as i16,
        ApiKey::DescribeDelegationToken as i16,
    ] {
        assert_eq!(
            decode_request(raw_frame(api_key, 0, 31, &[])),
            Err(DecodeError::UnknownApiKey {
                api_key,
                correlation_id: 31
            })
        );
    }
}

#[test]
fn versions_outside_the_table_are_rejected() {
    for api in SUPPORTED_APIS {
        let mut outside = vec![api.max_version + 1, -1, i16::MIN];
        if api.min_version > 0 {
            outside.push(api.min_version - 1);
        }
        for api_version in outside {
            let decoded = decode_request(raw_frame(api.api_key as i16, api_version, 8, &[]));
            if api.api_key == ApiKey::ApiVersions && api_version > api.max_version {
                continue; // KIP-511, tested below
            }
            assert_eq!(
                decoded,
                Err(DecodeError::UnsupportedVersion {
                    api_key: api.api_key as i16,
                    api_version,
                    correlation_id: 8
                })
            );
        }
    }
}

#[test]
fn api_versions_above_our_max_gets_the_kip_511_treatment() {
    for api_version in [5, 6, 127, i16::MAX] {
        // The body is never read: a future version may look like anything.
        let frame = raw_frame(ApiKey::ApiVersions as i16, api_version, 4242, &[0xde, 0xad]);
        assert_eq!(
            decode_request(frame),
            Ok(Decoded::ApiVersionsTooNew {
                correlation_id: 4242,
                api_version
            })
        );
    }
}

#[test]
fn frames_shorter_than_the_fixed_header_are_too_short() {
    for len in 0..8 {
        let frame = Bytes::from(vec![0u8; len]);
        assert_eq!(decode_request(frame), Err(DecodeError::TooShort));
    }
}

#[test]
fn every_truncation_of_every_version_is_an_error() {
    for (api_key, version) in modern_versions() {
        let header = request_header(api_key, version, 3, "client");
        let frame = frame_of(&header, &default_request_body(api_key).unwrap());
        for cut in 0..frame.len() {
            let result = decode_request(frame.slice(..cut));
            assert!(
                result.is_err(),
                "{api_key:?} v{version} cut at {cut}: {result:?}"
            );
            if cut < 8 {
                assert_eq!(result, Err(DecodeError::TooShort));
            }
        }
    }
}

fn assert_malformed(frame: Bytes, api_key: ApiKey, api_version: i16) {
    match decode_request(frame) {
        Err(DecodeError::Malformed {
            api_key: key,
            api_version: version,
            correlation_id: 9,
            reason,
        }) => {
            assert_eq!((key, version), (api_key as i16, api_version));
            assert!(reason.starts_with("request body: "), "{reason}");
        }
        other => panic!("{api_key:?} v{api_version}: {other:?}"),
    }
}

/// Without the vendored kafka-protocol patch these allocate `count * element size` up front and
/// abort the process; with it they fail as soon as the count exceeds the remaining bytes.
#[test]
fn huge_array_counts_are_rejected_without_allocating() {
    // Metadata v1 (header v1, client id "c"): topics array of 0x7fffffff.
    let metadata = raw_frame(3, 1, 9, &[0, 1, b'c', 0x7f, 0xff, 0xff, 0xff]);
    assert_malformed(metadata, ApiKey::Metadata, 1);
    // Metadata v9 (flexible, header v2): compact array length 0xffffffff as an unsigned varint.
    let compact = raw_frame(3, 9, 9, &[0, 1, b'c', 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_malformed(compact, ApiKey::Metadata, 9);
    // Produce v3: null transactional id, acks, timeout, then topic_data of 0x7fffffff.
    let produce = raw_frame(
        0,
        3,
        9,
        &[
            0, 1, b'c', 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
        ],
    );
    assert_malformed(produce, ApiKey::Produce, 3);
    // Produce v3, one topic "t", one partition 0, records claiming 0x7fffffff bytes.
    let records = raw_frame(
        0,
        3,
        9,
        &[
            0, 1, b'c', 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0,
            0, 0x7f, 0xff, 0xff, 0xff,
        ],
    );
    assert_malformed(records, ApiKey::Produce, 3);
    // Legacy Produce v0: topics array of 0x7fffffff.
    let legacy = raw_frame(
        0,
        0,
        9,
        &[0, 1, b'c', 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
    );
    assert_malformed(legacy, ApiKey::Produce, 0);
}

#[test]
fn malformed_headers_are_reported() {
    // Client id claims 5 bytes, 1 present.
    match decode_request(raw_frame(3, 1, 9, &[0, 5, b'c'])) {
        Err(DecodeError::Malformed { reason, .. }) => {
            assert!(reason.starts_with("request header: "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

// ---- legacy produce ----

/// Produce v0-v2 body: acks, timeout, topics [("orders", [0 with 2 record bytes, 3 null]),
/// ("x", [5 with 0 bytes])].
fn legacy_produce_frame(api_version: i16, acks: i16) -> Bytes {
    let mut rest = BytesMut::new();
    rest.put_slice(&[0, 2, b'c', b'2']); // client id "c2"
    rest.put_i16(acks);
    rest.put_i32(30_000);
    rest.put_i32(2);
    rest.put_i16(6);
    rest.put_slice(b"orders");
    rest.put_i32(2);
    rest.put_i32(0);
    rest.put_i32(2);
    rest.put_slice(&[1, 2]);
    rest.put_i32(3);
    rest.put_i32(-1);
    rest.put_i16(1);
    rest.put_slice(b"x");
    rest.put_i32(1);
    rest.put_i32(5);
    rest.put_i32(0);
    raw_frame(0, api_version, 600 + api_version as i32, &rest)
}

#[test]
fn produce_v0_to_v2_decodes_as_legacy() {
    for api_version in 0..=2 {
        for acks in [-1, 0, 1] {
            let decoded = decode_request(legacy_produce_frame(api_version, acks)).unwrap();
            let Decoded::Legacy {
                header,
                request: LegacyRequest::Produce(produce),
            } = &decoded
            else {
                panic!("{decoded:?}");
            };
            assert_eq!(header.client_id.as_deref(), Some("c2"));
            assert_eq!(produce.acks, acks);
            let topics: Vec<_> = produce
                .topics
                .iter()
                .map(|t| {
                    let partitions: Vec<_> = t
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.message_set.as_ref().map(|m| m.to_vec())))
                        .collect();
                    (t.name.as_str(), partitions)
                })
                .collect();
            assert_eq!(
                topics,
                vec![
                    ("orders", vec![(0, Some(vec![1, 2])), (3, None)]),
                    ("x", vec![(5, Some(vec![]))]),
                ]
            );
            let context = decoded.context();
            assert_eq!(context.api_key, ApiKey::Produce);
            assert_eq!(context.api_version, api_version);
            assert_eq!(context.correlation_id, 600 + api_version as i32);
        }
    }
}

#[test]
fn legacy_produce_truncations_are_errors() {
    let frame = legacy_produce_frame(1, 1);
    for cut in 0..frame.len() {
        assert!(decode_request(frame.slice(..cut)).is_err(), "cut at {cut}");
    }
}

// ---- random bodies ----

/// Field values a body builder can place wherever the version allows them.
#[derive(Debug, Clone)]
struct Fields {
    topics: Vec<(String, Vec<i32>)>,
    records: Option<Vec<u8>>,
}

fn fields() -> impl Strategy<Value = Fields> {
    let topic = (
        "[a-zA-Z0-9._-]{1,40}",
        prop::collection::vec(any::<i32>(), 0..5),
    );
    (
        prop::collection::vec(topic, 0..4),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    )
        .prop_map(|(topics, records)| Fields { topics, records })
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A body for `api_key` at `version` carrying `fields` where that version has room for them;
/// APIs without topic lists get a default body.
fn body_with(api_key: ApiKey, version: i16, fields: &Fields) -> RequestKind {
    use m::produce_request as p;
    use m::{delete_records_request as dr, fetch_request as f, list_offsets_request as lo};
    use m::{metadata_request as md, offset_for_leader_epoch_request as ole};
    let topics = &fields.topics;
    match api_key {
        ApiKey::Produce => RequestKind::Produce(
            m::ProduceRequest::default().with_topic_data(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        let data = p::TopicProduceData::default();
                        // v13 identifies topics by id only.
                        let data = if version < 13 {
                            data.with_name(name(topic))
                        } else {
                            data
                        };
                        data.with_partition_data(
                            partitions
                                .iter()
                                .map(|&index| {
                                    p::PartitionProduceData::default()
                                        .with_index(index)
                                        .with_records(fields.records.clone().map(Bytes::from))
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
        ApiKey::Fetch => RequestKind::Fetch(
            m::FetchRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        let fetch = f::FetchTopic::default();
                        let fetch = if version < 13 {
                            fetch.with_topic(name(topic))
                        } else {
                            fetch
                        };
                        fetch.with_partitions(
                            partitions
                                .iter()
                                .map(|&partition| {
                                    f::FetchPartition::default().with_partition(partition)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        ),
        ApiKey::Metadata => RequestKind::Metadata(
            m::MetadataRequest::default().with_topics(Some(
                topics
                    .iter()
                    .map(|(topic, _)| {
                        md::MetadataRequestTopic::default().with_name(Some(name(topic)))
                    })
                    .collect(),
            )),
        ),
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            m::ListOffsetsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        lo::ListOffsetsTopic::default()
                            .with_name(name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&index| {
                                        lo::ListOffsetsPartition::default()
                                            .with_partition_index(index)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            m::CreateTopicsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        m::create_topics_request::CreatableTopic::default()
                            .with_name(name(topic))
                            .with_num_partitions(partitions.len() as i32)
                    })
                    .collect(),
            ),
        ),
        ApiKey::DeleteTopics => {
            let request = m::DeleteTopicsRequest::default();
            RequestKind::DeleteTopics(if version < 6 {
                request.with_topic_names(topics.iter().map(|(topic, _)| name(topic)).collect())
            } else {
                request.with_topics(
                    topics
                        .iter()
                        .map(|(topic, _)| {
                            m::delete_topics_request::DeleteTopicState::default()
                                .with_name(Some(name(topic)))
                        })
                        .collect(),
                )
            })
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            m::DeleteRecordsRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        dr::DeleteRecordsTopic::default()
                            .with_name(name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&index| {
                                        dr::DeleteRecordsPartition::default()
                                            .with_partition_index(index)
                                            .with_offset(i64::from(index) * 3)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
            m::OffsetForLeaderEpochRequest::default().with_topics(
                topics
                    .iter()
                    .map(|(topic, partitions)| {
                        ole::OffsetForLeaderTopic::default()
                            .with_topic(name(topic))
                            .with_partitions(
                                partitions
                                    .iter()
                                    .map(|&partition| {
                                        ole::OffsetForLeaderPartition::default()
                                            .with_partition(partition)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        ApiKey::ConsumerGroupHeartbeat => {
            use m::consumer_group_heartbeat_request as cgh;
            let owned = topics
                .iter()
                .map(|(_, partitions)| {
                    cgh::TopicPartitions::default().with_partitions(partitions.clone())
                })
                .collect();
            let request = m::ConsumerGroupHeartbeatRequest::default()
                .with_member_id(StrBytes::from_static_str("member"))
                .with_member_epoch(3)
                .with_instance_id(Some(StrBytes::from_static_str("instance")))
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(topics.iter().map(|(t, _)| name(t)).collect()))
                .with_server_assignor(Some(StrBytes::from_static_str("uniform")))
                .with_topic_partitions(Some(owned));
            // The regex field exists from v1 on.
            let request = if version >= 1 {
                request.with_subscribed_topic_regex(Some(StrBytes::from_static_str("t.*")))
            } else {
                request
            };
            RequestKind::ConsumerGroupHeartbeat(request)
        }
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            m::ConsumerGroupDescribeRequest::default()
                .with_group_ids(
                    topics
                        .iter()
                        .map(|(t, _)| m::GroupId(StrBytes::from_string(t.clone())))
                        .collect(),
                )
                .with_include_authorized_operations(true),
        ),
        other => default_request_body(other).unwrap(),
    }
}

fn supported_key_and_version() -> impl Strategy<Value = (ApiKey, i16)> {
    prop::sample::select(modern_versions())
}

proptest! {
    #[test]
    fn random_bodies_round_trip(
        (api_key, version) in supported_key_and_version(),
        fields in fields(),
        correlation_id in any::<i32>(),
    ) {
        let header = request_header(api_key, version, correlation_id, "prop");
        let body = body_with(api_key, version, &fields);
        let decoded = decode_request(frame_of(&header, &body));
        prop_assert_eq!(decoded, Ok(Decoded::Request { header, body }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        (api_key, version) in supported_key_and_version(),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        // Whatever the outcome, it must be a value, not a panic or an abort.
        let _ = decode_request(raw_frame(api_key as i16, version, 1, &rest));
    }

    #[test]
    fn random_single_byte_corruption_never_panics(
        (api_key, version) in supported_key_and_version(),
        fields in fields(),
        position in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let header = request_header(api_key, version, 1, "prop");
        let mut frame = BytesMut::from(&frame_of(&header, &body_with(api_key, version, &fields))[..]);
        let at = position.index(frame.len());
        frame[at] = value;
        let _ = decode_request(frame.freeze());
    }
}
