//! Bad input from the network: every malformed frame, lying length, corrupt batch or invalid
//! request gets its defined answer (Kafka's) or a closed connection, and nothing else. After
//! each case the broker still serves a fresh client, and a topic written before the case has
//! exactly the log it had.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest, ProduceRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::IEEE;
use sluice_integration_tests::raw_client::{
    batch_layout, encode_request, fetch_request, frame, produce_request, record_batch, RawClient,
    TestRecord, OFFSET_EARLIEST, OFFSET_LATEST,
};
use sluice_integration_tests::{topic_name, Broker};

/// The broker's request size limit in these tests (`--max-request-bytes`).
const REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// How long the broker may take to close a connection it must close. Generous for a debug
/// build on a busy two-core machine, yet far below "waits for a body that never comes".
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// The pre-existing topic's per-batch limit (`max.message.bytes`), so MESSAGE_TOO_LARGE can
/// be provoked well below the request limit.
const MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// Kafka error codes the cases expect.
mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_RECORD: i16 = 87;
}

/// A broker with one topic written before any bad input, and what that topic must still hold.
struct Fixture {
    broker: Broker,
    topic: String,
    records: Vec<TestRecord>,
}

impl Fixture {
    fn start() -> Fixture {
        let limit = REQUEST_BYTES_MAX.to_string();
        let broker = Broker::start_with(&["--max-request-bytes", &limit]);
        let topic = topic_name("pre-existing");
        let mut client = RawClient::connect(&broker.bootstrap());
        let max_message = MESSAGE_BYTES_MAX.to_string();
        let created = client.create_topic(&topic, 1, &[("max.message.bytes", &max_message)]);
        assert_eq!(created, code::NONE, "create {topic}");
        let mut records = Vec::new();
        for batch_index in 0..3 {
            let batch: Vec<TestRecord> = (0..10)
                .map(|i| {
                    let n = batch_index * 10 + i;
                    TestRecord::new(
                        format!("key-{n}").as_bytes(),
                        format!("value-{n}").as_bytes(),
                    )
                })
                .collect();
            let response = client.produce(&topic, 0, -1, record_batch(&batch)).unwrap();
            assert_eq!(response.error_code, code::NONE, "{response:?}");
            assert_eq!(response.base_offset, batch_index * 10, "{response:?}");
            records.extend(batch);
        }
        let fixture = Fixture {
            broker,
            topic,
            records,
        };
        fixture.assert_healthy();
        fixture
    }

    fn client(&self) -> RawClient {
        RawClient::connect(&self.broker.bootstrap())
    }

    fn end_offset(&self) -> i64 {
        i64::try_from(self.records.len()).unwrap()
    }

    /// A fresh connection does ApiVersions, Metadata and a produce/fetch round trip, and the
    /// pre-existing topic holds exactly what it held.
    fn assert_healthy(&self) {
        let mut client = self.client();
        let versions = client.request(3, &api_versions_request());
        assert_eq!(versions.error_code, code::NONE, "{versions:?}");
        assert!(!versions.api_keys.is_empty(), "{versions:?}");
        let metadata = client.request(12, &metadata_request(&self.topic));
        assert_eq!(metadata.topics.len(), 1, "{metadata:?}");
        assert_eq!(metadata.topics[0].error_code, code::NONE, "{metadata:?}");
        assert_eq!(metadata.topics[0].partitions.len(), 1, "{metadata:?}");
        round_trip(&mut client);
        self.assert_log_unchanged(&mut client);
    }

    fn assert_log_unchanged(&self, client: &mut RawClient) {
        assert_eq!(
            client.list_offset(&self.topic, 0, OFFSET_LATEST),
            self.end_offset()
        );
        assert_eq!(client.list_offset(&self.topic, 0, OFFSET_EARLIEST), 0);
        let fetched = client.fetch_all_from(&self.topic, 0, 0);
        assert_eq!(fetched.len(), self.records.len(), "{fetched:?}");
        for (offset, (got, want)) in fetched.iter().zip(&self.records).enumerate() {
            assert_eq!(got.offset, i64::try_from(offset).unwrap(), "{got:?}");
            assert!(
                want.matches(got),
                "offset {offset}: got {got:?}, want {want:?}"
            );
        }
    }

    /// Produces `records` to the pre-existing topic and returns the partition's error code;
    /// the log must not change.
    fn produce_refused(&self, records: Bytes, acks: i16) -> i16 {
        let mut client = self.client();
        let response = client.produce(&self.topic, 0, acks, records).unwrap();
        assert_eq!(response.base_offset, -1, "{response:?}");
        self.assert_log_unchanged(&mut client);
        response.error_code
    }

    /// Sends `bytes` on a fresh connection and asserts the broker closes it.
    fn assert_closes(&self, what: &str, bytes: &[u8]) {
        let mut client = self.client();
        // A close while we are still writing shows up as a failed write: also a close.
        if client.send_raw(bytes).is_ok() {
            let started = Instant::now();
            assert!(
                client.is_closed(CLOSE_WITHIN),
                "{what}: connection not closed"
            );
            let elapsed = started.elapsed();
            assert!(
                elapsed < CLOSE_WITHIN,
                "{what}: closed only after {elapsed:?}"
            );
        }
    }
}

