//! `MetadataQuorum`: one node's handle on the metadata quorum — start, propose, read, stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, RaftMetrics, SnapshotPolicy};
use redb::{Database, Durability, ReadableTable};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::controller::{error_code, ControllerConfig, Operation, OperationResponse};
use crate::database::RaftDatabase;
use crate::image::MetadataImage;
use crate::log_store::{LogStore, META_TABLE};
use crate::network::client::NetworkFactory;
use crate::network::frame::cluster_fingerprint;
use crate::network::server::{serve, ServerContext};
use crate::network::transport::RaftTransport;
use crate::proposer::{Proposed, Proposer};
use crate::raft_types::{NodeId, Raft};
use crate::state_machine::StateMachine;
use crate::store_error::StoreError;

const DATABASE_FILE_NAME: &str = "raft.redb";
/// The bootstrap marker: the voter set this data dir was initialized with.
const VOTERS_KEY: &str = "voters";
/// Largest encoded record batch one entry may carry; bounds Raft frames (see
/// `RAFT_FRAME_BYTES_MAX`, which holds `ENTRIES_PER_APPEND_MAX` of these).
pub const ENTRY_BYTES_MAX: usize = 4 << 20;
/// Entries per AppendEntries: with `ENTRY_BYTES_MAX` keeps a frame under 64 MiB.
pub const ENTRIES_PER_APPEND_MAX: u64 = 8;

/// How long shutdown waits for openraft's tasks to release the store.
const SHUTDOWN_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `MetadataQuorum::start_with` needs; `QuorumConfig::new` has the defaults.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// The fixed initial voters: node id → Raft address (`host:port`).
    pub voters: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    pub raft_listen: SocketAddr,
    pub controller: ControllerConfig,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_logs_since_last: u64,
    /// Entries kept in the log behind a snapshot, for followers that lag a little.
    pub logs_kept_after_snapshot: u64,
    /// Mutual TLS on the Raft listener and to the other nodes' (`None`: plain TCP).
    pub tls: Option<crate::network::transport::RaftTls>,
}

impl QuorumConfig {
    pub fn new(
        node_id: NodeId,
        voters: BTreeMap<NodeId, String>,
        data_dir: PathBuf,
        raft_listen: SocketAddr,
    ) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters,
            data_dir,
            raft_listen,
            controller: ControllerConfig::default(),
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_logs_since_last: 5000,
            logs_kept_after_snapshot: 1000,
            tls: None,
        }
    }

    fn raft_config(&self) -> Result<openraft::Config, QuorumError> {
        let config = openraft::Config {
            cluster_name: "sluice-metadata".to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            max_payload_entries: ENTRIES_PER_APPEND_MAX,
            snapshot_max_chunk_size: 1 << 20,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| QuorumError::Config(e.to_string()))
    }
}

