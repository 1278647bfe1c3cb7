//! The real `spillway` binary, run as a child process.
//!
//! Crash and restart behaviour (SIGKILL after a reply, WAL replay, SIGTERM
//! draining) can only be tested on a real process, and the binary is what
//! users run, so integration tests go through it rather than an in-process
//! server. Each instance gets its own directory as its working directory,
//! with the SQLite file and the WAL inside unless a test points them
//! elsewhere, and its output in `spillway.log` there.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::ports;
use super::process;
use super::resp::{self, RawConn};

/// Long enough for a start that replays a large WAL on a loaded 2-core machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Spillway {
    dir: TempDir,
    port: u16,
    /// Whether the test chose the listen address (then a port clash is its problem).
    port_fixed: bool,
    env: Vec<(String, String)>,
    args: Vec<String>,
    child: Option<Child>,
    /// Whether a failure message already showed the log.
    reported: Cell<bool>,
}

impl Spillway {
    /// Starts the binary with built-in defaults plus `env`
    /// (`SPILLWAY__SECTION__KEY` overrides). Unless `env` says otherwise it
    /// listens on a free port, keeps SQLite at `<dir>/spillway.db` and the
    /// WAL in `<dir>/wal`.
    pub fn start(env: &[(&str, &str)]) -> Spillway {
        Spillway::launch_new(None, env)
    }

    /// As [`Spillway::start`], with `config` written to `<dir>/spillway.toml`
    /// and passed as `--config`; `env` still overrides it.
    pub fn start_with_config(config: &str, env: &[(&str, &str)]) -> Spillway {
        Spillway::launch_new(Some(config), env)
    }

    fn launch_new(config: Option<&str>, env: &[(&str, &str)]) -> Spillway {
        let dir = tempfile::Builder::new()
            .prefix("spillway-test-")
            .tempdir()
            .expect("cannot create a temporary directory for spillway");
        let mut args = Vec::new();
        if let Some(config) = config {
            let path = dir.path().join("spillway.toml");
            std::fs::write(&path, config)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            args = vec!["--config".to_string(), path.display().to_string()];
        }
        let listen = env.iter().find(|(k, _)| *k == "SPILLWAY__SERVER__LISTEN");
        let port_fixed = listen.is_some();
        let port = match listen {
            Some((_, addr)) => addr
                .parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("SPILLWAY__SERVER__LISTEN={addr}: {e}"))
                .port(),
            None => ports::free_port(),
        };
        let mut spillway = Spillway {
            env: default_env(dir.path(), env),
            dir,
            port,
            port_fixed,
            args,
            child: None,
            reported: Cell::new(false),
        };
        for attempt in 1..=5 {
            match spillway.launch() {
                Ok(child) => {
                    spillway.child = Some(child);
                    return spillway;
                }
                Err(Launch::PortInUse) if !spillway.port_fixed && attempt < 5 => {
                    spillway.port = ports::free_port();
                }
                Err(Launch::PortInUse) => spillway.fail("its listen port was in use"),
                Err(Launch::Failed(why)) => spillway.fail(&why),
            }
        }
        unreachable!("the last attempt either returns or fails")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The instance's working directory (SQLite file, WAL, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("spillway.log")
    }

    /// Everything the process (and earlier runs of it) wrote.
    pub fn log(&self) -> String {
        process::read_log_from(&self.log_path(), 0)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("spillway URL")
    }

    /// A synchronous client connection with a generous reply timeout.
    pub fn conn(&self) -> redis::Connection {
        let conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| self.fail(&format!("cannot connect: {e}")));
        conn.set_read_timeout(Some(resp::REPLY_TIMEOUT))
            .expect("set read timeout");
        conn
    }

    /// An async client connection. The client's default 500 ms reply
    /// timeout is raised: a busy test machine is not a failure.
    pub async fn async_conn(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(resp::REPLY_TIMEOUT));
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| self.fail(&format!("cannot connect: {e}")))
    }

    /// A raw connection for byte-level checks.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.addr())
    }

    /// SIGKILL: no shutdown path runs, as in a crash.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// SIGTERM: asks for the graceful shutdown; see [`Spillway::wait_exit`].
    pub fn sigterm(&mut self) {
        match &mut self.child {
            Some(child) => process::signal(child, Signal::SIGTERM),
            None => panic!("sigterm: spillway is not running"),
        }
    }

    /// Waits for the process to exit and returns its status; fails the test
    /// with the log if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let Some(mut child) = self.child.take() else {
            panic!("wait_exit: spillway is not running");
        };
        match process::wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                process::kill_and_reap(&mut child);
                self.fail(&format!(
                    "still running {timeout:?} after being asked to exit"
                ))
            }
        }
    }

    /// Whether the process is still running (it may have exited on its own).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(process::is_running)
    }

    /// Starts the binary again with the same directory, port, config and
    /// environment. A process still running is SIGKILLed first, so this is
    /// a crash restart; call `sigterm` and `wait_exit` first for a clean one.
    pub fn restart(&mut self) {
        self.sigkill();
        append_marker(&self.log_path());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The old listener's port can linger for a moment.
                Err(Launch::PortInUse) if Instant::now() < deadline => {
                    super::pause(Duration::from_millis(50))
                }
                Err(Launch::PortInUse) => self.fail("its port stayed in use after a restart"),
                Err(Launch::Failed(why)) => self.fail(&why),
            }
        }
    }

    /// Fails the test with `what`, the log's path and its last lines.
    pub fn fail(&self, what: &str) -> ! {
        self.reported.set(true);
        panic!(
            "spillway on port {}: {what}\nlog {} (last 60 lines):\n{}",
            self.port,
            self.log_path().display(),
            process::tail(&self.log_path(), 60)
        )
    }

    /// Starts the binary again, as [`Spillway::restart`] does, for a test
    /// that expects it to refuse to start (a corrupt WAL, say): returns its
    /// exit status and what this run logged. Fails the test if it answers
    /// PING instead, or is still running after [`START_TIMEOUT`].
    pub fn restart_expecting_failure(&mut self) -> (ExitStatus, String) {
        self.sigkill();
        append_marker(&self.log_path());
        let log = self.log_path();
        let offset = process::log_len(&log);
        let mut child = process::spawn_owned(self.command(), Signal::SIGKILL, None)
            .unwrap_or_else(|e| self.fail(&format!("cannot run the spillway binary: {e}")));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, process::read_log_from(&log, offset));
            }
            if is_serving(self.port) {
                process::kill_and_reap(&mut child);
                self.fail("answered PING although it was expected to refuse to start");
            }
            if Instant::now() >= deadline {
                process::kill_and_reap(&mut child);
                self.fail(&format!(
                    "neither refused to start nor answered PING within {START_TIMEOUT:?}"
                ));
            }
            super::pause(Duration::from_millis(10));
        }
    }

    /// The command that runs the binary with this instance's directory,
    /// arguments and environment, its output appended to the log.
    fn command(&self) -> Command {
        let (out, err) = process::log_file(&self.log_path());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spillway"));
        for (key, _) in std::env::vars_os() {
            // An operator's own overrides must not leak into a test.
            if key.to_string_lossy().starts_with("SPILLWAY__") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SPILLWAY__SERVER__LISTEN", self.addr().to_string())
            .current_dir(self.dir.path())
            .stdout(out)
            .stderr(err);
        cmd
    }

    fn launch(&self) -> Result<Child, Launch> {
        let log = self.log_path();
        let offset = process::log_len(&log);
        let mut child = process::spawn_owned(self.command(), Signal::SIGKILL, None)
            .map_err(|e| Launch::Failed(format!("cannot run the spillway binary: {e}")))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if is_serving(self.port) {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = process::read_log_from(&log, offset);
                if is_addr_in_use(&output) {
                    return Err(Launch::PortInUse);
                }
                return Err(Launch::Failed(format!(
                    "exited with {status} before answering PING"
                )));
            }
            if Instant::now() >= deadline {
                process::kill_and_reap(&mut child);
                return Err(Launch::Failed(format!(
                    "did not answer PING within {START_TIMEOUT:?}"
                )));
            }
            super::pause(Duration::from_millis(10));
        }
    }
}

