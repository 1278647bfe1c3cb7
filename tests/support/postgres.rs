//! Private PostgreSQL clusters for the system of record.
//!
//! Two shapes, because tests need two things:
//! - [`PgDatabase::create`]: a fresh database in one cluster shared by the
//!   whole test binary. Starting a cluster costs about half a second; a
//!   database costs a tenth of that, and separate databases keep parallel
//!   tests apart.
//! - [`Postgres::start`]: a cluster of the test's own, for fault tests that
//!   stop, kill and restart the database under a running proxy.
//!
//! Clusters run with `fsync=off`: tests kill processes, never the machine,
//! and a killed server loses nothing that reached the kernel. Commits stay
//! synchronous, so what was acknowledged was written.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use super::ports;
use super::process::{self, RunAs, find_in_path, is_executable};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster of the test's own with one database, `spillway`.
pub struct Postgres {
    cluster: Cluster,
    db: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        let cluster = Cluster::init();
        let db = "spillway".to_string();
        cluster
            .psql("postgres", &format!("CREATE DATABASE {db}"))
            .unwrap_or_else(|e| panic!("cannot create database {db}: {e}"));
        Postgres { cluster, db }
    }

    /// `postgres://postgres@127.0.0.1:PORT/spillway` (trust auth, no password).
    pub fn url(&self) -> String {
        url(self.cluster.port, &self.db)
    }

    pub fn port(&self) -> u16 {
        self.cluster.port
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    /// Runs SQL with psql and returns the last statement's rows, one per
    /// line, columns separated by `|`; panics with psql's error if it fails.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql failed on port {}: {e}\nSQL: {sql}", self.port()))
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.cluster.psql(&self.db, sql)
    }

    /// Fast shutdown (SIGINT): sessions are cut off, the data stays.
    pub fn stop(&mut self) {
        self.cluster.stop();
    }

    /// SIGKILL of the postmaster: a crash; the next start runs recovery.
    pub fn kill(&mut self) {
        self.cluster.kill();
    }

    /// Starts the cluster again on the same data directory and port, so a
    /// proxy that was using it reconnects to the same address.
    pub fn start_again(&mut self) {
        self.cluster.start_again();
    }

    pub fn is_running(&mut self) -> bool {
        self.cluster.is_running()
    }

    pub fn log(&self) -> String {
        process::read_log_from(&self.cluster.log_path(), 0)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cluster.data_dir()
    }
}

/// A fresh database in the test binary's shared cluster, dropped with it.
pub struct PgDatabase {
    port: u16,
    name: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        let cluster = shared.get_or_insert_with(|| {
            // Statics are never dropped: stop the cluster when the process
            // exits normally (the parent-death signal covers the rest).
            // SAFETY: registering a plain extern "C" function has no preconditions.
            unsafe { nix::libc::atexit(stop_shared_cluster) };
            Cluster::init()
        });
        let name = format!("t_{:016x}", rand::random::<u64>());
        cluster
            .psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        PgDatabase {
            port: cluster.port,
            name,
        }
    }

    pub fn url(&self) -> String {
        url(self.port, &self.name)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// As [`Postgres::psql`].
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql failed on {}: {e}\nSQL: {sql}", self.name))
    }

    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        run_psql(self.port, &self.name, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = run_psql(self.port, "postgres", &drop_sql);
    }
}

static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);

extern "C" fn stop_shared_cluster() {
    let cluster = match SHARED.try_lock() {
        Ok(mut shared) => shared.take(),
        Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(TryLockError::WouldBlock) => None,
    };
    drop(cluster);
}

fn url(port: u16, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}

/// One initdb'd data directory and the postmaster running on it.
struct Cluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    run_as: Option<RunAs>,
    child: Option<Child>,
}

enum Launch {
    PortInUse,
    /// The previous postmaster's processes or lock have not gone yet.
    Busy(String),
    Failed(String),
}

