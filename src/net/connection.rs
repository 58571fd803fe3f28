//! One client connection: read frames, answer them in order, write the answers back.
//!
//! Requests on a connection are served one at a time, in arrival order, as Kafka does (it
//! mutes a channel until its response is sent), so responses always go back in request order.
//! Pipelined requests that arrive together are answered together in one write.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use sluice_wire::frame::{check_frame, check_token_frame, FrameCheck, LENGTH_PREFIX_BYTES};
use sluice_wire::legacy::encode_legacy_response;
use sluice_wire::request::{decode_request, Decoded};
use sluice_wire::response::{encode_api_versions_unsupported, encode_response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::broker::Broker;
use crate::budget::ConnectionShare;
use crate::handlers::{self, RequestContext};
use crate::net::sasl::{After, SaslState, RAW_TOKEN_BYTES_MAX};
use crate::security::Security;

/// Who is on the other end of a connection, and on which listener.
pub struct Session {
    pub listener_name: Arc<str>,
    /// `User:ANONYMOUS`, `User:<certificate CN>` or `User:<SASL user>`.
    pub principal: String,
    pub sasl: SaslState,
    pub security: Arc<Security>,
    pub reauth: Reauth,
}

/// KIP-368 re-authentication of a SASL session (`--connections-max-reauth-ms`).
#[derive(Default)]
pub struct Reauth {
    /// When the authenticated session ends; `None` while unauthenticated or when sessions do
    /// not expire.
    pub expires_at: Option<std::time::Instant>,
    /// The principal before a re-authentication started: it must not change.
    pub previous_principal: Option<String>,
}

impl Session {
    /// Whether a request other than re-authentication may still be served.
    fn expired(&self, now: std::time::Instant) -> bool {
        self.reauth.expires_at.is_some_and(|at| now >= at)
    }

    /// Starts a re-authentication on an authenticated SASL connection (a SaslHandshake
    /// after login), when sessions expire.
    fn begin_reauth(&mut self, reauth_ms: u64) -> bool {
        let was_sasl = self.reauth.expires_at.is_some();
        if reauth_ms == 0 || !was_sasl || !self.sasl.authenticated() {
            return false;
        }
        self.reauth.previous_principal = Some(self.principal.clone());
        self.sasl = SaslState::AwaitingHandshake;
        true
    }
}

const READ_BUFFER_BYTES_INITIAL: usize = 64 * 1024;
/// Buffers grown past this by one large request are released afterwards, so an idle
/// connection does not keep a large request's memory.
const BUFFER_BYTES_RETAINED_MAX: usize = 1024 * 1024;
/// Pending responses are written once they reach this size, even with more requests buffered.
const WRITE_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// Whether the connection goes on after a frame.
enum Next {
    Continue,
    /// Closes once the last answer is out and the client has had time to read it and hang
    /// up itself (after a refused SASL exchange: some clients, kafka-python among them, lose
    /// an answer that arrives together with the end of the connection).
    CloseAfterAnswer,
    Close,
}

pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    broker: Arc<Broker>,
    mut socket: S,
    peer: SocketAddr,
    mut session: Session,
    mut stop: broadcast::Receiver<()>,
) -> std::io::Result<()> {
    let request_bytes_max = broker.config.max_request_bytes;
    let mut input = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
    let mut output = BytesMut::new();
    let share = ConnectionShare::default();
    loop {
        // Answer every complete frame already buffered before reading more.
        let needed = loop {
            let raw_token = session.sasl.expects_raw_token();
            let checked = if raw_token {
                check_token_frame(&input, RAW_TOKEN_BYTES_MAX)
            } else {
                check_frame(&input, request_bytes_max)
            };
            match checked {
                Ok(FrameCheck::Complete { frame_bytes }) => {
                    let mut frame = input.split_to(LENGTH_PREFIX_BYTES + frame_bytes);
                    frame.advance(LENGTH_PREFIX_BYTES);
                    let frame = frame.freeze();
                    let next = if raw_token {
                        serve_raw_token(&broker, peer, &mut session, &frame, &mut output).await
                    } else {
                        serve_frame(&broker, peer, &share, &mut session, frame, &mut output).await
                    };
                    if matches!(next, Next::Close) {
                        write_out(&broker, &mut socket, &mut output).await?;
                        return Ok(());
                    }
                    if matches!(next, Next::CloseAfterAnswer) {
                        write_out(&broker, &mut socket, &mut output).await?;
                        linger_until_client_closes(&mut socket, &mut input).await;
                        let _ = socket.shutdown().await;
                        return Ok(());
                    }
                    if let Some(until) = share.take_mute() {
                        // Kafka's throttling: the response goes out now, the next request of
                        // this connection is served only once the throttle time has passed.
                        write_out(&broker, &mut socket, &mut output).await?;
                        tokio::select! {
                            () = tokio::time::sleep_until(until.into()) => {}
                            _ = stop.recv() => return Ok(()),
                        }
                    }
                    if output.len() >= WRITE_BATCH_BYTES_MAX {
                        write_out(&broker, &mut socket, &mut output).await?;
                    }
                }
                Ok(FrameCheck::Incomplete) => break frame_bytes_needed(&input),
                Err(error) => {
                    tracing::warn!(%peer, ?error, "bad frame length; closing the connection");
                    write_out(&broker, &mut socket, &mut output).await?;
                    return Ok(());
                }
            }
        };
        write_out(&broker, &mut socket, &mut output).await?;
        release_if_large(&mut input);
        // Reserve the rest of a frame whose length is known (and already checked against the
        // limit), so a large produce is read without repeated regrowth.
        if needed > input.len() {
            input.reserve(needed - input.len());
        }
        // Biased towards reading: a request that reached the socket before shutdown is read
        // and answered (handlers answer at once while the broker is closing), not dropped.
        let read = tokio::select! {
            biased;
            read = socket.read_buf(&mut input) => read?,
            _ = stop.recv() => return Ok(()),
        };
        if read == 0 {
            return Ok(());
        }
        broker.metrics.node_bytes_in.inc_by(read as u64);
    }
}

