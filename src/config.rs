//! Command-line flags and environment variables of the `sluice` binary.
//!
//! Every flag has a `SLUICE_…` environment variable. Defaults give a single-node dev broker on
//! 127.0.0.1:9092 with its data in `./sluice-data`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

use crate::net::listeners::{self, ListenerSpec};

/// Kafka's `socket.request.max.bytes`.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;
/// Kafka's `message.max.bytes` (the largest record batch a topic accepts by default).
pub const MESSAGE_BYTES_MAX_DEFAULT: u32 = 1_048_588;
/// Kafka's broker `fetch.max.bytes`: the most one Fetch response carries, whatever it asks.
pub const FETCH_RESPONSE_BYTES_MAX_DEFAULT: usize = 55 * 1024 * 1024;

/// 1 Gbit/s in bytes/s: a modest cloud VM's link.
pub const NETWORK_CAPACITY_BYTES_PER_SEC_DEFAULT: u64 = 125_000_000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Most controller voters: Raft quorums beyond a handful only slow commits down.
const VOTERS_MAX: usize = 9;
/// Longest --broker-rack: a rack is a short label (Kafka strings are i16-length-prefixed).
const RACK_BYTES_MAX: usize = 255;

/// When partition data reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlushPolicy {
    /// fsync before a Produce is acknowledged: survives power loss, slowest.
    EveryAppend,
    /// fsync every `--flush-interval-ms`: a power loss loses at most that window;
    /// a crash of the process alone loses nothing acknowledged.
    Interval,
    /// Leave it to the OS page cache (Kafka's default): a process crash loses nothing
    /// acknowledged, a power loss can lose what the OS had not written back.
    Os,
}

