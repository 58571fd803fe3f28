//! The client side of node-to-node connections, on the inter-broker listener (Kafka's
//! `inter.broker.listener.name`): TCP, then TLS when that listener uses it (trusting
//! --ssl-truststore-file, checking the peer's advertised host, presenting this node's own
//! certificate when the peer asks for one), then SASL (SaslHandshake v1 + SaslAuthenticate
//! v2, PLAIN or SCRAM-SHA-256/512). Replication, the transaction peers and the controller's
//! address check all dial through it. A failure to connect is logged once per peer and
//! reason, not on every retry; the password is never logged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::Config;
use crate::net::listeners::SecurityProtocol;
use crate::security::scram::{SaltedPasswordCache, ScramClient, ScramMechanism};
use crate::security::{tls, Secret};

/// Largest response accepted from a peer: a Fetch carries at most the leader's fetch limit,
/// bounded on our side by the request's `max_bytes` plus headers.
pub const PEER_RESPONSE_BYTES_MAX: usize = 64 << 20;
/// SASL and ApiVersions answers are a few hundred bytes.
const SASL_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// TCP connect, TLS handshake and SASL exchange together; under the callers' request
/// timeouts, so that a failure is reported here with its reason. The peer may delay a
/// failed login by up to 3 s (its failed-login limiter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
const SASL_HANDSHAKE_VERSION: i16 = 1;
/// ApiVersions v0: no fields to get wrong, answered by every broker.
const API_VERSIONS_VERSION: i16 = 0;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
const CLIENT_ID: &str = "sluice-inter-broker";
/// Peers whose last connection failure is remembered (to log each once); beyond it the
/// table starts afresh.
const FAILURES_REMEMBERED_MAX: usize = 1024;
/// A connection is renewed after this share (in tenths) of the peer's SASL session lifetime.
const SESSION_RENEWAL_TENTHS: u32 = 8;
/// Distinct failure reasons remembered per peer.
const REASONS_PER_PEER_MAX: usize = 8;

/// A connection to a peer: TCP, or TLS over TCP.
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}
pub type PeerStream = Box<dyn PeerIo>;

/// An open, authenticated connection to a peer.
pub struct PeerConnection {
    pub stream: PeerStream,
    /// When the peer limits SASL sessions (KIP-368, its connections.max.reauth.ms): the time
    /// to open a fresh connection, well before the peer would close this one mid-request.
    renew_at: Option<Instant>,
}

