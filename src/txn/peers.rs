//! Connections from the transaction coordinator and partition leaders to other brokers
//! (markers, KIP-890 verification), kept open between requests: one per request would leave
//! thousands of sockets in TIME_WAIT under a steady stream of transactions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::net::peer_transport::InterBroker;
use crate::replication::Peer;

/// Idle connections kept per address; concurrent requests beyond it open more and close
/// them afterwards.
const IDLE_PER_ADDRESS_MAX: usize = 4;

#[derive(Default)]
pub struct PeerPool {
    idle: Mutex<HashMap<String, Vec<Peer>>>,
}

impl PeerPool {
    /// Sends one request to `address` on an idle connection (or a new one); the connection
    /// goes back to the pool only after a clean exchange.
    pub async fn request<R: Decodable>(
        &self,
        inter_broker: &Arc<InterBroker>,
        address: &str,
        api_key: ApiKey,
        version: i16,
        body: RequestKind,
        timeout: Duration,
    ) -> Result<R, String> {
        let idle = self.take(address);
        let mut peer = idle.unwrap_or_else(|| Peer::new(inter_broker.clone(), address.to_string()));
        let result = peer.request::<R>(api_key, version, body, timeout).await;
        if result.is_ok() {
            self.put(address, peer);
        }
        result.map_err(|error| error.to_string())
    }

    fn take(&self, address: &str) -> Option<Peer> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get_mut(address).and_then(Vec::pop)
    }

    fn put(&self, address: &str, peer: Peer) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let peers = idle.entry(address.to_string()).or_default();
        if peers.len() < IDLE_PER_ADDRESS_MAX {
            peers.push(peer);
        }
    }
}
