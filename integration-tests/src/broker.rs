//! [`Broker`]: one `sluice` child process, its data directory and its bound address.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{sluice_bin, OUTPUT_TAIL_BYTES_MAX};

/// How long a broker may take from spawn to accepting connections (data-dir recovery
/// included) on a busy two-core CI machine.
const READY_DURATION_MAX: Duration = Duration::from_secs(30);

/// How long a SIGTERM'd broker may take to shut down cleanly.
const STOP_DURATION_MAX: Duration = Duration::from_secs(30);

/// Starts tried on restart: the old port can be taken in the window between the kill and the
/// new bind (by another test's ephemeral connection), so a failed bind is retried.
const RESTART_ATTEMPTS_MAX: u32 = 5;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A running `sluice` on a loopback port. Dropping it kills the process (SIGKILL): a test can
/// never leak a broker, even when it panics.
pub struct Broker {
    child: Option<Child>,
    /// Extra flags from [`Broker::start_with`], passed again on every restart.
    args_extra: Vec<String>,
    /// Runs the broker through another program, e.g. `ip netns exec NAME` to start it inside
    /// a network namespace ([`crate::netns::NetworkLab::exec_prefix`]); empty: run directly.
    command_prefix: Vec<String>,
    data_dir: PathBuf,
    /// Holds the bound-address file and the broker's stdout/stderr logs, kept out of the data
    /// dir so the broker sees only files it wrote itself.
    scratch_dir: TempDir,
    /// The data dir's owner when the harness created it; dropped (deleted) with the broker.
    _data_dir_owned: Option<TempDir>,
    address: SocketAddr,
    /// The HTTP listener serving /metrics, /health and /ready.
    metrics_address: SocketAddr,
}