/// A topic created, written and read back on `client`: exact records at exact offsets.
fn round_trip(client: &mut RawClient) {
    let topic = topic_name("round-trip");
    assert_eq!(
        client.create_topic(&topic, 1, &[]),
        code::NONE,
        "create {topic}"
    );
    let batch: Vec<TestRecord> = (0..5)
        .map(|i| TestRecord::new(format!("k{i}").as_bytes(), format!("v{i}").as_bytes()))
        .collect();
    let response = client.produce(&topic, 0, -1, record_batch(&batch)).unwrap();
    assert_eq!(
        (response.error_code, response.base_offset),
        (0, 0),
        "{response:?}"
    );
    let fetched = client.fetch_all_from(&topic, 0, 0);
    assert_eq!(fetched.len(), batch.len(), "{fetched:?}");
    for (offset, (got, want)) in fetched.iter().zip(&batch).enumerate() {
        assert_eq!(got.offset, i64::try_from(offset).unwrap());
        assert!(want.matches(got), "got {got:?}, want {want:?}");
    }
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-bad-input"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
}

/// Metadata for `topic` at v4+ (auto-creation off), see [`metadata_request_v1`].
fn metadata_request(topic: &str) -> MetadataRequest {
    metadata_request_v1(topic).with_allow_auto_topic_creation(false)
}

/// Metadata for `topic` with only the fields v1 has.
fn metadata_request_v1(topic: &str) -> MetadataRequest {
    let wanted = MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))));
    MetadataRequest::default().with_topics(Some(vec![wanted]))
}

/// Request header v1 (non-flexible): key, version, correlation id, client id.
fn header_v1(api_key: i16, api_version: i16, correlation_id: i32) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i16(api_key);
    out.put_i16(api_version);
    out.put_i32(correlation_id);
    put_string(&mut out, "bad-input");
    out
}

/// Request header v2 (flexible): header v1 plus an empty tagged-field section.
fn header_v2(api_key: i16, api_version: i16, correlation_id: i32) -> BytesMut {
    let mut out = header_v1(api_key, api_version, correlation_id);
    out.put_u8(0);
    out
}

fn put_string(out: &mut BytesMut, text: &str) {
    out.put_i16(i16::try_from(text.len()).unwrap());
    out.put_slice(text.as_bytes());
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The api keys the broker advertises.
fn advertised_keys(fixture: &Fixture) -> Vec<(i16, i16, i16)> {
    let response = fixture.client().request(3, &api_versions_request());
    let keys = response.api_keys.iter();
    keys.map(|key| (key.api_key, key.min_version, key.max_version))
        .collect()
}

#[test]
fn truncated_frames_then_close_leave_the_broker_serving() {
    let fixture = Fixture::start();
    let whole = encode_request(1, 7, &metadata_request_v1(&fixture.topic));
    let cases: [(&str, &[u8]); 4] = [
        ("half a length prefix", &[0, 0]),
        (
            "prefix of 100 and 10 body bytes",
            &[0, 0, 0, 100, 0, 3, 0, 1, 0, 0, 0, 7, 0, 0],
        ),
        (
            "a whole request but its last byte",
            &whole[..whole.len() - 1],
        ),
        ("a prefix alone", &whole[..4]),
    ];
    for (what, bytes) in cases {
        let mut client = fixture.client();
        client.send_raw(bytes).unwrap();
        client.shutdown_write();
        assert!(
            client.is_closed(CLOSE_WITHIN),
            "{what}: broker keeps a half-closed connection"
        );
        fixture.assert_healthy();
    }
    // A connection stalled mid-frame must not hold up anyone else.
    let mut stalled = fixture.client();
    stalled.send_raw(&whole[..whole.len() / 2]).unwrap();
    fixture.assert_healthy();
    drop(stalled);
    fixture.assert_healthy();
}

#[test]
fn oversized_length_prefixes_close_without_allocating() {
    let fixture = Fixture::start();
    let two_mib = i32::try_from(2 * REQUEST_BYTES_MAX).unwrap();
    let just_over = i32::try_from(REQUEST_BYTES_MAX + 1).unwrap();
    let garbage = vec![0xA5u8; 64 * 1024];
    for _ in 0..40 {
        for length in [i32::MAX, two_mib, just_over] {
            let mut bytes = length.to_be_bytes().to_vec();
            bytes.extend_from_slice(&garbage);
            fixture.assert_closes(&format!("length prefix {length}"), &bytes);
        }
    }
    let rss_kib = broker_rss_kib(&fixture.broker);
    println!("broker RSS after oversized prefixes: {rss_kib} KiB");
    assert!(
        rss_kib < 100 * 1024,
        "broker RSS is {rss_kib} KiB after oversized prefixes"
    );
    fixture.assert_healthy();
}

#[test]
fn negative_and_too_short_length_prefixes_close() {
    let fixture = Fixture::start();
    for length in [-1, i32::MIN, -8] {
        let mut bytes = length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 16]);
        fixture.assert_closes(&format!("length prefix {length}"), &bytes);
    }
    // Shorter than api key + version + correlation id: not a request at all.
    for body_bytes in 0..8 {
        let body = vec![0u8; body_bytes];
        fixture.assert_closes(&format!("{body_bytes}-byte frame"), &frame(&body));
    }
    fixture.assert_healthy();
}

