//! openraft's type configuration: what a log entry carries and what applying one answers.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::controller::RECORDS_PER_OPERATION_MAX;
use crate::image::{decode_batch, encode_batch, MetadataRecord};

/// A Raft node id. Kafka's broker ids are `i32`; a node's Raft id is the same number.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// sluice's openraft types: entries carry a batch of metadata records.
    pub TypeConfig:
        D = RecordBatch,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

/// The payload of one Raft entry: the records of one controller operation, applied all or
/// nothing. Serialized as the image codec's batch bytes, so the log and the network carry the
/// same versioned, bounded encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordBatch(pub Vec<MetadataRecord>);

impl fmt::Display for RecordBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordBatch({} records)", self.0.len())
    }
}

impl Serialize for RecordBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&encode_batch(&self.0))
    }
}

impl<'de> Deserialize<'de> for RecordBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(BatchVisitor)
    }
}

struct BatchVisitor;

impl serde::de::Visitor<'_> for BatchVisitor {
    type Value = RecordBatch;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an encoded metadata record batch")
    }

    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<RecordBatch, E> {
        decode_batch(bytes, RECORDS_PER_OPERATION_MAX)
            .map(RecordBatch)
            .map_err(E::custom)
    }
}

/// What applying one entry did. A batch whose records do not fit the image is rejected whole,
/// identically on every node, since replay depends only on the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    Applied,
    Rejected { reason: String },
}