impl Cluster {
    fn init() -> Cluster {
        let bin = pg_bin().to_path_buf();
        let run_as = process::is_root().then(postgres_account);
        let dir = tempfile::Builder::new()
            .prefix("spillway-pg-")
            .tempdir()
            .expect("cannot create a temporary directory for PostgreSQL");
        if let Some(who) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(who.uid.as_raw()), Some(who.gid.as_raw()))
                .unwrap_or_else(|e| {
                    panic!("cannot chown {} to postgres: {e}", dir.path().display())
                });
        }
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            run_as,
            child: None,
        };
        cluster.initdb();
        for _ in 0..5 {
            cluster.port = ports::free_port();
            match cluster.launch() {
                Ok(child) => {
                    cluster.child = Some(child);
                    return cluster;
                }
                Err(Launch::PortInUse) => continue,
                Err(Launch::Busy(why) | Launch::Failed(why)) => panic!("{why}"),
            }
        }
        panic!("postgres found its port in use five times running")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn initdb(&self) {
        let log = self.log_path();
        let (out, err) = process::log_file(&log);
        let mut cmd = Command::new(self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdout(out)
            .stderr(err);
        let status = process::spawn_owned(cmd, Signal::SIGKILL, self.run_as)
            .and_then(|mut child| child.wait())
            .unwrap_or_else(|e| panic!("cannot run {}/initdb: {e}", self.bin.display()));
        assert!(
            status.success(),
            "initdb failed ({status}); the directory {} must be usable by the server's \
             account (check TMPDIR); log {}:\n{}",
            self.dir.path().display(),
            log.display(),
            process::read_log_from(&log, 0)
        );
    }

    fn launch(&self) -> Result<Child, Launch> {
        let log = self.log_path();
        let offset = process::log_len(&log);
        let (out, err) = process::log_file(&log);
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-F"])
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "shared_buffers=32MB", "-c", "max_connections=200"])
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .stdout(out)
            .stderr(err);
        // SIGQUIT is an immediate shutdown: the postmaster takes its
        // backends down with it.
        let mut child = process::spawn_owned(cmd, Signal::SIGQUIT, self.run_as).map_err(|e| {
            Launch::Failed(format!("cannot run {}/postgres: {e}", self.bin.display()))
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if accepts_connections(self.port) {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let output = process::read_log_from(&log, offset);
                let why = format!(
                    "postgres on port {} exited with {status} before accepting connections; log {}:\n{output}",
                    self.port,
                    log.display()
                );
                return Err(if output.contains("Address already in use") {
                    Launch::PortInUse
                } else if output.contains("pre-existing shared memory block")
                    || output.contains("lock file \"postmaster.pid\" already exists")
                {
                    Launch::Busy(why)
                } else {
                    Launch::Failed(why)
                });
            }
            if Instant::now() >= deadline {
                process::kill_and_reap(&mut child);
                return Err(Launch::Failed(format!(
                    "postgres on port {} did not accept connections within {START_TIMEOUT:?}; log {}:\n{}",
                    self.port,
                    log.display(),
                    process::read_log_from(&log, offset)
                )));
            }
            super::pause(Duration::from_millis(10));
        }
    }

    fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "postgres on port {} is already running",
            self.port
        );
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // After a kill the old backends need a moment to notice.
                Err(Launch::Busy(_) | Launch::PortInUse) if Instant::now() < deadline => {
                    super::pause(Duration::from_millis(50))
                }
                Err(Launch::Busy(why) | Launch::Failed(why)) => panic!("{why}"),
                Err(Launch::PortInUse) => panic!("postgres port {} stayed in use", self.port),
            }
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        process::signal(&mut child, Signal::SIGINT);
        if process::wait_timeout(&mut child, STOP_TIMEOUT).is_none() {
            process::kill_and_reap(&mut child);
            panic!(
                "postgres on port {} ignored fast shutdown for {STOP_TIMEOUT:?}; log {}",
                self.port,
                self.log_path().display()
            );
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill_and_reap(&mut child);
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(process::is_running)
    }

    fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run_psql(self.port, db, sql)
    }
}

impl Drop for Cluster {
    /// Never panics: it also runs from the exit handler.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "postgres log {} (tail):\n{}",
                self.log_path().display(),
                process::tail(&self.log_path(), 20)
            );
        }
        if let Some(mut child) = self.child.take() {
            // The data is about to be deleted: an immediate shutdown will do.
            process::signal(&mut child, Signal::SIGQUIT);
            if process::wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Whether the server completes a startup handshake, which it refuses
/// while it is still starting up or recovering.
fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for part in ["user", "postgres", "database", "postgres", ""] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    if stream.write_all(&message).is_err() {
        return false;
    }
    // AuthenticationOk is 'R', length 8, code 0; anything else (an 'E'
    // "starting up") means not yet.
    let mut head = [0u8; 9];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    let ready = head[0] == b'R' && head[5..9] == [0, 0, 0, 0];
    let _ = stream.write_all(b"X\0\0\0\x04");
    ready
}

fn run_psql(port: u16, db: &str, sql: &str) -> Result<String, String> {
    let output = Command::new(psql_bin())
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .args(["-c", sql])
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS")
        .env_remove("PGSSLMODE")
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        let text = String::from_utf8_lossy(&output.stdout);
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    } else {
        Err(format!(
            "psql exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ))
    }
}

/// The unprivileged account clusters run as when the tests run as root.
fn postgres_account() -> RunAs {
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(user)) => RunAs {
            uid: user.uid,
            gid: user.gid,
        },
        Ok(None) => panic!(
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
             run scripts/test (it creates one), or `apt-get install postgresql`, or \
             `useradd --system --user-group postgres`"
        ),
        Err(e) => panic!("cannot look up the postgres user: {e}"),
    }
}

/// The directory holding initdb and postgres: `SPILLWAY_TEST_PG_BIN`, else
/// initdb's directory from PATH, else Debian's newest /usr/lib/postgresql/N/bin.
fn pg_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SPILLWAY_TEST_PG_BIN") {
            let dir = PathBuf::from(dir);
            assert!(
                has_server_binaries(&dir),
                "SPILLWAY_TEST_PG_BIN={} holds no initdb and postgres",
                dir.display()
            );
            return dir;
        }
        find_pg_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, postgres) not found: run scripts/test \
                 (it installs what is missing), or `apt-get install postgresql`, or set \
                 SPILLWAY_TEST_PG_BIN to the directory holding them"
            )
        })
    })
}

fn find_pg_bin() -> Option<PathBuf> {
    if let Some(initdb) = find_in_path("initdb") {
        // Follow symlinks such as /usr/local/bin/initdb to the real install.
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(dir) = real.parent().filter(|d| has_server_binaries(d)) {
            return Some(dir.to_path_buf());
        }
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn has_server_binaries(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

/// psql: `SPILLWAY_TEST_PSQL`, else beside the server binaries, else PATH.
fn psql_bin() -> &'static Path {
    static PSQL: OnceLock<PathBuf> = OnceLock::new();
    PSQL.get_or_init(|| {
        if let Some(path) = std::env::var_os("SPILLWAY_TEST_PSQL") {
            return PathBuf::from(path);
        }
        std::env::var_os("SPILLWAY_TEST_PG_BIN")
            .map(PathBuf::from)
            .or_else(find_pg_bin)
            .map(|dir| dir.join("psql"))
            .filter(|p| is_executable(p))
            .or_else(|| find_in_path("psql"))
            .unwrap_or_else(|| {
                panic!("psql not found: run scripts/test, or `apt-get install postgresql-client`")
            })
    })
}