impl PeerConnection {
    pub fn due_for_renewal(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    TimedOut,
    #[error("response of {0} bytes is over the limit")]
    Oversized(usize),
    #[error("undecodable response: {0}")]
    Decode(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("{0:?} is no TLS server name")]
    ServerName(String),
    #[error("SASL authentication failed: {0}")]
    Authentication(String),
}

enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

struct Credentials {
    mechanism: Mechanism,
    user: String,
    password: Secret,
    salted: SaltedPasswordCache,
}

/// How this node dials other nodes.
pub struct InterBroker {
    /// The listener name dialed on every node.
    pub listener_name: String,
    protocol: SecurityProtocol,
    tls: Option<tls::ClientTlsSource>,
    credentials: Option<Credentials>,
    /// Peer address → the connection failures logged for it since its last success.
    failures: Mutex<HashMap<String, Vec<String>>>,
    /// Peer address → the authorisation refusals logged for it.
    refusals: Mutex<HashMap<String, Vec<String>>>,
}

impl InterBroker {
    /// Dials plaintext listeners named `listener_name` (in-process tests).
    pub fn plaintext(listener_name: &str) -> InterBroker {
        InterBroker {
            listener_name: listener_name.to_string(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            credentials: None,
            failures: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// From the flags (validated by `Config::validate`); fails when certificates do not load.
    pub fn open(config: &Config) -> anyhow::Result<InterBroker> {
        let specs = config.listener_specs().map_err(anyhow::Error::msg)?;
        let listener = config
            .inter_broker_listener(&specs)
            .map_err(anyhow::Error::msg)?;
        let mut inter_broker = InterBroker::plaintext(&listener.name);
        inter_broker.protocol = listener.protocol;
        if listener.protocol.uses_tls() {
            let ca = config
                .inter_broker_trusted_ca()
                .context("the inter-broker listener uses TLS but no CA is trusted")?;
            let identity = config
                .ssl_certificate_file
                .clone()
                .zip(config.ssl_key_file.clone());
            let source =
                tls::ClientTlsSource::open(ca.to_path_buf(), identity).with_context(|| {
                    format!("loading the inter-broker TLS trust ({})", ca.display())
                })?;
            inter_broker.tls = Some(source);
        }
        if listener.protocol.uses_sasl() {
            let name = config.sasl_mechanism_inter_broker_protocol.as_deref();
            let mechanism = match name {
                Some("PLAIN") => Mechanism::Plain,
                Some(name) => Mechanism::Scram(
                    ScramMechanism::from_name(name).context("unknown inter-broker mechanism")?,
                ),
                None => anyhow::bail!("--sasl-mechanism-inter-broker-protocol is not set"),
            };
            inter_broker.credentials = Some(Credentials {
                mechanism,
                user: config
                    .inter_broker_sasl_username
                    .clone()
                    .context("--inter-broker-sasl-username is not set")?,
                password: config
                    .inter_broker_sasl_password
                    .clone()
                    .context("--inter-broker-sasl-password is not set")?,
                salted: SaltedPasswordCache::default(),
            });
        }
        Ok(inter_broker)
    }

    /// A registered node's inter-broker listener, `None` when it has none of that name.
    pub fn listener_of<'a>(
        &self,
        listeners: &'a [sluice_raft::image::Listener],
    ) -> Option<&'a sluice_raft::image::Listener> {
        crate::net::listeners::listener_named(listeners, &self.listener_name)
    }

    /// `host:port` of a registered node's inter-broker listener.
    pub fn address_of(&self, listeners: &[sluice_raft::image::Listener]) -> Option<String> {
        self.listener_of(listeners)
            .map(|listener| format!("{}:{}", listener.host, listener.port))
    }

    /// A connection to `address` (`host:port`), authenticated when the listener uses SASL.
    pub async fn connect(&self, address: &str) -> Result<PeerConnection, PeerError> {
        let host = host_of(address);
        let opening = async {
            let tcp = TcpStream::connect(address).await?;
            let mut stream = self.secure(tcp, host).await?;
            let mut renew_at = None;
            if let Some(credentials) = &self.credentials {
                let lifetime = authenticate(&mut stream, credentials).await?;
                renew_at = lifetime
                    .map(|lifetime| Instant::now() + lifetime * SESSION_RENEWAL_TENTHS / 10);
            } else if self.tls.is_some() {
                // With TLS 1.3 a peer refuses a client certificate only after the client's
                // handshake has finished: one round trip here (ApiVersions, as every Kafka
                // client sends first) makes that refusal a connection failure, logged here.
                let versions = ApiVersionsRequest::default();
                let _: ApiVersionsResponse = round_trip(
                    &mut stream,
                    0,
                    ApiKey::ApiVersions,
                    API_VERSIONS_VERSION,
                    RequestKind::ApiVersions(versions),
                    SASL_RESPONSE_BYTES_MAX,
                )
                .await?;
            }
            Ok(PeerConnection { stream, renew_at })
        };
        let result = tokio::time::timeout(CONNECT_TIMEOUT, opening)
            .await
            .unwrap_or(Err(PeerError::TimedOut));
        self.note_outcome(address, &result);
        result
    }

    /// A connection to `address` that stops after TLS: for the controller's address check,
    /// which sends ApiVersions (served before authentication, as every client sends it
    /// first, and before the peer is unfenced, when it serves nothing else).
    pub async fn connect_unauthenticated(
        &self,
        address: SocketAddr,
        host: &str,
    ) -> Result<PeerStream, PeerError> {
        let opening = async {
            let tcp = TcpStream::connect(address).await?;
            self.secure(tcp, host).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, opening)
            .await
            .unwrap_or(Err(PeerError::TimedOut))
    }

    async fn secure(&self, tcp: TcpStream, host: &str) -> Result<PeerStream, PeerError> {
        tcp.set_nodelay(true)?;
        let Some(source) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let connector = TlsConnector::from(source.current());
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| PeerError::ServerName(host.to_string()))?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|error| PeerError::Tls(error.to_string()))?;
        Ok(Box::new(stream))
    }

