//! Shared support for the integration test binaries (`mod support;`).
//!
//! Tests run against real servers started here, never against services the
//! machine runs for other purposes: a private `redis-server` per test, a
//! private PostgreSQL cluster (or a fresh database in one cluster shared per
//! binary), and the real `spillway` binary. Every server gets a port no other
//! test process will be handed and a temporary directory, and dies with the
//! test process, so tests stay parallel-safe across threads and binaries.
//!
//! Where to find the servers (set by `scripts/test`, looked up otherwise):
//! `SPILLWAY_TEST_REDIS_SERVER` (redis-server), `SPILLWAY_TEST_PG_BIN`
//! (directory with initdb and postgres), `SPILLWAY_TEST_PSQL` (psql).
//! `SPILLWAY_TEST_KEEP=1` keeps a failed test's spillway directory.
//!
//! Waiting is always polling against a deadline ([`poll_until`]), never a
//! fixed sleep: a sleep is either too short on a loaded machine or wasted on
//! an idle one.

// Each test binary uses part of this module.
#![allow(dead_code, unused_imports)]

pub mod ports;
pub mod postgres;
pub mod process;
pub mod redis_server;
pub mod resp;
pub mod spillway;

use std::future::Future;
use std::time::{Duration, Instant};

pub use self::ports::free_port;
pub use self::postgres::{PgDatabase, Postgres};
pub use self::redis_server::RedisServer;
pub use self::resp::{RawConn, encode_command, reply_len};
pub use self::spillway::Spillway;

/// Polls `condition` until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(1);
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        pause(interval.min(deadline.saturating_duration_since(Instant::now())));
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// As [`poll_until`], failing the test with `what` on timeout.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, condition),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// As [`poll_until`] for async tests, without blocking the runtime.
pub async fn poll_until_async<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(1);
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// The one blocking wait of the harness: the interval between two polls.
#[allow(clippy::disallowed_methods)]
fn pause(interval: Duration) {
    std::thread::sleep(interval);
}