#[test]
fn unknown_api_keys_close() {
    let fixture = Fixture::start();
    let advertised = advertised_keys(&fixture);
    let is_advertised = |key: i16| advertised.iter().any(|(k, _, _)| *k == key);
    assert!(!is_advertised(9999) && !is_advertised(1000) && !is_advertised(-1));
    // JoinGroup (11) is a real key the broker does not serve yet; once groups exist the
    // table advertises it and this case drops out.
    let mut keys = vec![9999, 1000, -1, i16::MAX];
    if !is_advertised(11) {
        keys.push(11);
    }
    for key in keys {
        let mut request = header_v1(key, 0, 42);
        request.put_slice(&[0; 8]);
        fixture.assert_closes(&format!("api key {key}"), &frame(&request));
    }
    fixture.assert_healthy();
}

#[test]
fn unsupported_versions_of_served_keys_close() {
    let fixture = Fixture::start();
    let advertised = advertised_keys(&fixture);
    let range = |key: i16| {
        let found = advertised.iter().find(|(k, _, _)| *k == key);
        let (_, min, max) = *found.unwrap_or_else(|| panic!("key {key} not advertised"));
        (min, max)
    };
    let (fetch_min, fetch_max) = range(1);
    let (_, produce_max) = range(0);
    let (_, metadata_max) = range(3);
    let cases = [
        (1, 99),
        (1, fetch_max + 1),
        (1, fetch_min - 1),
        (3, -1),
        (3, metadata_max + 1),
        (0, produce_max + 1),
        (0, -1),
    ];
    for (key, version) in cases {
        let mut request = header_v1(key, version, 43);
        request.put_slice(&[0; 32]);
        fixture.assert_closes(&format!("api key {key} v{version}"), &frame(&request));
    }
    fixture.assert_healthy();
}

#[test]
fn api_versions_too_new_gets_a_v0_unsupported_version_answer() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    for (version, correlation_id) in [(99, 1001), (i16::MAX, 1002), (5, 1003)] {
        // A newer client's body may be anything; the broker must not parse it.
        let mut request = header_v2(18, version, correlation_id);
        request.put_slice(&[0xde, 0xad, 0xbe, 0xef, 0x01]);
        client.send_raw(&frame(&request)).unwrap();
        let mut response = client.read_response_bytes().unwrap();
        // Response header v0: the correlation id alone.
        let got = bytes::Buf::get_i32(&mut response);
        assert_eq!(got, correlation_id);
        let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
        assert_eq!(
            body.error_code,
            code::UNSUPPORTED_VERSION,
            "v{version}: {body:?}"
        );
        assert!(!body.api_keys.is_empty(), "v{version}: {body:?}");
        assert!(body
            .api_keys
            .iter()
            .any(|key| key.api_key == 18 && key.min_version == 0));
        assert!(
            response.is_empty(),
            "v{version}: {} bytes after the v0 body",
            response.len()
        );
    }
    // The connection stays usable at a supported version.
    let versions = client.request(3, &api_versions_request());
    assert_eq!(versions.error_code, code::NONE);
    fixture.assert_healthy();
}

/// One magic 0 or 1 message, hand-encoded (kafka-protocol only writes magic 2): crc, magic,
/// attributes (the codec), [timestamp,] key, value; with `offset` and `size` in front.
fn legacy_message(magic: i8, codec: i8, key: Option<&[u8]>, value: &[u8]) -> BytesMut {
    let mut message = BytesMut::new();
    message.put_i8(magic);
    message.put_i8(codec);
    if magic >= 1 {
        message.put_i64(1_700_000_000_000);
    }
    match key {
        Some(key) => {
            message.put_i32(i32::try_from(key.len()).unwrap());
            message.put_slice(key);
        }
        None => message.put_i32(-1),
    }
    message.put_i32(i32::try_from(value.len()).unwrap());
    message.put_slice(value);
    let crc = IEEE.checksum(&message);
    let mut set = BytesMut::new();
    set.put_i64(0);
    set.put_i32(i32::try_from(4 + message.len()).unwrap());
    set.put_u32(crc);
    set.put_slice(&message);
    set
}

fn legacy_message_set(magic: i8, key: &[u8], value: &[u8]) -> Bytes {
    legacy_message(magic, 0, Some(key), value).freeze()
}

/// Produce v0-v2 body: acks, timeout, one topic with one partition holding `set`.
fn legacy_produce_of(
    version: i16,
    correlation_id: i32,
    acks: i16,
    topic: &str,
    set: &[u8],
) -> BytesMut {
    let mut request = header_v1(0, version, correlation_id);
    request.put_i16(acks);
    request.put_i32(30_000);
    request.put_i32(1);
    put_string(&mut request, topic);
    request.put_i32(1);
    request.put_i32(0);
    request.put_i32(i32::try_from(set.len()).unwrap());
    request.put_slice(set);
    frame(&request)
}

/// Produce v0-v2 of one message in the format of that version (magic 0 for v0-v1, 1 for v2).
fn legacy_produce(version: i16, correlation_id: i32, acks: i16, topic: &str) -> BytesMut {
    let magic = if version >= 2 { 1 } else { 0 };
    let set = legacy_message_set(magic, b"legacy-key", b"legacy-value");
    legacy_produce_of(version, correlation_id, acks, topic, &set)
}

