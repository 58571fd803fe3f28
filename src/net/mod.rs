//! The client listener and per-connection request loop. Only this module opens client
//! sockets (the HTTP listener for metrics is `metrics::http`), and, in `peer_transport`,
//! the connections nodes dial each other with.

pub mod connection;
pub mod limits;
pub mod listeners;
pub mod peer_transport;
pub mod sasl;
pub mod server;
