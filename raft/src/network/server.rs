//! The receiving side: the Raft listener. Bad input closes the connection; it never reaches
//! openraft and never stops the node.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::transport::RaftTransport;
use tokio::sync::{watch, Semaphore};

use super::frame::{
    decode, read_frame_or_end, write_message, FrameError, RpcEnvelope, RpcRequest, RpcResponse,
};
use crate::proposer::Proposer;
use crate::raft_types::{NodeId, Raft};
use crate::state_machine::SNAPSHOT_BYTES_MAX;

/// Most simultaneous connections on the Raft listener: peers need one or two each.
pub const RAFT_CONNECTIONS_MAX: usize = 64;
/// A connection that sends nothing for this long is closed; the leader's heartbeats arrive
/// far more often.
pub const RAFT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every connection handler needs.
#[derive(Clone)]
pub struct ServerContext {
    pub raft: Raft,
    pub node_id: NodeId,
    pub cluster_fingerprint: u64,
    pub proposer: Arc<Proposer>,
    pub transport: RaftTransport,
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    context: ServerContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(RAFT_CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "raft accept failed");
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "raft listener full; connection refused");
            continue;
        };
        let context = context.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_connection(stream, &context, shutdown).await {
                tracing::info!(%peer, %error, "raft connection closed");
            }
            drop(permit);
        });
    }
}

async fn serve_connection(
    tcp: TcpStream,
    context: &ServerContext,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), FrameError> {
    let mut stream = tokio::select! {
        accepted = context.transport.accept(tcp) => accepted?,
        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
    };
    loop {
        let read = tokio::time::timeout(RAFT_IDLE_TIMEOUT, read_frame_or_end(&mut stream));
        let payload = tokio::select! {
            read = read => match read {
                Ok(Ok(Some(payload))) => payload,
                // The peer closed between requests (a forwarded operation was answered).
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(error)) => return Err(error),
                Err(_) => return Ok(()),
            },
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        let envelope: RpcEnvelope = decode(&payload)?;
        check_envelope(&envelope, context)?;
        let response = dispatch(context, envelope.request).await;
        write_message(&mut stream, &response).await?;
    }
}

fn check_envelope(envelope: &RpcEnvelope, context: &ServerContext) -> Result<(), FrameError> {
    let refuse = |why: &str| Err(FrameError::Io(std::io::Error::other(why.to_string())));
    if envelope.cluster_fingerprint != context.cluster_fingerprint {
        return refuse("request from another cluster (voter sets differ)");
    }
    if envelope.target != context.node_id {
        return refuse("request meant for another node");
    }
    if let RpcRequest::InstallSnapshot(request) = &envelope.request {
        let end = request.offset.saturating_add(request.data.len() as u64);
        if end > SNAPSHOT_BYTES_MAX as u64 {
            return refuse("snapshot over the size limit");
        }
    }
    Ok(())
}

async fn dispatch(context: &ServerContext, request: RpcRequest) -> RpcResponse {
    let raft = &context.raft;
    match request {
        RpcRequest::AppendEntries(request) => {
            RpcResponse::AppendEntries(raft.append_entries(request).await)
        }
        RpcRequest::Vote(request) => RpcResponse::Vote(raft.vote(request).await),
        RpcRequest::InstallSnapshot(request) => {
            RpcResponse::InstallSnapshot(raft.install_snapshot(request).await)
        }
        // Only the local attempt: a forwarded operation is never forwarded again, so a
        // stale leader view cannot bounce it around the cluster.
        RpcRequest::Forward(operation) => {
            RpcResponse::Forward(context.proposer.propose_local(operation).await)
        }
        RpcRequest::RemoveVoter { node_id } => {
            RpcResponse::RemoveVoter(context.proposer.remove_voter_local(node_id).await)
        }
        RpcRequest::Join { node_id, address } => {
            RpcResponse::Join(context.proposer.add_learner_local(node_id, address).await)
        }
    }
}
