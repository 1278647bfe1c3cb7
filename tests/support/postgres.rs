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

use std::path::PathBuf;
use std::sync::{Mutex, TryLockError};

use super::pg_cluster::{Cluster, run_psql};
use super::process;

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
