//! The broker's state: the topics image, partition logs, the metadata store, and the changes
//! admin requests make to them.
//!
//! Handlers read topics through [`Broker::topics`] once per request and get an immutable
//! [`TopicsImage`]; admin operations serialize on one async mutex, persist to the metadata store
//! first, then publish a new image. Two reads of `topics()` may see two different images.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kafka_protocol::ResponseError;
use sluice_storage::{Log, MetadataStore, OffsetStore, TopicRecord};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::Config;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::topic_config;

/// Producer ids are taken from the metadata store in blocks, so that one durable write
/// serves many InitProducerId requests.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Kafka refuses CreateTopics asking for more partitions than this in one topic.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
const LOCK_FILE_NAME: &str = ".lock";
const METADATA_FILE_NAME: &str = "metadata.redb";
/// Committed offsets of consumer groups, apart from the metadata so that their many small
/// commits never wait behind (or delay) topic changes.
const OFFSETS_FILE_NAME: &str = "offsets.redb";
const DELETED_DIR_MARKER: &str = ".deleted-";

/// An error a handler reports to the client with a Kafka error code.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: Some(message.into()),
        }
    }

    pub fn code_only(code: ResponseError) -> Self {
        ApiError {
            code,
            message: None,
        }
    }
}

/// The address clients are told to connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

/// One partition of a topic on this node.
pub struct Partition {
    pub index: i32,
    pub log: Log,
}

/// A topic as one image sees it. Changes build a new `Topic` sharing the unchanged partitions.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub overrides: BTreeMap<String, String>,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// An immutable view of every topic.
#[derive(Default, Clone)]
pub struct TopicsImage {
    pub by_name: BTreeMap<String, Arc<Topic>>,
    pub by_id: HashMap<Uuid, Arc<Topic>>,
}

impl TopicsImage {
    fn with_topic(&self, topic: Arc<Topic>) -> TopicsImage {
        let mut next = self.clone();
        if let Some(previous) = next.by_name.insert(topic.name.clone(), topic.clone()) {
            next.by_id.remove(&previous.id);
        }
        next.by_id.insert(topic.id, topic);
        next
    }

    fn without_topic(&self, name: &str) -> TopicsImage {
        let mut next = self.clone();
        if let Some(previous) = next.by_name.remove(name) {
            next.by_id.remove(&previous.id);
        }
        next
    }

    pub fn partition_count(&self) -> usize {
        self.by_name
            .values()
            .map(|topic| topic.partitions.len())
            .sum()
    }
}

struct ProducerIdBlock {
    next: i64,
    end: i64,
}

