//! Harness for tests that drive real `sluice` processes with real Kafka clients.
//!
//! A [`Broker`] is a child process on a loopback port with its own data directory; it is
//! always killed when dropped. The clients are external programs (kcat, Python scripts under
//! `integration-tests/python/`, the Java program under `integration-tests/java/`), installed
//! by `.ci/run`; Apache Kafka's own CLI tools run from the same Maven jars ([`kafka_cli`]).
//! The compatibility matrix's client programs (`integration-tests/compat/`) are found by
//! [`compat`], which also records every client test's result for `COMPATIBILITY.md`.
//! A missing client is a loud failure, never a silent skip: a test that skips
//! itself on CI proves nothing.
//!
//! Nothing here sleeps blindly: every wait polls a condition against a deadline.

mod broker;
pub mod certs;
pub mod cluster;
pub mod compat;
pub mod java_stream;
pub mod kafka_cli;
pub mod metrics;
pub mod netns;
mod process;
pub mod records;
pub mod tcp_proxy;

pub use broker::Broker;
pub use process::{
    kcat, python, run_command, run_command_output, run_java, run_python, sluice_bin, wait_until,
    ProgramOutput,
};

/// A topic name that no other test in this process picked (tests share nothing but the
/// machine, yet unique names keep a broker's logs readable when a test fails).
pub fn topic_name(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{test}-{}-{sequence}", std::process::id())
}
pub mod raw_client;
pub mod transactions;
pub use process::java_command;