impl Drop for Spillway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::signal(&mut child, Signal::SIGKILL);
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            return;
        }
        if !self.reported.get() {
            eprintln!(
                "spillway on port {}: log {} (last 60 lines):\n{}",
                self.port,
                self.log_path().display(),
                process::tail(&self.log_path(), 60)
            );
        }
        if std::env::var_os("SPILLWAY_TEST_KEEP").is_some() {
            let Ok(placeholder) = tempfile::tempdir() else {
                return;
            };
            let kept = std::mem::replace(&mut self.dir, placeholder);
            eprintln!("kept {}", kept.keep().display());
        }
    }
}

enum Launch {
    PortInUse,
    Failed(String),
}

/// The test's environment over the defaults that keep an instance inside its directory.
fn default_env(dir: &Path, env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| *k != "SPILLWAY__SERVER__LISTEN")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let defaults = [
        (
            "SPILLWAY__DATABASE__URL",
            format!("sqlite://{}/spillway.db?mode=rwc", dir.display()),
        ),
        (
            "SPILLWAY__WRITE_BEHIND__WAL_DIR",
            dir.join("wal").display().to_string(),
        ),
    ];
    for (key, value) in defaults {
        if !all.iter().any(|(k, _)| k == key) {
            all.push((key.to_string(), value));
        }
    }
    all
}

/// Whether a spillway on `port` answers PING (a `-LOADING` reply is not serving yet).
fn is_serving(port: u16) -> bool {
    resp::probe(port, b"*1\r\n$4\r\nPING\r\n", Duration::from_secs(1))
        .is_ok_and(|reply| !reply.starts_with(b"-LOADING"))
}

fn is_addr_in_use(log: &str) -> bool {
    let log = log.to_ascii_lowercase();
    log.contains("address already in use") || log.contains("addrinuse")
}

fn append_marker(log: &Path) {
    use std::io::Write;
    let (mut out, _) = process::log_file(log);
    let _ = writeln!(out, "----- restarted by the test -----");
}
