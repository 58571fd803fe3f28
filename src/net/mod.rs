//! The client listener and per-connection request loop. Only this module opens client
//! sockets (the HTTP listener for metrics is `metrics::http`).

pub mod connection;
pub mod limits;
pub mod server;
