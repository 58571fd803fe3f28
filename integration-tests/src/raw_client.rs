//! [`RawClient`]: a tiny blocking Kafka client over [`std::net::TcpStream`], for tests that
//! need to send exactly the bytes they choose (malformed frames, lying lengths, corrupt
//! batches) and read exactly what comes back, which no real client library allows.
//!
//! Requests are encoded with the `kafka-protocol` crate (request header + body behind an
//! `i32` length prefix) and responses decoded with it. Every socket has read and write
//! timeouts, so a test can fail but never hang.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// Read and write timeout of every socket: far above any healthy response time on a busy
/// two-core machine, far below a test runner's patience.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest response frame accepted; a larger length prefix is a broker bug, not a reason to
/// allocate gigabytes.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Size of the `i32` length prefix in front of every request and response.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// `client_id` sent in every request header.
pub const CLIENT_ID: &str = "sluice-raw-client";

/// ListOffsets timestamps with a special meaning.
pub const OFFSET_LATEST: i64 = -1;
pub const OFFSET_EARLIEST: i64 = -2;

/// Versions the typed helpers speak: the newest that still name topics by name.
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const CREATE_TOPICS_VERSION: i16 = 7;

/// Bytes one fetch may return; the tests' topics are small.
const FETCH_BYTES_MAX: i32 = 16 * 1024 * 1024;

/// Fetches one partition's log may take before [`RawClient::fetch_all`] gives up.
const FETCH_ROUNDS_MAX: usize = 10_000;

/// Poll step while waiting for a close; short so `is_closed` returns soon after the close.
const CLOSE_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One blocking connection to a broker.
pub struct RawClient {
    stream: TcpStream,
    correlation_id_next: i32,
}

impl RawClient {
    /// Connects to `address` (`"127.0.0.1:PORT"`) with [`IO_TIMEOUT`] on every operation.
    pub fn connect(address: &str) -> RawClient {
        let address: std::net::SocketAddr = address
            .parse()
            .unwrap_or_else(|error| panic!("address {address}: {error}"));
        let stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)
            .unwrap_or_else(|error| panic!("connect to {address}: {error}"));
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("set write timeout");
        stream.set_nodelay(true).expect("set nodelay");
        RawClient {
            stream,
            correlation_id_next: 1,
        }
    }

    /// Like [`RawClient::connect`], but a refused or failed connection is an error, for
    /// polling nodes that may be down.
    pub fn try_connect(address: &str) -> std::io::Result<RawClient> {
        let address: std::net::SocketAddr = address
            .parse()
            .map_err(|error| invalid_data(format!("address {address}: {error}")))?;
        let stream = TcpStream::connect_timeout(&address, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RawClient {
            stream,
            correlation_id_next: 1,
        })
    }

    /// Like [`RawClient::request`], but any failure is an error instead of a panic.
    pub fn try_request<R: Request>(
        &mut self,
        version: i16,
        body: &R,
    ) -> std::io::Result<R::Response> {
        let correlation_id = self.send_request(version, body)?;
        self.read_response::<R>(version, correlation_id)
    }

    /// A correlation id not used before on this connection.
    pub fn next_correlation_id(&mut self) -> i32 {
        let id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        id
    }

    /// Writes `bytes` as they are: no framing, no checks.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes the writing half, so the broker reads EOF after what was sent.
    pub fn shutdown_write(&mut self) {
        // The broker may have closed already; then there is nothing left to shut down.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Frames and sends `body` at `version`; returns the correlation id used.
    pub fn send_request<R: Request>(&mut self, version: i16, body: &R) -> std::io::Result<i32> {
        let correlation_id = self.next_correlation_id();
        let frame = encode_request(version, correlation_id, body);
        self.send_raw(&frame)?;
        Ok(correlation_id)
    }

    /// Reads one response frame and returns it without its length prefix.
    pub fn read_response_bytes(&mut self) -> std::io::Result<Bytes> {
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        self.stream.read_exact(&mut prefix)?;
        let length = i32::from_be_bytes(prefix);
        let frame_bytes = usize::try_from(length)
            .ok()
            .filter(|&bytes| bytes <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| invalid_data(format!("response length prefix {length}")))?;
        let mut frame = vec![0u8; frame_bytes];
        self.stream.read_exact(&mut frame)?;
        Ok(Bytes::from(frame))
    }

    /// Reads one response and decodes it as the answer to `R` at `version`, checking that it
    /// carries `correlation_id`.
    pub fn read_response<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> std::io::Result<R::Response> {
        let mut frame = self.read_response_bytes()?;
        decode_response::<R>(&mut frame, version, correlation_id)
    }

    /// Sends `body` and returns the decoded response; panics on any failure (for tests).
    pub fn request<R: Request>(&mut self, version: i16, body: &R) -> R::Response {
        let correlation_id = self
            .send_request(version, body)
            .unwrap_or_else(|error| panic!("send api key {} v{version}: {error}", R::KEY));
        self.read_response::<R>(version, correlation_id)
            .unwrap_or_else(|error| panic!("response to api key {} v{version}: {error}", R::KEY))
    }

    /// Whether the broker closes the connection within `within`: a read returns EOF or a
    /// reset. Response bytes that arrive first are read and dropped; a connection that is
    /// still open at the deadline is not closed.
    pub fn is_closed(&mut self, within: Duration) -> bool {
        let started = Instant::now();
        let mut scratch = [0u8; 64 * 1024];
        let closed = loop {
            let left = within.saturating_sub(started.elapsed());
            if left.is_zero() {
                break false;
            }
            let timeout = left.min(CLOSE_POLL_INTERVAL).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(timeout))
                .expect("set read timeout");
            match self.stream.read(&mut scratch) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(error) if is_timeout(&error) => continue,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                // Reset, aborted, broken pipe: the broker is gone from this connection.
                Err(_) => break true,
            }
        };
        self.stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("set read timeout");
        closed
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn invalid_data(message: String) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, message)
}