/// Reads a Produce v0-v2 response by hand; returns `(topic, partition, error, base_offset)`.
fn read_legacy_produce_response(response: &mut Bytes, version: i16) -> (String, i32, i16, i64) {
    use bytes::Buf;
    let _correlation_id = response.get_i32();
    assert_eq!(response.get_i32(), 1, "topic count");
    let name_bytes = usize::try_from(response.get_i16()).unwrap();
    let name = String::from_utf8(response.split_to(name_bytes).to_vec()).unwrap();
    assert_eq!(response.get_i32(), 1, "partition count");
    let partition = response.get_i32();
    let error_code = response.get_i16();
    let base_offset = response.get_i64();
    if version >= 2 {
        let _log_append_time_ms = response.get_i64();
    }
    if version >= 1 {
        let _throttle_time_ms = response.get_i32();
    }
    assert!(
        response.is_empty(),
        "v{version}: {} trailing bytes",
        response.len()
    );
    (name, partition, error_code, base_offset)
}

#[test]
fn legacy_produce_versions_are_served() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    let topic = topic_name("legacy-produce");
    assert_eq!(client.create_topic(&topic, 1, &[]), code::NONE);
    for version in 0..=2 {
        let correlation_id = 2000 + i32::from(version);
        client
            .send_raw(&legacy_produce(version, correlation_id, 1, &topic))
            .unwrap();
        let mut response = client.read_response_bytes().unwrap();
        assert_eq!(&response[..4], &correlation_id.to_be_bytes());
        let (name, partition, error_code, base_offset) =
            read_legacy_produce_response(&mut response, version);
        assert_eq!(name, topic);
        assert_eq!(
            (partition, error_code, base_offset),
            (0, code::NONE, i64::from(version))
        );
    }
    // acks=0: no response at all; the next response on the connection answers the next request.
    for version in 0..=2 {
        client
            .send_raw(&legacy_produce(version, 3000, 0, &topic))
            .unwrap();
    }
    let versions = client.request(3, &api_versions_request());
    assert_eq!(versions.error_code, code::NONE);
    assert_eq!(client.list_offset(&topic, 0, OFFSET_LATEST), 6);
    let stored = client.fetch_all_from(&topic, 0, 0);
    assert_eq!(stored.len(), 6);
    for (record, version) in stored.iter().zip([0, 1, 2, 0, 1, 2]) {
        let mut expected = TestRecord::new(b"legacy-key", b"legacy-value");
        if version < 2 {
            expected.timestamp_ms = -1; // magic 0 has no timestamp
        }
        assert!(expected.matches(record), "v{version}: {record:?}");
    }
    fixture.assert_healthy();
}

/// Corrupt old-format messages get CORRUPT_MESSAGE and nothing is written: bad CRC-32 (v0 and
/// v1), sizes that point past the set or inside a message, and compression nested inside
/// compression.
#[test]
fn malformed_legacy_messages_are_corrupt_and_write_nothing() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    let mut cases: Vec<(String, i16, BytesMut)> = Vec::new();
    for (version, magic) in [(1_i16, 0_i8), (2, 1)] {
        let good = legacy_message(magic, 0, Some(b"k"), b"v");
        let mut bad_crc = good.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x20;
        cases.push((format!("magic {magic}: bad CRC-32"), version, bad_crc));
        let mut size_past_end = good.clone();
        size_past_end[8..12].copy_from_slice(&1_000_000_i32.to_be_bytes());
        cases.push((
            format!("magic {magic}: size past the end"),
            version,
            size_past_end,
        ));
        let mut value_past_size = good.clone();
        let value_length_at = value_past_size.len() - 1 - 4;
        value_past_size[value_length_at..value_length_at + 4].copy_from_slice(&9_i32.to_be_bytes());
        cases.push((
            format!("magic {magic}: value longer than its message"),
            version,
            value_past_size,
        ));
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 3);
        cases.push((
            format!("magic {magic}: trailing partial message"),
            version,
            truncated,
        ));
        // A gzip wrapper whose only inner message is itself a gzip wrapper.
        let inner = legacy_message(magic, 1, None, &gzip(&good));
        let nested = legacy_message(magic, 1, None, &gzip(&inner));
        cases.push((
            format!("magic {magic}: nested compression"),
            version,
            nested,
        ));
        // A wrapper that claims gzip but holds garbage.
        let garbage = legacy_message(magic, 1, None, b"not gzip at all");
        cases.push((
            format!("magic {magic}: undecompressable wrapper"),
            version,
            garbage,
        ));
    }
    for (index, (what, version, set)) in cases.iter().enumerate() {
        let correlation_id = 4000 + i32::try_from(index).unwrap();
        let request = legacy_produce_of(*version, correlation_id, 1, &fixture.topic, set);
        client.send_raw(&request).unwrap();
        let mut response = client.read_response_bytes().unwrap();
        let (_, _, error_code, base_offset) = read_legacy_produce_response(&mut response, *version);
        assert_eq!(
            (error_code, base_offset),
            (code::CORRUPT_MESSAGE, -1),
            "{what}"
        );
    }
    fixture.assert_healthy();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn lying_lengths_inside_bodies_close_quickly() {
    let fixture = Fixture::start();
    let mut cases = lying_counts();
    cases.extend(lying_lengths(&fixture.topic));
    for (what, request) in cases {
        fixture.assert_closes(what, &frame(&request));
    }
    fixture.assert_healthy();
}

