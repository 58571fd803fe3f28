//! A broker-to-broker connection: one request at a time, framed as a Kafka client frames it.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted from a peer: a Fetch carries at most the leader's fetch limit,
/// bounded on our side by the request's `max_bytes` plus headers.
pub const PEER_RESPONSE_BYTES_MAX: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CLIENT_ID: &str = "sluice-replica-fetcher";

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
}

pub struct Peer {
    address: String,
    stream: Option<TcpStream>,
    correlation_id: i32,
}

impl Peer {
    pub fn new(address: String) -> Peer {
        Peer {
            address,
            stream: None,
            correlation_id: 0,
        }
    }

    /// Sends `body` at `version` and decodes the answer as `R`; the connection is dropped on
    /// any error so the next call starts clean.
    pub async fn request<R: Decodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: RequestKind,
        timeout: Duration,
    ) -> Result<R, PeerError> {
        let result = tokio::time::timeout(timeout, self.exchange(api_key, version, body)).await;
        let result = result.unwrap_or(Err(PeerError::TimedOut));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange<R: Decodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        body: RequestKind,
    ) -> Result<R, PeerError> {
        if self.stream.is_none() {
            let connect = TcpStream::connect(&self.address);
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| PeerError::TimedOut)??;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = api_key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));
        let mut out = BytesMut::new();
        sluice_wire::client::encode_request(&header, &body, &mut out)
            .map_err(|e| PeerError::Decode(format!("{e:?}")))?;
        let Some(stream) = self.stream.as_mut() else {
            return Err(PeerError::TimedOut);
        };
        stream.write_all(&out).await?;
        let length = usize::try_from(stream.read_u32().await?).unwrap_or(usize::MAX);
        if length > PEER_RESPONSE_BYTES_MAX {
            return Err(PeerError::Oversized(length));
        }
        let mut payload = BytesMut::zeroed(length);
        stream.read_exact(&mut payload).await?;
        let mut payload = payload.freeze();
        let header = ResponseHeader::decode(&mut payload, api_key.response_header_version(version))
            .map_err(|e| PeerError::Decode(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(PeerError::Decode("correlation id mismatch".into()));
        }
        let response =
            R::decode(&mut payload, version).map_err(|e| PeerError::Decode(e.to_string()))?;
        if payload.has_remaining() {
            return Err(PeerError::Decode("trailing bytes".into()));
        }
        Ok(response)
    }
}
