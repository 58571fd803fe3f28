//! Finding and running the external programs: the broker binary and the client programs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one client program may run before it is killed and the test fails. Generous:
/// a JVM start plus a full produce/consume round on a busy two-core CI machine.
const CLIENT_RUN_DURATION_MAX: Duration = Duration::from_secs(300);

/// The longest pause between two polls of a condition or a child process.
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(200);

/// Bytes of a failing program's output shown in a panic message.
pub(crate) const OUTPUT_TAIL_BYTES_MAX: usize = 16 * 1024;

pub(crate) fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn workspace_dir() -> &'static Path {
    let workspace = manifest_dir().parent();
    workspace.expect("integration-tests lives inside the workspace")
}

/// The `sluice` binary: `$SLUICE_BIN`, else `<target>/debug/sluice`, where `<target>` is
/// `$CARGO_TARGET_DIR` or the workspace's `target/`. Builds it once per test process when
/// missing, so `cargo test -p sluice-integration-tests` works from a clean checkout.
pub fn sluice_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SLUICE_BIN") {
            let bin = PathBuf::from(bin);
            assert!(bin.is_file(), "SLUICE_BIN={} is not a file", bin.display());
            return bin;
        }
        let bin = target_dir().join("debug").join("sluice");
        if !bin.is_file() {
            build_sluice();
        }
        assert!(
            bin.is_file(),
            "`cargo build -p sluice` did not produce {}",
            bin.display()
        );
        bin
    })
    .clone()
}

fn build_sluice() {
    cargo_build("sluice");
}

/// `cargo build -p <package>` in the workspace; panics when it fails.
pub(crate) fn cargo_build(package: &str) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", package])
        .current_dir(workspace_dir())
        .status()
        .unwrap_or_else(|error| panic!("spawn `cargo build -p {package}`: {error}"));
    assert!(
        status.success(),
        "`cargo build -p {package}` failed: {status}"
    );
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// The Python of the client venv: `$SLUICE_TEST_VENV/bin/python`, else the venv `.ci/run`
/// creates under `${SLUICE_CI_CACHE:-$HOME/.cache/sluice-ci}`.
pub fn python() -> PathBuf {
    let venv = match std::env::var_os("SLUICE_TEST_VENV") {
        Some(venv) => PathBuf::from(venv),
        None => ci_cache_dir().join("venv"),
    };
    let python = venv.join("bin").join("python");
    assert!(
        python.is_file(),
        "no Python client venv at {} (set SLUICE_TEST_VENV, or run .ci/run once to install \
         confluent-kafka and kafka-python from integration-tests/python/requirements.txt)",
        venv.display()
    );
    python
}

pub(crate) fn ci_cache_dir() -> PathBuf {
    if let Some(cache) = std::env::var_os("SLUICE_CI_CACHE") {
        return PathBuf::from(cache);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache").join("sluice-ci")
}

/// `kcat` from `PATH`.
pub fn kcat() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("kcat"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("kcat is not on PATH (run .ci/run, or `apt-get install -y kcat`)")
    })
}

/// Runs `integration-tests/python/<script>` with the venv's Python; asserts it exits 0 and
/// returns its stdout. On failure the panic shows both stdout and stderr.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let script_path = manifest_dir().join("python").join(script);
    assert!(script_path.is_file(), "no script {}", script_path.display());
    let mut command = Command::new(python());
    command
        .arg(&script_path)
        .args(args)
        .env("PYTHONUNBUFFERED", "1");
    run_command(command, b"", script)
}

/// Runs the Java client program `main_class` (`sluice.it.` is prepended when the name has no
/// package); asserts it exits 0 and returns its stdout.
pub fn run_java(main_class: &str, args: &[&str]) -> String {
    run_command(java_command(main_class, args), b"", main_class)
}

fn java_classpath() -> String {
    if let Some(classpath) = std::env::var_os("SLUICE_JAVA_CLASSPATH") {
        return classpath.to_string_lossy().into_owned();
    }
    let target = manifest_dir().join("java").join("target");
    let classes = target.join("classes");
    assert!(
        classes.join("sluice").is_dir(),
        "the Java client program is not built: no {} (run .ci/run, or in integration-tests/java \
         `mvn -q -B package dependency:copy-dependencies`)",
        classes.display()
    );
    // `dir/*` is the JVM's own wildcard for "every jar in dir".
    format!(
        "{}:{}/*",
        classes.display(),
        target.join("dependency").display()
    )
}