pub struct Broker {
    pub config: Config,
    pub advertised: Endpoint,
    pub cluster_id: String,
    topics: RwLock<Arc<TopicsImage>>,
    /// Serializes topic creation, deletion and reconfiguration.
    admin: tokio::sync::Mutex<()>,
    store: MetadataStore,
    /// Bumped after every append so that waiting Fetch requests look again.
    appended: watch::Sender<u64>,
    producer_ids: Mutex<ProducerIdBlock>,
    /// Consumer groups and their committed offsets.
    pub groups: GroupCoordinator,
    /// Held for the broker's life: a second process on the same data dir fails to start.
    _data_dir_lock: File,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

impl Broker {
    /// Opens the data directory: lock, metadata store, every partition log.
    pub fn open(config: Config, advertised: Endpoint) -> anyhow::Result<Broker> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock = lock_data_dir(&config.data_dir)?;
        remove_deleted_dirs(&config.data_dir);
        let store = MetadataStore::open(&config.data_dir.join(METADATA_FILE_NAME))
            .context("opening the metadata store")?;
        let cluster_id = store
            .get_or_init_cluster_id(|| kafka_cluster_id(Uuid::new_v4()))
            .context("reading the cluster id")?;
        let mut image = TopicsImage::default();
        let now = now_ms();
        for record in store.load_topics().context("loading topics")? {
            let topic = open_topic(&config, &store, &record, now)?;
            image = image.with_topic(Arc::new(topic));
        }
        tracing::info!(
            topics = image.by_name.len(),
            partitions = image.partition_count(),
            %cluster_id,
            "data dir opened"
        );
        let groups = open_groups(&config)?;
        let (appended, _) = watch::channel(0);
        Ok(Broker {
            config,
            advertised,
            cluster_id,
            topics: RwLock::new(Arc::new(image)),
            admin: tokio::sync::Mutex::new(()),
            store,
            appended,
            producer_ids: Mutex::new(ProducerIdBlock { next: 0, end: 0 }),
            groups,
            _data_dir_lock: lock,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The current topics image; take it once per request.
    pub fn topics(&self) -> Arc<TopicsImage> {
        // A poisoned lock only means a panic elsewhere; the Arc inside is still whole.
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, image: TopicsImage) {
        *self.topics.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub fn notify_appended(&self) {
        self.appended
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Creates a topic, or with `validate_only` checks that it could be created.
    pub async fn create_topic(
        &self,
        name: &str,
        partition_count: i32,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        let _admin = self.admin.lock().await;
        let image = self.topics();
        if image.by_name.contains_key(name) {
            let message = format!("Topic '{name}' already exists.");
            return Err(ApiError::new(ResponseError::TopicAlreadyExists, message));
        }
        self.check_partition_budget(&image, partition_count)?;
        topic_config::validate_overrides(&overrides)
            .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        let record = TopicRecord {
            name: name.to_string(),
            topic_id: *Uuid::new_v4().as_bytes(),
            partition_count,
            configs: overrides,
        };
        if validate_only {
            return Ok(Arc::new(Topic {
                name: record.name,
                id: Uuid::from_bytes(record.topic_id),
                overrides: record.configs,
                partitions: Vec::new(),
            }));
        }
        self.store.put_topic(&record).map_err(storage_failure)?;
        let topic = open_topic(&self.config, &self.store, &record, now_ms())
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, format!("{e:#}")))?;
        let topic = Arc::new(topic);
        self.publish(image.with_topic(topic.clone()));
        tracing::info!(topic = name, partitions = partition_count, "topic created");
        Ok(topic)
    }

    fn check_partition_budget(&self, image: &TopicsImage, added: i32) -> Result<(), ApiError> {
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&added) {
            let message = format!(
                "Number of partitions must be between 1 and {PARTITIONS_PER_TOPIC_MAX}, got {added}."
            );
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        let total = image.partition_count().saturating_add(added as usize);
        if total > self.config.max_partitions {
            let message = format!(
                "This node hosts at most {} partitions (--max-partitions).",
                self.config.max_partitions
            );
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        Ok(())
    }

    /// Deletes a topic: gone from the store and the image first, files removed after.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let _admin = self.admin.lock().await;
        let image = self.topics();
        let Some(topic) = image.by_name.get(name).cloned() else {
            return Err(ApiError::code_only(ResponseError::UnknownTopicOrPartition));
        };
        self.store.delete_topic(name).map_err(storage_failure)?;
        self.publish(image.without_topic(name));
        let suffix = format!("{DELETED_DIR_MARKER}{}", topic.id.simple());
        for partition in &topic.partitions {
            let dir = partition_dir(&self.config.data_dir, name, partition.index);
            let mut doomed = dir.clone().into_os_string();
            doomed.push(&suffix);
            // A rename is atomic: a restart either sees the live dir (the store no longer
            // names the topic, so it is cleaned as a stray) or the marked one.
            if let Err(error) = std::fs::rename(&dir, &doomed) {
                tracing::warn!(%error, dir = %dir.display(), "renaming a deleted partition");
                continue;
            }
            if let Err(error) = std::fs::remove_dir_all(&doomed) {
                tracing::warn!(%error, "removing a deleted partition; retried at next start");
            }
        }
        tracing::info!(topic = name, "topic deleted");
        Ok(topic.id)
    }

    /// Grows a topic to `partition_count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        partition_count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _admin = self.admin.lock().await;
        let image = self.topics();
        let Some(topic) = image.by_name.get(name).cloned() else {
            return Err(ApiError::code_only(ResponseError::UnknownTopicOrPartition));
        };
        let current = topic.partitions.len() as i32;
        if partition_count <= current {
            let message = format!(
                "Topic currently has {current} partitions, {partition_count} would not be an increase."
            );
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        self.check_partition_budget(&image, partition_count - current)?;
        if partition_count > PARTITIONS_PER_TOPIC_MAX {
            let message = format!("A topic has at most {PARTITIONS_PER_TOPIC_MAX} partitions.");
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        if validate_only {
            return Ok(());
        }
        let record = TopicRecord {
            name: topic.name.clone(),
            topic_id: *topic.id.as_bytes(),
            partition_count,
            configs: topic.overrides.clone(),
        };
        self.store.put_topic(&record).map_err(storage_failure)?;
        let log_config = topic_config::log_config(&self.config, &topic.overrides);
        let mut partitions = topic.partitions.clone();
        for index in current..partition_count {
            let dir = partition_dir(&self.config.data_dir, name, index);
            let log = Log::open(&dir, log_config.clone(), 0, now_ms())
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            partitions.push(Arc::new(Partition { index, log }));
        }
        let next = Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides: topic.overrides.clone(),
            partitions,
        };
        self.publish(image.with_topic(Arc::new(next)));
        tracing::info!(
            topic = name,
            partitions = partition_count,
            "partitions added"
        );
        Ok(())
    }

    /// Replaces a topic's config overrides (already merged by the caller).
    pub async fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        topic_config::validate_overrides(&overrides)
            .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        let _admin = self.admin.lock().await;
        let image = self.topics();
        let Some(topic) = image.by_name.get(name).cloned() else {
            return Err(ApiError::code_only(ResponseError::UnknownTopicOrPartition));
        };
        if validate_only {
            return Ok(());
        }
        let record = TopicRecord {
            name: topic.name.clone(),
            topic_id: *topic.id.as_bytes(),
            partition_count: topic.partitions.len() as i32,
            configs: overrides.clone(),
        };
        self.store.put_topic(&record).map_err(storage_failure)?;
        let log_config = topic_config::log_config(&self.config, &overrides);
        for partition in &topic.partitions {
            partition.log.update_config(log_config.clone());
        }
        let next = Topic {
            name: topic.name.clone(),
            id: topic.id,
            overrides,
            partitions: topic.partitions.clone(),
        };
        self.publish(image.with_topic(Arc::new(next)));
        tracing::info!(topic = name, "topic config changed");
        Ok(())
    }

    /// Records the new log start offset durably, then applies it to the log.
    pub fn delete_records_before(
        &self,
        topic: &str,
        partition: &Partition,
        offset: i64,
    ) -> Result<i64, ApiError> {
        let log_end = partition.log.log_end_offset();
        if offset < 0 || offset > log_end {
            return Err(ApiError::code_only(ResponseError::OffsetOutOfRange));
        }
        if offset <= partition.log.log_start_offset() {
            return Ok(partition.log.log_start_offset());
        }
        self.store
            .set_log_start_offset(topic, partition.index, offset)
            .map_err(storage_failure)?;
        partition
            .log
            .delete_records_before(offset)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))
    }

