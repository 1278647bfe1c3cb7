//! A private redis-server per test, for the cache tier.
//!
//! Each instance gets its own port and directory and persists nothing, so
//! tests can kill, restart and fill it without touching each other or any
//! Redis the machine runs for other purposes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::process::{self, find_in_path, is_executable};
use super::{ports, resp};

const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct RedisServer {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts with extra redis-server arguments, e.g. `["--maxmemory", "1mb"]`.
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("spillway-redis-")
            .tempdir()
            .expect("cannot create a temporary directory for redis-server");
        let mut server = RedisServer {
            bin: redis_server_bin(),
            dir,
            port: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        // Another process may take the port between the check and the
        // bind; a fresh port is the cure.
        for _ in 0..5 {
            server.port = ports::free_port();
            match server.launch() {
                Ok(child) => {
                    server.child = Some(child);
                    return server;
                }
                Err(Launch::PortInUse) => continue,
                Err(Launch::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("redis-server found its port in use five times running")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("redis URL")
    }

    /// A synchronous connection, for inspecting what the cache holds.
    pub fn conn(&self) -> redis::Connection {
        let conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to redis-server on {}: {e}", self.port));
        conn.set_read_timeout(Some(resp::REPLY_TIMEOUT))
            .expect("set read timeout");
        conn
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        process::read_log_from(&self.log_path(), 0)
    }

    /// SIGKILLs the server: the cache tier vanishes with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    /// SIGSTOPs the server: connections stay open and nothing answers, as
    /// with a hung or overloaded Redis.
    pub fn pause(&mut self) {
        if let Some(child) = self.child.as_mut() {
            process::signal(child, Signal::SIGSTOP);
        }
    }

    /// SIGCONTs a paused server.
    pub fn resume(&mut self) {
        if let Some(child) = self.child.as_mut() {
            process::signal(child, Signal::SIGCONT);
        }
    }

    /// Starts the server again on the same port, empty (it persists
    /// nothing). A running server is killed first.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // Clients of the old process may still hold the port briefly.
                Err(Launch::PortInUse) if Instant::now() < deadline => {
                    super::pause(Duration::from_millis(50))
                }
                Err(Launch::PortInUse) => panic!("redis-server port {} stayed in use", self.port),
                Err(Launch::Failed(why)) => panic!("{why}"),
            }
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(process::is_running)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn launch(&self) -> Result<Child, Launch> {
        let log = self.log_path();
        let offset = process::log_len(&log);
        let (out, err) = process::log_file(&log);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--databases", "1", "--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .current_dir(self.dir.path())
            .stdout(out)
            .stderr(err);
        let mut child = process::spawn_owned(cmd, Signal::SIGKILL, None)
            .map_err(|e| Launch::Failed(format!("cannot run {}: {e}", self.bin.display())))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(reply) =
                resp::probe(self.port, b"*1\r\n$4\r\nPING\r\n", Duration::from_secs(1))
                && reply == b"+PONG\r\n"
            {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = process::read_log_from(&log, offset);
                if output.contains("Address already in use") {
                    return Err(Launch::PortInUse);
                }
                return Err(Launch::Failed(format!(
                    "redis-server on port {} exited with {status} before answering PING; log {}:\n{output}",
                    self.port,
                    log.display()
                )));
            }
            if Instant::now() >= deadline {
                process::kill_and_reap(&mut child);
                return Err(Launch::Failed(format!(
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}; log {}:\n{}",
                    self.port,
                    log.display(),
                    process::read_log_from(&log, offset)
                )));
            }
            super::pause(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Launch {
    PortInUse,
    Failed(String),
}

/// The redis-server to run: `SPILLWAY_TEST_REDIS_SERVER`, else PATH.
fn redis_server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SPILLWAY_TEST_REDIS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            is_executable(&path),
            "SPILLWAY_TEST_REDIS_SERVER={} is not an executable file",
            path.display()
        );
        return path;
    }
    find_in_path("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server not found in PATH: run scripts/test (it installs what is missing), \
             or `apt-get install redis-server`, or set SPILLWAY_TEST_REDIS_SERVER"
        )
    })
}