/// Requests whose array counts claim more elements than the frame holds, or are negative
/// where null is not allowed.
fn lying_counts() -> Vec<(&'static str, BytesMut)> {
    let mut cases = Vec::new();
    // Metadata v12 whose topics compact array claims 2^31 (and 2^32 - 2) elements.
    for claimed in [(1u32 << 31) + 1, u32::MAX] {
        let mut request = header_v2(3, 12, 1);
        put_unsigned_varint(&mut request, claimed);
        request.put_slice(&[0; 20]);
        cases.push(("metadata v12 topics count", request));
    }
    // Metadata v1 whose topics array claims i32::MAX elements.
    let mut request = header_v1(3, 1, 2);
    request.put_i32(i32::MAX);
    request.put_slice(&[0, 1, b'a']);
    cases.push(("metadata v1 topics count", request));
    // Negative counts for non-nullable arrays.
    let mut request = header_v1(19, 2, 6);
    request.put_i32(-3);
    request.put_slice(&[0; 8]);
    cases.push(("create topics v2 topics count -3", request));
    let mut request = header_v1(0, 3, 7);
    put_string(&mut request, "x"); // transactional id
    request.put_i16(1);
    request.put_i32(1000);
    request.put_i32(-1);
    cases.push(("produce v3 topics count -1", request));
    // Compact array length 0 (null) where null is not allowed.
    let mut request = header_v2(19, 5, 8);
    request.put_u8(0);
    request.put_slice(&[0; 8]);
    cases.push(("create topics v5 null topics", request));
    cases
}

/// Requests whose string or bytes lengths claim more than the frame holds, or are negative.
fn lying_lengths(topic: &str) -> Vec<(&'static str, BytesMut)> {
    let mut cases = Vec::new();
    // A client id longer than the frame.
    let mut request = BytesMut::new();
    request.put_i16(3);
    request.put_i16(1);
    request.put_i32(3);
    request.put_i16(30_000);
    request.put_slice(b"short");
    cases.push(("client id length", request));
    // A topic name longer than the frame.
    let mut request = header_v1(3, 1, 4);
    request.put_i32(1);
    request.put_i16(i16::MAX);
    request.put_slice(b"abc");
    cases.push(("topic name length", request));
    // A negative length for a non-nullable string.
    let mut request = header_v1(19, 2, 5);
    request.put_i32(1);
    request.put_i16(-5);
    request.put_slice(&[0; 16]);
    cases.push(("create topics name length -5", request));
    // A record set longer than the frame.
    let mut request = header_v1(0, 3, 9);
    request.put_i16(-1); // null transactional id
    request.put_i16(1);
    request.put_i32(1000);
    request.put_i32(1);
    put_string(&mut request, topic);
    request.put_i32(1);
    request.put_i32(0);
    request.put_i32(i32::MAX);
    request.put_slice(&[0; 61]);
    cases.push(("produce v3 record set length", request));
    cases
}

/// A valid batch of three records, to corrupt.
fn valid_batch() -> BytesMut {
    let records: Vec<TestRecord> = (0..3)
        .map(|i| {
            TestRecord::new(
                format!("bad-k{i}").as_bytes(),
                format!("bad-v{i}").as_bytes(),
            )
        })
        .collect();
    BytesMut::from(&record_batch(&records)[..])
}

fn set_batch_length(batch: &mut BytesMut, length: i32) {
    let at = batch_layout::BATCH_LENGTH;
    batch[at..at + 4].copy_from_slice(&length.to_be_bytes());
}

fn batch_length(batch: &[u8]) -> i32 {
    let at = batch_layout::BATCH_LENGTH;
    i32::from_be_bytes(batch[at..at + 4].try_into().unwrap())
}

#[test]
fn corrupt_batches_are_refused_and_leave_the_log_unchanged() {
    let fixture = Fixture::start();

    let mut flipped_payload = valid_batch();
    let last = flipped_payload.len() - 1;
    flipped_payload[last] ^= 0x01;
    let code = fixture.produce_refused(flipped_payload.freeze(), -1);
    assert_eq!(code, code::CORRUPT_MESSAGE, "payload byte flipped");

    let mut flipped_crc = valid_batch();
    flipped_crc[batch_layout::CRC] ^= 0x80;
    let code = fixture.produce_refused(flipped_crc.freeze(), 1);
    assert_eq!(code, code::CORRUPT_MESSAGE, "crc flipped");

    // batch_length lying either way. Shorter: the CRC covers the wrong bytes. Longer: the
    // batch is incomplete, which Kafka reports as INVALID_RECORD ("must have at least one
    // record batch") and a stricter check as CORRUPT_MESSAGE.
    for delta in [-10, -1, 1, 10, 1_000_000] {
        let mut lying = valid_batch();
        let length = batch_length(&lying);
        set_batch_length(&mut lying, length + delta);
        let code = fixture.produce_refused(lying.freeze(), -1);
        assert!(
            [code::CORRUPT_MESSAGE, code::INVALID_RECORD].contains(&code),
            "batch_length {delta:+}: error {code}"
        );
    }
    let mut negative = valid_batch();
    set_batch_length(&mut negative, -1);
    let code = fixture.produce_refused(negative.freeze(), -1);
    assert!(
        [code::CORRUPT_MESSAGE, code::INVALID_RECORD].contains(&code),
        "length -1: {code}"
    );

    // Magic 1 on Produce v3+: a real magic 1 message set, and a v2 batch relabelled.
    let legacy = legacy_message_set(1, b"legacy-key", b"legacy-value");
    let code = fixture.produce_refused(legacy, -1);
    assert!(
        [code::INVALID_RECORD, code::CORRUPT_MESSAGE].contains(&code),
        "magic 1 set: {code}"
    );
    let mut relabelled = valid_batch();
    relabelled[batch_layout::MAGIC] = 1;
    let code = fixture.produce_refused(relabelled.freeze(), -1);
    assert!(
        [code::INVALID_RECORD, code::CORRUPT_MESSAGE].contains(&code),
        "magic 1: {code}"
    );

    // Half a batch header.
    let truncated = valid_batch()
        .split_to(batch_layout::HEADER_BYTES / 2)
        .freeze();
    let code = fixture.produce_refused(truncated, -1);
    assert!(
        [code::CORRUPT_MESSAGE, code::INVALID_RECORD].contains(&code),
        "truncated: {code}"
    );
    fixture.assert_healthy();
}

