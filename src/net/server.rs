//! Accepts client connections, bounds how many are served at once (node-wide, per address and
//! per second: `limits`), and drains them on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::net::connection;
use crate::net::limits::ConnectionLimits;

/// How long shutdown waits for connections to finish the request they are serving.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Back-off after accept fails (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    connection_permits: Arc<Semaphore>,
    limits: Arc<ConnectionLimits>,
}

impl Server {
    pub fn new(broker: Arc<Broker>, listener: TcpListener) -> Server {
        let permits = broker.config.max_connections;
        assert!(permits > 0);
        let limits = ConnectionLimits::new(
            broker.config.max_connections_per_ip,
            broker.config.max_connection_creation_rate,
        );
        Server {
            limits: Arc::new(limits),
            broker,
            listener,
            connection_permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Serves until `shutdown` resolves, then waits (bounded) for connections to finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop_sender, _) = broadcast::channel::<()>(1);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = self.connection_permits.clone().acquire_owned() => permit,
                () = &mut shutdown => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            // Over a limit: closed at once, before a byte is read (Kafka closes it too).
            let Ok(slot) = self.limits.admit(peer.ip(), std::time::Instant::now()) else {
                drop(socket);
                continue;
            };
            // Small responses (ApiVersions, acks) must not wait for Nagle.
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, %peer, "set_nodelay failed");
            }
            let broker = self.broker.clone();
            let stop = stop_sender.subscribe();
            connections.spawn(async move {
                serve(broker, socket, peer, stop).await;
                drop(slot);
                drop(permit);
            });
            // Reap finished connection tasks so the set does not grow with history.
            while connections.try_join_next().is_some() {}
        }
        tracing::info!(
            open = connections.len(),
            "shutting down: draining connections"
        );
        self.broker.begin_shutdown();
        let _ = stop_sender.send(());
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the grace period; closing them");
            connections.abort_all();
        }
    }
}

async fn serve(
    broker: Arc<Broker>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: broadcast::Receiver<()>,
) {
    tracing::debug!(%peer, "connection opened");
    let _counted = OpenConnection::new(broker.metrics.open_connections.clone());
    match connection::serve_connection(broker, socket, peer, stop).await {
        Ok(()) => tracing::debug!(%peer, "connection closed"),
        Err(error) => tracing::debug!(%peer, %error, "connection ended with an I/O error"),
    }
}

/// Counts a connection in `sluice_open_connections` for as long as it lives, including a task
/// aborted at the end of the shutdown grace period.
struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: Gauge) -> OpenConnection {
        gauge.inc();
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
