//! A broker-to-broker connection: one request at a time, framed as a Kafka client frames it,
//! opened (TLS, SASL) by the node's `InterBroker` settings.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::net::peer_transport::{round_trip, InterBroker, PeerConnection};
pub use crate::net::peer_transport::{PeerError, PEER_RESPONSE_BYTES_MAX};

pub struct Peer {
    inter_broker: Arc<InterBroker>,
    address: String,
    connection: Option<PeerConnection>,
    correlation_id: i32,
}

impl Peer {
    pub fn new(inter_broker: Arc<InterBroker>, address: String) -> Peer {
        Peer {
            inter_broker,
            address,
            connection: None,
            correlation_id: 0,
        }
    }

    /// The peer's `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `body` at `version` and decodes the answer as `R`; the connection is dropped on
    /// any error so the next call starts clean.
    pub async fn request<R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let result = tokio::time::timeout(timeout, self.exchange(api_key, version, body)).await;
        let result = result.unwrap_or(Err(PeerError::TimedOut));
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn exchange<R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Result<R, PeerError> {
        if self
            .connection
            .as_ref()
            .is_some_and(PeerConnection::due_for_renewal)
        {
            // The peer's SASL session is about to end: log in again on a fresh connection.
            self.connection = None;
        }
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self
                .connection
                .insert(self.inter_broker.connect(&self.address).await?),
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        round_trip(
            &mut connection.stream,
            correlation_id,
            api_key,
            version,
            body,
            PEER_RESPONSE_BYTES_MAX,
        )
        .await
    }
}
