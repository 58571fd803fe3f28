//! One connection's authentication state on a SASL listener. SaslHandshake picks the
//! mechanism; after a v1 handshake SaslAuthenticate requests carry its tokens (KIP-152
//! framing), after a v0 handshake the tokens travel raw, each behind an `i32` length prefix
//! with no request header, as Kafka's pre-1.0 clients send them. Failures are logged with the
//! user and peer (never the password) and, after a per-address delay, answered
//! SASL_AUTHENTICATION_FAILED with a generic message (framed) or not at all (raw: Kafka only
//! closes the connection); the connection is then closed.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::security::scram::{ScramMechanism, ScramServer, Step};
use crate::security::Security;

/// The message every failed authentication gets: nothing about which part was wrong.
const FAILURE_MESSAGE: &str = "Authentication failed: invalid credentials";

/// Largest raw SASL token accepted after a v0 handshake (Kafka's
/// `sasl.server.max.receive.size` default): tokens are small, and a client that has not
/// authenticated yet must not make the broker buffer a large request.
pub const RAW_TOKEN_BYTES_MAX: usize = 512 * 1024;

/// The SaslHandshake version after which tokens travel raw instead of in SaslAuthenticate.
const HANDSHAKE_VERSION_RAW_TOKENS: i16 = 0;

pub enum Exchange {
    Plain,
    Scram(ScramServer),
}

/// Where a connection's authentication stands.
pub enum SaslState {
    /// Not a SASL listener, or authenticated: requests go to the handlers.
    Open,
    /// Waiting for SaslHandshake.
    AwaitingHandshake,
    /// Mechanism chosen; waiting for SaslAuthenticate.
    Authenticating(Exchange),
    /// Mechanism chosen by a v0 handshake; waiting for a raw length-prefixed token.
    AuthenticatingRaw(Exchange),
}

/// What one token did to the exchange.
enum Evaluated {
    /// More tokens are needed; the reply goes back to the client.
    Continue(Vec<u8>),
    /// Authenticated as `user`; `reply` is the mechanism's last message.
    Succeeded { user: String, reply: Vec<u8> },
    /// Refused (already logged and delayed).
    Failed,
}

/// What the connection does after a SASL response.
pub enum After {
    Continue,
    Close,
}

impl SaslState {
    pub fn authenticated(&self) -> bool {
        matches!(self, SaslState::Open)
    }

    /// Whether the next frame is a raw SASL token rather than a Kafka request.
    pub fn expects_raw_token(&self) -> bool {
        matches!(self, SaslState::AuthenticatingRaw(_))
    }

    /// One SaslHandshake at `api_version`: v0 switches the connection to raw tokens.
    pub fn handshake(
        &mut self,
        security: &Security,
        request: &SaslHandshakeRequest,
        api_version: i16,
    ) -> (SaslHandshakeResponse, After) {
        let mechanisms = security.mechanisms();
        let mut response = SaslHandshakeResponse::default();
        response.mechanisms = mechanisms.iter().map(|m| str_bytes(*m)).collect();
        if !matches!(self, SaslState::AwaitingHandshake) {
            response.error_code = ResponseError::IllegalSaslState.code();
            return (response, After::Close);
        }
        let name = request.mechanism.as_str();
        let exchange = if !mechanisms.contains(&name) {
            None
        } else if name == "PLAIN" {
            Some(Exchange::Plain)
        } else {
            ScramMechanism::from_name(name).map(|m| Exchange::Scram(ScramServer::new(m)))
        };
        match exchange {
            Some(exchange) if api_version == HANDSHAKE_VERSION_RAW_TOKENS => {
                *self = SaslState::AuthenticatingRaw(exchange);
                (response, After::Continue)
            }
            Some(exchange) => {
                *self = SaslState::Authenticating(exchange);
                (response, After::Continue)
            }
            None => {
                response.error_code = ResponseError::UnsupportedSaslMechanism.code();
                (response, After::Close)
            }
        }
    }

