//! Raft traffic between nodes: a listener of its own, with the client port's framing rules,
//! optionally under mutual TLS (`transport`).

pub mod client;
pub mod frame;
pub mod server;
pub mod transport;
