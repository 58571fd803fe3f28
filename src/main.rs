//! `sluice`: a Kafka-compatible broker in one binary.
//!
//! This crate is the binary: flags, the listener and connections (`net`), request handlers
//! (`handlers`, one module per API key) and the broker state they share (`broker`). The wire
//! format lives in `sluice-wire`, partition logs and the metadata store in `sluice-storage`.

mod admin_cli;
mod admission;
mod balancer;
mod broker;
mod budget;
mod config;
mod group;
mod handlers;
mod internal_topic;
mod lifecycle;
mod log_cleaner;
mod metadata_publisher;
mod metrics;
mod migration;
mod net;
mod offsets_import;
mod offsets_topic;
mod replication;
mod security;
mod topic_config;
mod topic_name;
mod txn;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use sluice_raft::quorum::{MetadataQuorum, QuorumConfig};

use crate::broker::{Broker, Endpoint, LocalState, NamedEndpoint};
use crate::config::{Config, FlushPolicy};
use crate::metrics::http::HttpState;
use crate::metrics::Metrics;
use crate::net::server::{Listening, Server};

/// The metadata quorum's files (Raft log, vote, snapshots) inside the data dir.
const RAFT_DIR_NAME: &str = "__cluster_metadata";

/// `sluice [FLAGS]` runs the broker; `sluice groups ...` is a client subcommand.
#[derive(Parser)]
#[command(name = "sluice", version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<admin_cli::Command>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return admin_cli::run(command);
    }
    let config = cli.config;
    config.validate().map_err(anyhow::Error::msg)?;
    // openraft narrates every election and snapshot at INFO; keep it to warnings unless the
    // operator names it in --log-level.
    let directives = if config.log_level.contains("openraft") {
        config.log_level.clone()
    } else {
        format!("{},openraft=warn", config.log_level)
    };
    let filter = EnvFilter::try_new(&directives)
        .with_context(|| format!("bad --log-level {:?}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    abort_on_panic();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config))
}

/// A panic is a bug, and a task that died of one (the metadata publisher, a replica fetcher)
/// would leave a process that looks alive but never moves on: every change after it times out
/// on this node. Stop the whole process instead; restarted, it recovers from its disk and the
/// quorum, as after kill -9.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!(%info, "panicked: aborting the process");
        std::process::abort();
    }));
}