/// A Kafka-compatible broker in one binary.
///
/// With no arguments: a single-node dev broker on 127.0.0.1:9092, data in ./sluice-data.
#[derive(Debug, Clone, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Config {
    /// Address the client listener binds (port 0 picks a free port).
    #[arg(long, env = "SLUICE_LISTEN_ADDRESS", default_value = "127.0.0.1:9092")]
    pub listen_address: SocketAddr,

    /// host:port handed to clients in Metadata [default: the bound address; 127.0.0.1 when
    /// bound to all interfaces].
    #[arg(long, env = "SLUICE_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,

    /// Named listeners, Kafka's `NAME://host:port,...` (e.g. `PLAINTEXT://127.0.0.1:9092,
    /// SASL_SSL://127.0.0.1:9094`); the name is the security protocol unless
    /// --listener-security-protocol-map maps it. When given, --listen-address is ignored.
    #[arg(long, env = "SLUICE_LISTENERS")]
    pub listeners: Option<String>,

    /// Per listener name, what clients are handed, `NAME://host:port,...` [default: each
    /// listener's bound address; 127.0.0.1 when bound to all interfaces]. Takes precedence
    /// over --advertised-address, which applies to the first listener.
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,

    /// `NAME:PROTOCOL,...` for listener names that are not protocols themselves (protocols:
    /// PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    #[arg(long, env = "SLUICE_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,

    /// PEM certificate chain of SSL and SASL_SSL listeners; re-read when its mtime changes.
    #[arg(long, env = "SLUICE_SSL_CERTIFICATE_FILE")]
    pub ssl_certificate_file: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --ssl-certificate-file.
    #[arg(long, env = "SLUICE_SSL_KEY_FILE")]
    pub ssl_key_file: Option<PathBuf>,

    /// PEM CA certificates: when set, TLS clients must present a certificate they signed
    /// (mTLS); the principal is `User:<subject CN>`.
    #[arg(long, env = "SLUICE_SSL_CLIENT_CA_FILE")]
    pub ssl_client_ca_file: Option<PathBuf>,

    /// PEM CA certificates this node trusts when it dials another node's SSL or SASL_SSL
    /// listener (Kafka's ssl.truststore.location) [default: --ssl-client-ca-file]. The
    /// other node's certificate must name its advertised host (IP or DNS SAN). When the other
    /// node asks for a client certificate (mTLS), this node presents --ssl-certificate-file.
    #[arg(long, env = "SLUICE_SSL_TRUSTSTORE_FILE")]
    pub ssl_truststore_file: Option<PathBuf>,

    /// Kafka's `inter.broker.listener.name`: the listener nodes dial each other on
    /// (replication, transaction markers, the controller's address check); every node of a
    /// cluster names the same one. [default: the first PLAINTEXT listener, else the first]
    #[arg(long, env = "SLUICE_INTER_BROKER_LISTENER_NAME")]
    pub inter_broker_listener_name: Option<String>,

    /// Kafka's `sasl.mechanism.inter.broker.protocol`, when the inter-broker listener uses
    /// SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, env = "SLUICE_SASL_MECHANISM_INTER_BROKER_PROTOCOL")]
    pub sasl_mechanism_inter_broker_protocol: Option<String>,

    /// The SASL user this node authenticates as to other nodes; its principal
    /// (`User:<name>`) needs ClusterAction on the cluster (or --super-users).
    #[arg(long, env = "SLUICE_INTER_BROKER_SASL_USERNAME")]
    pub inter_broker_sasl_username: Option<String>,

    /// The password of --inter-broker-sasl-username (prefer the environment variable: a
    /// command line is visible to every local user). Never logged.
    #[arg(
        long,
        env = "SLUICE_INTER_BROKER_SASL_PASSWORD",
        hide_env_values = true
    )]
    pub inter_broker_sasl_password: Option<crate::security::Secret>,

    /// SASL/PLAIN users, one `user:password` a line (`#` comments); PLAIN is offered only
    /// when this is set. Re-read when its mtime changes.
    #[arg(long, env = "SLUICE_SASL_PLAIN_USERS_FILE")]
    pub sasl_plain_users_file: Option<PathBuf>,

    /// Kafka's `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long
    /// (announced in SaslAuthenticate v1+); a client must re-authenticate on its connection
    /// before then, or the connection is closed at its next request. 0: sessions never expire.
    #[arg(long, env = "SLUICE_CONNECTIONS_MAX_REAUTH_MS", default_value_t = 0)]
    pub connections_max_reauth_ms: u64,

    /// Kafka's `authorizer.class.name`: `org.apache.kafka.metadata.authorizer.StandardAuthorizer`
    /// (or `kafka.security.authorizer.AclAuthorizer`) turns ACL authorisation on: every
    /// request is checked against the ACLs in the cluster metadata (managed with CreateAcls,
    /// DescribeAcls, DeleteAcls, e.g. kafka-acls). Unset: everything is allowed.
    #[arg(long, alias = "authorizer", env = "SLUICE_AUTHORIZER_CLASS_NAME")]
    pub authorizer_class_name: Option<String>,

    /// Kafka's `super.users`: principals allowed everything, `User:admin;User:ops`. Nodes
    /// replicate as the principal they authenticate as on --inter-broker-listener-name: the
    /// SASL user (--inter-broker-sasl-username), `User:<CN>` of their certificate on an
    /// mTLS listener, else `User:ANONYMOUS` (then keep that listener internal). List it here
    /// or grant it ClusterAction on the cluster.
    #[arg(long, env = "SLUICE_SUPER_USERS", default_value = "")]
    pub super_users: String,

    /// Kafka's `allow.everyone.if.no.acl.found`: allow a request on a resource no ACL covers.
    #[arg(
        long,
        env = "SLUICE_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub allow_everyone_if_no_acl_found: bool,

    /// Directory holding partition logs and the metadata store.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,

    /// This node's id (Kafka's node.id).
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Address the metadata quorum's Raft listener binds (port 0 picks a free port; only a
    /// single-node quorum can use that, as peers must know the address).
    #[arg(
        long,
        env = "SLUICE_RAFT_LISTEN_ADDRESS",
        default_value = "127.0.0.1:9093"
    )]
    pub raft_listen_address: SocketAddr,

    /// Mutual TLS on the Raft port: this node presents --ssl-certificate-file to the nodes it
    /// dials and requires theirs, each verified against --ssl-truststore-file (default
    /// --ssl-client-ca-file) and the certificate naming the host of its Raft address. Every
    /// node of a cluster sets it, or none. Certificates are read at start.
    #[arg(long, env = "SLUICE_RAFT_TLS", default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub raft_tls: bool,

    /// The controller quorum's voters, `id@host:port,...` (Kafka's
    /// controller.quorum.voters) [default: this node alone, on --raft-listen-address].
    /// Fixed at the first start of a data dir; a later start with another set is refused.
    #[arg(long, env = "SLUICE_VOTERS")]
    pub voters: Option<String>,

    /// Kafka's process.roles: `broker,controller` (a voter that also hosts partitions),
    /// `broker` (a broker that follows the metadata log as a Raft learner; its id must not be
    /// in --voters) or `controller` (a voter that hosts no partitions and is not a broker).
    #[arg(
        long,
        env = "SLUICE_PROCESS_ROLES",
        default_value = "broker,controller"
    )]
    pub process_roles: String,

    /// A broker whose heartbeats stop for this long is fenced by the controller (Kafka's
    /// broker.session.timeout.ms).
    #[arg(long, env = "SLUICE_BROKER_SESSION_TIMEOUT_MS", default_value_t = 9000)]
    pub broker_session_timeout_ms: u64,

    /// How often this broker heartbeats to the controller (Kafka's
    /// broker.heartbeat.interval.ms).
    #[arg(
        long,
        env = "SLUICE_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 2000
    )]
    pub broker_heartbeat_interval_ms: u64,

    /// Unfence a broker only after the active controller reached it at its advertised address
    /// (resolve, connect, ApiVersions answered by that broker), and fence an unfenced broker
    /// that stops answering there. Off only for tests that run no listener.
    #[arg(
        long,
        env = "SLUICE_ADMISSION_CHECK",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub admission_check: bool,

    /// A follower that has not caught up with the leader for this long leaves the ISR
    /// (Kafka's replica.lag.time.max.ms).
    #[arg(long, env = "SLUICE_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000)]
    pub replica_lag_time_max_ms: u64,

    /// Bytes per second this node fetches, all partitions together, for replicas a
    /// reassignment is adding to it; 0 for no limit (Kafka's
    /// follower.replication.throttled.rate, applied to reassignments only).
    #[arg(
        long,
        env = "SLUICE_REASSIGNMENT_THROTTLE_BYTES_PER_SEC",
        default_value_t = 50 << 20
    )]
    pub reassignment_throttle_bytes_per_sec: u64,

    /// Partition reassignments that run at once; the controller queues the rest and starts
    /// them as running ones complete.
    #[arg(long, env = "SLUICE_REASSIGNMENT_MOVES_MAX", default_value_t = 4)]
    pub reassignment_moves_max: usize,

    /// How often each replica's high watermark is persisted (Kafka's
    /// replica.high.watermark.checkpoint.interval.ms); also at shutdown.
    #[arg(
        long,
        env = "SLUICE_REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS",
        default_value_t = 5_000
    )]
    pub replica_high_watermark_checkpoint_interval_ms: u64,

    /// How often the active controller rebalances: moves replicas and preferred leaders so
    /// that every active broker holds within one of the even share, empties brokers with
    /// `sluice.drain=true`, and elects preferred leaders back after failovers. 0: never.
    #[arg(long, env = "SLUICE_BALANCER_INTERVAL_MS", default_value_t = 30_000)]
    pub balancer_interval_ms: u64,

    /// Replication factor of auto-created topics and of CreateTopics asking for -1 (Kafka's
    /// default.replication.factor).
    #[arg(long, env = "SLUICE_DEFAULT_REPLICATION_FACTOR", default_value_t = 1)]
    pub default_replication_factor: i16,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive list.
    #[arg(long, env = "SLUICE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// After binding, write the bound address to this file (for scripts and tests).
    #[arg(long, env = "SLUICE_BOUND_ADDRESS_FILE")]
    pub bound_address_file: Option<PathBuf>,

    /// Address of the HTTP listener serving /metrics, /health and /ready (port 0 picks a
    /// free port).
    #[arg(
        long,
        env = "SLUICE_METRICS_LISTEN_ADDRESS",
        default_value = "127.0.0.1:9644"
    )]
    pub metrics_listen_address: SocketAddr,

    /// After binding, write the metrics listener's bound address to this file.
    #[arg(long, env = "SLUICE_METRICS_BOUND_ADDRESS_FILE")]
    pub metrics_bound_address_file: Option<PathBuf>,

    /// The node's link capacity in bytes/s, each direction (125000000 = 1 Gbit/s).
    #[arg(
        long,
        env = "SLUICE_NETWORK_CAPACITY_BYTES_PER_SEC",
        default_value_t = NETWORK_CAPACITY_BYTES_PER_SEC_DEFAULT
    )]
    pub network_capacity_bytes_per_sec: u64,

    /// Fraction of the capacity the node may use: egress and ingress budgets are
    /// capacity x this.
    #[arg(long, env = "SLUICE_NETWORK_TARGET_UTILIZATION", default_value_t = 0.8)]
    pub network_target_utilization: f64,

    /// Create a topic when a client asks Metadata for one that does not exist.
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Partition count of auto-created topics and of CreateTopics asking for -1.
    #[arg(long, env = "SLUICE_DEFAULT_PARTITIONS", default_value_t = 1)]
    pub default_partitions: i32,

    /// When partition data is fsynced.
    #[arg(long, env = "SLUICE_FLUSH_POLICY", value_enum, default_value_t = FlushPolicy::Interval)]
    pub flush_policy: FlushPolicy,

    /// Period of the background fsync under `--flush-policy interval`.
    #[arg(long, env = "SLUICE_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    pub flush_interval_ms: u64,

    /// Default segment.bytes: a segment file rolls at this size.
    #[arg(long, env = "SLUICE_SEGMENT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub segment_bytes: u64,

    /// Default segment.ms: a segment rolls at this age.
    #[arg(long, env = "SLUICE_SEGMENT_MS", default_value_t = 7 * DAY_MS)]
    pub segment_ms: i64,

    /// Default retention.ms (-1: keep forever).
    #[arg(long, env = "SLUICE_RETENTION_MS", default_value_t = 7 * DAY_MS, allow_negative_numbers = true)]
    pub retention_ms: i64,

    /// Default retention.bytes per partition (-1: no size limit).
    #[arg(long, env = "SLUICE_RETENTION_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    pub retention_bytes: i64,

    /// How often retention runs (Kafka's log.retention.check.interval.ms).
    #[arg(
        long,
        env = "SLUICE_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub retention_check_interval_ms: u64,

    /// Largest request frame accepted; a longer one closes the connection unread.
    #[arg(long, env = "SLUICE_MAX_REQUEST_BYTES", default_value_t = REQUEST_BYTES_MAX_DEFAULT)]
    pub max_request_bytes: usize,

    /// Default max.message.bytes: the largest record batch a topic accepts.
    #[arg(long, env = "SLUICE_MAX_MESSAGE_BYTES", default_value_t = MESSAGE_BYTES_MAX_DEFAULT)]
    pub max_message_bytes: u32,

    /// Most bytes one Fetch response carries, whatever the client asks (Kafka's fetch.max.bytes).
    #[arg(long, env = "SLUICE_FETCH_MAX_BYTES", default_value_t = FETCH_RESPONSE_BYTES_MAX_DEFAULT)]
    pub fetch_max_bytes: usize,

    /// Most client connections served at once; further ones wait in the accept queue.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most client connections open at once from one IP address; a further one is closed at
    /// once (Kafka's max.connections.per.ip). 0: no per-address limit.
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// Most new client connections this node accepts per second, from all addresses; one
    /// beyond it is closed at once (Kafka's max.connection.creation.rate). 0: no limit.
    #[arg(long, env = "SLUICE_MAX_CONNECTION_CREATION_RATE", default_value_t = 0)]
    pub max_connection_creation_rate: u32,

    /// This broker's rack (Kafka's broker.rack): replica placement spreads over racks, and
    /// consumers that set client.rack are sent to an in-sync replica in their rack (KIP-392).
    #[arg(long, env = "SLUICE_BROKER_RACK")]
    pub broker_rack: Option<String>,

    /// Most partitions this node hosts (CreateTopics/CreatePartitions beyond it fail).
    #[arg(long, env = "SLUICE_MAX_PARTITIONS", default_value_t = 100_000)]
    pub max_partitions: usize,

    /// How long a new group waits for more members before its first rebalance completes
    /// (Kafka's group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Most members in one consumer group (Kafka's group.max.size).
    #[arg(long, env = "SLUICE_GROUP_MAX_SIZE", default_value_t = 1000)]
    pub group_max_size: usize,

    /// How often members of KIP-848 consumer groups heartbeat (Kafka's
    /// group.consumer.heartbeat.interval.ms).
    #[arg(
        long,
        env = "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = crate::group::CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT
    )]
    pub group_consumer_heartbeat_interval_ms: u64,

    /// A consumer group member not heard from for this long is fenced (Kafka's
    /// group.consumer.session.timeout.ms).
    #[arg(
        long,
        env = "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = crate::group::CONSUMER_SESSION_TIMEOUT_MS_DEFAULT
    )]
    pub group_consumer_session_timeout_ms: u64,

    /// Committed offsets of an empty group are dropped after this long (Kafka's
    /// offsets.retention.minutes).
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_MINUTES", default_value_t = 7 * 24 * 60)]
    pub offsets_retention_minutes: i64,

    /// How often expired committed offsets are looked for (Kafka's
    /// offsets.retention.check.interval.ms).
    #[arg(
        long,
        env = "SLUICE_OFFSETS_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 600_000
    )]
    pub offsets_retention_check_interval_ms: u64,

    /// Partitions of the internal `__consumer_offsets` topic when it is created (Kafka's
    /// offsets.topic.num.partitions, 50 there). Smaller here because each follower replica
    /// runs its own fetch loop (no per-broker fetcher multiplexing yet): 50 partitions at
    /// RF 3 would add 100 idle long-polls to every cluster.
    #[arg(long, env = "SLUICE_OFFSETS_TOPIC_PARTITIONS", default_value_t = 10)]
    pub offsets_topic_partitions: i32,

    /// Replication factor of `__consumer_offsets` (Kafka's
    /// offsets.topic.replication.factor), capped at the brokers alive when it is created.
    #[arg(
        long,
        env = "SLUICE_OFFSETS_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    pub offsets_topic_replication_factor: i16,

    /// Partitions of the internal `__transaction_state` topic when it is created (Kafka's
    /// transaction.state.log.num.partitions, 50 there; smaller for the reason given for the
    /// offsets topic). Its replication factor is min(3, live brokers).
    #[arg(
        long,
        env = "SLUICE_TRANSACTION_STATE_PARTITIONS",
        default_value_t = 10
    )]
    pub transaction_state_partitions: i32,

    /// The longest transaction.timeout.ms a producer may ask for (Kafka's
    /// transaction.max.timeout.ms); InitProducerId above it is INVALID_TRANSACTION_TIMEOUT.
    #[arg(
        long,
        env = "SLUICE_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    pub transaction_max_timeout_ms: i32,

    /// How often the transaction coordinator aborts transactions older than their timeout
    /// (Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms).
    #[arg(
        long,
        env = "SLUICE_TRANSACTION_ABORT_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub transaction_abort_interval_ms: u64,

    /// A transactional id idle (no transaction) this long is forgotten: its record is
    /// tombstoned (Kafka's transactional.id.expiration.ms, 7 days).
    #[arg(
        long,
        env = "SLUICE_TRANSACTIONAL_ID_EXPIRATION_MS",
        default_value_t = 604_800_000
    )]
    pub transactional_id_expiration_ms: i64,

    /// The transaction version finalized for clients (the `transaction.version` feature of
    /// ApiVersions): 2 (KIP-890 part 2: partitions added by the leaders, an epoch bump per
    /// transaction) or 1 (clients add partitions themselves, as before).
    #[arg(
        long,
        env = "SLUICE_TRANSACTION_VERSION",
        default_value_t = 2,
        value_parser = clap::value_parser!(i16).range(1..=2)
    )]
    pub transaction_version: i16,

    /// Whether Fetch v0-v3 readers (Kafka 0.8-0.10 clients) get stored batches converted to
    /// their message format (Kafka's log.message.downconversion.enable); when false they get
    /// UNSUPPORTED_VERSION. Topics override it with message.downconversion.enable.
    #[arg(long, env = "SLUICE_MESSAGE_DOWNCONVERSION_ENABLE", default_value_t = true, action = ArgAction::Set)]
    pub message_downconversion_enable: bool,

    /// An idempotent producer with no append to a partition for this long is forgotten there
    /// (Kafka's producer.id.expiration.ms).
    #[arg(long, env = "SLUICE_PRODUCER_ID_EXPIRATION_MS", default_value_t = DAY_MS)]
    pub producer_id_expiration_ms: i64,

    /// Whether compacted topics (cleanup.policy=compact) are cleaned (Kafka's
    /// log.cleaner.enable).
    #[arg(long, env = "SLUICE_LOG_CLEANER_ENABLE", default_value_t = true, action = ArgAction::Set)]
    pub log_cleaner_enable: bool,

    /// Memory of the cleaner's key map; a larger dirty section is cleaned in several passes
    /// (Kafka's log.cleaner.dedupe.buffer.size).
    #[arg(long, env = "SLUICE_LOG_CLEANER_DEDUPE_BUFFER_SIZE", default_value_t = 128 << 20)]
    pub log_cleaner_dedupe_buffer_size: usize,

    /// Bytes per second the cleaner reads plus writes at most; 0 = unlimited (Kafka's
    /// log.cleaner.io.max.bytes.per.second).
    #[arg(
        long,
        env = "SLUICE_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND",
        default_value_t = 0
    )]
    pub log_cleaner_io_max_bytes_per_second: u64,

    /// How long the cleaner sleeps when no log needs cleaning (Kafka's log.cleaner.backoff.ms).
    #[arg(long, env = "SLUICE_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    pub log_cleaner_backoff_ms: u64,
}