#[test]
fn invalid_produce_requests_get_their_error_codes() {
    let fixture = Fixture::start();

    let big_value = vec![b'x'; 2 * MESSAGE_BYTES_MAX];
    let too_large = record_batch(&[TestRecord::new(b"big", &big_value)]);
    let code = fixture.produce_refused(too_large, -1);
    assert_eq!(code, code::MESSAGE_TOO_LARGE);

    for acks in [5, 2, -2, i16::MAX] {
        let code = fixture.produce_refused(valid_batch().freeze(), acks);
        assert_eq!(code, code::INVALID_REQUIRED_ACKS, "acks={acks}");
    }
    fixture.assert_healthy();
}

#[test]
fn produce_to_unknown_partitions_is_refused_per_partition() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    let unknown = topic_name("no-such-topic");
    let response = client
        .produce(&unknown, 0, -1, valid_batch().freeze())
        .unwrap();
    assert_eq!(
        response.error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );
    let response = client
        .produce(&fixture.topic, 7, -1, valid_batch().freeze())
        .unwrap();
    assert_eq!(
        response.error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );
    let response = client
        .produce(&fixture.topic, -1, -1, valid_batch().freeze())
        .unwrap();
    assert_eq!(
        response.error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );
    // Produce never creates topics, whatever auto-create says (that is Metadata's job).
    let metadata = client.request(12, &metadata_request(&unknown));
    assert_eq!(
        metadata.topics[0].error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{metadata:?}"
    );

    // Several partitions in one request: each gets its own answer.
    let mut request = produce_request(&fixture.topic, 9, -1, Some(valid_batch().freeze()));
    let mut bad_crc = valid_batch();
    bad_crc[batch_layout::CRC] ^= 1;
    let mut second = request.topic_data[0].partition_data[0].clone();
    second.index = 0;
    second.records = Some(bad_crc.freeze());
    request.topic_data[0].partition_data.push(second);
    let response = client.request::<ProduceRequest>(9, &request);
    let partitions = &response.responses[0].partition_responses;
    let mut codes: Vec<(i32, i16)> = partitions.iter().map(|p| (p.index, p.error_code)).collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            (0, code::CORRUPT_MESSAGE),
            (9, code::UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    fixture.assert_log_unchanged(&mut client);
    fixture.assert_healthy();
}

fn create_topics(client: &mut RawClient, topic: CreatableTopic) -> (i16, String) {
    let name = topic.name.0.to_string();
    let mut request = CreateTopicsRequest::default();
    request.topics.push(topic);
    request.timeout_ms = 30_000;
    let response = client.request(7, &request);
    assert_eq!(response.topics.len(), 1, "{response:?}");
    assert_eq!(response.topics[0].name.0.as_str(), name, "{response:?}");
    (response.topics[0].error_code, format!("{response:?}"))
}

fn creatable(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.to_string())))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

#[test]
fn invalid_create_topics_get_their_error_codes() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    let too_long = "a".repeat(250);
    for name in ["", ".", "..", "a/b", "a b", "ü", too_long.as_str()] {
        let (code, response) = create_topics(&mut client, creatable(name, 1, 1));
        assert_eq!(
            code,
            code::INVALID_TOPIC_EXCEPTION,
            "name {name:?}: {response}"
        );
    }
    let fresh = topic_name("create-errors");
    for partitions in [0, -5, i32::MIN] {
        let (code, response) = create_topics(&mut client, creatable(&fresh, partitions, 1));
        assert_eq!(
            code,
            code::INVALID_PARTITIONS,
            "{partitions} partitions: {response}"
        );
    }
    for factor in [3, 2, 0, -2] {
        let (code, response) = create_topics(&mut client, creatable(&fresh, 1, factor));
        assert_eq!(
            code,
            code::INVALID_REPLICATION_FACTOR,
            "factor {factor}: {response}"
        );
    }
    let (code, response) = create_topics(&mut client, creatable(&fixture.topic, 1, 1));
    assert_eq!(code, code::TOPIC_ALREADY_EXISTS, "{response}");
    for (config, value) in [("retention.ms", "not-a-number"), ("no.such.config", "1")] {
        let with_config = client.create_topic(&fresh, 1, &[(config, value)]);
        assert_eq!(with_config, code::INVALID_CONFIG, "{config}={value}");
    }
    // None of the refused requests created anything.
    let metadata = client.request(12, &metadata_request(&fresh));
    assert_eq!(
        metadata.topics[0].error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{metadata:?}"
    );
    fixture.assert_healthy();
}

