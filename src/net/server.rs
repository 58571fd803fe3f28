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
use crate::net::connection::{self, Session};
use crate::net::limits::ConnectionLimits;
use crate::net::listeners::ListenerSpec;
use crate::net::sasl::SaslState;
use crate::security::{cert_name, Security, ANONYMOUS};

/// How long shutdown waits for connections to finish the request they are serving.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Back-off after accept fails (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// A TLS handshake not done by then closes the connection (a client speaking plaintext to a
/// TLS port, or one that stalls).
const TLS_HANDSHAKE_DURATION_MAX: Duration = Duration::from_secs(10);

/// One bound listener and what its connections need.
pub struct Listening {
    pub spec: ListenerSpec,
    pub socket: TcpListener,
}

pub struct Server {
    broker: Arc<Broker>,
    listener: TcpListener,
    spec: ListenerSpec,
    listener_name: Arc<str>,
    security: Arc<Security>,
    /// Shared by every listener: --max-connections bounds them together.
    connection_permits: Arc<Semaphore>,
    limits: Arc<ConnectionLimits>,
}

impl Server {
    /// `connection_permits` and `limits` are shared by every listener: --max-connections,
    /// --max-connections-per-ip and --max-connection-creation-rate bound them together.
    pub fn new(
        broker: Arc<Broker>,
        listening: Listening,
        security: Arc<Security>,
        connection_permits: Arc<Semaphore>,
        limits: Arc<ConnectionLimits>,
    ) -> Server {
        assert!(!listening.spec.protocol.uses_tls() || security.tls.is_some());
        Server {
            limits,
            broker,
            listener: listening.socket,
            listener_name: Arc::from(listening.spec.name.as_str()),
            spec: listening.spec,
            security,
            connection_permits,
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
            let session = Session {
                listener_name: self.listener_name.clone(),
                principal: ANONYMOUS.to_string(),
                sasl: if self.spec.protocol.uses_sasl() {
                    SaslState::AwaitingHandshake
                } else {
                    SaslState::Open
                },
                security: self.security.clone(),
                reauth: crate::net::connection::Reauth::default(),
            };
            let tls = self.spec.protocol.uses_tls();
            connections.spawn(async move {
                // Boxed: the request future is deep enough to overflow the compiler's layout
                // query limit when nested inline twice.
                if tls {
                    Box::pin(serve_tls(broker, socket, peer, session, stop)).await;
                } else {
                    Box::pin(serve(broker, socket, peer, session, stop)).await;
                }
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

/// Completes the TLS handshake, then serves; the mTLS principal is `User:<subject CN>`.
async fn serve_tls(
    broker: Arc<Broker>,
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    mut session: Session,
    stop: broadcast::Receiver<()>,
) {
    let Some(source) = session.security.tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(source.current());
    let accepted = tokio::time::timeout(TLS_HANDSHAKE_DURATION_MAX, acceptor.accept(socket)).await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "TLS handshake failed; closing the connection");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "TLS handshake timed out; closing the connection");
            return;
        }
    };
    if source.requires_client_certificates() {
        let (_, connection) = stream.get_ref();
        let name = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|certificate| cert_name::subject_common_name(certificate));
        let Some(name) = name else {
            tracing::warn!(%peer, "client certificate has no subject CN; closing");
            return;
        };
        tracing::info!(%peer, principal = %name, "TLS client authenticated");
        session.principal = format!("User:{name}");
    }
    serve(broker, stream, peer, session, stop).await;
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    broker: Arc<Broker>,
    socket: S,
    peer: SocketAddr,
    session: Session,
    stop: broadcast::Receiver<()>,
) {
    tracing::debug!(%peer, principal = %session.principal, "connection opened");
    let _counted = OpenConnection::new(broker.metrics.open_connections.clone());
    let serving = Box::pin(connection::serve_connection(
        broker, socket, peer, session, stop,
    ));
    match serving.await {
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