    /// Logs each reason a peer cannot be reached the first time it happens (since the last
    /// success: a reason alternating with another is not logged again), and the recovery.
    fn note_outcome<T>(&self, address: &str, result: &Result<T, PeerError>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let error = match result {
            Ok(_) => {
                if failures.remove(address).is_some() {
                    tracing::info!(peer = %address, listener = %self.listener_name, "connected to the peer node again");
                }
                return;
            }
            Err(error) => error,
        };
        let reason = error.to_string();
        if first_time(&mut failures, address, reason.clone()) {
            tracing::warn!(peer = %address, listener = %self.listener_name, %reason, "cannot connect to a peer node (retrying; each reason logged once)");
        }
    }

    /// Logs, once per peer and reason, that a peer refused this node's request as
    /// unauthorised: the principal this node authenticates as lacks ClusterAction there.
    pub fn note_refused(&self, address: &str, reason: &str) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if first_time(&mut refusals, address, reason.to_string()) {
            tracing::warn!(peer = %address, listener = %self.listener_name, %reason, "a peer node refuses this node's requests: grant its principal ClusterAction on the cluster (or list it in --super-users there)");
        }
    }
}

/// Records `reason` for `address`; true the first time (since the peer's last success).
fn first_time(logged: &mut HashMap<String, Vec<String>>, address: &str, reason: String) -> bool {
    if logged.len() >= FAILURES_REMEMBERED_MAX && !logged.contains_key(address) {
        logged.clear();
    }
    let reasons = logged.entry(address.to_string()).or_default();
    if reasons.contains(&reason) {
        return false;
    }
    if reasons.len() < REASONS_PER_PEER_MAX {
        reasons.push(reason);
    }
    true
}

/// The host of `host:port` (brackets of an IPv6 literal removed), the TLS server name.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// SaslHandshake, then SaslAuthenticate until the mechanism is done; the session lifetime
/// the peer announced, if any.
async fn authenticate(
    stream: &mut PeerStream,
    credentials: &Credentials,
) -> Result<Option<Duration>, PeerError> {
    let name = match &credentials.mechanism {
        Mechanism::Plain => "PLAIN",
        Mechanism::Scram(mechanism) => mechanism.name(),
    };
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name));
    let answer: SaslHandshakeResponse = round_trip(
        stream,
        1,
        ApiKey::SaslHandshake,
        SASL_HANDSHAKE_VERSION,
        RequestKind::SaslHandshake(handshake),
        SASL_RESPONSE_BYTES_MAX,
    )
    .await?;
    if answer.error_code != 0 {
        let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(PeerError::Authentication(format!(
            "the peer does not offer {name} (it offers {offered:?})"
        )));
    }
    let user = credentials.user.as_str();
    let password = credentials.password.expose();
    let last = match &credentials.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{user}\0{password}");
            sasl_step(stream, 2, token.into_bytes()).await?
        }
        Mechanism::Scram(mechanism) => {
            let mut client = ScramClient::new(*mechanism, user, password);
            let server_first = sasl_step(stream, 2, client.first()).await?;
            let client_final = client
                .answer(&server_first.auth_bytes, &credentials.salted)
                .map_err(|error| PeerError::Authentication(error.to_string()))?;
            let server_final = sasl_step(stream, 3, client_final).await?;
            client
                .verify(&server_final.auth_bytes)
                .map_err(|error| PeerError::Authentication(error.to_string()))?;
            server_final
        }
    };
    let lifetime_ms = u64::try_from(last.session_lifetime_ms).unwrap_or(0);
    Ok((lifetime_ms > 0).then(|| Duration::from_millis(lifetime_ms)))
}

/// One SaslAuthenticate: the peer's answer, or its refusal.
async fn sasl_step(
    stream: &mut PeerStream,
    correlation_id: i32,
    token: Vec<u8>,
) -> Result<SaslAuthenticateResponse, PeerError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let answer: SaslAuthenticateResponse = round_trip(
        stream,
        correlation_id,
        ApiKey::SaslAuthenticate,
        SASL_AUTHENTICATE_VERSION,
        RequestKind::SaslAuthenticate(request),
        SASL_RESPONSE_BYTES_MAX,
    )
    .await?;
    if answer.error_code != 0 {
        let message = answer.error_message.map(|m| m.to_string());
        return Err(PeerError::Authentication(format!(
            "error {}: {}",
            answer.error_code,
            message.as_deref().unwrap_or("no message")
        )));
    }
    Ok(answer)
}

