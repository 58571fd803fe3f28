//! One reachability check of a broker's advertised address, as a client would make it:
//! resolve the name, connect (with TLS when the inter-broker listener uses it, presenting
//! this node's certificate to an mTLS listener), and complete an ApiVersions round-trip
//! answered by that very broker incarnation. No SASL: ApiVersions is what every client sends
//! before authenticating, and a node that is not unfenced yet serves nothing else.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestKind};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::net::peer_transport::InterBroker;

/// `client_software_name` of a probe: the probed broker answers it with its identity.
pub const PROBE_SOFTWARE_NAME: &str = "sluice-admission-probe";
/// The ApiVersions response tagged field carrying the answering broker's node id (i32) and
/// incarnation id (16 bytes). Unknown tags are skipped by every Kafka client.
pub const IDENTITY_TAG: i32 = 0x51_1C;
const IDENTITY_BYTES: usize = 4 + 16;
/// ApiVersions v3: the first version with software names and tagged fields.
const PROBE_API_VERSION: i16 = 3;
const PROBE_CORRELATION_ID: i32 = 1;
/// An ApiVersions answer is a few hundred bytes; anything much larger is not one.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The identity a probed broker proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub node_id: i32,
    pub incarnation_id: Uuid,
}

impl Identity {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(IDENTITY_BYTES);
        out.put_i32(self.node_id);
        out.put_slice(self.incarnation_id.as_bytes());
        out.freeze()
    }

    pub fn decode(mut bytes: Bytes) -> Option<Identity> {
        if bytes.len() != IDENTITY_BYTES {
            return None;
        }
        let node_id = bytes.get_i32();
        let incarnation_id = Uuid::from_slice(&bytes).ok()?;
        Some(Identity {
            node_id,
            incarnation_id,
        })
    }
}

/// `Ok` when `host:port` answers as `expected`; otherwise why not, in words for operators.
pub async fn probe(
    inter_broker: &InterBroker,
    host: &str,
    port: u16,
    expected: Identity,
) -> Result<(), String> {
    let addresses = resolve(host, port).await?;
    let mut failures = Vec::new();
    for address in addresses {
        match exchange(inter_broker, address, host).await {
            Ok(answered) if answered == expected => return Ok(()),
            Ok(answered) if answered.node_id != expected.node_id => failures.push(format!(
                "{address} answered as node {} instead",
                answered.node_id
            )),
            Ok(_) => failures.push(format!(
                "{address} answered as another process of this node (a stale instance?)"
            )),
            Err(error) => failures.push(format!("{address}: {error}")),
        }
    }
    Err(format!(
        "advertised address {host}:{port} is not reachable as node {}: {}",
        expected.node_id,
        failures.join("; ")
    ))
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let resolved = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => return Err(format!("resolving {host:?} timed out")),
        Ok(Err(error)) => return Err(format!("cannot resolve {host:?}: {error}")),
        Ok(Ok(addresses)) => addresses.collect::<Vec<_>>(),
    };
    if resolved.is_empty() {
        return Err(format!("{host:?} resolves to no address"));
    }
    Ok(resolved)
}

async fn exchange(
    inter_broker: &InterBroker,
    address: SocketAddr,
    host: &str,
) -> Result<Identity, String> {
    let mut stream = inter_broker
        .connect_unauthenticated(address, host)
        .await
        .map_err(|error| format!("connect failed: {error}"))?;
    let round_trip = async {
        stream
            .write_all(&probe_request())
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        stream
            .flush()
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        let length = stream
            .read_i32()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| format!("answered a frame of {length} bytes: not a Kafka broker"))?;
        let mut payload = vec![0u8; length];
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("answer cut short: {e}"))?;
        identity_of(Bytes::from(payload))
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, round_trip)
        .await
        .map_err(|_| "no ApiVersions answer in time".to_string())?
}

fn probe_request() -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(PROBE_API_VERSION)
        .with_correlation_id(PROBE_CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str(PROBE_SOFTWARE_NAME)));
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str(PROBE_SOFTWARE_NAME))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let mut out = BytesMut::new();
    sluice_wire::client::encode_request(&header, &RequestKind::ApiVersions(body), &mut out)
        .expect("a default ApiVersions request always encodes");
    out
}

fn identity_of(mut payload: Bytes) -> Result<Identity, String> {
    // ApiVersions responses always use header v0 (KIP-511).
    let header = ResponseHeader::decode(&mut payload, 0).map_err(|e| format!("bad answer: {e}"))?;
    if header.correlation_id != PROBE_CORRELATION_ID {
        return Err("answered another request".into());
    }
    let response = ApiVersionsResponse::decode(&mut payload, PROBE_API_VERSION)
        .map_err(|e| format!("bad ApiVersions answer: {e}"))?;
    if response.error_code != 0 {
        return Err(format!("ApiVersions error {}", response.error_code));
    }
    response
        .unknown_tagged_fields
        .get(&IDENTITY_TAG)
        .cloned()
        .and_then(Identity::decode)
        .ok_or_else(|| "answered, but not as a sluice broker".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_rejects_other_lengths() {
        let identity = Identity {
            node_id: 7,
            incarnation_id: Uuid::from_u128(0xfeed),
        };
        assert_eq!(Identity::decode(identity.encode()), Some(identity));
        assert_eq!(Identity::decode(Bytes::from_static(&[0; 19])), None);
        assert_eq!(Identity::decode(Bytes::new()), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_with_the_reason() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let expected = Identity {
            node_id: 1,
            incarnation_id: Uuid::nil(),
        };
        let inter_broker = InterBroker::plaintext("PLAINTEXT");
        let error = probe(&inter_broker, "127.0.0.1", port, expected)
            .await
            .expect_err("closed");
        assert!(error.contains("connect failed"), "{error}");
    }
}
