//! sluice's metadata quorum: the cluster metadata as an immutable image replayed from a Raft log.
//!
//! - [`image`]: pure data. `MetadataRecord`s, their binary encoding, and the `MetadataImage` a
//!   `MetadataDelta` builds from them. No openraft, no tokio.
pub mod image;