impl Broker {
    /// A broker with default settings on `127.0.0.1:0`, in a fresh temporary data dir.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Like [`Broker::start`], with extra command-line flags (kept for restarts).
    pub fn start_with(args: &[&str]) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("tempdir");
        let path = data_dir.path().to_path_buf();
        Broker::spawn(path, Some(data_dir), &[], args)
    }

    /// Like [`Broker::start_with`], run through `command_prefix` (e.g. inside a network
    /// namespace); `args` must then name a `--listen-address` reachable from the test.
    pub fn start_with_prefix(command_prefix: &[String], args: &[&str]) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("tempdir");
        let path = data_dir.path().to_path_buf();
        Broker::spawn(path, Some(data_dir), command_prefix, args)
    }

    /// A broker that is expected to stay fenced (its advertised address fails the
    /// controller's check): returns once its client port accepts TCP connections, without
    /// waiting to be unfenced. `args` must name `--listen-address` with a fixed port.
    pub fn start_unadmitted(args: &[&str]) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("tempdir");
        let mut broker =
            Broker::unstarted(data_dir.path().to_path_buf(), Some(data_dir), &[], args);
        broker.launch_unadmitted();
        broker
    }

    /// [`Broker::start_unadmitted`] run through `command_prefix` (inside a network namespace).
    pub fn start_unadmitted_with_prefix(command_prefix: &[String], args: &[&str]) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("tempdir");
        let path = data_dir.path().to_path_buf();
        let mut broker = Broker::unstarted(path, Some(data_dir), command_prefix, args);
        broker.launch_unadmitted();
        broker
    }

    /// Replaces the extra flags used by the next (re)start.
    pub fn set_args(&mut self, args: &[&str]) {
        self.args_extra = args.iter().map(|arg| arg.to_string()).collect();
    }

    /// Kills the broker if it runs and starts it again like [`Broker::start_unadmitted`].
    pub fn restart_unadmitted(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.launch_unadmitted();
    }

    fn launch_unadmitted(&mut self) {
        assert!(self.child.is_none(), "launch while a broker is running");
        let listen_address = self
            .listen_address_extra()
            .expect("start_unadmitted needs --listen-address with a fixed port");
        let address: SocketAddr = listen_address.parse().expect("--listen-address ip:port");
        assert_ne!(address.port(), 0, "start_unadmitted needs a fixed port");
        let mut command = self.command(&listen_address);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {command:?}: {error}"));
        self.child = Some(child);
        self.address = address;
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child was just spawned");
            if let Some(status) = child.try_wait().expect("poll the broker") {
                self.child = None;
                panic!("broker exited early with {status}{}", self.logs());
            }
            if TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_ok() {
                return;
            }
            assert!(
                started.elapsed() < READY_DURATION_MAX,
                "broker not listening within {READY_DURATION_MAX:?}{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A broker over an existing data dir, which the caller owns (and the harness keeps).
    pub fn start_in(data_dir: &Path, args: &[&str]) -> Broker {
        assert!(
            data_dir.is_dir(),
            "data dir {} does not exist",
            data_dir.display()
        );
        Broker::spawn(data_dir.to_path_buf(), None, &[], args)
    }

    fn spawn(
        data_dir: PathBuf,
        owned: Option<TempDir>,
        command_prefix: &[String],
        args: &[&str],
    ) -> Broker {
        let mut broker = Broker::unstarted(data_dir, owned, command_prefix, args);
        let listen_address = broker
            .listen_address_extra()
            .unwrap_or("127.0.0.1:0".to_string());
        if let Err(failure) = broker.launch(&listen_address) {
            panic!("{failure}");
        }
        broker
    }

    fn unstarted(
        data_dir: PathBuf,
        owned: Option<TempDir>,
        command_prefix: &[String],
        args: &[&str],
    ) -> Broker {
        for arg in args {
            assert!(
                !arg.starts_with("--data-dir")
                    && !arg.starts_with("--bound-address-file")
                    && !arg.starts_with("--metrics-bound-address-file"),
                "the harness sets {arg} itself"
            );
        }
        let scratch_dir = tempfile::Builder::new()
            .prefix("sluice-broker-")
            .tempdir()
            .expect("tempdir");
        Broker {
            child: None,
            args_extra: args.iter().map(|arg| arg.to_string()).collect(),
            command_prefix: command_prefix.to_vec(),
            data_dir,
            scratch_dir,
            _data_dir_owned: owned,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// `"127.0.0.1:PORT"`, for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        assert_ne!(self.address.port(), 0, "broker is not started");
        self.address.to_string()
    }

    /// The metrics listener's address (a new port after each restart).
    pub fn metrics_address(&self) -> SocketAddr {
        assert_ne!(self.metrics_address.port(), 0, "broker is not started");
        self.metrics_address
    }

    /// `GET path` on the metrics listener: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        crate::metrics::http_get(self.metrics_address(), path)
    }

    /// The /metrics text; panics unless it answers 200.
    pub fn scrape(&self) -> String {
        let (status, body) = self.http_get("/metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        body
    }

    /// The broker process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// SIGKILL and reap: a crash, with no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: broker is not running");
        child.kill().expect("SIGKILL the broker");
        child.wait().expect("reap the broker");
    }

    /// SIGTERM, then waits for a clean exit: status 0 within [`STOP_DURATION_MAX`].
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("stop: broker is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain syscall on the pid of a child we have not reaped yet, so the pid
        // cannot have been reused by another process.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            result,
            0,
            "SIGTERM the broker: {}",
            std::io::Error::last_os_error()
        );
        let status = wait_with_deadline(&mut child, STOP_DURATION_MAX);
        match status {
            Some(status) => {
                assert!(
                    status.success(),
                    "broker exited with {status} on SIGTERM{}",
                    self.logs()
                )
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {STOP_DURATION_MAX:?} of SIGTERM{}",
                    self.logs()
                )
            }
        }
    }

    /// Starts the broker again on the same data dir, port and flags; returns once it accepts
    /// connections. Kills it first if it is still running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        assert_ne!(self.address.port(), 0, "restart before a first start");
        let listen_address = self.address.to_string();
        let mut failure = String::new();
        for _ in 0..RESTART_ATTEMPTS_MAX {
            match self.launch(&listen_address) {
                Ok(()) => return,
                Err(error) => failure = error,
            }
        }
        panic!("restart failed {RESTART_ATTEMPTS_MAX} times; last: {failure}");
    }

    /// The last lines the broker wrote to stderr (its log), for failure messages.
    /// The end of the broker's log, without colours and without the Raft layer's repeated
    /// "peer unreachable" lines, which would crowd out everything else after a network cut.
    pub fn stderr_tail(&self) -> String {
        let log = strip_colours(&self.stderr_all());
        let kept: Vec<&str> = log
            .lines()
            .filter(|line| !is_raft_peer_noise(line))
            .collect();
        let mut tail = String::new();
        for line in kept.iter().rev() {
            if tail.len() + line.len() + 1 > OUTPUT_TAIL_BYTES_MAX {
                break;
            }
            tail.insert_str(0, &format!("{line}\n"));
        }
        tail
    }

    /// The broker's whole log (stderr) so far, for tests that search it.
    pub fn stderr_all(&self) -> String {
        std::fs::read_to_string(self.scratch_dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// With `SLUICE_TEST_KEEP_LOGS=<dir>`, a failing test's broker logs are copied there whole
    /// (the failure message shows only their tails).
    fn keep_log(&self) {
        let Some(dir) = std::env::var_os("SLUICE_TEST_KEEP_LOGS") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let name = self.address.to_string().replace([':', '.'], "_");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(
            self.scratch_dir.path().join("stderr.log"),
            dir.join(format!("{name}-{}.log", std::process::id())),
        );
    }

    fn logs(&self) -> String {
        format!("\n--- broker stderr (tail) ---\n{}", self.stderr_tail())
    }

    fn bound_address_file(&self) -> PathBuf {
        self.scratch_dir.path().join("bound-address")
    }

    fn metrics_bound_address_file(&self) -> PathBuf {
        self.scratch_dir.path().join("metrics-bound-address")
    }

    fn listen_address_extra(&self) -> Option<String> {
        let position = self
            .args_extra
            .iter()
            .position(|arg| arg == "--listen-address")?;
        self.args_extra.get(position + 1).cloned()
    }

    /// Spawns the process and waits until it is ready. `Err` when it exits before that (e.g.
    /// the port is taken), so [`Broker::restart`] can retry; a hang past the deadline panics.
    fn launch(&mut self, listen_address: &str) -> Result<(), String> {
        assert!(self.child.is_none(), "launch while a broker is running");
        for file in [self.bound_address_file(), self.metrics_bound_address_file()] {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => panic!("remove {}: {error}", file.display()),
            }
        }
        let mut command = self.command(listen_address);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {command:?}: {error}"));
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("child was just spawned");
            if let Some(status) = child.try_wait().expect("poll the broker") {
                self.child = None;
                return Err(format!("broker exited early with {status}{}", self.logs()));
            }
            if let Some(address) = self.ready_address() {
                self.address = address;
                // The broker writes the metrics address before the client one.
                let metrics = std::fs::read_to_string(self.metrics_bound_address_file())
                    .expect("metrics bound address written before the bound address");
                self.metrics_address = metrics.trim().parse().expect("metrics address");
                return Ok(());
            }
            if started.elapsed() > READY_DURATION_MAX {
                panic!(
                    "broker not ready within {READY_DURATION_MAX:?}{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The bound address of listener `name` (`--listeners NAME://...`), from the
    /// `<bound-address-file>.listeners` file the broker writes beside the bound-address file.
    pub fn listener_address(&self, name: &str) -> SocketAddr {
        let path = self.scratch_dir.path().join("bound-address.listeners");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        text.lines()
            .find_map(|line| {
                let (listener, address) = line.split_once("://")?;
                (listener == name).then(|| address.parse().ok())?
            })
            .unwrap_or_else(|| panic!("no listener {name} in {text:?}"))
    }

    /// The bound address once the broker has written it and accepts a TCP connection on it.
    fn ready_address(&self) -> Option<SocketAddr> {
        let text = std::fs::read_to_string(self.bound_address_file()).ok()?;
        let address: SocketAddr = text.trim().parse().ok()?;
        TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).ok()?;
        Some(address)
    }

    fn command(&self, listen_address: &str) -> Command {
        let open_log = |name: &str| {
            let path = self.scratch_dir.path().join(name);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            file.unwrap_or_else(|error| panic!("open {}: {error}", path.display()))
        };
        let mut command = match self.command_prefix.split_first() {
            Some((program, prefix_args)) => {
                let mut command = Command::new(program);
                command.args(prefix_args).arg(sluice_bin());
                command
            }
            None => Command::new(sluice_bin()),
        };
        // Only flags configure the broker: SLUICE_* variables of the test environment (e.g.
        // SLUICE_BIN) must not leak into it as settings.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(name);
            }
        }
        command
            .arg("--listen-address")
            .arg(listen_address)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--bound-address-file")
            .arg(self.bound_address_file())
            .arg("--metrics-bound-address-file")
            .arg(self.metrics_bound_address_file())
            .args(self.raft_listen_default())
            .args(self.metrics_listen_default())
            .args(self.args_extra_without_listen_address())
            .stdin(Stdio::null())
            .stdout(open_log("stdout.log"))
            .stderr(open_log("stderr.log"));
        command
    }

    /// A single-node broker's Raft listener on a free port, so that brokers of parallel
    /// tests never compete for the default 9093 (a voter alone never dials itself, so its
    /// address may change between restarts).
    fn raft_listen_default(&self) -> Vec<&str> {
        if self
            .args_extra
            .iter()
            .any(|arg| arg == "--raft-listen-address")
        {
            Vec::new()
        } else {
            vec!["--raft-listen-address", "127.0.0.1:0"]
        }
    }

    /// The metrics listener on a free port, unless the test names one.
    fn metrics_listen_default(&self) -> Vec<&str> {
        if self
            .args_extra
            .iter()
            .any(|arg| arg == "--metrics-listen-address")
        {
            Vec::new()
        } else {
            vec!["--metrics-listen-address", "127.0.0.1:0"]
        }
    }

    fn args_extra_without_listen_address(&self) -> Vec<&str> {
        let mut args = Vec::with_capacity(self.args_extra.len());
        let mut skip_next = false;
        for arg in &self.args_extra {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            if arg == "--listen-address" {
                skip_next = true;
                continue;
            }
            args.push(arg.as_str());
        }
        args
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("broker {} {}", self.address, self.logs());
            self.keep_log();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_raft_peer_noise(line: &str) -> bool {
    (line.contains("openraft::replication") && line.contains("RPCError"))
        || line.contains("while requesting vote")
}

/// Removes the ANSI colour sequences (`ESC [ ... m`) tracing writes.
fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll the broker") {
            return Some(status);
        }
        if started.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
