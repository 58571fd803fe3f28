//! `Proposer`: runs controller operations on the active controller, forwards them to it from
//! any other node (Kafka's KIP-590 forwarding, over the Raft listener), and keeps the broker
//! sessions the active controller fences on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use uuid::Uuid;

use crate::controller::{self, error_code, ControllerConfig, Operation, OperationResponse};
use crate::image::{encode_batch, BrokerId, MetadataImage};
use crate::network::frame::{
    decode, read_frame, write_message, RpcEnvelope, RpcRequest, RpcResponse,
};
use crate::quorum::{ProposeError, ENTRY_BYTES_MAX};
use crate::raft_types::{ApplyOutcome, NodeId, Raft, RecordBatch};

/// How long [`Proposer::submit`] keeps retrying while there is no leader or it moves.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between attempts while no leader is known.
const SUBMIT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// One forwarded operation: connect, send, wait for the commit, read the answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between rounds of join requests while no voter has added this learner.
const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Longest Raft address a learner may register (`host:port`).
const LEARNER_ADDRESS_BYTES_MAX: usize = 255;

/// An operation carried out: its answer, and the Raft log index its records were applied at
/// (or, when it wrote nothing, the index the image it was computed on had reached).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposed {
    pub response: OperationResponse,
    pub applied_index: u64,
}

pub struct Proposer {
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) images: watch::Receiver<Arc<MetadataImage>>,
    pub(crate) controller: ControllerConfig,
    pub(crate) cluster_fingerprint: u64,
    /// Proposals run one at a time so each is computed against the image its records land on.
    propose_lock: Mutex<()>,
    /// The active controller's view of broker liveness: last heartbeat per broker.
    sessions: std::sync::Mutex<HashMap<BrokerId, Instant>>,
}