/// What a finished (or killed) client program left behind.
pub struct ProgramOutput {
    /// `None` when it ran longer than [`CLIENT_RUN_DURATION_MAX`] and was killed.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    /// The last [`OUTPUT_TAIL_BYTES_MAX`] bytes of stderr.
    pub stderr_tail: String,
    pub elapsed: Duration,
}

impl ProgramOutput {
    /// A failure message naming `what`, with both outputs.
    pub fn failure(&self, what: &str) -> String {
        let how = match self.status {
            Some(status) => format!("failed ({status})"),
            None => format!("ran longer than {CLIENT_RUN_DURATION_MAX:?} and was killed"),
        };
        format!(
            "{what} {how} after {:?}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.elapsed,
            tail(&self.stdout),
            self.stderr_tail,
        )
    }
}

/// Runs `command` with `stdin` as its input and stdout and stderr captured to files (pipes
/// could fill up and stall a chatty client); kills it after [`CLIENT_RUN_DURATION_MAX`];
/// asserts exit status 0 and returns stdout. `what` names the program in failure messages.
pub fn run_command(command: Command, stdin: &[u8], what: &str) -> String {
    let output = run_command_output(command, stdin, what);
    match output.status {
        Some(status) if status.success() => output.stdout,
        _ => panic!("{}", output.failure(what)),
    }
}

/// Like [`run_command`], without judging the exit status: for callers that must record what
/// a program printed even when it then failed.
pub fn run_command_output(mut command: Command, stdin: &[u8], what: &str) -> ProgramOutput {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let stdin_path = scratch.path().join("stdin");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    std::fs::write(&stdin_path, stdin).expect("write stdin file");
    let stdin = std::fs::File::open(&stdin_path).expect("open stdin file");
    let stdout = std::fs::File::create(&stdout_path).expect("create stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
    command.stdin(stdin).stdout(stdout).stderr(stderr);
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {what} ({command:?}): {error}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break Some(status);
        }
        if started.elapsed() > CLIENT_RUN_DURATION_MAX {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL_INTERVAL_MAX);
    };
    ProgramOutput {
        status,
        stdout: std::fs::read_to_string(&stdout_path).expect("read stdout"),
        stderr_tail: read_tail(&stderr_path),
        elapsed: started.elapsed(),
    }
}

/// The last [`OUTPUT_TAIL_BYTES_MAX`] bytes of a file, lossily decoded; empty when unreadable.
pub(crate) fn read_tail(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    let start = bytes.len().saturating_sub(OUTPUT_TAIL_BYTES_MAX);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(OUTPUT_TAIL_BYTES_MAX);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Polls `f` until it returns `Some`, backing off up to [`POLL_INTERVAL_MAX`] between tries;
/// panics naming `what` when `deadline` passes first.
pub fn wait_until<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    let mut interval = Duration::from_millis(10);
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            started.elapsed() <= deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(interval);
        interval = (interval * 2).min(POLL_INTERVAL_MAX);
    }
}

/// A `java` command running the Java client program `main_class` (as [`run_java`] names it)
/// with `args`, for tests that must watch or interrupt it while it runs; the caller spawns
/// it and owns the child.
pub fn java_command(main_class: &str, args: &[&str]) -> Command {
    let main_class = if main_class.contains('.') {
        main_class.to_string()
    } else {
        format!("sluice.it.{main_class}")
    };
    let java = match std::env::var_os("JAVA_HOME") {
        Some(home) => PathBuf::from(home).join("bin").join("java"),
        None => PathBuf::from("java"),
    };
    let mut command = Command::new(java);
    command
        .arg("-cp")
        .arg(java_classpath())
        // The client's INFO log is pages of config dumps; warnings and errors are what a
        // failure message needs.
        .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
        .arg(&main_class)
        .args(args);
    command
}