/// Sends one request framed as a Kafka client frames it.
pub async fn send_request(
    stream: &mut PeerStream,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Result<(), PeerError> {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
    let mut out = BytesMut::new();
    sluice_wire::client::encode_request(&header, body, &mut out)
        .map_err(|e| PeerError::Decode(format!("{e:?}")))?;
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}

/// One size-prefixed response frame of at most `bytes_max` bytes.
pub async fn read_frame(stream: &mut PeerStream, bytes_max: usize) -> Result<Bytes, PeerError> {
    let length = usize::try_from(stream.read_u32().await?).unwrap_or(usize::MAX);
    if length > bytes_max {
        return Err(PeerError::Oversized(length));
    }
    let mut payload = BytesMut::zeroed(length);
    stream.read_exact(&mut payload).await?;
    Ok(payload.freeze())
}

/// Sends `body` and decodes the answer as `R`, checking the correlation id.
pub async fn round_trip<R: Decodable>(
    stream: &mut PeerStream,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
    bytes_max: usize,
) -> Result<R, PeerError> {
    send_request(stream, correlation_id, api_key, version, &body).await?;
    let mut payload = read_frame(stream, bytes_max).await?;
    let header = ResponseHeader::decode(&mut payload, api_key.response_header_version(version))
        .map_err(|e| PeerError::Decode(e.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(PeerError::Decode("correlation id mismatch".into()));
    }
    let response =
        R::decode(&mut payload, version).map_err(|e| PeerError::Decode(e.to_string()))?;
    if payload.has_remaining() {
        return Err(PeerError::Decode("trailing bytes".into()));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn openssl(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(status.status.success(), "openssl {args:?}: {status:?}");
    }

    /// A CA `<ca>.pem` and a leaf `<leaf>.pem`/`.key` for 127.0.0.1 it signed.
    fn ca_and_leaf(dir: &Path, ca: &str, leaf: &str) {
        let curve = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ];
        openssl(dir, &[&curve[..], &["-out", &format!("{ca}.key")]].concat());
        let subject = format!("/CN={ca}");
        let ca_key = format!("{ca}.key");
        let ca_pem = format!("{ca}.pem");
        openssl(
            dir,
            &[
                "req", "-x509", "-new", "-key", &ca_key, "-days", "2", "-subj", &subject, "-out",
                &ca_pem,
            ],
        );
        let key = format!("{leaf}.key");
        openssl(dir, &[&curve[..], &["-out", &key]].concat());
        let csr = format!("{leaf}.csr");
        let subject = format!("/CN={leaf}");
        openssl(
            dir,
            &["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr],
        );
        let ext = format!("{leaf}.ext");
        std::fs::write(
            dir.join(&ext),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        let pem = format!("{leaf}.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }

    /// A peer requiring client certificates from its CA refuses one from another CA: with
    /// TLS 1.3 the client's handshake completes first, so `connect` must still see it.
    #[tokio::test]
    async fn a_refused_client_certificate_fails_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        ca_and_leaf(dir.path(), "ca-a", "server");
        ca_and_leaf(dir.path(), "ca-b", "stranger");
        let path = |name: &str| dir.path().join(name);
        let server = tls::TlsSource::open(tls::TlsFiles {
            certificate: path("server.pem"),
            key: path("server.key"),
            client_ca: Some(path("ca-a.pem")),
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
        let serving = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.is_err()
        });
        let mut inter_broker = InterBroker::plaintext("SSL");
        inter_broker.protocol = SecurityProtocol::Ssl;
        let identity = Some((path("stranger.pem"), path("stranger.key")));
        inter_broker.tls = Some(tls::ClientTlsSource::open(path("ca-a.pem"), identity).unwrap());
        let error = match inter_broker.connect(&address).await {
            Ok(_) => panic!("a refused certificate made a connection"),
            Err(error) => error,
        };
        assert!(!matches!(error, PeerError::TimedOut), "{error}");
        assert!(serving.await.unwrap(), "the server refused the handshake");
        let logged = inter_broker.failures.lock().unwrap();
        assert_eq!(logged.get(&address), Some(&vec![error.to_string()]));
    }

    #[test]
    fn server_names_are_the_host() {
        assert_eq!(host_of("127.0.0.1:9092"), "127.0.0.1");
        assert_eq!(host_of("kafka-1.example:9093"), "kafka-1.example");
        assert_eq!(host_of("[::1]:9092"), "::1");
    }
}