async fn run(config: Config) -> anyhow::Result<()> {
    let security = Arc::new(security::Security::open(&config)?);
    let specs = config.listener_specs().map_err(anyhow::Error::msg)?;
    let mut listening = Vec::with_capacity(specs.len());
    for spec in specs {
        let socket = TcpListener::bind(spec.bind)
            .await
            .with_context(|| format!("binding listener {} on {}", spec.name, spec.bind))?;
        listening.push(Listening { spec, socket });
    }
    let bound_all = listening
        .iter()
        .map(|l| Ok((l.spec.name.clone(), l.socket.local_addr()?)))
        .collect::<std::io::Result<Vec<(String, SocketAddr)>>>()
        .context("reading the bound addresses")?;
    let bound = bound_all[0].1;
    let advertised_listeners = advertised_endpoints(&config, &bound_all)?;
    let advertised = advertised_listeners[0].endpoint.clone();
    let bound_address_file = config.bound_address_file.clone();
    // The HTTP listener serves /health from the start and /ready once the broker is active.
    let metrics = Arc::new(new_metrics(&config));
    let broker_slot = Arc::new(OnceLock::new());
    let metrics_bound =
        start_metrics_listener(&config, metrics.clone(), broker_slot.clone()).await?;
    // Written at once (before the client address): /ready answers while the node starts.
    if let Some(path) = &config.metrics_bound_address_file {
        write_atomically(path, &format!("{metrics_bound}\n"))?;
    }
    let (broker, publisher, legacy_topics) =
        open_broker(config, advertised, advertised_listeners, metrics.clone()).await?;
    let _ = broker_slot.set(broker.clone());
    warn_if_unreachable_from_peers(&broker);
    let quorum = broker.quorum.clone();
    let mut background = spawn_background_tasks(&broker);
    background.push(lifecycle::spawn_session_timer(broker.clone()));
    background.push(admission::spawn_prober(broker.clone()));
    background
        .push(metrics.spawn_utilization_sampler(broker.config.network_capacity_bytes_per_sec));
    background.extend(balancer::spawn(broker.clone()));
    // Serve before being unfenced: the controller admits this node only after reaching it at
    // its advertised address, so the listener must answer by then.
    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_sender.send(true);
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(broker.config.max_connections));
    let limits = Arc::new(net::limits::ConnectionLimits::new(
        broker.config.max_connections_per_ip,
        broker.config.max_connection_creation_rate,
    ));
    let servers: Vec<_> = listening
        .into_iter()
        .map(|listening| {
            let server = Server::new(
                broker.clone(),
                listening,
                security.clone(),
                permits.clone(),
                limits.clone(),
            );
            tokio::spawn(server.run(stopped(stop_receiver.clone())))
        })
        .collect();
    // A controller-only node never registers: it is no broker, and has nothing to heartbeat.
    let is_broker = broker.config.is_broker();
    let register = async {
        if is_broker {
            lifecycle::start(&broker).await
        } else {
            Ok(())
        }
    };
    let started = tokio::select! {
        started = register => Some(started),
        () = stopped(stop_receiver) => None,
    };
    let heartbeats = match started {
        Some(started) => {
            started?;
            broker.start_serving_clients();
            if is_broker {
                migration::import_legacy_topics(&broker, legacy_topics).await;
                offsets_import::import_legacy_offsets(&broker).await;
            }
            background.push(replication::spawn_isr_maintenance(broker.clone()));
            if let Some(path) = &bound_address_file {
                // The first listener's address, as before; every listener's in `<file>.listeners`.
                let all: String = bound_all
                    .iter()
                    .map(|(name, address)| format!("{name}://{address}\n"))
                    .collect();
                let mut listeners_path = path.clone().into_os_string();
                listeners_path.push(".listeners");
                write_atomically(Path::new(&listeners_path), &all)?;
                write_atomically(path, &format!("{bound}\n"))?;
            }
            tracing::info!(
                %bound,
                advertised = %format!("{}:{}", broker.advertised.host, broker.advertised.port),
                raft = %quorum.local_address(),
                metrics = %metrics_bound,
                node_id = broker.node_id(),
                data_dir = %broker.config.data_dir.display(),
                "sluice listening"
            );
            is_broker.then(|| lifecycle::spawn_heartbeats(broker.clone()))
        }
        None => None,
    };
    for server in servers {
        if let Err(error) = server.await {
            tracing::error!(%error, "a listener task failed");
        }
    }
    if let Some(heartbeats) = heartbeats {
        heartbeats.abort();
    }
    if is_broker {
        lifecycle::controlled_shutdown(&broker).await;
    }
    for task in background {
        task.abort();
    }
    let closing = broker.clone();
    tokio::task::spawn_blocking(move || closing.close())
        .await
        .context("closing logs")?;
    publisher.abort();
    if let Err(error) = quorum.shutdown().await {
        tracing::warn!(%error, "stopping the metadata quorum");
    }
    tracing::info!("sluice stopped");
    Ok(())
}

/// Opens the data dir, joins the metadata quorum, starts the metadata publisher and registers
/// this broker; returns once the controller has unfenced it. For in-process tests, which run
/// no listener (so they turn the admission check off).
#[cfg(test)]
pub(crate) async fn start_broker(
    config: Config,
    advertised: Endpoint,
) -> anyhow::Result<(Arc<Broker>, tokio::task::JoinHandle<()>)> {
    let listeners = vec![broker::NamedEndpoint {
        name: net::listeners::PLAINTEXT_NAME.to_string(),
        endpoint: advertised.clone(),
    }];
    let metrics = Arc::new(new_metrics(&config));
    let (broker, publisher, legacy_topics) =
        open_broker(config, advertised, listeners, metrics).await?;
    lifecycle::start(&broker).await?;
    broker.start_serving_clients();
    migration::import_legacy_topics(&broker, legacy_topics).await;
    offsets_import::import_legacy_offsets(&broker).await;
    Ok((broker, publisher))
}