/// A whole request frame: length prefix, request header (v1 or v2 as the api's version
/// wants), body.
pub fn encode_request<R: Request>(version: i16, correlation_id: i32, body: &R) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut payload = BytesMut::new();
    header
        .encode(&mut payload, R::header_version(version))
        .unwrap_or_else(|error| panic!("encode header of api key {} v{version}: {error}", R::KEY));
    body.encode(&mut payload, version)
        .unwrap_or_else(|error| panic!("encode api key {} v{version}: {error}", R::KEY));
    frame(&payload)
}

/// `payload` behind its `i32` length prefix.
pub fn frame(payload: &[u8]) -> BytesMut {
    let length = i32::try_from(payload.len()).expect("frame fits an i32 length");
    let mut out = BytesMut::with_capacity(LENGTH_PREFIX_BYTES + payload.len());
    out.put_i32(length);
    out.put_slice(payload);
    out
}

/// Decodes a response frame (without prefix) to request `R` at `version`.
pub fn decode_response<R: Request>(
    frame: &mut Bytes,
    version: i16,
    correlation_id: i32,
) -> std::io::Result<R::Response> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(frame, header_version)
        .map_err(|error| invalid_data(format!("response header: {error:#}")))?;
    if header.correlation_id != correlation_id {
        let got = header.correlation_id;
        return Err(invalid_data(format!(
            "correlation id {got}, expected {correlation_id}"
        )));
    }
    <R::Response as Decodable>::decode(frame, version)
        .map_err(|error| invalid_data(format!("api key {} v{version} response: {error:#}", R::KEY)))
}

/// One record of a test batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

impl TestRecord {
    /// A record with `key` and `value`, no headers, a fixed creation time.
    pub fn new(key: &[u8], value: &[u8]) -> TestRecord {
        TestRecord {
            key: Some(Bytes::copy_from_slice(key)),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
            timestamp_ms: 1_700_000_000_000,
        }
    }

