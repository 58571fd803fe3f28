//! sluice's metadata quorum: the cluster metadata (brokers, topics, partitions, configs,
//! producer-id blocks) as an immutable image replayed from a Raft log, on openraft 0.9
//! (`storage-v2`) with the log, vote and snapshots in redb.
//!
//! Layers, from pure to I/O:
//! - [`image`]: `MetadataRecord`s, their versioned binary encoding, and the `MetadataImage` a
//!   `MetadataDelta` builds from them. Pure data: no openraft, no tokio.
//! - [`controller`]: operations as pure functions `(&MetadataImage, request) ->
//!   ControllerResult { records, response }`, with Kafka's error codes.
//! - [`raft_types`], [`log_store`], [`state_machine`]: openraft's types, the redb log store (an
//!   entry is durable only after its fsynced commit) and the state machine that replays record
//!   batches and publishes each new `Arc<MetadataImage>`.
//! - [`network`]: the Raft listener and client (length-prefixed postcard frames, bounded).
//! - [`quorum`]: `MetadataQuorum`, the handle the broker uses: start (bootstrapping once),
//!   propose, read the image, subscribe, add learners, shut down.
//!
//! See `raft/DESIGN.md` for the record types, durability and bootstrapping rules.

pub mod controller;
pub mod database;
pub mod image;
pub mod log_store;
pub mod network;
pub mod proposer;
pub mod quorum;
pub mod raft_types;
pub mod state_machine;
pub mod store_error;