    /// A fresh producer id (InitProducerId without a transactional id).
    pub fn next_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        if block.next >= block.end {
            let first = self
                .store
                .next_producer_id_block(PRODUCER_ID_BLOCK_SIZE)
                .map_err(storage_failure)?;
            block.next = first;
            block.end = first + PRODUCER_ID_BLOCK_SIZE;
        }
        let id = block.next;
        block.next += 1;
        assert!(id >= 0 && id < block.end);
        Ok(id)
    }

    /// fsyncs every partition (flush interval and shutdown).
    pub fn flush_all(&self) {
        for topic in self.topics().by_name.values() {
            for partition in &topic.partitions {
                if let Err(error) = partition.log.flush() {
                    tracing::error!(%error, topic = %topic.name, partition = partition.index, "flush failed");
                }
            }
        }
    }

    /// Applies retention to every partition.
    pub fn enforce_retention(&self) {
        let now = now_ms();
        for topic in self.topics().by_name.values() {
            for partition in &topic.partitions {
                match partition.log.enforce_retention(now) {
                    Ok(outcome) if outcome.deleted_segments > 0 => tracing::info!(
                        topic = %topic.name,
                        partition = partition.index,
                        deleted_segments = outcome.deleted_segments,
                        log_start_offset = outcome.log_start_offset,
                        "retention deleted segments"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, topic = %topic.name, "retention failed"),
                }
            }
        }
    }

    /// Flushes and closes every log, leaving clean-shutdown markers; queued offset commits
    /// are written first.
    pub fn close(&self) {
        self.groups.close();
        for topic in self.topics().by_name.values() {
            for partition in &topic.partitions {
                if let Err(error) = partition.log.close() {
                    tracing::error!(%error, topic = %topic.name, "closing a log failed");
                }
            }
        }
    }
}

