//! How Raft connections are opened: plain TCP, or mutual TLS when the node is given a
//! [`RaftTls`] (both sides present a certificate and verify the other's against the CA; the
//! dialing side checks the peer's certificate names the host of its Raft address). The frame
//! limits of [`super::frame`] apply on top either way.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A TLS handshake longer than this is abandoned (a stalled or hostile peer).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Raft connection: TCP, or TLS over TCP.
pub trait RaftIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> RaftIo for T {}
pub type RaftStream = Box<dyn RaftIo>;

/// The TLS configurations of the Raft port: `server` must require client certificates.
#[derive(Clone)]
pub struct RaftTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for RaftTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftTls(mutual)")
    }
}

/// Opens and accepts Raft connections.
#[derive(Clone, Default)]
pub struct RaftTransport {
    tls: Option<RaftTls>,
}

impl RaftTransport {
    pub fn new(tls: Option<RaftTls>) -> RaftTransport {
        RaftTransport { tls }
    }

    /// Dials `address` (`host:port`).
    pub async fn connect(&self, address: &str) -> std::io::Result<RaftStream> {
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{host:?} is no TLS server name"),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
        let handshake = connector.connect(name, tcp);
        let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| timed_out())??;
        Ok(Box::new(stream))
    }

    /// Completes an accepted connection (the TLS handshake, when configured).
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<RaftStream> {
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| timed_out())??;
        Ok(Box::new(stream))
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
}
