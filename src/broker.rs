//! The broker's state: the topics image, partition logs, the metadata store, and the changes
//! admin requests make to them.
//!
//! Handlers read topics through [`Broker::topics`] once per request and get an immutable
//! [`TopicsImage`], built by the metadata publisher from the quorum's `MetadataImage`. Admin
//! operations are controller operations: submitted to the active controller (forwarded when
//! that is another node), committed through Raft, and answered once this node's image shows
//! them. Two reads of `topics()` may see two different images.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use kafka_protocol::ResponseError;
use sluice_raft::controller::{
    AllocateProducerIdsRequest, AlterConfigsRequest, AlterConfigsResource, ConfigOp,
    CreatableTopic, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, Operation,
    OperationResponse, PartitionsIncrease,
};
use sluice_raft::image::{ConfigResource, MetadataImage, PartitionRegistration};
use sluice_raft::network::frame::cluster_fingerprint;
use sluice_raft::quorum::MetadataQuorum;
use sluice_storage::{Log, MetadataStore, TopicRecord};
use tokio::sync::watch;
use uuid::Uuid;

use crate::budget::NodeBudget;
use crate::config::Config;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metrics::Metrics;
use crate::topic_config;

/// How long an admin request waits for its committed change to reach this node's image.
const PUBLISH_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Kafka refuses CreateTopics asking for more partitions than this in one topic.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
const LOCK_FILE_NAME: &str = ".lock";
const METADATA_FILE_NAME: &str = "metadata.redb";
pub(crate) const DELETED_DIR_MARKER: &str = ".deleted-";

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

/// One advertised listener of this node: its name and what clients are handed for it.
#[derive(Debug, Clone)]
pub struct NamedEndpoint {
    pub name: String,
    pub endpoint: Endpoint,
}

/// This node's replica of a partition: its log, and (on the leader) replication progress.
pub struct Replica {
    pub log: Log,
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    /// Offsets below this are on every ISR member: consumers see only them. Monotonic.
    high_watermark: std::sync::atomic::AtomicI64,
    /// Leader or follower, and (on the leader) each follower's progress.
    pub progress: Mutex<Progress>,
    /// Bytes produced to and fetched by consumers from this replica as leader, ever: the
    /// balancer weighs partitions by its rate.
    traffic_bytes: std::sync::atomic::AtomicU64,
}

