//! The scenario's steps over rdkafka: `AdminClient` for topics and configs, `FutureProducer`
//! for records, `BaseConsumer` for assign, subscribe and offsets.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};

/// Every feature, in the order they run (later ones read topics earlier ones wrote).
pub const FEATURES: [&str; 14] = [
    "admin_create_topics",
    "admin_describe_topics",
    "admin_describe_configs",
    "produce_none",
    "produce_gzip",
    "produce_snappy",
    "produce_lz4",
    "produce_zstd",
    "headers_timestamps",
    "consume_assign",
    "idempotent_produce",
    "consume_group",
    "commit_fetch_offsets",
    "admin_delete_topics",
];

const RECORD_COUNT: i64 = 20;
const GROUP_PARTITIONS: i32 = 2;
const ADMIN_PARTITIONS: i32 = 3;
const RETENTION_MS: &str = "86400000";
const ASSIGN_OFFSET: i64 = 12;
/// What commit_fetch_offsets commits and must read back: (partition, offset).
const COMMITTED: [(i32, i64); 2] = [(0, 7), (1, 3)];
/// How long one blocking client call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a consume loop may wait for its records.
const CONSUME_DURATION_MAX: Duration = Duration::from_secs(50);

/// One record as produced and as it must be consumed.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Record {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp_ms: i64,
}

fn make_record(index: i64, tag: &str, base_ms: i64) -> Record {
    let byte = u8::try_from(index).expect("record index fits a byte");
    Record {
        partition: 0,
        offset: index,
        key: format!("key-{index}").into_bytes(),
        value: format!("value-{index}-{tag}").into_bytes(),
        headers: vec![
            ("index".into(), index.to_string().into_bytes()),
            ("dup".into(), b"first".to_vec()),
            ("dup".into(), b"second".to_vec()),
            ("bin".into(), vec![0, 255, byte]),
        ],
        timestamp_ms: base_ms + index * 1000,
    }
}

fn make_records(tag: &str, base_ms: i64) -> Vec<Record> {
    (0..RECORD_COUNT)
        .map(|index| make_record(index, tag, base_ms))
        .collect()
}

fn check_exact(expected: &[Record], got: &[Record]) -> anyhow::Result<()> {
    ensure!(
        got.len() == expected.len(),
        "consumed {} records, expected {}",
        got.len(),
        expected.len()
    );
    for (want, record) in expected.iter().zip(got) {
        ensure!(want == record, "expected {want:?}, got {record:?}");
    }
    Ok(())
}

pub struct Scenario {
    bootstrap: String,
    prefix: String,
    base_ms: i64,
    admin: AdminClient<DefaultClientContext>,
}