    /// Whether `record` (as fetched) has this record's content.
    pub fn matches(&self, record: &Record) -> bool {
        let headers: Vec<(String, Option<Bytes>)> = record
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        record.key == self.key
            && record.value == self.value
            && headers == self.headers
            && record.timestamp == self.timestamp_ms
    }
}

/// One uncompressed magic 2 batch holding `records`, as a producer without idempotence
/// sends it (base offset 0, offset deltas 0, 1, 2, ...).
pub fn record_batch(records: &[TestRecord]) -> Bytes {
    record_batch_compressed(records, Compression::None)
}

/// Like [`record_batch`], compressed with `compression`.
pub fn record_batch_compressed(records: &[TestRecord], compression: Compression) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let records: Vec<Record> = records.iter().enumerate().map(to_record).collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode record batch");
    out.freeze()
}

fn to_record((index, record): (usize, &TestRecord)) -> Record {
    let mut encoded = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: NO_PRODUCER_ID,
        producer_epoch: NO_PRODUCER_EPOCH,
        timestamp_type: TimestampType::Creation,
        offset: i64::try_from(index).expect("index fits i64"),
        sequence: NO_SEQUENCE,
        timestamp: record.timestamp_ms,
        key: record.key.clone(),
        value: record.value.clone(),
        headers: Default::default(),
    };
    for (name, value) in &record.headers {
        let previous = encoded
            .headers
            .insert(StrBytes::from_string(name.clone()), value.clone());
        assert!(
            previous.is_none(),
            "duplicate header {name}: the encoder keeps one per name"
        );
    }
    encoded
}

/// Byte offsets inside a magic 2 batch header (Kafka's DefaultRecordBatch).
pub mod batch_layout {
    pub const BATCH_LENGTH: usize = 8;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    /// Bytes before the records.
    pub const HEADER_BYTES: usize = 61;
    /// `base_offset` + `batch_length`: the bytes not counted by `batch_length`.
    pub const LOG_OVERHEAD_BYTES: usize = 12;
}

/// Every record in the whole batches of `records` (a fetch response's record set). A partial
/// batch at the end, which a broker may return when it hits a size limit, is ignored.
pub fn decode_records(records: &Bytes) -> Vec<Record> {
    let mut decoded = Vec::new();
    let mut position = 0;
    while let Some(batch_bytes) = whole_batch_bytes(&records[position..]) {
        let mut batch = records.slice(position..position + batch_bytes);
        let set = RecordBatchDecoder::decode(&mut batch)
            .unwrap_or_else(|error| panic!("decode batch at byte {position}: {error:#}"));
        decoded.extend(set.records);
        position += batch_bytes;
    }
    decoded
}