    /// One SaslAuthenticate; on success `principal` is set and the state opens.
    pub async fn authenticate(
        &mut self,
        broker: &Arc<Broker>,
        security: &Security,
        peer: SocketAddr,
        request: &SaslAuthenticateRequest,
        principal: &mut String,
    ) -> (SaslAuthenticateResponse, After) {
        let mut response = SaslAuthenticateResponse::default();
        let SaslState::Authenticating(exchange) = self else {
            response.error_code = ResponseError::IllegalSaslState.code();
            response.error_message = Some(str_bytes("SaslAuthenticate before SaslHandshake"));
            return (response, After::Close);
        };
        match evaluate(exchange, broker, security, peer, &request.auth_bytes).await {
            Evaluated::Continue(reply) => {
                response.auth_bytes = Bytes::from(reply);
                (response, After::Continue)
            }
            Evaluated::Succeeded { user, reply } => {
                *principal = format!("User:{user}");
                *self = SaslState::Open;
                response.auth_bytes = Bytes::from(reply);
                (response, After::Continue)
            }
            Evaluated::Failed => {
                response.error_code = ResponseError::SaslAuthenticationFailed.code();
                response.error_message = Some(str_bytes(FAILURE_MESSAGE));
                (response, After::Close)
            }
        }
    }

    /// One raw token after a v0 handshake: the reply token to send back behind a length
    /// prefix (empty for PLAIN's success, as Kafka sends it), or `None` when the
    /// authentication failed and the connection closes without an answer, as Kafka's does.
    /// On success `principal` is set and the state opens.
    pub async fn authenticate_raw(
        &mut self,
        broker: &Arc<Broker>,
        security: &Security,
        peer: SocketAddr,
        token: &[u8],
        principal: &mut String,
    ) -> Option<Vec<u8>> {
        let SaslState::AuthenticatingRaw(exchange) = self else {
            tracing::warn!(%peer, "raw SASL token outside a v0 exchange; closing");
            return None;
        };
        match evaluate(exchange, broker, security, peer, token).await {
            Evaluated::Continue(reply) => Some(reply),
            Evaluated::Succeeded { user, reply } => {
                *principal = format!("User:{user}");
                *self = SaslState::Open;
                Some(reply)
            }
            Evaluated::Failed => None,
        }
    }
}

/// Runs one client token through the mechanism. A failure is logged with the user and peer
/// and delayed per address before it is returned.
async fn evaluate(
    exchange: &mut Exchange,
    broker: &Arc<Broker>,
    security: &Security,
    peer: SocketAddr,
    token: &[u8],
) -> Evaluated {
    let mut user_seen = None;
    let outcome: Result<(Option<String>, Vec<u8>), String> = match exchange {
        Exchange::Plain => match security.plain_users.as_ref() {
            Some(users) => users
                .authenticate(token)
                .map(|user| (Some(user), Vec::new()))
                .map_err(|user| {
                    user_seen = user;
                    "wrong user or password".to_string()
                }),
            None => Err("PLAIN is not enabled".to_string()),
        },
        Exchange::Scram(server) => {
            let lookup = |user: &str, mechanism| broker.scram_credential(user, mechanism);
            match server.step(token, &lookup, &mut user_seen) {
                Ok(Step::Continue(reply)) => Ok((None, reply)),
                Ok(Step::Success { user, message }) => Ok((Some(user), message)),
                Err(error) => Err(error.to_string()),
            }
        }
    };
    match outcome {
        Ok((None, reply)) => Evaluated::Continue(reply),
        Ok((Some(user), reply)) => {
            tracing::info!(%peer, user = %user, "SASL authentication succeeded");
            Evaluated::Succeeded { user, reply }
        }
        Err(reason) => {
            let user = user_seen.as_deref().unwrap_or("<none>");
            tracing::warn!(%peer, user = %user, %reason, "SASL authentication failed");
            let delay = security.failures.record_failure(peer.ip());
            tokio::time::sleep(delay).await;
            Evaluated::Failed
        }
    }
}
