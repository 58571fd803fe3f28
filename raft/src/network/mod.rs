//! Raft traffic between nodes: a listener of its own, with the client port's framing rules.

pub mod client;
pub mod frame;
pub mod server;