/// Length of the whole batch at the start of `bytes`, if all of it is there.
fn whole_batch_bytes(bytes: &[u8]) -> Option<usize> {
    use batch_layout::{BATCH_LENGTH, LOG_OVERHEAD_BYTES};
    let length_field = bytes.get(BATCH_LENGTH..LOG_OVERHEAD_BYTES)?;
    let length = i32::from_be_bytes(length_field.try_into().ok()?);
    let total = LOG_OVERHEAD_BYTES + usize::try_from(length).ok()?;
    (total <= bytes.len()).then_some(total)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// FindCoordinator v4+ (batched keys).
pub const FIND_COORDINATOR_VERSION: i16 = 4;

/// Typed requests the tests need often, at the versions above.
impl RawClient {
    /// FindCoordinator for consumer groups, batched; one entry per group, in order.
    pub fn find_group_coordinators(
        &mut self,
        groups: &[&str],
    ) -> Vec<kafka_protocol::messages::find_coordinator_response::Coordinator> {
        let mut request = kafka_protocol::messages::FindCoordinatorRequest::default();
        request.key_type = 0;
        request.coordinator_keys = groups
            .iter()
            .map(|group| StrBytes::from_string(group.to_string()))
            .collect();
        let response = self.request(FIND_COORDINATOR_VERSION, &request);
        assert_eq!(response.coordinators.len(), groups.len(), "{response:?}");
        response.coordinators
    }

    /// Asks FindCoordinator for `groups` until each is answered without error (the broker
    /// creates `__consumer_offsets` on the first ask); returns each group's coordinator id.
    pub fn wait_group_coordinators(&mut self, groups: &[&str], within: Duration) -> Vec<i32> {
        let deadline = Instant::now() + within;
        loop {
            let found = self.find_group_coordinators(groups);
            if found.iter().all(|c| c.error_code == 0) {
                return found.iter().map(|c| c.node_id.0).collect();
            }
            assert!(Instant::now() < deadline, "no coordinator: {found:?}");
            std::thread::sleep(CLOSE_POLL_INTERVAL);
        }
    }

    /// CreateTopics for one topic; returns its error code (0 on success).
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
        self.create_topic_replicated(name, partitions, 1, configs)
    }

    /// CreateTopics with a replication factor; the topic's error code.
    pub fn create_topic_replicated(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) -> i16 {
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = partitions;
        topic.replication_factor = replication_factor;
        for (config_name, value) in configs {
            let mut config = CreatableTopicConfig::default();
            config.name = StrBytes::from_string(config_name.to_string());
            config.value = Some(StrBytes::from_string(value.to_string()));
            topic.configs.push(config);
        }
        let mut request = CreateTopicsRequest::default();
        request.topics.push(topic);
        request.timeout_ms = 30_000;
        let response = self.request(CREATE_TOPICS_VERSION, &request);
        assert_eq!(response.topics.len(), 1, "{response:?}");
        response.topics[0].error_code
    }

    /// Produce one record set to one partition; the partition's response (`None` for acks 0,
    /// after checking the broker sends nothing).
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        records: Bytes,
    ) -> Option<PartitionProduceResponse> {
        let request = produce_request(topic, partition, acks, Some(records));
        if acks == 0 {
            self.send_request(PRODUCE_VERSION, &request)
                .expect("send produce");
            return None;
        }
        let response = self.request(PRODUCE_VERSION, &request);
        assert_eq!(response.responses.len(), 1, "{response:?}");
        let topic_response = &response.responses[0];
        assert_eq!(topic_response.name.0.as_str(), topic, "{response:?}");
        assert_eq!(topic_response.partition_responses.len(), 1, "{response:?}");
        let partition_response = topic_response.partition_responses[0].clone();
        assert_eq!(partition_response.index, partition, "{response:?}");
        Some(partition_response)
    }

    /// One Fetch of one partition from `offset`, without waiting for new data.
    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> PartitionData {
        let request = fetch_request(topic, partition, offset);
        let response = self.request(FETCH_VERSION, &request);
        assert_eq!(response.error_code, 0, "{response:?}");
        assert_eq!(response.responses.len(), 1, "{response:?}");
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), 1, "{response:?}");
        assert_eq!(partitions[0].partition_index, partition, "{response:?}");
        partitions[0].clone()
    }

    /// Every record from `offset` to the high watermark, with its offset; panics on a fetch
    /// error.
    pub fn fetch_all_from(&mut self, topic: &str, partition: i32, offset: i64) -> Vec<Record> {
        let mut records: Vec<Record> = Vec::new();
        let mut next = offset;
        for _ in 0..FETCH_ROUNDS_MAX {
            let data = self.fetch(topic, partition, next);
            assert_eq!(
                data.error_code, 0,
                "fetch {topic}/{partition} at {next}: {data:?}"
            );
            if next >= data.high_watermark {
                return records;
            }
            let batch = data.records.clone().unwrap_or_default();
            let fetched = decode_records(&batch);
            let fetched: Vec<Record> = fetched.into_iter().filter(|r| r.offset >= next).collect();
            let Some(last) = fetched.last() else {
                panic!("fetch {topic}/{partition} at {next} below {data:?} returned no record");
            };
            next = last.offset + 1;
            records.extend(fetched);
        }
        panic!("fetch {topic}/{partition} did not reach the high watermark in {FETCH_ROUNDS_MAX} rounds")
    }

    /// ListOffsets for one partition at `timestamp` ([`OFFSET_LATEST`], [`OFFSET_EARLIEST`]
    /// or a time); panics on an error code.
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> i64 {
        let mut wanted = ListOffsetsPartition::default();
        wanted.partition_index = partition;
        wanted.timestamp = timestamp;
        wanted.current_leader_epoch = -1;
        let mut list_topic = ListOffsetsTopic::default();
        list_topic.name = topic_name(topic);
        list_topic.partitions.push(wanted);
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics.push(list_topic);
        let response = self.request(LIST_OFFSETS_VERSION, &request);
        assert_eq!(response.topics.len(), 1, "{response:?}");
        let partitions = &response.topics[0].partitions;
        assert_eq!(partitions.len(), 1, "{response:?}");
        assert_eq!(partitions[0].error_code, 0, "{response:?}");
        partitions[0].offset
    }
}

