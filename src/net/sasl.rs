//! One connection's authentication state on a SASL listener (KIP-152 framing): SaslHandshake
//! picks the mechanism, SaslAuthenticate carries its tokens. Failures are answered
//! SASL_AUTHENTICATION_FAILED with a generic message after a per-address delay, logged with
//! the user and peer (never the password), and the connection is then closed.

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

    pub fn handshake(
        &mut self,
        security: &Security,
        request: &SaslHandshakeRequest,
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
        let token = &request.auth_bytes;
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
            Ok((None, reply)) => {
                response.auth_bytes = Bytes::from(reply);
                (response, After::Continue)
            }
            Ok((Some(user), reply)) => {
                tracing::info!(%peer, user = %user, "SASL authentication succeeded");
                *principal = format!("User:{user}");
                *self = SaslState::Open;
                response.auth_bytes = Bytes::from(reply);
                (response, After::Continue)
            }
            Err(reason) => {
                let user = user_seen.as_deref().unwrap_or("<none>");
                tracing::warn!(%peer, user = %user, %reason, "SASL authentication failed");
                let delay = security.failures.record_failure(peer.ip());
                tokio::time::sleep(delay).await;
                response.error_code = ResponseError::SaslAuthenticationFailed.code();
                response.error_message = Some(str_bytes(FAILURE_MESSAGE));
                (response, After::Close)
            }
        }
    }
}