fn open_groups(config: &Config) -> anyhow::Result<GroupCoordinator> {
    let store = OffsetStore::open(&config.data_dir.join(OFFSETS_FILE_NAME))
        .context("opening the offset store")?;
    let group_config = GroupConfig {
        initial_rebalance_delay: std::time::Duration::from_millis(
            config.group_initial_rebalance_delay_ms,
        ),
        group_size_max: config.group_max_size,
        offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        consumer_heartbeat_interval: std::time::Duration::from_millis(
            config.group_consumer_heartbeat_interval_ms,
        ),
        consumer_session_timeout: std::time::Duration::from_millis(
            config.group_consumer_session_timeout_ms,
        ),
    };
    GroupCoordinator::open(group_config, store).context("loading committed offsets")
}

fn storage_failure(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "metadata store failure");
    ApiError::new(ResponseError::KafkaStorageError, error.to_string())
}

fn open_topic(
    config: &Config,
    store: &MetadataStore,
    record: &TopicRecord,
    now: i64,
) -> anyhow::Result<Topic> {
    let log_config = topic_config::log_config(config, &record.configs);
    let starts = store.log_start_offsets(&record.name)?;
    let mut partitions = Vec::with_capacity(record.partition_count.max(0) as usize);
    for index in 0..record.partition_count {
        let dir = partition_dir(&config.data_dir, &record.name, index);
        let hint = starts.get(&index).copied().unwrap_or(0);
        let log = Log::open(&dir, log_config.clone(), hint, now)
            .with_context(|| format!("opening {}", dir.display()))?;
        partitions.push(Arc::new(Partition { index, log }));
    }
    Ok(Topic {
        name: record.name.clone(),
        id: Uuid::from_bytes(record.topic_id),
        overrides: record.configs.clone(),
        partitions,
    })
}

fn lock_data_dir(data_dir: &Path) -> anyhow::Result<File> {
    let path = data_dir.join(LOCK_FILE_NAME);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("{} is in use by another sluice process", data_dir.display())
    })?;
    Ok(file)
}

/// Finishes deletions a crash interrupted.
fn remove_deleted_dirs(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().contains(DELETED_DIR_MARKER) {
            if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(%error, dir = ?name, "removing a deleted partition");
            }
        }
    }
}

/// Kafka cluster ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn kafka_cluster_id(uuid: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid.as_bytes();
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for &byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        bit_count += 8;
        while bit_count >= 6 {
            bit_count -= 6;
            out.push(ALPHABET[((bits >> bit_count) & 0x3f) as usize] as char);
        }
    }
    if bit_count > 0 {
        out.push(ALPHABET[((bits << (6 - bit_count)) & 0x3f) as usize] as char);
    }
    assert_eq!(out.len(), 22);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = kafka_cluster_id(Uuid::from_bytes([0xff; 16]));
        assert_eq!(id, "_____________________w");
        let id = kafka_cluster_id(Uuid::nil());
        assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
    }
}