#[derive(Debug, Error)]
pub enum QuorumError {
    #[error("the voter set is empty")]
    NoVoters,
    #[error("data dir was initialized with voters {stored:?}, not {given:?}; refusing to start")]
    VoterSetMismatch {
        stored: BTreeMap<NodeId, String>,
        given: BTreeMap<NodeId, String>,
    },
    #[error("opening the raft store: {0}")]
    Store(#[from] StoreError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("raft config: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a proposal was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error, serde::Serialize, serde::Deserialize)]
pub enum ProposeError {
    /// This node is not the active controller; retry on `leader_id` (its Raft address given).
    #[error("not the controller; leader is {leader_id:?}")]
    NotController {
        leader_id: Option<NodeId>,
        leader_address: Option<String>,
    },
    #[error("the operation's records take {0} bytes, over the entry limit")]
    EntryTooLarge(usize),
    /// The records did not fit the image when applied (another change got there first).
    #[error("records rejected on apply: {0}")]
    Rejected(String),
    #[error("the quorum is shutting down or failed: {0}")]
    Stopped(String),
    /// The active controller could not be reached to forward the operation to.
    #[error("the controller is unreachable: {0}")]
    Unreachable(String),
}

impl ProposeError {
    /// The Kafka error code a client should see.
    pub fn error_code(&self) -> i16 {
        match self {
            ProposeError::NotController { .. } | ProposeError::Unreachable(_) => {
                error_code::NOT_CONTROLLER
            }
            ProposeError::EntryTooLarge(_) => error_code::POLICY_VIOLATION,
            ProposeError::Rejected(_) | ProposeError::Stopped(_) => {
                error_code::UNKNOWN_SERVER_ERROR
            }
        }
    }
}

/// One node of the metadata quorum: a voter, or a learner when not in the voter set.
pub struct MetadataQuorum {
    node_id: NodeId,
    raft: Raft,
    images: watch::Receiver<Arc<MetadataImage>>,
    proposer: Arc<Proposer>,
    server_shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
    local_address: SocketAddr,
    /// Turns true once the database file is closed: the data dir can be reopened.
    database_closed: watch::Receiver<bool>,
}

impl MetadataQuorum {
    /// Starts a node with default tunables; see [`MetadataQuorum::start_with`].
    pub async fn start(
        node_id: NodeId,
        voters: BTreeMap<NodeId, String>,
        data_dir: PathBuf,
        raft_listen: SocketAddr,
    ) -> Result<MetadataQuorum, QuorumError> {
        Self::start_with(QuorumConfig::new(node_id, voters, data_dir, raft_listen)).await
    }

    /// Opens the store, checks (or writes) the bootstrap marker, starts Raft and the listener,
    /// and initializes the cluster if this voter's log is pristine.
    pub async fn start_with(config: QuorumConfig) -> Result<MetadataQuorum, QuorumError> {
        if config.voters.is_empty() {
            return Err(QuorumError::NoVoters);
        }
        let raft_config = Arc::new(config.raft_config()?);
        std::fs::create_dir_all(&config.data_dir)?;
        let (db, database_closed) = open_database(config.data_dir.join(DATABASE_FILE_NAME)).await?;
        check_bootstrap_marker(&db, &config.voters)?;
        let log_store = LogStore::new(db.clone())?;
        let (publisher, images) = watch::channel(Arc::new(MetadataImage::empty()));
        let state_machine = StateMachine::open(db, publisher)?;
        let fingerprint = cluster_fingerprint(&config.voters);
        let transport = RaftTransport::new(config.tls.clone());
        let network = NetworkFactory {
            cluster_fingerprint: fingerprint,
            transport: transport.clone(),
        };
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network,
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        let listener = TcpListener::bind(config.raft_listen).await?;
        let local_address = listener.local_addr()?;
        let (server_shutdown, shutdown) = watch::channel(false);
        let proposer = Arc::new(Proposer::new(
            config.node_id,
            raft.clone(),
            images.clone(),
            config.controller.clone(),
            fingerprint,
            transport.clone(),
        ));
        let context = ServerContext {
            raft: raft.clone(),
            node_id: config.node_id,
            cluster_fingerprint: fingerprint,
            proposer: proposer.clone(),
            transport,
        };
        let server = tokio::spawn(serve(listener, context, shutdown));
        let quorum = MetadataQuorum {
            node_id: config.node_id,
            raft,
            images,
            proposer,
            server_shutdown,
            server: Mutex::new(Some(server)),
            local_address,
            database_closed,
        };
        if config.voters.contains_key(&config.node_id) {
            quorum.initialize_once(&config.voters).await?;
        } else {
            // A broker-only node follows the metadata log as a learner at the address its
            // listener is bound to.
            let proposer = quorum.proposer.clone();
            let voters = config.voters.clone();
            if local_address.ip().is_unspecified() {
                tracing::warn!(
                    %local_address,
                    "a learner on a wildcard Raft address cannot be dialed by the controller; \
                     give --raft-listen-address a concrete IP"
                );
            }
            let address = local_address.to_string();
            tokio::spawn(async move { proposer.join_as_learner(&voters, &address).await });
        }
        Ok(quorum)
    }

    async fn initialize_once(&self, voters: &BTreeMap<NodeId, String>) -> Result<(), QuorumError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if initialized {
            return Ok(());
        }
        let members: BTreeMap<NodeId, BasicNode> = voters
            .iter()
            .map(|(id, address)| (*id, BasicNode::new(address)))
            .collect();
        // Every voter initializes with the same membership, which openraft allows; the one
        // whose log already moved on answers NotAllowed, which is the goal reached.
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(()),
            Err(error) => Err(QuorumError::Raft(error.to_string())),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The address the Raft listener is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The current image; take it once per request.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Every new image, in order (a slow subscriber skips to the newest).
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// openraft's metrics: leader, term, applied index.
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, BasicNode>> {
        self.raft.metrics()
    }

    /// Runs a controller operation on this node, which must be the active controller, and
    /// answers once its records are committed and applied here.
    pub async fn propose(&self, operation: Operation) -> Result<OperationResponse, ProposeError> {
        Ok(self.proposer.propose_local(operation).await?.response)
    }

    /// Runs a controller operation on the active controller, forwarding it there when this
    /// node is not it; retries while the quorum elects a leader (see [`Proposer::submit`]).
    pub async fn submit(&self, operation: Operation) -> Result<Proposed, ProposeError> {
        self.proposer.submit(operation).await
    }

    /// The current Raft leader (Kafka's active controller), if known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.proposer.leader_id()
    }

    /// On the active controller: unfenced brokers whose heartbeats stopped.
    pub fn expired_brokers(&self, session_timeout: Duration) -> Vec<crate::image::BrokerId> {
        self.proposer.expired_brokers(session_timeout)
    }

    /// Whether `node_id` is a voter of the current membership.
    pub fn is_voter(&self, node_id: NodeId) -> bool {
        self.proposer.is_voter(node_id)
    }

    /// Removes a voter (a decommissioned controller) through the active controller.
    pub async fn remove_voter(&self, node_id: NodeId) -> Result<(), ProposeError> {
        self.proposer.remove_voter(node_id).await
    }

    /// Partition loads reported in brokers' heartbeats (on the active controller).
    pub fn partition_loads(&self) -> crate::controller::balance::PartitionLoads {
        self.proposer.partition_loads()
    }

    /// Adds a non-voting broker that follows the metadata log. Call on the leader.
    pub async fn add_learner(&self, node_id: NodeId, address: String) -> Result<(), ProposeError> {
        match self
            .raft
            .add_learner(node_id, BasicNode::new(address), true)
            .await
        {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(not_controller(&forward))
            }
            Err(error) => Err(ProposeError::Stopped(error.to_string())),
        }
    }