impl Config {
    /// Checks relations between flags that clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.default_partitions < 1 {
            return Err("--default-partitions must be at least 1".into());
        }
        if self.max_request_bytes < 64 {
            return Err("--max-request-bytes must be at least 64".into());
        }
        if self.flush_interval_ms == 0
            || self.retention_check_interval_ms == 0
            || self.log_cleaner_backoff_ms == 0
            || self.replica_high_watermark_checkpoint_interval_ms == 0
        {
            return Err("intervals must be at least 1 ms".into());
        }
        if self.segment_bytes < 1024 {
            return Err("--segment-bytes must be at least 1024".into());
        }
        if self.producer_id_expiration_ms < 1 {
            return Err("--producer-id-expiration-ms must be at least 1".into());
        }
        if self.group_max_size == 0 || self.offsets_retention_minutes < 1 {
            return Err(
                "--group-max-size and --offsets-retention-minutes must be at least 1".into(),
            );
        }
        if !(1..=crate::broker::PARTITIONS_PER_TOPIC_MAX).contains(&self.offsets_topic_partitions)
            || self.offsets_topic_replication_factor < 1
        {
            return Err("--offsets-topic-partitions (at most 10000) and \
                 --offsets-topic-replication-factor must be at least 1"
                .into());
        }
        if !(1..=crate::broker::PARTITIONS_PER_TOPIC_MAX)
            .contains(&self.transaction_state_partitions)
            || self.transaction_max_timeout_ms < 1
            || self.transaction_abort_interval_ms == 0
            || self.transactional_id_expiration_ms < 1
        {
            return Err("--transaction-state-partitions (at most 10000), \
                 --transaction-max-timeout-ms, --transaction-abort-interval-ms and \
                 --transactional-id-expiration-ms must be at least 1"
                .into());
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return Err("--offsets-retention-check-interval-ms must be at least 1".into());
        }
        let heartbeat_ms = self.group_consumer_heartbeat_interval_ms;
        let session_ms = self.group_consumer_session_timeout_ms;
        // Kafka requires the interval to be shorter than the session timeout; both fit the
        // protocol's i32 milliseconds.
        if heartbeat_ms == 0 || heartbeat_ms >= session_ms || session_ms > i32::MAX as u64 {
            return Err(
                "--group-consumer-heartbeat-interval-ms must be at least 1 and below \
                 --group-consumer-session-timeout-ms (at most 2147483647)"
                    .into(),
            );
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_connection_creation_rate > crate::net::limits::CREATION_RATE_MAX {
            return Err(format!(
                "--max-connection-creation-rate must be at most {}",
                crate::net::limits::CREATION_RATE_MAX
            ));
        }
        if self
            .broker_rack
            .as_deref()
            .is_some_and(|rack| rack.is_empty() || rack.len() > RACK_BYTES_MAX)
        {
            return Err(format!(
                "--broker-rack must be 1 to {RACK_BYTES_MAX} bytes when given"
            ));
        }
        self.validate_listeners()?;
        if let Some(name) = &self.authorizer_class_name {
            use crate::security::authorizer::{ACL_AUTHORIZER, STANDARD_AUTHORIZER};
            if name != STANDARD_AUTHORIZER && name != ACL_AUTHORIZER {
                return Err(format!(
                    "--authorizer-class-name must be {STANDARD_AUTHORIZER} or {ACL_AUTHORIZER}"
                ));
            }
        }
        let utilization = self.network_target_utilization;
        if self.network_capacity_bytes_per_sec == 0 || !(utilization > 0.0 && utilization <= 1.0) {
            return Err("--network-capacity-bytes-per-sec must be at least 1 and \
                 --network-target-utilization in (0, 1]"
                .into());
        }
        self.validate_cluster()
    }

    /// The listeners to bind, from --listeners or --listen-address.
    pub fn listener_specs(&self) -> Result<Vec<ListenerSpec>, String> {
        listeners::listener_specs(
            self.listeners.as_deref(),
            self.listener_security_protocol_map.as_deref(),
            self.listen_address,
        )
    }

    fn validate_listeners(&self) -> Result<(), String> {
        let specs = self.listener_specs()?;
        if let Some(text) = &self.advertised_listeners {
            listeners::advertised_overrides(text, &specs)?;
        }
        let tls = specs.iter().any(|spec| spec.protocol.uses_tls());
        if tls && (self.ssl_certificate_file.is_none() || self.ssl_key_file.is_none()) {
            return Err(
                "SSL and SASL_SSL listeners need --ssl-certificate-file and --ssl-key-file".into(),
            );
        }
        if self.raft_tls
            && (self.ssl_certificate_file.is_none()
                || self.ssl_key_file.is_none()
                || self.inter_broker_trusted_ca().is_none())
        {
            return Err(
                "--raft-tls needs --ssl-certificate-file, --ssl-key-file and \
                 --ssl-truststore-file (or --ssl-client-ca-file)"
                    .into(),
            );
        }
        self.validate_inter_broker(&specs)
    }

    /// The inter-broker listener (--inter-broker-listener-name, else the first PLAINTEXT
    /// listener, else the first) must be one of this node's, with what dialing it needs.
    fn validate_inter_broker(&self, specs: &[ListenerSpec]) -> Result<(), String> {
        let listener = self.inter_broker_listener(specs)?;
        if listener.protocol.uses_tls() && self.inter_broker_trusted_ca().is_none() {
            return Err(format!(
                "the inter-broker listener {} uses TLS: --ssl-truststore-file (or \
                 --ssl-client-ca-file) must name the CA other nodes' certificates come from",
                listener.name
            ));
        }
        if !listener.protocol.uses_sasl() {
            return Ok(());
        }
        let mechanism = self.sasl_mechanism_inter_broker_protocol.as_deref();
        if !matches!(mechanism, Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512")) {
            return Err(format!(
                "the inter-broker listener {} uses SASL: --sasl-mechanism-inter-broker-protocol \
                 must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                listener.name
            ));
        }
        let has_user = self
            .inter_broker_sasl_username
            .as_deref()
            .is_some_and(|user| !user.is_empty());
        if !has_user || self.inter_broker_sasl_password.is_none() {
            return Err(format!(
                "the inter-broker listener {} uses SASL: set --inter-broker-sasl-username and \
                 --inter-broker-sasl-password",
                listener.name
            ));
        }
        Ok(())
    }

    /// This node's listener other nodes are dialed on (they dial theirs of the same name).
    pub fn inter_broker_listener<'a>(
        &self,
        specs: &'a [ListenerSpec],
    ) -> Result<&'a ListenerSpec, String> {
        match &self.inter_broker_listener_name {
            Some(name) => {
                let name = name.to_ascii_uppercase();
                specs.iter().find(|spec| spec.name == name).ok_or_else(|| {
                    format!("--inter-broker-listener-name {name} is not one of --listeners")
                })
            }
            None => specs
                .iter()
                .find(|spec| spec.protocol == listeners::SecurityProtocol::Plaintext)
                .or(specs.first())
                .ok_or_else(|| "no listener".to_string()),
        }
    }

    /// The CA file this node trusts when it dials another node over TLS.
    pub fn inter_broker_trusted_ca(&self) -> Option<&std::path::Path> {
        self.ssl_truststore_file
            .as_deref()
            .or(self.ssl_client_ca_file.as_deref())
    }

    fn validate_cluster(&self) -> Result<(), String> {
        if self.node_id < 0 {
            return Err("--node-id must not be negative".into());
        }
        let roles = self.roles()?;
        let is_voter = roles != Roles::BrokerOnly;
        if roles == Roles::ControllerOnly && self.voters.is_none() {
            return Err(
                "--process-roles controller: --voters must name the quorum, with brokers \
                 elsewhere (a lone controller serves no data)"
                    .into(),
            );
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return Err(
                "--broker-session-timeout-ms must exceed --broker-heartbeat-interval-ms (>= 1)"
                    .into(),
            );
        }
        if self.replica_lag_time_max_ms == 0 || self.default_replication_factor < 1 {
            return Err(
                "--replica-lag-time-max-ms and --default-replication-factor must be at least 1"
                    .into(),
            );
        }
        if self.reassignment_moves_max == 0 {
            return Err("--reassignment-moves-max must be at least 1".into());
        }
        let voters = self.parse_voters()?;
        let named = voters.contains_key(&(self.node_id as u64));
        if is_voter && !named {
            return Err(format!(
                "--voters does not name this node ({}); a node outside the voters runs with \
                 --process-roles broker",
                self.node_id
            ));
        }
        if !is_voter && (named || self.voters.is_none()) {
            return Err(format!(
                "--process-roles broker: node {} must not be a voter, and --voters must name \
                 the controllers it follows",
                self.node_id
            ));
        }
        Ok(())
    }

    /// What this node runs, from --process-roles.
    pub fn roles(&self) -> Result<Roles, String> {
        let mut roles: Vec<&str> = self.process_roles.split(',').map(str::trim).collect();
        roles.sort_unstable();
        match roles.as_slice() {
            ["broker", "controller"] => Ok(Roles::BrokerAndController),
            ["broker"] => Ok(Roles::BrokerOnly),
            ["controller"] => Ok(Roles::ControllerOnly),
            _ => Err(format!(
                "--process-roles {:?}: `broker,controller`, `broker` or `controller`",
                self.process_roles
            )),
        }
    }

    /// Whether this node registers as a broker and hosts partitions.
    pub fn is_broker(&self) -> bool {
        self.roles()
            .is_ok_and(|roles| roles != Roles::ControllerOnly)
    }

    /// The voter set: node id → Raft address.
    pub fn voter_map(&self) -> BTreeMap<u64, String> {
        // validate() checked the text at start; a bad one cannot get here.
        self.parse_voters().unwrap_or_default()
    }

    fn parse_voters(&self) -> Result<BTreeMap<u64, String>, String> {
        let Some(text) = &self.voters else {
            let address = self.raft_listen_address.to_string();
            return Ok(BTreeMap::from([(self.node_id as u64, address)]));
        };
        let mut voters = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, address) = entry
                .split_once('@')
                .ok_or_else(|| format!("--voters entry {entry:?} is not id@host:port"))?;
            let id: u64 = id
                .parse()
                .map_err(|_| format!("--voters entry {entry:?} has a bad node id"))?;
            address
                .parse::<SocketAddr>()
                .map_err(|_| format!("--voters entry {entry:?} has a bad address"))?;
            if id > i32::MAX as u64 || voters.insert(id, address.to_string()).is_some() {
                return Err(format!("--voters names node {id} twice or out of range"));
            }
        }
        if voters.is_empty() || voters.len() > VOTERS_MAX {
            return Err(format!("--voters must name 1 to {VOTERS_MAX} nodes"));
        }
        Ok(voters)
    }
}

