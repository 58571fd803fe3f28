//! The compatibility scenario (see `integration-tests/compat/README.md`) driven by the rdkafka
//! crate, with librdkafka built from the crate's bundled source.
//!
//! usage: `sluice-compat-rdkafka BOOTSTRAP PREFIX`. Prints one JSON line per feature:
//! `{"client": "rdkafka", "feature": ..., "ok": true|false, "detail": ...}` and exits 0 once
//! every feature ran (failed ones included); the Rust test in `compat_matrix.rs` asserts each.

mod scenario;

use std::time::Duration;

use anyhow::Context as _;

/// How long one feature may take before it counts as failed.
const FEATURE_DURATION_MAX: Duration = Duration::from_secs(60);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().context("usage: BOOTSTRAP PREFIX")?;
    let prefix = args.next().context("usage: BOOTSTRAP PREFIX")?;
    let scenario = scenario::Scenario::new(bootstrap, prefix)?;
    for feature in scenario::FEATURES {
        let outcome = tokio::time::timeout(FEATURE_DURATION_MAX, scenario.run(feature)).await;
        let outcome = outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
        let (ok, detail) = match outcome {
            Ok(detail) => (true, detail),
            Err(error) => (false, format!("{error:#}")),
        };
        let line = serde_json::json!({
            "client": "rdkafka", "feature": feature, "ok": ok, "detail": detail,
        });
        println!("{line}");
    }
    Ok(())
}
