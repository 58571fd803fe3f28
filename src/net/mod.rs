//! The client listener and per-connection request loop. Only this module opens sockets.

pub mod connection;
pub mod listeners;
pub mod sasl;
pub mod server;