/// Opens the data dir, joins the metadata quorum and starts the metadata publisher. Also
/// returns topics of a pre-quorum data dir, to import once this broker is active.
async fn open_broker(
    config: Config,
    advertised: Endpoint,
    advertised_listeners: Vec<NamedEndpoint>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(
    Arc<Broker>,
    tokio::task::JoinHandle<()>,
    Vec<sluice_storage::TopicRecord>,
)> {
    let opening = config.clone();
    let local = tokio::task::spawn_blocking(move || LocalState::open(&opening))
        .await
        .context("opening the data dir")??;
    let legacy_topics = migration::legacy_topics(&local);
    let quorum = Arc::new(start_quorum(&config).await?);
    let mut broker = Broker::new(config, advertised, local, quorum.clone(), metrics);
    broker.advertised_listeners = advertised_listeners;
    broker.inter_broker = Arc::new(
        net::peer_transport::InterBroker::open(&broker.config)
            .context("setting up inter-broker connections")?,
    );
    let broker = Arc::new(broker);
    let offsets_log = offsets_topic::ReplicatedOffsetsLog::new(&broker);
    broker.groups.attach_log(Box::new(offsets_log));
    let publisher = tokio::spawn(metadata_publisher::run(broker.clone(), quorum.subscribe()));
    Ok((broker, publisher, legacy_topics))
}

fn new_metrics(config: &Config) -> Metrics {
    Metrics::new(
        config.network_capacity_bytes_per_sec,
        budget::egress_budget_bytes_per_sec(config),
        budget::ingress_budget_bytes_per_sec(config),
    )
}

/// Binds the HTTP listener for /metrics, /health and /ready and serves it in the background;
/// returns the bound address.
async fn start_metrics_listener(
    config: &Config,
    metrics: Arc<Metrics>,
    broker: Arc<OnceLock<Arc<Broker>>>,
) -> anyhow::Result<SocketAddr> {
    let address = config.metrics_listen_address;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the metrics listener {address}"))?;
    let bound = listener
        .local_addr()
        .context("reading the metrics bound address")?;
    tokio::spawn(metrics::http::serve(
        listener,
        HttpState { metrics, broker },
    ));
    Ok(bound)
}

async fn stopped(mut receiver: tokio::sync::watch::Receiver<bool>) {
    // A dropped sender means the signal task is gone: treat it as a stop.
    let _ = receiver.wait_for(|stop| *stop).await;
}

fn warn_if_unreachable_from_peers(broker: &Broker) {
    let peers: Vec<String> = broker
        .config
        .voter_map()
        .iter()
        .filter(|(id, _)| i64::try_from(**id).ok() != Some(i64::from(broker.node_id())))
        .filter_map(|(_, address)| address.rsplit_once(':').map(|(host, _)| host.to_string()))
        .collect();
    if let Some(warning) = admission::advertised_address_warning(&broker.advertised.host, &peers) {
        tracing::warn!("{warning}");
    }
}

/// Starts this node's member of the metadata quorum (bootstrapping it on first start).
async fn start_quorum(config: &Config) -> anyhow::Result<MetadataQuorum> {
    let mut quorum_config = QuorumConfig::new(
        u64::try_from(config.node_id).context("node id")?,
        config.voter_map(),
        config.data_dir.join(RAFT_DIR_NAME),
        config.raft_listen_address,
    );
    quorum_config.controller.default_partitions = config.default_partitions;
    quorum_config.controller.default_replication_factor = config.default_replication_factor;
    quorum_config.controller.broker_session_timeout_ms = config.broker_session_timeout_ms;
    quorum_config.controller.reassignment_moves_max = config.reassignment_moves_max;
    quorum_config.controller.admission_check = config.admission_check;
    if config.raft_tls {
        quorum_config.tls = Some(security::tls::raft_tls(config).context("Raft TLS")?);
    }
    MetadataQuorum::start_with(quorum_config)
        .await
        .with_context(|| {
            format!(
                "starting the metadata quorum on {}",
                config.raft_listen_address
            )
        })
}

/// Every listener's advertised endpoint, in --listeners order: --advertised-listeners where it
/// names the listener, else (first listener) --advertised-address, else the bound address.
fn advertised_endpoints(
    config: &Config,
    bound: &[(String, SocketAddr)],
) -> anyhow::Result<Vec<NamedEndpoint>> {
    let overrides = match &config.advertised_listeners {
        Some(text) => {
            let specs = config.listener_specs().map_err(anyhow::Error::msg)?;
            net::listeners::advertised_overrides(text, &specs).map_err(anyhow::Error::msg)?
        }
        None => Vec::new(),
    };
    bound
        .iter()
        .enumerate()
        .map(|(index, (name, address))| {
            let endpoint = match overrides.iter().find(|(named, _, _)| named == name) {
                Some((_, host, port)) => Endpoint {
                    host: host.clone(),
                    port: i32::from(*port),
                },
                None if index == 0 => advertised_endpoint(config, *address)?,
                None => advertised_endpoint_of_bound(*address),
            };
            Ok(NamedEndpoint {
                name: name.clone(),
                endpoint,
            })
        })
        .collect()
}

fn advertised_endpoint_of_bound(bound: SocketAddr) -> Endpoint {
    let host = if bound.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        bound.ip().to_string()
    };
    Endpoint {
        host,
        port: i32::from(bound.port()),
    }
}

