//! The client compatibility matrix: the features every client is checked for, the results
//! file tests append to, and where the compat client programs (`integration-tests/compat/`)
//! live.
//!
//! A result is one JSON line `{"client", "feature", "ok", "detail", "at_unix_s"}` appended to
//! [`results_path`]; `integration-tests/compat/generate_matrix.py` turns the file into
//! `COMPATIBILITY.md`. `ok` is `null` for a feature the client does not have.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::process::{cargo_build, manifest_dir, python, target_dir};

/// Every feature of the scenario, in the order the programs run them.
pub const FEATURES: [&str; 14] = [
    "admin_create_topics",
    "admin_describe_topics",
    "admin_describe_configs",
    "produce_none",
    "produce_gzip",
    "produce_snappy",
    "produce_lz4",
    "produce_zstd",
    "headers_timestamps",
    "consume_assign",
    "idempotent_produce",
    "consume_group",
    "commit_fetch_offsets",
    "admin_delete_topics",
];

/// Operator features, checked for Kafka's CLI tools against a cluster (clients' scenario
/// programs do not report them).
pub const OPERATOR_FEATURES: [&str; 2] = ["reassign_partitions", "elect_leaders"];

/// Where results go: `$SLUICE_COMPAT_RESULTS`, else `<target>/compat-results.jsonl`.
pub fn results_path() -> PathBuf {
    match std::env::var_os("SLUICE_COMPAT_RESULTS") {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("compat-results.jsonl"),
    }
}

/// Appends one result line. `ok: None` marks a feature the client does not have.
pub fn record(client: &str, feature: &str, ok: Option<bool>, detail: &str) {
    assert!(
        FEATURES.contains(&feature) || OPERATOR_FEATURES.contains(&feature),
        "{feature} is not a matrix feature"
    );
    let at_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let line = serde_json::json!({
        "client": client, "feature": feature, "ok": ok, "detail": detail, "at_unix_s": at_unix_s,
    });
    let path = results_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|error| panic!("mkdir {dir:?}: {error}"));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    // One write per line: appends from parallel tests never interleave within a line.
    file.write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|error| panic!("append to {}: {error}", path.display()));
}

/// Records, when dropped, that the current test covered `features` of `client`: ok when the
/// test passed, failed when it is panicking. Lets an existing client test feed the matrix.
pub struct Covers {
    client: &'static str,
    features: &'static [&'static str],
    test: &'static str,
}

/// See [`Covers`]: `let _matrix = covers("kcat", &["produce_none"], "kcat_metadata_...");`.
pub fn covers(
    client: &'static str,
    features: &'static [&'static str],
    test: &'static str,
) -> Covers {
    Covers {
        client,
        features,
        test,
    }
}

impl Drop for Covers {
    fn drop(&mut self) {
        let ok = !std::thread::panicking();
        for feature in self.features {
            record(
                self.client,
                feature,
                Some(ok),
                &format!("test {}", self.test),
            );
        }
    }
}

fn compat_dir() -> PathBuf {
    manifest_dir().join("compat")
}

/// `python aiokafka_scenario.py` from the client venv.
pub fn aiokafka_command() -> Command {
    let mut command = Command::new(python());
    command
        .arg(compat_dir().join("python").join("aiokafka_scenario.py"))
        .env("PYTHONUNBUFFERED", "1");
    command
}

/// The Go scenario program (franz-go and sarama), built with `go build` on first use in this
/// test process (a no-op when `.ci/run` already built it and nothing changed).
pub fn go_command(client: &str) -> Command {
    use std::sync::OnceLock;
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let bin = target_dir().join("compat-go").join("compat");
        let status = Command::new(go())
            .args(["build", "-mod=readonly", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(compat_dir().join("go"))
            .status()
            .unwrap_or_else(|error| panic!("spawn `go build`: {error} (is Go installed?)"));
        assert!(
            status.success(),
            "`go build` of integration-tests/compat/go failed ({status}); run .ci/run, or \
             `go mod download` there"
        );
        bin
    });
    let mut command = Command::new(bin);
    command.arg(client);
    command
}

fn go() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path)
        .map(|dir| dir.join("go"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/local/go/bin/go"))
}

/// `node run.js <client>` in `compat/node`, whose `node_modules` `.ci/run` installs.
pub fn node_command(client: &str) -> Command {
    let dir = compat_dir().join("node");
    assert!(
        dir.join("node_modules").join("kafkajs").is_dir()
            && dir
                .join("node_modules")
                .join("@confluentinc")
                .join("kafka-javascript")
                .is_dir(),
        "no node_modules in {} (run .ci/run, or there `CKJS_LINKING=dynamic npm ci`)",
        dir.display()
    );
    let mut command = Command::new("node");
    command.arg("run.js").arg(client).current_dir(dir);
    command
}

/// The rdkafka (Rust crate) scenario binary: `$SLUICE_COMPAT_RDKAFKA_BIN`, else
/// `<target>/debug/sluice-compat-rdkafka`, built when missing.
pub fn rdkafka_command() -> Command {
    let bin = match std::env::var_os("SLUICE_COMPAT_RDKAFKA_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let bin = target_dir().join("debug").join("sluice-compat-rdkafka");
            if !bin.is_file() {
                cargo_build("sluice-compat-rdkafka");
            }
            bin
        }
    };
    assert!(
        bin.is_file(),
        "no rdkafka scenario binary at {}",
        bin.display()
    );
    Command::new(bin)
}