impl Proposer {
    pub(crate) fn new(
        node_id: NodeId,
        raft: Raft,
        images: watch::Receiver<Arc<MetadataImage>>,
        controller: ControllerConfig,
        cluster_fingerprint: u64,
    ) -> Proposer {
        Proposer {
            node_id,
            raft,
            images,
            controller,
            cluster_fingerprint,
            propose_lock: Mutex::new(()),
            sessions: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// The current Raft leader, if one is known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Runs `operation` here; fails with `NotController` unless this node leads.
    pub async fn propose_local(&self, operation: Operation) -> Result<Proposed, ProposeError> {
        let _serial = self.propose_lock.lock().await;
        if let Operation::RegisterBroker(request) = &operation {
            self.fence_replaced_incarnation(request).await?;
        }
        self.propose_serialized(operation).await
    }

    /// A broker restarted before its old incarnation was fenced (kill -9 and a quick restart):
    /// as Kafka's controller does, a registration is accepted once the old incarnation has no
    /// live session here; fence the old one first so the registration can go through.
    async fn fence_replaced_incarnation(
        &self,
        request: &controller::RegisterBrokerRequest,
    ) -> Result<(), ProposeError> {
        let image = self.image();
        let Some(existing) = image.cluster.broker(request.broker_id) else {
            return Ok(());
        };
        if existing.fenced || existing.incarnation_id == request.incarnation_id {
            return Ok(());
        }
        let timeout = Duration::from_millis(self.controller.broker_session_timeout_ms);
        let alive = {
            let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            sessions
                .get(&request.broker_id)
                .is_some_and(|last| last.elapsed() <= timeout)
        };
        if alive {
            return Ok(());
        }
        tracing::info!(
            broker_id = request.broker_id,
            "fencing the previous incarnation"
        );
        let fence = Operation::FenceBroker {
            broker_id: request.broker_id,
        };
        self.propose_serialized(fence).await.map(|_| ())
    }

    /// The body of a proposal; the caller holds `propose_lock`.
    async fn propose_serialized(&self, operation: Operation) -> Result<Proposed, ProposeError> {
        // Catch up with everything committed before computing: the records must be derived
        // from the image they will be replayed onto.
        if let Err(error) = self.raft.ensure_linearizable().await {
            return Err(match error.forward_to_leader() {
                Some(forward) => not_controller(forward),
                None => ProposeError::Stopped(error.to_string()),
            });
        }
        let image = self.image();
        let result = controller::execute(&image, &operation, &self.controller, &mut Uuid::new_v4);
        self.note_session(&operation, &result.response);
        if result.records.is_empty() {
            return Ok(Proposed {
                response: result.response,
                applied_index: image.provenance.last_applied_index,
            });
        }
        let encoded_bytes = encode_batch(&result.records).len();
        if encoded_bytes > ENTRY_BYTES_MAX {
            return Err(ProposeError::EntryTooLarge(encoded_bytes));
        }
        match self.raft.client_write(RecordBatch(result.records)).await {
            Ok(written) => match written.data {
                ApplyOutcome::Applied => Ok(Proposed {
                    response: result.response,
                    applied_index: written.log_id.index,
                }),
                ApplyOutcome::Rejected { reason } => Err(ProposeError::Rejected(reason)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(not_controller(&forward))
            }
            Err(error) => Err(ProposeError::Stopped(error.to_string())),
        }
    }

    /// Runs `operation` on the active controller wherever it is, retrying while the quorum
    /// has no leader, for at most [`SUBMIT_TIMEOUT`].
    pub async fn submit(&self, operation: Operation) -> Result<Proposed, ProposeError> {
        let deadline = Instant::now() + SUBMIT_TIMEOUT;
        loop {
            let attempt = match self.propose_local(operation.clone()).await {
                Err(ProposeError::NotController {
                    leader_id: Some(leader_id),
                    leader_address: Some(address),
                }) if leader_id != self.node_id => {
                    self.forward_while_leading(leader_id, &address, &operation)
                        .await
                }
                other => other,
            };
            match attempt {
                Err(ProposeError::NotController { .. } | ProposeError::Unreachable(_))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(SUBMIT_RETRY_PAUSE).await;
                }
                other => return other,
            }
        }
    }

    /// Forwards `operation` to `leader_id`, giving up as soon as this node learns of another
    /// leader (or of none): a forward to a leader that was just cut off would otherwise wait
    /// out [`FORWARD_TIMEOUT`], and a broker's heartbeats stuck behind it would let the new
    /// controller fence that live broker. The retry goes to the new leader. If the old leader
    /// did commit it, the retry answers as a repeated request does (heartbeats and fencing
    /// are idempotent, AlterPartition is checked against epochs, CreateTopics finds the
    /// topic): the ambiguity of any Kafka request retried after a timeout.
    async fn forward_while_leading(
        &self,
        leader_id: NodeId,
        address: &str,
        operation: &Operation,
    ) -> Result<Proposed, ProposeError> {
        let mut metrics = self.raft.metrics();
        let leader_moved = async move {
            // An error means the Raft core stopped: the forward then fails on its own.
            if metrics
                .wait_for(|m| m.current_leader != Some(leader_id))
                .await
                .is_err()
            {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = self.forward(leader_id, address, operation) => result,
            () = leader_moved => Err(ProposeError::Unreachable(format!(
                "node {leader_id} stopped leading while an operation was forwarded to it"
            ))),
        }
    }

    async fn forward(
        &self,
        leader_id: NodeId,
        address: &str,
        operation: &Operation,
    ) -> Result<Proposed, ProposeError> {
        let request = RpcRequest::Forward(operation.clone());
        match self.call(leader_id, address, request).await? {
            RpcResponse::Forward(result) => result,
            _ => Err(ProposeError::Unreachable("response of another kind".into())),
        }
    }

    /// One request to node `target` at `address` on a fresh connection, for at most
    /// [`FORWARD_TIMEOUT`].
    async fn call(
        &self,
        target: NodeId,
        address: &str,
        request: RpcRequest,
    ) -> Result<RpcResponse, ProposeError> {
        let envelope = RpcEnvelope {
            cluster_fingerprint: self.cluster_fingerprint,
            target,
            request,
        };
        let exchange = async {
            let mut stream = TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            write_message(&mut stream, &envelope).await?;
            let payload = read_frame(&mut stream).await?;
            decode::<RpcResponse>(&payload)
        };
        match tokio::time::timeout(FORWARD_TIMEOUT, exchange).await {
            Err(_) => Err(ProposeError::Unreachable(format!(
                "node {target} timed out"
            ))),
            Ok(Err(error)) => Err(ProposeError::Unreachable(error.to_string())),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// On the leader: makes node `node_id` a learner at `address` (a broker-only node asking
    /// to follow the metadata log). A voter cannot be turned into a learner this way.
    pub async fn add_learner_local(
        &self,
        node_id: NodeId,
        address: String,
    ) -> Result<(), ProposeError> {
        let is_voter = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == node_id);
        if is_voter {
            return Err(ProposeError::Rejected(format!(
                "node {node_id} is a voter, not a learner"
            )));
        }
        if address.len() > LEARNER_ADDRESS_BYTES_MAX {
            return Err(ProposeError::Rejected("learner address too long".into()));
        }
        // Not blocking on the learner's catch-up: the membership change commits, and the
        // learner follows from there.
        match self
            .raft
            .add_learner(node_id, BasicNode::new(address), false)
            .await
        {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(not_controller(&forward))
            }
            Err(error) => Err(ProposeError::Stopped(error.to_string())),
        }
    }

    /// A node outside the voter set asks the voters, until one of them (the leader) adds it
    /// as a learner; returns once this node has heard from a leader.
    pub async fn join_as_learner(&self, voters: BTreeMap<NodeId, String>, address: String) {
        let mut metrics = self.raft.metrics();
        loop {
            for (voter, voter_address) in &voters {
                let request = RpcRequest::Join {
                    node_id: self.node_id,
                    address: address.clone(),
                };
                match self.call(*voter, voter_address, request).await {
                    Ok(RpcResponse::Join(Ok(()))) => {
                        tracing::info!(voter, "joined the metadata quorum as a learner");
                    }
                    Ok(answer) => tracing::debug!(voter, ?answer, "join refused"),
                    Err(error) => tracing::debug!(voter, %error, "join failed"),
                }
                if metrics.borrow().current_leader.is_some() {
                    return;
                }
            }
            let heard = tokio::time::timeout(
                JOIN_RETRY_PAUSE,
                metrics.wait_for(|m| m.current_leader.is_some()),
            );
            if let Ok(Ok(_)) = heard.await {
                return;
            }
        }
    }

    /// A heartbeat or registration the controller accepted keeps the broker's session alive.
    fn note_session(&self, operation: &Operation, response: &OperationResponse) {
        let broker_id = match (operation, response) {
            (Operation::BrokerHeartbeat(request), OperationResponse::BrokerHeartbeat(answer))
                if answer.error_code == error_code::NONE =>
            {
                request.broker_id
            }
            (Operation::RegisterBroker(request), OperationResponse::RegisterBroker(answer))
                if answer.error_code == error_code::NONE =>
            {
                request.broker_id
            }
            _ => return,
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(broker_id, Instant::now());
    }

    /// On the active controller: unfenced brokers whose last heartbeat is older than
    /// `session_timeout`. A broker this controller has not heard from yet gets a full session
    /// from now (a new controller does not know when others last heard from it). Elsewhere:
    /// none, and the sessions are forgotten so that a later leadership starts afresh.
    pub fn expired_brokers(&self, session_timeout: Duration) -> Vec<BrokerId> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if self.leader_id() != Some(self.node_id) {
            sessions.clear();
            return Vec::new();
        }
        let now = Instant::now();
        let image = self.image();
        let mut expired = Vec::new();
        for broker in image.cluster.brokers.values().filter(|b| !b.fenced) {
            let last = *sessions.entry(broker.broker_id).or_insert(now);
            if now.duration_since(last) > session_timeout {
                expired.push(broker.broker_id);
            }
        }
        expired
    }
}

pub(crate) fn not_controller(
    forward: &openraft::error::ForwardToLeader<NodeId, BasicNode>,
) -> ProposeError {
    ProposeError::NotController {
        leader_id: forward.leader_id,
        leader_address: forward.leader_node.as_ref().map(|node| node.addr.clone()),
    }
}