/// Kafka clients connect to what Metadata advertises; an unroutable `0.0.0.0` must never be
/// handed out, so a wildcard bind advertises 127.0.0.1 unless told otherwise.
fn advertised_endpoint(config: &Config, bound: SocketAddr) -> anyhow::Result<Endpoint> {
    if let Some(text) = &config.advertised_address {
        let (host, port) = text
            .rsplit_once(':')
            .with_context(|| format!("--advertised-address {text:?} is not host:port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("bad port in {text:?}"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        anyhow::ensure!(
            !host.is_empty(),
            "--advertised-address {text:?} has no host"
        );
        return Ok(Endpoint {
            host,
            port: i32::from(port),
        });
    }
    let host = if bound.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        bound.ip().to_string()
    };
    Ok(Endpoint {
        host,
        port: i32::from(bound.port()),
    })
}

fn spawn_background_tasks(broker: &Arc<Broker>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![txn::spawn_expiry(broker.clone())];
    if broker.config.flush_policy == FlushPolicy::Interval {
        let period = Duration::from_millis(broker.config.flush_interval_ms);
        tasks.push(spawn_periodic(broker.clone(), period, |b| b.flush_all()));
    }
    let period = Duration::from_millis(broker.config.offsets_retention_check_interval_ms);
    tasks.push(spawn_periodic(broker.clone(), period, |b| {
        let expired = b.groups.expire_offsets(broker::now_ms());
        if expired > 0 {
            tracing::info!(expired, "committed offsets expired");
        }
    }));
    let period = Duration::from_millis(broker.config.replica_high_watermark_checkpoint_interval_ms);
    tasks.push(spawn_periodic(broker.clone(), period, |b| {
        b.checkpoint_high_watermarks()
    }));
    let period = Duration::from_millis(broker.config.retention_check_interval_ms);
    tasks.push(spawn_periodic(broker.clone(), period, |b| {
        b.enforce_retention()
    }));
    if broker.config.log_cleaner_enable {
        tasks.push(log_cleaner::spawn(broker.clone()));
    }
    tasks
}

/// Runs `work` every `period` on the blocking pool (it does disk I/O), never overlapping itself.
fn spawn_periodic(
    broker: Arc<Broker>,
    period: Duration,
    work: fn(&Broker),
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let broker = broker.clone();
            if let Err(error) = tokio::task::spawn_blocking(move || work(&broker)).await {
                tracing::error!(%error, "background task failed");
            }
        }
    })
}

fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, contents)
        .with_context(|| format!("writing {}", Path::new(&temporary).display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
