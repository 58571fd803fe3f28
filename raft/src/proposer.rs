//! `Proposer`: runs controller operations on the active controller, forwards them to it from
//! any other node (Kafka's KIP-590 forwarding, over the Raft listener), and keeps the broker
//! sessions the active controller fences on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;
use uuid::Uuid;

use crate::controller::{self, error_code, ControllerConfig, Operation, OperationResponse};
use crate::image::{encode_batch, BrokerId, MetadataImage};
use crate::network::frame::{
    decode, read_frame, write_message, FrameError, RpcEnvelope, RpcRequest, RpcResponse,
};
use crate::network::transport::RaftTransport;
use crate::quorum::{ProposeError, ENTRY_BYTES_MAX};
use crate::raft_types::{ApplyOutcome, NodeId, Raft, RecordBatch};

/// How long [`Proposer::submit`] keeps retrying while there is no leader or it moves.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause between attempts while no leader is known.
const SUBMIT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// One forwarded operation: connect, send, wait for the commit, read the answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between rounds of join requests to the voters.
const JOIN_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// A failed join is logged once per this many attempts.
const JOIN_LOG_EVERY: u64 = 20;
/// A Raft listener address is `host:port`; a host name is at most 253 bytes.
const LEARNER_ADDRESS_BYTES_MAX: usize = 300;

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
    /// Opens connections to other nodes' Raft listeners (forwarding, joining).
    transport: RaftTransport,
    /// Proposals run one at a time so each is computed against the image its records land on.
    propose_lock: Mutex<()>,
    /// The active controller's view of broker liveness: last heartbeat per broker.
    sessions: std::sync::Mutex<HashMap<BrokerId, Instant>>,
    /// The partition loads each broker reported in its last heartbeat (balancer weights).
    loads: std::sync::Mutex<HashMap<BrokerId, Vec<controller::PartitionLoad>>>,
}

impl Proposer {
    pub(crate) fn new(
        node_id: NodeId,
        raft: Raft,
        images: watch::Receiver<Arc<MetadataImage>>,
        controller: ControllerConfig,
        cluster_fingerprint: u64,
        transport: RaftTransport,
    ) -> Proposer {
        Proposer {
            node_id,
            raft,
            images,
            controller,
            cluster_fingerprint,
            transport,
            propose_lock: Mutex::new(()),
            sessions: std::sync::Mutex::new(HashMap::new()),
            loads: std::sync::Mutex::new(HashMap::new()),
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
        match self.call_once(leader_id, address, request).await? {
            RpcResponse::Forward(result) => result,
            _ => Err(ProposeError::Unreachable("response of another kind".into())),
        }
    }

    /// One request to one node on a fresh connection, within [`FORWARD_TIMEOUT`].
    async fn call_once(
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
            let mut stream = self.transport.connect(address).await?;
            write_message(&mut stream, &envelope).await?;
            let payload = read_frame(&mut stream).await?;
            decode::<RpcResponse>(&payload)
        };
        let unreachable = |error: FrameError| ProposeError::Unreachable(error.to_string());
        match tokio::time::timeout(FORWARD_TIMEOUT, exchange).await {
            Err(_) => Err(ProposeError::Unreachable("request timed out".into())),
            Ok(Err(error)) => Err(unreachable(error)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// On the active controller: adds `node_id` as a learner at `address` (a re-add after a
    /// restart updates the address). Voters cannot be demoted this way.
    pub(crate) async fn add_learner_local(
        &self,
        node_id: NodeId,
        address: String,
    ) -> Result<(), ProposeError> {
        if address.len() > LEARNER_ADDRESS_BYTES_MAX {
            return Err(ProposeError::Rejected("learner address too long".into()));
        }
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
                "node {node_id} is a voter; it cannot join as a learner"
            )));
        }
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

    /// Whether `node_id` votes in the current membership.
    pub fn is_voter(&self, node_id: NodeId) -> bool {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|id| id == node_id)
    }

    /// On the active controller: removes `node_id` from the voters (and the learners).
    /// The last voter cannot be removed.
    pub(crate) async fn remove_voter_local(&self, node_id: NodeId) -> Result<(), ProposeError> {
        let voters: BTreeSet<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if !voters.contains(&node_id) {
            return Ok(());
        }
        if voters.len() == 1 {
            return Err(ProposeError::Rejected(
                "the last voter cannot be removed".into(),
            ));
        }
        let change = openraft::ChangeMembers::RemoveVoters(BTreeSet::from([node_id]));
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(not_controller(&forward))
            }
            Err(error) => Err(ProposeError::Stopped(error.to_string())),
        }
    }

    /// Removes `node_id` from the voters, on the active controller wherever it is.
    pub async fn remove_voter(&self, node_id: NodeId) -> Result<(), ProposeError> {
        match self.remove_voter_local(node_id).await {
            Err(ProposeError::NotController {
                leader_id: Some(leader_id),
                leader_address: Some(address),
            }) if leader_id != self.node_id => {
                let request = RpcRequest::RemoveVoter { node_id };
                match self.call_once(leader_id, &address, request).await? {
                    RpcResponse::RemoveVoter(result) => result,
                    _ => Err(ProposeError::Unreachable("response of another kind".into())),
                }
            }
            other => other,
        }
    }

    /// A node that is not a voter: asks the voters (following their pointer to the active
    /// controller) until it is added as a learner at `address`. Retries without end: the
    /// node is useless until it follows the metadata log.
    pub(crate) async fn join_as_learner(&self, voters: &BTreeMap<NodeId, String>, address: &str) {
        let mut attempts: u64 = 0;
        loop {
            for (voter_id, voter_address) in voters {
                let request = || RpcRequest::Join {
                    node_id: self.node_id,
                    address: address.to_string(),
                };
                let mut answer = self.call_once(*voter_id, voter_address, request()).await;
                if let Ok(RpcResponse::Join(Err(ProposeError::NotController {
                    leader_id: Some(leader_id),
                    leader_address: Some(leader_address),
                }))) = &answer
                {
                    answer = self.call_once(*leader_id, leader_address, request()).await;
                }
                if let Ok(RpcResponse::Join(Ok(()))) = answer {
                    tracing::info!(
                        node_id = self.node_id,
                        "joined the metadata quorum as a learner"
                    );
                    return;
                }
                attempts += 1;
                if attempts % JOIN_LOG_EVERY == 1 {
                    tracing::info!(?answer, voter_id, "joining the metadata quorum; retrying");
                }
            }
            tokio::time::sleep(JOIN_RETRY_PAUSE).await;
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
        drop(sessions);
        if let Operation::BrokerHeartbeat(request) = operation {
            let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
            let mut reported = request.partition_loads.clone();
            reported.truncate(controller::PARTITION_LOADS_MAX);
            loads.insert(broker_id, reported);
        }
    }

    /// The latest reported load of every partition (from its leader's heartbeats), for the
    /// balancer on the active controller.
    pub fn partition_loads(&self) -> controller::balance::PartitionLoads {
        let loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let mut merged = controller::balance::PartitionLoads::new();
        for load in loads.values().flatten() {
            let entry = merged
                .entry((load.topic_id, load.partition_index))
                .or_insert(0);
            *entry = entry.saturating_add(load.bytes_per_sec);
        }
        merged
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