#[test]
fn fetch_outside_the_log_is_out_of_range() {
    let fixture = Fixture::start();
    let mut client = fixture.client();
    let end = fixture.end_offset();
    for offset in [end + 1, end + 1000, i64::MAX, -1, i64::MIN] {
        let data = client.fetch(&fixture.topic, 0, offset);
        assert_eq!(
            data.error_code,
            code::OFFSET_OUT_OF_RANGE,
            "offset {offset}: {data:?}"
        );
        let records = data.records.unwrap_or_default();
        assert!(
            records.is_empty(),
            "offset {offset}: {} record bytes",
            records.len()
        );
    }
    // At the end exactly: no error, no records, the high watermark.
    let data = client.fetch(&fixture.topic, 0, end);
    assert_eq!(data.error_code, code::NONE, "{data:?}");
    assert_eq!(data.high_watermark, end, "{data:?}");
    assert!(data.records.unwrap_or_default().is_empty());
    // An unknown topic in a fetch is an error for that topic, not for the connection.
    let request = fetch_request(&topic_name("missing"), 0, 0);
    let response = client.request(12, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(
        partition.error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );
    fixture.assert_healthy();
}

/// xorshift64*: a seeded generator, so a failing run is repeated by its printed seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        assert!(bound > 0);
        (self.next_u64() % bound as u64) as usize
    }

    fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next_u64() as u8).collect()
    }

    /// Between 0 and `count_max` random bytes.
    fn bytes_up_to(&mut self, count_max: usize) -> Vec<u8> {
        let count = self.below(count_max + 1);
        self.bytes(count)
    }
}

/// `SLUICE_FUZZ_SEED` when set, else the clock; printed so a failure can be replayed.
fn seed(what: &str) -> u64 {
    let seed = match std::env::var("SLUICE_FUZZ_SEED") {
        Ok(text) => text.parse().expect("SLUICE_FUZZ_SEED is a u64"),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        }
    };
    println!("{what}: SLUICE_FUZZ_SEED={seed}");
    seed
}