/// A Produce request for one partition (`records: None` is a null record set).
pub fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    records: Option<Bytes>,
) -> ProduceRequest {
    let mut partition_data = PartitionProduceData::default();
    partition_data.index = partition;
    partition_data.records = records;
    let mut topic_data = TopicProduceData::default();
    topic_data.name = topic_name(topic);
    topic_data.partition_data.push(partition_data);
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    request.topic_data.push(topic_data);
    request
}

/// A Fetch of one partition from `offset` that returns at once (no wait, no minimum bytes).
pub fn fetch_request(topic: &str, partition: i32, offset: i64) -> FetchRequest {
    let mut wanted = FetchPartition::default();
    wanted.partition = partition;
    wanted.fetch_offset = offset;
    wanted.partition_max_bytes = FETCH_BYTES_MAX;
    wanted.current_leader_epoch = -1;
    wanted.last_fetched_epoch = -1;
    wanted.log_start_offset = -1;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = topic_name(topic);
    fetch_topic.partitions.push(wanted);
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 0;
    request.min_bytes = 0;
    request.max_bytes = FETCH_BYTES_MAX;
    request.session_epoch = -1;
    request.topics.push(fetch_topic);
    request
}

/// InitProducerId version the idempotence helpers speak (v3+ carry producer id and epoch).
pub const INIT_PRODUCER_ID_VERSION: i16 = 4;

/// What InitProducerId answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdGrant {
    pub error_code: i16,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

impl RawClient {
    /// InitProducerId without a transactional id, passing `producer_id`/`producer_epoch`
    /// (-1/-1 for a new producer, as a client starting up sends).
    pub fn init_producer_id(&mut self, producer_id: i64, producer_epoch: i16) -> ProducerIdGrant {
        let mut request = kafka_protocol::messages::InitProducerIdRequest::default();
        request.transactional_id = None;
        request.transaction_timeout_ms = 60_000;
        request.producer_id = kafka_protocol::messages::ProducerId(producer_id);
        request.producer_epoch = producer_epoch;
        let response = self.request(INIT_PRODUCER_ID_VERSION, &request);
        ProducerIdGrant {
            error_code: response.error_code,
            producer_id: response.producer_id.0,
            producer_epoch: response.producer_epoch,
        }
    }
}

/// Like [`record_batch`], as an idempotent producer sends it: `producer_id`, `producer_epoch`
/// and sequences `base_sequence`, `base_sequence + 1`, … (wrapping at `i32::MAX` as Kafka's).
pub fn idempotent_record_batch(
    records: &[TestRecord],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Bytes {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let mut encoded = to_record((index, record));
            encoded.producer_id = producer_id;
            encoded.producer_epoch = producer_epoch;
            let delta = i32::try_from(index).expect("index fits i32");
            encoded.sequence = if base_sequence > i32::MAX - delta {
                delta - (i32::MAX - base_sequence) - 1
            } else {
                base_sequence + delta
            };
            encoded
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode record batch");
    out.freeze()
}