/// Longest a refused connection stays open for its client to read the answer and hang up.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// Waits (at most [`CLOSE_LINGER`]) for the client to close, discarding what it sends.
async fn linger_until_client_closes<S: AsyncRead + Unpin>(socket: &mut S, input: &mut BytesMut) {
    let drain = async {
        loop {
            input.clear();
            match socket.read_buf(input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

/// Total bytes (prefix included) of the frame at the head of `input`, once its length is known.
fn frame_bytes_needed(input: &[u8]) -> usize {
    if input.len() < LENGTH_PREFIX_BYTES {
        return LENGTH_PREFIX_BYTES;
    }
    let declared = i32::from_be_bytes([input[0], input[1], input[2], input[3]]);
    // check_frame already refused negative and oversized lengths.
    LENGTH_PREFIX_BYTES + usize::try_from(declared).unwrap_or(0)
}

async fn write_out<S: AsyncWrite + Unpin>(
    broker: &Broker,
    socket: &mut S,
    output: &mut BytesMut,
) -> std::io::Result<()> {
    if !output.is_empty() {
        socket.write_all(output).await?;
        broker.metrics.node_bytes_out.inc_by(output.len() as u64);
        // TLS streams buffer inside; a response must reach the socket now.
        socket.flush().await?;
        output.clear();
    }
    release_if_large(output);
    Ok(())
}

fn release_if_large(buffer: &mut BytesMut) {
    if buffer.is_empty() && buffer.capacity() > BUFFER_BYTES_RETAINED_MAX {
        *buffer = BytesMut::with_capacity(READ_BUFFER_BYTES_INITIAL);
    }
}

async fn serve_frame(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    share: &ConnectionShare,
    session: &mut Session,
    frame: bytes::Bytes,
    output: &mut BytesMut,
) -> Next {
    let decoded = match decode_request(frame) {
        Ok(decoded) => decoded,
        Err(error) => {
            tracing::warn!(%peer, ?error, "undecodable request; closing the connection");
            return Next::Close;
        }
    };
    match decoded {
        Decoded::Request { header, body } => {
            let Ok(api_key) = ApiKey::try_from(header.request_api_key) else {
                // decode_request only returns keys from our table.
                tracing::error!(%peer, key = header.request_api_key, "decoded an unknown key");
                return Next::Close;
            };
            if api_key != ApiKey::ApiVersions && !broker.is_serving_clients() {
                // A client here now would get Metadata without this node (not admitted yet)
                // and some (librdkafka) then lose their only bootstrap address: closing makes
                // them retry, as a Kafka broker that is not unfenced yet does.
                tracing::debug!(%peer, ?api_key, "not serving before unfenced; closing");
                return Next::Close;
            }
            let reauth_ms = broker.config.connections_max_reauth_ms;
            let reauth_start = api_key == ApiKey::SaslHandshake && session.begin_reauth(reauth_ms);
            if reauth_start {
                tracing::info!(%peer, principal = %session.principal, "SASL re-authentication started");
            }
            if !reauth_start
                && session.sasl.authenticated()
                && session.expired(std::time::Instant::now())
            {
                // KIP-368: the session ended without re-authentication.
                tracing::info!(%peer, principal = %session.principal, "SASL session expired; closing");
                return Next::Close;
            }
            let (response, after) = if session.sasl.authenticated() {
                let context = RequestContext {
                    broker,
                    api_version: header.request_api_version,
                    peer,
                    client_id: header.client_id.as_ref().map(|id| id.to_string()),
                    listener_name: &session.listener_name,
                    connection: share,
                    principal: &session.principal,
                    authorizer: session.security.authorizer.as_ref(),
                };
                let started = std::time::Instant::now();
                let response =
                    handlers::dispatch_within_request_quota(&context, api_key, body).await;
                broker
                    .metrics
                    .record_request(header.request_api_key, started.elapsed());
                let Some(response) = response else {
                    return Next::Continue;
                };
                (response, After::Continue)
            } else {
                let api_version = header.request_api_version;
                let answer = serve_unauthenticated(broker, peer, share, session, api_version, body);
                let Some(answer) = answer.await else {
                    return Next::Close;
                };
                answer
            };
            let version = header.request_api_version;
            let correlation_id = header.correlation_id;
            if let Err(error) = encode_response(api_key, version, correlation_id, &response, output)
            {
                tracing::error!(%peer, ?api_key, version, ?error, "encoding a response failed");
                return Next::Close;
            }
            match after {
                After::Continue => Next::Continue,
                After::Close => Next::CloseAfterAnswer,
            }
        }
        Decoded::ApiVersionsTooNew {
            correlation_id,
            api_version,
        } => {
            tracing::debug!(%peer, api_version, "ApiVersions too new; answering with v0");
            encode_api_versions_unsupported(correlation_id, output);
            Next::Continue
        }
        Decoded::Legacy { header, request } => {
            if !broker.is_serving_clients() {
                tracing::debug!(%peer, "not serving before unfenced; closing");
                return Next::Close;
            }
            if !session.sasl.authenticated() {
                tracing::warn!(%peer, "pre-KIP-152 request before SASL authentication; closing");
                return Next::Close;
            }
            let context = RequestContext {
                broker,
                api_version: header.request_api_version,
                peer,
                client_id: header.client_id.as_ref().map(|id| id.to_string()),
                listener_name: &session.listener_name,
                connection: share,
                principal: &session.principal,
                authorizer: session.security.authorizer.as_ref(),
            };
            let started = std::time::Instant::now();
            let response = handlers::legacy::dispatch(&context, request).await;
            broker
                .metrics
                .record_request(header.request_api_key, started.elapsed());
            let Some(response) = response else {
                return Next::Continue;
            };
            let version = header.request_api_version;
            let correlation_id = header.correlation_id;
            if let Err(error) = encode_legacy_response(correlation_id, version, &response, output) {
                tracing::error!(%peer, version, ?error, "encoding a legacy response failed");
                return Next::Close;
            }
            Next::Continue
        }
    }
}

/// One raw SASL token after a v0 SaslHandshake: the reply goes back behind a length prefix
/// and no response header; a refusal closes the connection without an answer, as Kafka's.
async fn serve_raw_token(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    session: &mut Session,
    token: &[u8],
    output: &mut BytesMut,
) -> Next {
    let security = session.security.clone();
    let reply = session
        .sasl
        .authenticate_raw(broker, &security, peer, token, &mut session.principal)
        .await;
    let Some(reply) = reply else {
        return Next::Close;
    };
    let Ok(reply_bytes) = i32::try_from(reply.len()) else {
        tracing::error!(%peer, bytes = reply.len(), "SASL reply too large to frame; closing");
        return Next::Close;
    };
    output.extend_from_slice(&reply_bytes.to_be_bytes());
    output.extend_from_slice(&reply);
    if session.sasl.authenticated() {
        let reauth_ms = broker.config.connections_max_reauth_ms;
        if reauth_ms > 0 {
            // No SaslAuthenticate carries a lifetime to a v0 client, so it cannot
            // re-authenticate: its session simply ends, as Kafka's does.
            let lifetime = std::time::Duration::from_millis(reauth_ms);
            session.reauth.expires_at = Some(std::time::Instant::now() + lifetime);
        }
    }
    Next::Continue
}

/// Before authentication on a SASL listener only ApiVersions, SaslHandshake and
/// SaslAuthenticate are served; anything else closes the connection (`None`), as Kafka does.
async fn serve_unauthenticated(
    broker: &Arc<Broker>,
    peer: SocketAddr,
    share: &ConnectionShare,
    session: &mut Session,
    api_version: i16,
    body: RequestKind,
) -> Option<(ResponseKind, After)> {
    match body {
        RequestKind::ApiVersions(_) => {
            let context = RequestContext {
                broker,
                api_version,
                peer,
                client_id: None,
                listener_name: &session.listener_name,
                connection: share,
                principal: &session.principal,
                authorizer: session.security.authorizer.as_ref(),
            };
            let response = handlers::dispatch(&context, body).await?;
            Some((response, After::Continue))
        }
        RequestKind::SaslHandshake(request) => {
            if api_version == 0 && session.reauth.previous_principal.is_some() {
                // KIP-368 re-authenticates through SaslAuthenticate (handshake v1+) only.
                tracing::warn!(%peer, "re-authentication with a v0 SaslHandshake; closing");
                return None;
            }
            let (response, after) =
                session
                    .sasl
                    .handshake(&session.security, &request, api_version);
            Some((ResponseKind::SaslHandshake(response), after))
        }
        RequestKind::SaslAuthenticate(request) => {
            let security = session.security.clone();
            let (mut response, mut after) = session
                .sasl
                .authenticate(broker, &security, peer, &request, &mut session.principal)
                .await;
            if session.sasl.authenticated() {
                let previous = session.reauth.previous_principal.take();
                if previous.as_ref().is_some_and(|p| *p != session.principal) {
                    // Kafka: a re-authentication may not change the principal.
                    tracing::warn!(%peer, principal = %session.principal, "re-authentication changed the principal; closing");
                    response.error_code =
                        kafka_protocol::ResponseError::SaslAuthenticationFailed.code();
                    response.error_message = Some(handlers::str_bytes(
                        "Cannot change principals during re-authentication",
                    ));
                    after = After::Close;
                }
                let reauth_ms = broker.config.connections_max_reauth_ms;
                if reauth_ms > 0 {
                    let lifetime = std::time::Duration::from_millis(reauth_ms);
                    session.reauth.expires_at = Some(std::time::Instant::now() + lifetime);
                    response.session_lifetime_ms = i64::try_from(reauth_ms).unwrap_or(i64::MAX);
                }
            }
            Some((ResponseKind::SaslAuthenticate(response), after))
        }
        other => {
            tracing::warn!(%peer, request = ?handlers::api_name(&other), "request before SASL authentication; closing");
            None
        }
    }
}