impl Scenario {
    pub fn new(bootstrap: String, prefix: String) -> anyhow::Result<Scenario> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
        // A whole second an hour ago: exact, in the past and well inside retention.
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let base_ms = (i64::try_from(now_s)? - 3600) * 1000;
        Ok(Scenario {
            bootstrap,
            prefix,
            base_ms,
            admin,
        })
    }

    pub async fn run(&self, feature: &str) -> anyhow::Result<String> {
        match feature {
            "admin_create_topics" => self.create_topics().await,
            "admin_describe_topics" => self.describe_topics(),
            "admin_describe_configs" => self.describe_configs().await,
            "headers_timestamps" => self.headers_timestamps(),
            "consume_assign" => self.consume_assign(),
            "idempotent_produce" => self.idempotent().await,
            "consume_group" => self.consume_group().await,
            "commit_fetch_offsets" => self.commit_fetch_offsets(),
            "admin_delete_topics" => self.delete_topics().await,
            _ => match feature.strip_prefix("produce_") {
                Some(codec) => self.round_trip(codec).await,
                None => bail!("unknown feature {feature}"),
            },
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    async fn create_topics(&self) -> anyhow::Result<String> {
        let mut names: Vec<String> = ["none", "gzip", "snappy", "lz4", "zstd", "idempotent"]
            .iter()
            .map(|name| self.topic(name))
            .collect();
        names.push(self.topic("group"));
        names.push(self.topic("admin"));
        let mut topics: Vec<NewTopic> = names[..6]
            .iter()
            .map(|name| NewTopic::new(name, 1, TopicReplication::Fixed(1)))
            .collect();
        topics.push(NewTopic::new(
            &names[6],
            GROUP_PARTITIONS,
            TopicReplication::Fixed(1),
        ));
        topics.push(
            NewTopic::new(&names[7], ADMIN_PARTITIONS, TopicReplication::Fixed(1))
                .set("retention.ms", RETENTION_MS),
        );
        let results = self
            .admin
            .create_topics(&topics, &AdminOptions::new())
            .await?;
        for result in &results {
            if let Err((name, code)) = result {
                bail!("create {name}: {code:?}");
            }
        }
        Ok(format!("{} topics", results.len()))
    }

    fn describe_topics(&self) -> anyhow::Result<String> {
        let topic = self.topic("admin");
        let consumer: BaseConsumer = self.config().create()?;
        let metadata = consumer.fetch_metadata(Some(&topic), CALL_TIMEOUT)?;
        let described = metadata.topics().first().context("no topic in metadata")?;
        ensure!(described.error().is_none(), "error {:?}", described.error());
        let mut partitions: Vec<_> = described
            .partitions()
            .iter()
            .map(|p| (p.id(), p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
            .collect();
        partitions.sort();
        let expected: Vec<_> = (0..ADMIN_PARTITIONS)
            .map(|id| (id, 1, vec![1], vec![1]))
            .collect();
        ensure!(partitions == expected, "partitions {partitions:?}");
        Ok("3 partitions, leader 1".into())
    }

    async fn describe_configs(&self) -> anyhow::Result<String> {
        let topic = self.topic("admin");
        let resources = [ResourceSpecifier::Topic(&topic)];
        let results = self
            .admin
            .describe_configs(&resources, &AdminOptions::new())
            .await?;
        let resource = results
            .into_iter()
            .next()
            .context("no config resource")?
            .map_err(|code| anyhow!("describe configs: {code:?}"))?;
        let entry = resource.get("retention.ms").context("no retention.ms")?;
        ensure!(
            entry.value.as_deref() == Some(RETENTION_MS),
            "retention.ms = {:?}",
            entry.value
        );
        Ok(format!("retention.ms={RETENTION_MS}"))
    }

    async fn produce(
        &self,
        topic: &str,
        records: &[Record],
        settings: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut config = self.config();
        config.set("acks", "all");
        for (name, value) in settings {
            config.set(*name, *value);
        }
        let producer: FutureProducer = config.create()?;
        for record in records {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            let message = FutureRecord::to(topic)
                .partition(record.partition)
                .key(&record.key)
                .payload(&record.value)
                .headers(headers)
                .timestamp(record.timestamp_ms);
            let delivery = producer
                .send(message, CALL_TIMEOUT)
                .await
                .map_err(|(error, _)| error)?;
            ensure!(
                (delivery.partition, delivery.offset) == (record.partition, record.offset),
                "record {} stored at {}@{}",
                record.offset,
                delivery.partition,
                delivery.offset
            );
        }
        Ok(())
    }

    /// Reads `count` records of partition 0 of `topic` from `offset`, with no group.
    fn consume_assigned(
        &self,
        topic: &str,
        offset: i64,
        count: usize,
    ) -> anyhow::Result<Vec<Record>> {
        // librdkafka's high-level consumer wants a group id even when it only assigns; this
        // one never joins (no subscribe) and never commits.
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", self.topic("assign-reader"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Offset(offset))?;
        consumer.assign(&assignment)?;
        poll_records(&consumer, count)
    }

    async fn round_trip(&self, codec: &str) -> anyhow::Result<String> {
        let topic = self.topic(codec);
        let records = make_records(codec, self.base_ms);
        let settings = [
            ("compression.codec", codec),
            ("enable.idempotence", "false"),
        ];
        self.produce(&topic, &records, &settings).await?;
        let got = self.consume_assigned(&topic, 0, records.len())?;
        check_exact(&records, &got)?;
        Ok(format!("{RECORD_COUNT} records, exact"))
    }

    fn headers_timestamps(&self) -> anyhow::Result<String> {
        let records = make_records("none", self.base_ms);
        let got = self.consume_assigned(&self.topic("none"), 0, records.len())?;
        check_exact(&records, &got)?;
        Ok("duplicate and binary headers, CreateTime timestamps".into())
    }

    fn consume_assign(&self) -> anyhow::Result<String> {
        let records = make_records("none", self.base_ms);
        let start = usize::try_from(ASSIGN_OFFSET)?;
        let topic = self.topic("none");
        let got = self.consume_assigned(&topic, ASSIGN_OFFSET, records.len() - start)?;
        check_exact(&records[start..], &got)?;
        Ok(format!("assign at offset {ASSIGN_OFFSET}"))
    }

    async fn idempotent(&self) -> anyhow::Result<String> {
        let topic = self.topic("idempotent");
        let records = make_records("idempotent", self.base_ms);
        self.produce(&topic, &records, &[("enable.idempotence", "true")])
            .await?;
        let got = self.consume_assigned(&topic, 0, records.len())?;
        check_exact(&records, &got)?;
        Ok("enable.idempotence=true".into())
    }

    async fn consume_group(&self) -> anyhow::Result<String> {
        let topic = self.topic("group");
        let mut records = make_records("group", self.base_ms);
        for (index, record) in (0..).zip(records.iter_mut()) {
            record.partition = i32::try_from(index % i64::from(GROUP_PARTITIONS))?;
            record.offset = index / i64::from(GROUP_PARTITIONS);
        }
        self.produce(&topic, &records, &[]).await?;
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", self.topic("group-consumers"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let mut got = poll_records(&consumer, records.len())?;
        got.sort_by_key(|record| (record.offset, record.partition));
        check_exact(&records, &got)?;
        consumer.commit_consumer_state(CommitMode::Sync)?;
        let committed = consumer.committed(CALL_TIMEOUT)?;
        let offsets = offsets_of(&committed);
        let per_partition = RECORD_COUNT / i64::from(GROUP_PARTITIONS);
        let expected: BTreeMap<i32, i64> =
            (0..GROUP_PARTITIONS).map(|p| (p, per_partition)).collect();
        ensure!(offsets == expected, "committed {offsets:?}");
        Ok(format!(
            "subscribe, {RECORD_COUNT} records, committed {offsets:?}"
        ))
    }

    fn commit_fetch_offsets(&self) -> anyhow::Result<String> {
        let topic = self.topic("group");
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", self.topic("committer"))
            .set("enable.auto.commit", "false")
            .create()?;
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in COMMITTED {
            offsets.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        }
        consumer.commit(&offsets, CommitMode::Sync)?;
        let mut partitions = TopicPartitionList::new();
        for (partition, _) in COMMITTED {
            partitions.add_partition(&topic, partition);
        }
        let fetched = offsets_of(&consumer.committed_offsets(partitions, CALL_TIMEOUT)?);
        let expected: BTreeMap<i32, i64> = COMMITTED.into_iter().collect();
        ensure!(fetched == expected, "fetched {fetched:?}");
        Ok(format!("committed and fetched {fetched:?}"))
    }

    async fn delete_topics(&self) -> anyhow::Result<String> {
        let topic = self.topic("admin");
        let results = self
            .admin
            .delete_topics(&[&topic], &AdminOptions::new())
            .await?;
        for result in results {
            result.map_err(|(name, code)| anyhow!("delete {name}: {code:?}"))?;
        }
        let consumer: BaseConsumer = self.config().create()?;
        let started = Instant::now();
        loop {
            let metadata = consumer.fetch_metadata(None, CALL_TIMEOUT)?;
            if metadata.topics().iter().all(|t| t.name() != topic) {
                return Ok("deleted and gone from the topic list".into());
            }
            ensure!(started.elapsed() < CALL_TIMEOUT, "topic still listed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn offsets_of(list: &TopicPartitionList) -> BTreeMap<i32, i64> {
    let offset = |element: &rdkafka::topic_partition_list::TopicPartitionListElem| {
        match element.offset() {
            Offset::Offset(offset) => offset,
            // No committed offset (or a logical one): never equal to an expected offset.
            _ => -1,
        }
    };
    list.elements()
        .iter()
        .map(|element| (element.partition(), offset(element)))
        .collect()
}

/// Polls until `count` records arrived, failing on a consumer error or at the deadline.
fn poll_records(consumer: &BaseConsumer, count: usize) -> anyhow::Result<Vec<Record>> {
    let started = Instant::now();
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        ensure!(
            started.elapsed() < CONSUME_DURATION_MAX,
            "consumed {} of {count}",
            got.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        let timestamp_ms = match message.timestamp() {
            Timestamp::CreateTime(ms) => ms,
            other => bail!(
                "offset {}: timestamp {other:?}, expected CreateTime",
                message.offset()
            ),
        };
        let headers = match message.headers() {
            Some(headers) => headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect(),
            None => Vec::new(),
        };
        got.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp_ms,
        });
    }
    Ok(got)
}
