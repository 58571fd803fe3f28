//! This node as a broker of the cluster: registration with a fresh incarnation id, periodic
//! heartbeats, the controller's session timer that fences silent brokers, and controlled
//! shutdown (leadership moves away before the process stops).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sluice_raft::controller::{
    error_code, BrokerHeartbeatRequest, BrokerHeartbeatResponse, Operation, OperationResponse,
    PartitionLoad, RegisterBrokerRequest, ADMISSION_PENDING,
};
use sluice_raft::image::Listener;
use tokio::time::Instant;

use crate::broker::{ApiError, Broker};

/// How long a starting broker keeps trying to register and get unfenced before giving up.
const STARTUP_DURATION_MAX: Duration = Duration::from_secs(300);
/// Pause between registration attempts that failed.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long controlled shutdown waits for leadership to move away.
const CONTROLLED_SHUTDOWN_DURATION_MAX: Duration = Duration::from_secs(10);
/// How often the active controller looks for expired broker sessions.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Kafka's listener name for plaintext clients.
const LISTENER_NAME: &str = "PLAINTEXT";

/// Registers this broker, then heartbeats until the controller unfences it. Returns once this
/// node serves an image in which it is active. A broker whose advertised address fails the
/// controller's check waits as long as it takes (the check repeats), saying why in its log.
pub async fn start(broker: &Broker) -> anyhow::Result<()> {
    let deadline = Instant::now() + STARTUP_DURATION_MAX;
    register(broker, deadline).await?;
    let mut last_refusal = None;
    loop {
        match heartbeat(broker, false, Vec::new()).await {
            Ok(answer) if answer.error_code == error_code::NONE && !answer.is_fenced => {
                tracing::info!(node_id = broker.node_id(), "registered and unfenced");
                return Ok(());
            }
            Ok(answer) if answer.admission_refusal.is_some() => {
                if answer.admission_refusal != last_refusal {
                    let reason = answer.admission_refusal.as_deref().unwrap_or_default();
                    if reason == ADMISSION_PENDING {
                        tracing::info!(node_id = broker.node_id(), %reason, "not admitted yet");
                    } else {
                        tracing::warn!(
                            node_id = broker.node_id(),
                            %reason,
                            "not admitted: staying fenced, out of every client's Metadata"
                        );
                    }
                    last_refusal = answer.admission_refusal;
                }
            }
            Ok(answer) => tracing::info!(?answer, "waiting to be unfenced"),
            Err(error) => tracing::info!(?error, "heartbeat failed; retrying"),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

async fn register(broker: &Broker, deadline: Instant) -> anyhow::Result<()> {
    let request = RegisterBrokerRequest {
        broker_id: broker.node_id(),
        incarnation_id: broker.incarnation_id,
        listeners: vec![Listener {
            name: LISTENER_NAME.to_string(),
            host: broker.advertised.host.clone(),
            port: u16::try_from(broker.advertised.port).context("advertised port")?,
        }],
        rack: broker.config.broker_rack.clone(),
    };
    loop {
        match broker
            .submit(Operation::RegisterBroker(request.clone()))
            .await
        {
            Ok(OperationResponse::RegisterBroker(answer)) if answer.error_code == 0 => {
                return Ok(());
            }
            Ok(answer) => tracing::info!(?answer, "registration refused; retrying"),
            Err(error) => tracing::info!(?error, "registration failed; retrying"),
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not registered within {STARTUP_DURATION_MAX:?}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

async fn heartbeat(
    broker: &Broker,
    want_shutdown: bool,
    partition_loads: Vec<PartitionLoad>,
) -> Result<BrokerHeartbeatResponse, ApiError> {
    let request = BrokerHeartbeatRequest {
        broker_id: broker.node_id(),
        incarnation_id: broker.incarnation_id,
        want_fence: false,
        want_shutdown,
        partition_loads,
    };
    match broker.submit(Operation::BrokerHeartbeat(request)).await? {
        OperationResponse::BrokerHeartbeat(answer) => Ok(answer),
        other => {
            tracing::error!(?other, "heartbeat answered with another operation");
            Err(ApiError::code_only(
                kafka_protocol::ResponseError::UnknownServerError,
            ))
        }
    }
}

/// Heartbeats every `--broker-heartbeat-interval-ms`; re-registers if the controller lost
/// this incarnation.
pub fn spawn_heartbeats(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampler = crate::balancer::LoadSampler::default();
        loop {
            ticker.tick().await;
            let loads = sampler.sample(&broker);
            match heartbeat(&broker, false, loads).await {
                Ok(answer) if answer.error_code == error_code::BROKER_ID_NOT_REGISTERED => {
                    let deadline = Instant::now() + STARTUP_DURATION_MAX;
                    if let Err(error) = register(&broker, deadline).await {
                        tracing::error!(%error, "re-registration failed");
                    }
                }
                Ok(answer) if answer.error_code != error_code::NONE => {
                    tracing::warn!(?answer, "heartbeat refused");
                }
                Ok(answer) if answer.admission_refusal.is_some() => {
                    let reason = answer.admission_refusal.unwrap_or_default();
                    tracing::warn!(%reason, "fenced: the advertised address failed the check");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(?error, "heartbeat failed"),
            }
        }
    })
}

/// On the active controller: fences brokers whose sessions expired. Runs on every node; only
/// the Raft leader finds anything to do.
pub fn spawn_session_timer(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    let timeout = Duration::from_millis(broker.config.broker_session_timeout_ms);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SESSION_CHECK_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for broker_id in broker.quorum.expired_brokers(timeout) {
                tracing::warn!(broker_id, "broker session expired; fencing it");
                let fence = Operation::FenceBroker { broker_id };
                if let Err(error) = broker.quorum.propose(fence).await {
                    tracing::warn!(%error, broker_id, "fencing failed");
                }
            }
        }
    })
}

/// Asks the controller to move leadership off this broker and fence it; returns when it did,
/// or after [`CONTROLLED_SHUTDOWN_DURATION_MAX`].
pub async fn controlled_shutdown(broker: &Broker) {
    let deadline = Instant::now() + CONTROLLED_SHUTDOWN_DURATION_MAX;
    while Instant::now() < deadline {
        match heartbeat(broker, true, Vec::new()).await {
            Ok(answer) if answer.should_shut_down => {
                tracing::info!("controlled shutdown: leadership moved away");
                return;
            }
            Ok(answer) => tracing::info!(?answer, "controlled shutdown in progress"),
            Err(error) => tracing::warn!(?error, "controlled shutdown heartbeat failed"),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    tracing::warn!("controlled shutdown did not finish in time; stopping anyway");
}
