//! The sending side: openraft's `RaftNetwork` over one TCP connection per peer.

use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::frame::{
    decode, read_frame, write_message, FrameError, RpcEnvelope, RpcRequest, RpcResponse,
};
use super::transport::{RaftStream, RaftTransport};
use crate::raft_types::{NodeId, TypeConfig};

/// How long to wait for a connection to a peer (TCP, and the TLS handshake when on).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before redialing a peer that refused the connection: short, since a restarted
/// peer should rejoin quickly, but long enough that a dead one costs no CPU.
const PEER_DOWN_BACKOFF: Duration = Duration::from_millis(100);

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

/// Makes one [`PeerClient`] per target node.
#[derive(Clone)]
pub struct NetworkFactory {
    pub cluster_fingerprint: u64,
    pub transport: RaftTransport,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            address: node.addr.clone(),
            cluster_fingerprint: self.cluster_fingerprint,
            transport: self.transport.clone(),
            stream: None,
        }
    }
}

/// A connection to one peer, opened on first use and dropped after any error, so the next
/// call starts from a clean stream.
pub struct PeerClient {
    target: NodeId,
    address: String,
    cluster_fingerprint: u64,
    transport: RaftTransport,
    stream: Option<RaftStream>,
}

impl PeerClient {
    async fn call(
        &mut self,
        request: RpcRequest,
        ttl: Duration,
    ) -> Result<RpcResponse, FrameError> {
        let envelope = RpcEnvelope {
            cluster_fingerprint: self.cluster_fingerprint,
            target: self.target,
            request,
        };
        let exchange = async {
            if self.stream.is_none() {
                let connect = self.transport.connect(&self.address);
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| timed_out("connect"))??;
                self.stream = Some(stream);
            }
            let Some(stream) = self.stream.as_mut() else {
                unreachable!("connected above");
            };
            write_message(stream, &envelope).await?;
            let payload = read_frame(stream).await?;
            decode::<RpcResponse>(&payload)
        };
        let result = match tokio::time::timeout(ttl, exchange).await {
            Ok(result) => result,
            Err(_) => Err(timed_out("rpc").into()),
        };
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// A peer that refuses connections (down, or not started yet) is Unreachable, so openraft
    /// backs off ([`PEER_DOWN_BACKOFF`]) instead of redialing in a tight loop; any other
    /// failure is a NetworkError, retried at once.
    fn unreachable<E: std::error::Error>(
        &self,
        error: &FrameError,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        tracing::debug!(target = self.target, %error, "raft rpc failed");
        let refused = matches!(
            error,
            FrameError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused
        );
        if refused {
            RPCError::Unreachable(Unreachable::new(error))
        } else {
            RPCError::Network(NetworkError::new(error))
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        error: RaftError<NodeId, E>,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }

    fn mismatch<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        let error = FrameError::Io(std::io::Error::other("response of another kind"));
        self.unreachable(&error)
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(PEER_DOWN_BACKOFF))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let response = self
            .call(RpcRequest::AppendEntries(rpc), option.hard_ttl())
            .await;
        match response.map_err(|e| self.unreachable(&e))? {
            RpcResponse::AppendEntries(result) => result.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let response = self
            .call(RpcRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await;
        match response.map_err(|e| self.unreachable(&e))? {
            RpcResponse::InstallSnapshot(result) => result.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let response = self.call(RpcRequest::Vote(rpc), option.hard_ttl()).await;
        match response.map_err(|e| self.unreachable(&e))? {
            RpcResponse::Vote(result) => result.map_err(|e| self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }
}