#[test]
fn garbage_connections_do_not_disturb_a_good_client() {
    const GARBAGE_THREADS: usize = 6;
    let fixture = Fixture::start();
    let seed = seed("garbage_connections");
    let stop = Arc::new(AtomicBool::new(false));
    let garbage_sent = Arc::new(AtomicUsize::new(0));
    let address = fixture.broker.bootstrap();
    let threads: Vec<_> = (0..GARBAGE_THREADS)
        .map(|thread| {
            let (stop, sent, address) = (stop.clone(), garbage_sent.clone(), address.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed.wrapping_add(thread as u64));
                while !stop.load(Ordering::Relaxed) {
                    send_garbage(&address, &mut rng);
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let mut client = fixture.client();
    let topic = topic_name("good-client");
    assert_eq!(client.create_topic(&topic, 1, &[]), code::NONE);
    let mut produced = Vec::new();
    for batch_index in 0..40 {
        let batch: Vec<TestRecord> = (0..10)
            .map(|i| {
                let n = batch_index * 10 + i;
                TestRecord::new(
                    format!("good-{n}").as_bytes(),
                    &vec![n as u8; n as usize % 300],
                )
            })
            .collect();
        let response = client.produce(&topic, 0, -1, record_batch(&batch)).unwrap();
        assert_eq!(
            (response.error_code, response.base_offset),
            (0, batch_index * 10)
        );
        produced.extend(batch);
        if batch_index % 10 == 9 {
            check_exact(&mut client, &topic, &produced);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("garbage thread panicked");
    }
    let sent = garbage_sent.load(Ordering::Relaxed);
    println!("{sent} garbage connections");
    assert!(
        sent >= GARBAGE_THREADS,
        "only {sent} garbage connections ran"
    );
    check_exact(&mut client, &topic, &produced);
    fixture.assert_healthy();
}

/// One connection of garbage: random bytes behind a random (often lying) prefix, then close.
fn send_garbage(address: &str, rng: &mut Rng) {
    let mut client = RawClient::connect(address);
    let mut body = rng.bytes_up_to(4096);
    body.push(0);
    let bytes = match rng.below(3) {
        0 => body,
        1 => frame(&body).to_vec(),
        _ => {
            let mut lying = (rng.next_u64() as i32).to_be_bytes().to_vec();
            lying.extend_from_slice(&body);
            lying
        }
    };
    if client.send_raw(&bytes).is_ok() && rng.below(2) == 0 {
        // Sometimes wait for the verdict, sometimes hang up first.
        client.is_closed(Duration::from_millis(200));
    }
}

fn check_exact(client: &mut RawClient, topic: &str, produced: &[TestRecord]) {
    let fetched = client.fetch_all_from(topic, 0, 0);
    assert_eq!(fetched.len(), produced.len());
    for (offset, (got, want)) in fetched.iter().zip(produced).enumerate() {
        assert_eq!(got.offset, i64::try_from(offset).unwrap());
        assert!(
            want.matches(got),
            "offset {offset}: got {got:?}, want {want:?}"
        );
    }
}

/// Correlation id of the ApiVersions request sent after each random frame.
const SENTINEL_CORRELATION_ID: i32 = 0x5e_47_1e_10;

#[test]
fn random_frames_get_an_answer_or_a_close() {
    const FRAMES: usize = 1000;
    let fixture = Fixture::start();
    let seed = seed("random_frames");
    let mut rng = Rng::new(seed);
    let advertised = advertised_keys(&fixture);
    let bases = mutation_bases(&topic_name("fuzz"));
    let (mut answered, mut closed) = (0, 0);
    for index in 0..FRAMES {
        let payload = match rng.below(4) {
            0 => rng.bytes_up_to(64),
            1 => random_body_for_a_served_key(&mut rng, &advertised),
            2 => mutated(&mut rng, &bases),
            _ => truncated(&mut rng, &bases),
        };
        match answer_or_close(&fixture, &payload) {
            Ok(true) => answered += 1,
            Ok(false) => closed += 1,
            Err(problem) => panic!(
                "frame {index} (seed {seed}): {problem}; payload {}",
                hex(&payload)
            ),
        }
    }
    println!("{answered} frames answered, {closed} closed");
    assert_eq!(answered + closed, FRAMES);
    fixture.assert_healthy();
}

/// Sends `payload` as a frame, then an ApiVersions request. `Ok(true)`: the ApiVersions
/// answer came back (after at most one answer to the payload); `Ok(false)`: the broker
/// closed the connection; `Err`: anything else (silence, garbage, extra answers).
fn answer_or_close(fixture: &Fixture, payload: &[u8]) -> Result<bool, String> {
    let mut client = fixture.client();
    let mut bytes = frame(payload);
    bytes.extend_from_slice(&encode_request(
        0,
        SENTINEL_CORRELATION_ID,
        &ApiVersionsRequest::default(),
    ));
    if client.send_raw(&bytes).is_err() {
        return Ok(false);
    }
    for _ in 0..2 {
        match client.read_response_bytes() {
            Ok(response) if response.len() < 4 => {
                return Err(format!("{}-byte response", response.len()))
            }
            Ok(response) if response[..4] == SENTINEL_CORRELATION_ID.to_be_bytes() => {
                return Ok(true)
            }
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer and no close".to_string())
            }
            Err(_) => return Ok(false),
        }
    }
    Err("more than one answer to one frame".to_string())
}

/// A fixed header for a served key at a version near its range, then random bytes.
fn random_body_for_a_served_key(rng: &mut Rng, advertised: &[(i16, i16, i16)]) -> Vec<u8> {
    let (key, min, max) = advertised[rng.below(advertised.len())];
    let span = usize::try_from(max - min).unwrap() + 3;
    let version = min - 1 + i16::try_from(rng.below(span)).unwrap();
    let mut payload = if rng.below(2) == 0 {
        header_v1(key, version, rng.next_u64() as i32)
    } else {
        header_v2(key, version, rng.next_u64() as i32)
    };
    payload.extend_from_slice(&rng.bytes_up_to(256));
    payload.to_vec()
}

/// Valid requests (without prefix) to mutate. Nothing that creates topics: a flipped byte
/// in a partition count would ask for millions of partitions, which Kafka would also try.
fn mutation_bases(topic: &str) -> Vec<Vec<u8>> {
    let without_prefix = |frame: BytesMut| frame[4..].to_vec();
    let records = record_batch(&[TestRecord::new(b"fuzz-key", b"fuzz-value")]);
    let fetch = fetch_request(topic, 0, 0);
    vec![
        without_prefix(encode_request(3, 1, &api_versions_request())),
        without_prefix(encode_request(12, 2, &metadata_request(topic))),
        without_prefix(encode_request(1, 3, &metadata_request_v1(topic))),
        without_prefix(encode_request(
            9,
            4,
            &produce_request(topic, 0, 1, Some(records.clone())),
        )),
        without_prefix(encode_request(
            3,
            5,
            &produce_request(topic, 0, -1, Some(records)),
        )),
        without_prefix(encode_request(12, 6, &fetch)),
        without_prefix(encode_request(4, 7, &fetch)),
    ]
}

/// A base request with one byte replaced.
fn mutated(rng: &mut Rng, bases: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = bases[rng.below(bases.len())].clone();
    let at = rng.below(payload.len());
    payload[at] = rng.next_u64() as u8;
    payload
}

/// A base request cut short (the frame's prefix says the shorter length).
fn truncated(rng: &mut Rng, bases: &[Vec<u8>]) -> Vec<u8> {
    let payload = &bases[rng.below(bases.len())];
    payload[..rng.below(payload.len())].to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The broker's resident memory, from `/proc/<pid>/status`.
fn broker_rss_kib(broker: &Broker) -> u64 {
    let pid = broker_pid(broker);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib = line.split_whitespace().nth(1).expect("VmRSS value");
    kib.parse().expect("VmRSS is a number")
}

/// The broker's pid: the process whose command line holds `--data-dir <its data dir>` (the
/// harness does not expose the child's pid).
fn broker_pid(broker: &Broker) -> u32 {
    let data_dir = broker.data_dir().as_os_str().as_encoded_bytes().to_vec();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&byte| byte == 0).collect();
        let has_data_dir = args
            .windows(2)
            .any(|pair| pair[0] == b"--data-dir" && pair[1] == data_dir.as_slice());
        if has_data_dir {
            found.push(pid);
        }
    }
    assert_eq!(
        found.len(),
        1,
        "processes running on {:?}: {found:?}",
        broker.data_dir()
    );
    found[0]
}