impl Replica {
    pub fn new(log: Log, topic: String, topic_id: Uuid, index: i32) -> Replica {
        // The persisted high watermark, so a restarted replica neither shows less than it
        // showed before nor more than was committed.
        let start = log.high_watermark_at_open();
        Replica {
            log,
            topic,
            topic_id,
            index,
            high_watermark: std::sync::atomic::AtomicI64::new(start),
            progress: Mutex::new(Progress::default()),
            traffic_bytes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts client bytes in or out of this replica (once per request, not per record).
    pub fn record_traffic(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.traffic_bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn traffic_bytes(&self) -> u64 {
        self.traffic_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
            .load(std::sync::atomic::Ordering::Acquire)
            .min(self.log.log_end_offset())
    }

    /// Raises the high watermark to `offset` (never lowers it); true if it moved.
    pub fn advance_high_watermark(&self, offset: i64) -> bool {
        let previous = self
            .high_watermark
            .fetch_max(offset, std::sync::atomic::Ordering::AcqRel);
        offset > previous
    }

    /// After truncation the high watermark may not exceed the log end.
    pub fn clamp_high_watermark(&self) {
        let end = self.log.log_end_offset();
        self.high_watermark
            .fetch_min(end, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What this node does with a replica, as of the last image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    None,
    Leader {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    Follower {
        leader: i32,
        leader_epoch: i32,
    },
}

/// A follower as its leader sees it (Kafka's `Replica` state on the leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub log_end_offset: i64,
    /// Last time the follower had fetched everything the leader had at its previous fetch.
    pub last_caught_up_ms: i64,
    pub leader_end_at_last_fetch: i64,
    pub last_fetch_ms: i64,
    /// The high watermark in the last fetch answer this follower got (-1: none yet).
    pub high_watermark_sent: i64,
}

#[derive(Debug, Default)]
pub struct Progress {
    pub role: Role,
    pub followers: HashMap<i32, FollowerProgress>,
    /// The leader epoch a fetcher task runs for (followers only).
    pub fetcher_epoch: Option<i32>,
    /// An AlterPartition this leader proposed and has not seen applied yet.
    pub isr_change_pending: bool,
    /// Followers a pending AlterPartition adds to the ISR. The high watermark already counts
    /// them (Kafka's "maximal ISR"): were it to pass their log end while the change is in
    /// flight, they would join the ISR without records already acknowledged.
    pub isr_joining: Vec<i32>,
    /// Leader only: the log end when this leader's epoch began. A follower rejoins the ISR
    /// only once it holds everything below it (Kafka's `leaderEpochStartOffsetOpt`): the
    /// high watermark a new leader inherits may lag what the old one acknowledged.
    pub leader_epoch_start_offset: i64,
}

/// One partition of a topic, as the metadata image sees it, plus this node's replica of it
/// when the image assigns it one.
pub struct Partition {
    pub index: i32,
    pub registration: PartitionRegistration,
    pub replica: Option<Arc<Replica>>,
}

impl Partition {
    /// This node's replica, if it leads the partition at the epoch the client knows
    /// (`current_leader_epoch` -1: any). Kafka's `getPartitionOrError` + epoch check.
    pub fn leader_replica(
        &self,
        node_id: i32,
        current_leader_epoch: i32,
    ) -> Result<&Arc<Replica>, ResponseError> {
        let replica = match &self.replica {
            Some(replica) if self.registration.leader == node_id => replica,
            _ => return Err(ResponseError::NotLeaderOrFollower),
        };
        check_epoch(current_leader_epoch, self.registration.leader_epoch)?;
        Ok(replica)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.registration.leader_epoch
    }
}

/// A client's idea of the leader epoch against the current one (-1: it has none).
pub fn check_epoch(client_epoch: i32, current_epoch: i32) -> Result<(), ResponseError> {
    if client_epoch < 0 || client_epoch == current_epoch {
        Ok(())
    } else if client_epoch > current_epoch {
        Err(ResponseError::UnknownLeaderEpoch)
    } else {
        Err(ResponseError::FencedLeaderEpoch)
    }
}

/// A topic as one image sees it. Changes build a new `Topic` sharing the unchanged partitions.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub overrides: BTreeMap<String, String>,
    /// Every partition, ordered by index (indexes are dense from 0).
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .filter(|partition| partition.index == index)
    }
}

/// An immutable view of every topic, built from one metadata image.
#[derive(Default, Clone)]
pub struct TopicsImage {
    pub by_name: BTreeMap<String, Arc<Topic>>,
    pub by_id: HashMap<Uuid, Arc<Topic>>,
    /// The metadata image this view was built from.
    pub metadata: Arc<MetadataImage>,
}

impl TopicsImage {
    pub fn partition_count(&self) -> usize {
        self.by_name
            .values()
            .map(|topic| topic.partitions.len())
            .sum()
    }

    /// Every replica this node holds.
    pub fn local_replicas(&self) -> impl Iterator<Item = &Arc<Replica>> {
        self.by_name
            .values()
            .flat_map(|topic| topic.partitions.iter())
            .filter_map(|partition| partition.replica.as_ref())
    }
}

struct ProducerIdBlock {
    next: i64,
    end: i64,
}

pub struct Broker {
    pub config: Config,
    /// The first listener's advertised endpoint.
    pub advertised: Endpoint,
    /// Every advertised listener, in --listeners order (the first is `advertised`).
    pub advertised_listeners: Vec<NamedEndpoint>,
    /// How this node dials other nodes (the inter-broker listener, TLS, SASL).
    pub inter_broker: Arc<crate::net::peer_transport::InterBroker>,
    pub cluster_id: String,
    /// Fresh for every process start: tells the controller this run from a previous one.
    pub incarnation_id: Uuid,
    /// The metadata quorum: every topic, partition, broker and config comes from its image.
    pub quorum: Arc<MetadataQuorum>,
    topics: RwLock<Arc<TopicsImage>>,
    /// The Raft log index of the image `topics` was built from; admin operations wait on it so
    /// that their effect is visible here before they answer.
    published_index: watch::Sender<u64>,
    /// Replicas this node holds, by (topic id, partition): owned by the metadata publisher.
    pub(crate) replicas: Mutex<HashMap<(Uuid, i32), Arc<Replica>>>,
    store: MetadataStore,
    /// Bumped after every append so that waiting Fetch requests look again.
    appended: watch::Sender<u64>,
    /// Set when shutdown starts, so long-polling Fetches answer at once instead of holding
    /// the drain for up to their max_wait_ms.
    closing: std::sync::atomic::AtomicBool,
    /// False until this node is registered and unfenced: before that only ApiVersions is
    /// answered (the controller's address check needs it), as a Kafka broker serves no
    /// requests before it is unfenced.
    serving_clients: std::sync::atomic::AtomicBool,
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    /// Consumer groups and their committed offsets.
    pub groups: GroupCoordinator,
    /// Transactional ids and their transactions (`__transaction_state` partitions led here).
    pub txns: crate::txn::TxnCoordinator,
    /// The node's Prometheus series, shared with the HTTP listener.
    pub metrics: Arc<Metrics>,
    /// Egress and ingress budgets (shaping and throttling Fetch and Produce).
    pub budget: NodeBudget,
    /// Client-quota token buckets (producer_byte_rate, consumer_byte_rate) per quota entity.
    pub client_quotas: crate::budget::ClientQuotaBuckets,
    /// Paces the catch-up fetches of replicas a reassignment is adding to this node.
    pub reassignment_throttle: crate::replication::ReassignmentThrottle,
    /// Held for the broker's life: a second process on the same data dir fails to start.
    _data_dir_lock: File,
}

impl Broker {
    /// `user`'s SCRAM credential for `mechanism`, from the metadata image.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: crate::security::scram::ScramMechanism,
    ) -> Option<crate::security::scram::ScramCredential> {
        let image = self.topics();
        let stored = image.metadata.scram.credential(user, mechanism.code())?;
        Some(crate::security::scram::ScramCredential {
            salt: stored.salt.clone(),
            stored_key: stored.stored_key.clone(),
            server_key: stored.server_key.clone(),
            iterations: stored.iterations,
        })
    }

    /// This node's advertised endpoint on listener `name`, if it has that listener.
    pub fn advertised_on(&self, name: &str) -> Option<&Endpoint> {
        self.advertised_listeners
            .iter()
            .find(|listener| listener.name == name)
            .map(|listener| &listener.endpoint)
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

/// What `Broker::open` needs besides the config: the local state opened on a blocking thread.
pub struct LocalState {
    lock: File,
    store: MetadataStore,
    groups: GroupCoordinator,
    stored_cluster_id: String,
}

impl LocalState {
    /// Opens the data directory: lock, metadata store (log start offsets, the dev broker's
    /// cluster id), committed offsets. Partition logs open as the metadata image assigns them.
    pub fn open(config: &Config) -> anyhow::Result<LocalState> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let lock = lock_data_dir(&config.data_dir)?;
        remove_deleted_dirs(&config.data_dir);
        let store = MetadataStore::open(&config.data_dir.join(METADATA_FILE_NAME))
            .context("opening the metadata store")?;
        let stored_cluster_id = store
            .get_or_init_cluster_id(|| kafka_cluster_id(Uuid::new_v4()))
            .context("reading the cluster id")?;
        let groups = new_groups(config);
        Ok(LocalState {
            lock,
            store,
            groups,
            stored_cluster_id,
        })
    }

    /// Topics the pre-quorum single-node broker kept in the metadata store.
    pub fn legacy_topics(&self) -> anyhow::Result<Vec<TopicRecord>> {
        self.store.load_topics().context("loading legacy topics")
    }
}

impl Broker {
    pub fn new(
        config: Config,
        advertised: Endpoint,
        local: LocalState,
        quorum: Arc<MetadataQuorum>,
        metrics: Arc<Metrics>,
    ) -> Broker {
        // Every node of a cluster must report the same cluster id: derive it from the voter
        // set. The single-node dev broker keeps the id its data dir was created with.
        let cluster_id = if config.voters.is_some() {
            let fingerprint = cluster_fingerprint(&config.voter_map());
            kafka_cluster_id(Uuid::from_u64_pair(fingerprint, !fingerprint))
        } else {
            local.stored_cluster_id
        };
        let (appended, _) = watch::channel(0);
        let (published_index, _) = watch::channel(0);
        let advertised_listeners = vec![NamedEndpoint {
            name: crate::net::listeners::PLAINTEXT_NAME.to_string(),
            endpoint: advertised.clone(),
        }];
        let budget = NodeBudget::new(&config);
        Broker {
            config,
            advertised,
            advertised_listeners,
            inter_broker: Arc::new(crate::net::peer_transport::InterBroker::plaintext(
                crate::net::listeners::PLAINTEXT_NAME,
            )),
            cluster_id,
            incarnation_id: Uuid::new_v4(),
            quorum,
            topics: RwLock::new(Arc::new(TopicsImage::default())),
            published_index,
            replicas: Mutex::new(HashMap::new()),
            store: local.store,
            appended,
            closing: std::sync::atomic::AtomicBool::new(false),
            serving_clients: std::sync::atomic::AtomicBool::new(false),
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock { next: 0, end: 0 }),
            groups: local.groups,
            txns: crate::txn::TxnCoordinator::new(),
            metrics,
            budget,
            client_quotas: crate::budget::ClientQuotaBuckets::default(),
            reassignment_throttle: crate::replication::ReassignmentThrottle::new(),
            _data_dir_lock: local.lock,
        }
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

    /// Installs the view built from the image at `index` (the metadata publisher only).
    pub(crate) fn publish(&self, image: TopicsImage) {
        *self.topics.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
    }

    /// The image at `index` is installed and its roles applied: admin requests waiting for it
    /// may answer.
    pub(crate) fn mark_published(&self, index: u64) {
        self.published_index.send_replace(index);
    }

    pub(crate) fn log_start_offset_hint(&self, topic: &str, partition: i32) -> i64 {
        match self.store.log_start_offsets(topic) {
            Ok(starts) => starts.get(&partition).copied().unwrap_or(0),
            Err(error) => {
                tracing::error!(%error, topic, "reading log start offsets");
                0
            }
        }
    }

    /// Forgets a removed topic's local state (its DeleteRecords log start offsets), so that a
    /// later topic of the same name starts from scratch.
    pub(crate) fn forget_topic(&self, topic: &str) {
        if let Err(error) = self.store.delete_topic(topic) {
            tracing::error!(%error, topic, "forgetting a removed topic's log start offsets");
        }
    }

    /// The Raft log index of the image this node serves.
    pub fn published_index(&self) -> u64 {
        *self.published_index.borrow()
    }

    /// Waits until this node serves an image that includes Raft index `index`.
    pub async fn wait_published(&self, index: u64) -> Result<(), ApiError> {
        let mut published = self.published_index.subscribe();
        let waited = tokio::time::timeout(
            PUBLISH_WAIT_MAX,
            published.wait_for(|published| *published >= index),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::new(
                ResponseError::RequestTimedOut,
                "the change is committed but not yet visible on this node",
            )),
        }
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Starts shutdown: waiting Fetches wake and answer with what they have.
    pub fn begin_shutdown(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify_appended();
    }

    /// Opens the node to every request (once registered and unfenced).
    pub fn start_serving_clients(&self) {
        self.serving_clients
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_serving_clients(&self) -> bool {
        self.serving_clients
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn notify_appended(&self) {
        self.appended
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Runs a controller operation wherever the active controller is, and waits until its
    /// effect is visible here.
    pub async fn submit(&self, operation: Operation) -> Result<OperationResponse, ApiError> {
        let proposed = self.quorum.submit(operation).await.map_err(|error| {
            tracing::warn!(%error, "controller operation failed");
            let code = ResponseError::try_from_code(error.error_code())
                .unwrap_or(ResponseError::UnknownServerError);
            ApiError::new(code, error.to_string())
        })?;
        self.wait_published(proposed.applied_index).await?;
        Ok(proposed.response)
    }
    /// Creates a topic through the controller, or with `validate_only` checks that it could
    /// be created. `replication_factor` -1 and empty `assignments` use the defaults.
    pub async fn create_topic(
        &self,
        name: &str,
        partition_count: i32,
        replication_factor: i16,
        assignments: BTreeMap<i32, Vec<i32>>,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        let manual = !assignments.is_empty();
        let added = if manual {
            i32::try_from(assignments.len()).unwrap_or(i32::MAX)
        } else {
            partition_count
        };
        self.check_partition_budget(&self.topics(), added)?;
        topic_config::validate_overrides(&overrides)
            .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        let creatable = CreatableTopic {
            name: name.to_string(),
            num_partitions: if manual { -1 } else { partition_count },
            replication_factor: if manual { -1 } else { replication_factor },
            assignments,
            configs: overrides.clone(),
        };
        let request = CreateTopicsRequest {
            topics: vec![creatable],
            validate_only,
        };
        let response = self.submit(Operation::CreateTopics(request)).await?;
        let OperationResponse::CreateTopics(mut created) = response else {
            return Err(mismatched_response());
        };
        let created = created.pop().ok_or_else(mismatched_response)?;
        check_code(created.error_code, created.error_message)?;
        if validate_only {
            return Ok(Arc::new(Topic {
                name: name.to_string(),
                id: created.topic_id,
                overrides,
                partitions: Vec::new(),
            }));
        }
        tracing::info!(
            topic = name,
            partitions = created.num_partitions,
            replication_factor = created.replication_factor,
            "topic created"
        );
        self.topics()
            .by_id
            .get(&created.topic_id)
            .cloned()
            .ok_or_else(|| ApiError::code_only(ResponseError::UnknownTopicOrPartition))
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
                "The cluster holds at most {} partitions (--max-partitions).",
                self.config.max_partitions
            );
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        Ok(())
    }

    /// Deletes a topic through the controller; every node removes its files when its image
    /// loses the topic (the metadata publisher).
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let request = DeleteTopicsRequest {
            names: vec![name.to_string()],
            topic_ids: Vec::new(),
        };
        let response = self.submit(Operation::DeleteTopics(request)).await?;
        let OperationResponse::DeleteTopics(mut deleted) = response else {
            return Err(mismatched_response());
        };
        let deleted = deleted.pop().ok_or_else(mismatched_response)?;
        check_code(deleted.error_code, None)?;
        tracing::info!(topic = name, "topic deleted");
        Ok(deleted.topic_id)
    }

    /// Grows a topic to `partition_count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        partition_count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
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
        let request = CreatePartitionsRequest {
            topics: vec![PartitionsIncrease {
                name: name.to_string(),
                count: partition_count,
            }],
            validate_only,
        };
        let response = self.submit(Operation::CreatePartitions(request)).await?;
        let OperationResponse::CreatePartitions(mut results) = response else {
            return Err(mismatched_response());
        };
        let result = results.pop().ok_or_else(mismatched_response)?;
        check_code(result.error_code, result.error_message)?;
        tracing::info!(
            topic = name,
            partitions = partition_count,
            "partitions added"
        );
        Ok(())
    }

    /// Replaces a topic's config overrides (already merged and validated by the caller).
    pub async fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        topic_config::validate_overrides(&overrides)
            .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        let image = self.topics();
        let Some(topic) = image.by_name.get(name).cloned() else {
            return Err(ApiError::code_only(ResponseError::UnknownTopicOrPartition));
        };
        let mut ops: Vec<ConfigOp> = topic
            .overrides
            .keys()
            .filter(|key| !overrides.contains_key(*key))
            .map(|key| ConfigOp::Delete { name: key.clone() })
            .collect();
        ops.extend(overrides.iter().map(|(key, value)| ConfigOp::Set {
            name: key.clone(),
            value: value.clone(),
        }));
        let request = AlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource: ConfigResource::Topic(name.to_string()),
                ops,
            }],
            validate_only,
        };
        let response = self.submit(Operation::AlterConfigs(request)).await?;
        let OperationResponse::AlterConfigs(mut results) = response else {
            return Err(mismatched_response());
        };
        let result = results.pop().ok_or_else(mismatched_response)?;
        check_code(result.error_code, result.error_message)?;
        tracing::info!(topic = name, "topic config changed");
        Ok(())
    }

    /// Records the new log start offset durably, then applies it to the log.
    pub fn delete_records_before(
        &self,
        topic: &str,
        partition: &Replica,
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

    /// A fresh producer id (InitProducerId without a transactional id), from blocks the
    /// controller hands out, so that no two nodes ever issue the same id.
    pub async fn next_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let request = AllocateProducerIdsRequest {
                broker_id: self.node_id(),
                incarnation_id: self.incarnation_id,
            };
            let response = self.submit(Operation::AllocateProducerIds(request)).await?;
            let OperationResponse::AllocateProducerIds(allocated) = response else {
                return Err(mismatched_response());
            };
            check_code(allocated.error_code, None)?;
            assert!(allocated.count > 0);
            block.next = allocated.first_producer_id;
            block.end = allocated.first_producer_id + allocated.count;
        }
        let id = block.next;
        block.next += 1;
        assert!(id >= 0 && id < block.end);
        Ok(id)
    }

    /// fsyncs every partition (flush interval and shutdown).
    pub fn flush_all(&self) {
        for replica in self.topics().local_replicas() {
            if let Err(error) = replica.log.flush() {
                tracing::error!(%error, topic = %replica.topic, partition = replica.index, "flush failed");
            }
        }
    }

    /// Persists every replica's high watermark (Kafka's replication-offset-checkpoint):
    /// periodically and at shutdown, so a restart resumes from it.
    pub fn checkpoint_high_watermarks(&self) {
        for replica in self.topics().local_replicas() {
            checkpoint_high_watermark(replica);
        }
    }

    /// Applies retention to every partition.
    pub fn enforce_retention(&self) {
        let now = now_ms();
        for replica in self.topics().local_replicas() {
            match replica.log.enforce_retention(now) {
                Ok(outcome) if outcome.deleted_segments > 0 => tracing::info!(
                    topic = %replica.topic,
                    partition = replica.index,
                    deleted_segments = outcome.deleted_segments,
                    log_start_offset = outcome.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, topic = %replica.topic, "retention failed"),
            }
        }
    }

    /// Flushes and closes every log, leaving clean-shutdown markers.
    pub fn close(&self) {
        let replicas = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
        for replica in replicas.values() {
            checkpoint_high_watermark(replica);
            if let Err(error) = replica.log.close() {
                tracing::error!(%error, topic = %replica.topic, "closing a log failed");
            }
        }
    }
}

fn checkpoint_high_watermark(replica: &Replica) {
    if let Err(error) = replica
        .log
        .checkpoint_high_watermark(replica.high_watermark())
    {
        tracing::error!(%error, topic = %replica.topic, partition = replica.index, "persisting the high watermark failed");
    }
}

fn new_groups(config: &Config) -> GroupCoordinator {
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
    GroupCoordinator::new(group_config, config.offsets_topic_partitions)
}

fn storage_failure(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "metadata store failure");
    ApiError::new(ResponseError::KafkaStorageError, error.to_string())
}

fn mismatched_response() -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        "the controller answered another operation",
    )
}

/// A controller answer's error code as an `ApiError` (0: success).
fn check_code(code: i16, message: Option<String>) -> Result<(), ApiError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    Err(ApiError {
        code: error,
        message,
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