/// Kafka's process roles this node can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    BrokerAndController,
    /// Follows the metadata log as a Raft learner; never votes.
    BrokerOnly,
    /// A voter that never registers as a broker: hosts nothing, not listed in Metadata.
    ControllerOnly,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_single_node_dev_broker() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert_eq!(config.listen_address.to_string(), "127.0.0.1:9092");
        assert_eq!(config.data_dir, PathBuf::from("./sluice-data"));
        assert!(config.auto_create_topics);
        assert_eq!(config.flush_policy, FlushPolicy::Interval);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn flags_override_defaults() {
        let config = Config::try_parse_from([
            "sluice",
            "--listen-address",
            "127.0.0.1:0",
            "--auto-create-topics",
            "false",
            "--retention-ms",
            "-1",
            "--flush-policy",
            "every-append",
        ])
        .expect("flags parse");
        assert_eq!(config.listen_address.port(), 0);
        assert!(!config.auto_create_topics);
        assert_eq!(config.retention_ms, -1);
        assert_eq!(config.flush_policy, FlushPolicy::EveryAppend);
    }

    #[test]
    fn inter_broker_listener_is_validated() {
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "sluice",
                "--listeners",
                "SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
                "--ssl-certificate-file",
                "/c.pem",
                "--ssl-key-file",
                "/k.pem",
            ];
            args.extend_from_slice(extra);
            Config::try_parse_from(args).expect("flags parse")
        };
        let name = |config: &Config| {
            let specs = config.listener_specs().unwrap();
            config.inter_broker_listener(&specs).map(|l| l.name.clone())
        };
        // Default: the first PLAINTEXT listener, as before inter-broker security existed.
        let config = parse(&[]);
        assert_eq!(name(&config).unwrap(), "PLAINTEXT");
        assert_eq!(config.validate_listeners(), Ok(()));
        let sasl = ["--inter-broker-listener-name", "sasl_ssl"];
        let error = parse(&sasl).validate_listeners().unwrap_err();
        assert!(error.contains("--ssl-truststore-file"), "{error}");
        let trusted = [&sasl[..], &["--ssl-truststore-file", "/ca.pem"]].concat();
        let error = parse(&trusted).validate_listeners().unwrap_err();
        assert!(
            error.contains("--sasl-mechanism-inter-broker-protocol"),
            "{error}"
        );
        let mechanism = [
            &trusted[..],
            &["--sasl-mechanism-inter-broker-protocol", "SCRAM-SHA-512"],
        ]
        .concat();
        let error = parse(&mechanism).validate_listeners().unwrap_err();
        assert!(error.contains("--inter-broker-sasl-username"), "{error}");
        let complete = [
            &mechanism[..],
            &[
                "--inter-broker-sasl-username",
                "broker",
                "--inter-broker-sasl-password",
                "p4ss",
            ],
        ]
        .concat();
        let config = parse(&complete);
        assert_eq!(config.validate_listeners(), Ok(()));
        assert_eq!(name(&config).unwrap(), "SASL_SSL");
        assert!(
            !format!("{config:?}").contains("p4ss"),
            "the password is never printed"
        );
        let unknown = parse(&["--inter-broker-listener-name", "INTERNAL"]);
        assert!(unknown
            .validate_listeners()
            .unwrap_err()
            .contains("INTERNAL"));
        // --raft-tls needs the node's certificate and a CA to trust.
        let raft = Config::try_parse_from(["sluice", "--raft-tls"]).unwrap();
        assert!(raft
            .validate_listeners()
            .unwrap_err()
            .contains("--raft-tls"));
        let raft = parse(&["--raft-tls", "--ssl-truststore-file", "/ca.pem"]);
        assert!(raft.raft_tls);
        assert_eq!(raft.validate_listeners(), Ok(()));
        // Only secured listeners: the first is dialed.
        let only = Config::try_parse_from(["sluice", "--listeners", "SSL://127.0.0.1:0"]).unwrap();
        assert_eq!(name(&only).unwrap(), "SSL");
    }

    #[test]
    fn voters_parse_kraft_style() {
        let config = Config::try_parse_from([
            "sluice",
            "--node-id",
            "2",
            "--voters",
            "1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095",
        ])
        .expect("flags parse");
        assert!(config.validate().is_ok());
        let voters = config.voter_map();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[&2], "127.0.0.1:19094");
        let alone = Config::try_parse_from(["sluice"]).expect("defaults parse");
        assert_eq!(
            alone.voter_map(),
            BTreeMap::from([(1, "127.0.0.1:9093".to_string())])
        );
    }

    #[test]
    fn bad_voters_and_roles_are_refused() {
        for args in [
            vec!["sluice", "--voters", "2@127.0.0.1:1"],
            vec!["sluice", "--voters", "1@nowhere"],
            vec!["sluice", "--voters", "1@127.0.0.1:1,1@127.0.0.1:2"],
            vec!["sluice", "--process-roles", "broker"],
            vec!["sluice", "--process-roles", "controller"],
            vec![
                "sluice",
                "--process-roles",
                "broker",
                "--voters",
                "1@127.0.0.1:1",
            ],
            vec!["sluice", "--node-id", "4", "--voters", "1@127.0.0.1:1"],
        ] {
            let config = Config::try_parse_from(args.clone()).expect("flags parse");
            assert!(config.validate().is_err(), "{args:?} accepted");
        }
        let learner = Config::try_parse_from([
            "sluice",
            "--node-id",
            "4",
            "--process-roles",
            "broker",
            "--voters",
            "1@127.0.0.1:1",
        ])
        .expect("flags parse");
        assert_eq!(learner.validate(), Ok(()));
        assert_eq!(learner.roles(), Ok(Roles::BrokerOnly));
        assert!(learner.is_broker());
        let controller = Config::try_parse_from([
            "sluice",
            "--node-id",
            "2",
            "--process-roles",
            "controller",
            "--voters",
            "1@127.0.0.1:1,2@127.0.0.1:2",
        ])
        .expect("flags parse");
        assert_eq!(controller.validate(), Ok(()));
        assert_eq!(controller.roles(), Ok(Roles::ControllerOnly));
        assert!(!controller.is_broker());
        for args in [
            vec!["sluice", "--process-roles", "controller,nonsense"],
            vec![
                "sluice",
                "--process-roles",
                "controller",
                "--voters",
                "2@127.0.0.1:1",
            ],
        ] {
            let config = Config::try_parse_from(args.clone()).expect("flags parse");
            assert!(config.validate().is_err(), "{args:?} accepted");
        }
    }
}
