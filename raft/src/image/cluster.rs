//! The cluster sub-image: every registered broker, its listeners, rack and fencing state.

use std::collections::BTreeMap;

use uuid::Uuid;

/// A broker id, as Kafka numbers them (`node.id`).
pub type BrokerId = i32;

/// One advertised listener: where clients (or other brokers) reach a broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A broker as the metadata log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    /// Fresh for every process start: tells a restarted broker from a stale one.
    pub incarnation_id: Uuid,
    pub listeners: Vec<Listener>,
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is out of every ISR it can leave.
    pub fenced: bool,
    /// Whether another node reached this incarnation at its advertised address.
    pub admission: Admission,
}

/// The active controller's verdict on a broker's advertised address. A broker is unfenced
/// only once admitted: an address clients cannot reach must never be handed to them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Admission {
    /// Registered; not checked yet.
    #[default]
    Unchecked,
    /// Resolved, connected, and answered ApiVersions as itself.
    Admitted,
    /// The check failed; why, in words for operators.
    Refused(String),
}

/// Every registered broker, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterImage {
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
}

impl ClusterImage {
    pub const EMPTY: ClusterImage = ClusterImage {
        brokers: BTreeMap::new(),
    };

    pub fn broker(&self, broker_id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    /// Registered and not fenced: may lead partitions and receive new replicas.
    pub fn is_active(&self, broker_id: BrokerId) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(|broker| !broker.fenced)
    }

    /// Ids of the active brokers, ascending.
    pub fn active_broker_ids(&self) -> Vec<BrokerId> {
        self.brokers
            .values()
            .filter(|broker| !broker.fenced)
            .map(|broker| broker.broker_id)
            .collect()
    }
}