    /// Builds a snapshot now (tests, and operators before a planned restart).
    pub async fn trigger_snapshot(&self) -> Result<(), ProposeError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ProposeError::Stopped(e.to_string()))
    }

    /// Stops Raft and the listener; the data dir can be reopened once this returns.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        self.server_shutdown.send_replace(true);
        if let Some(server) = self.server.lock().await.take() {
            server.await.map_err(|e| QuorumError::Raft(e.to_string()))?;
        }
        self.raft
            .shutdown()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))?;
        // openraft's replication and state machine tasks end shortly after the core; wait for
        // the last store handle so that a restart can reopen (and lock) the database.
        let mut closed = self.database_closed.clone();
        let wait = tokio::time::timeout(SHUTDOWN_RELEASE_TIMEOUT, closed.wait_for(|c| *c)).await;
        // A dropped sender (`Ok(Err(_))`) also means the database is gone.
        if wait.is_err() {
            return Err(QuorumError::Raft(
                "raft store still open after shutdown".into(),
            ));
        }
        Ok(())
    }
}

use crate::proposer::not_controller;

/// Opens (or creates) the database. redb locks the file, so a second process on the same data
/// dir fails here instead of running a second copy of this node.
async fn open_database(
    path: PathBuf,
) -> Result<(Arc<RaftDatabase>, watch::Receiver<bool>), StoreError> {
    let opened = tokio::task::spawn_blocking(move || RaftDatabase::create(&path)).await?;
    opened
}

/// The first start records the voter set; every later start must name the same one, so two
/// different clusters are never formed from one data dir.
fn check_bootstrap_marker(
    db: &Database,
    voters: &BTreeMap<NodeId, String>,
) -> Result<(), QuorumError> {
    let mut txn = db.begin_write().map_err(StoreError::from)?;
    txn.set_durability(Durability::Immediate);
    {
        let mut table = txn.open_table(META_TABLE).map_err(StoreError::from)?;
        let stored = table.get(VOTERS_KEY).map_err(StoreError::from)?;
        let stored = stored.map(|bytes| bytes.value().to_vec());
        if let Some(stored) = stored {
            let stored: BTreeMap<NodeId, String> =
                postcard::from_bytes(&stored).map_err(StoreError::from)?;
            if &stored != voters {
                return Err(QuorumError::VoterSetMismatch {
                    stored,
                    given: voters.clone(),
                });
            }
            return Ok(());
        }
        let bytes = postcard::to_stdvec(voters).map_err(StoreError::from)?;
        table
            .insert(VOTERS_KEY, bytes.as_slice())
            .map_err(StoreError::from)?;
    }
    txn.commit().map_err(StoreError::from)?;
    Ok(())
}
