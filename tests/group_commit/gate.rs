//! Deterministic groups: the test holds the advisory lock a write of
//! `GATE` takes, so that write's group waits inside PostgreSQL while the
//! writes sent meanwhile queue for the next group, in the order sent.

use std::time::Duration;

use sqlx::Connection;

use crate::info_u64;
use crate::support::{PgDatabase, RawConn, Spillway, wait_until};

/// The key whose write the gate holds.
pub const GATE: &str = "gate";

/// The test's hold on one advisory lock.
pub struct Gate {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
}

impl Gate {
    /// Holds the lock a write of `key` takes in its transaction.
    pub fn hold(url: &str, key: &str) -> Gate {
        Gate::hold_id(url, spillway::store::key_hash(key.as_bytes()))
    }

    pub fn hold_id(url: &str, id: i64) -> Gate {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(id)
                .execute(&mut conn)
                .await
                .expect("lock");
            conn
        });
        Gate { rt, conn }
    }

    pub fn release(self) {
        let Gate { rt, conn } = self;
        rt.block_on(conn.close()).expect("close");
    }
}

/// A spillway with a group stuck behind the gate, and the writes queued
/// behind that group.
pub struct Queued<'a> {
    sp: &'a Spillway,
    info: redis::Connection,
    writers: Vec<RawConn>,
    commits_before: u64,
}

impl<'a> Queued<'a> {
    /// Sends a write of the gate key and waits until its group blocks on
    /// the gate inside PostgreSQL.
    pub fn behind_gate(sp: &'a Spillway, pg: &PgDatabase) -> Queued<'a> {
        let mut info = sp.conn();
        let commits_before = info_u64(&mut info, "db_commits");
        let mut gated = sp.raw();
        gated.send_cmd(&["SET", GATE, "1"]);
        wait_until(
            "the gated group to wait on its lock",
            Duration::from_secs(10),
            || {
                pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted",
            ) == "1"
            },
        );
        Queued {
            sp,
            info,
            writers: vec![gated],
            commits_before,
        }
    }

    /// Sends `args` on a connection of its own and waits until spillway has
    /// taken it in, so writes queue in the order they are sent.
    pub fn send(&mut self, args: &[&str]) {
        let conn = self.sp.raw();
        self.send_on(conn, args);
    }

    /// As [`Queued::send`], on a connection the test prepared (an open
    /// MULTI block, WATCHed keys).
    pub fn send_on(&mut self, mut conn: RawConn, args: &[&str]) {
        let mut before = info_u64(&mut self.info, "total_commands_processed");
        conn.send_cmd(args);
        // Each INFO counts itself: one more than that is the write.
        wait_until(
            "spillway to take the write in",
            Duration::from_secs(10),
            || {
                let now = info_u64(&mut self.info, "total_commands_processed");
                let taken = now >= before + 2;
                before = now;
                taken
            },
        );
        self.writers.push(conn);
    }

    /// Opens the gate; returns each queued write's reply (the gate write's
    /// first) and how many transactions committed since the gate closed.
    pub fn release(mut self, gate: Gate) -> (Vec<String>, u64) {
        gate.release();
        let replies = self
            .writers
            .iter_mut()
            .map(|c| {
                String::from_utf8_lossy(&c.read_reply())
                    .trim_end()
                    .to_string()
            })
            .collect();
        let commits = info_u64(&mut self.info, "db_commits") - self.commits_before;
        (replies, commits)
    }
}

/// Waits until a session of `pg`'s database waits for an advisory lock.
pub fn wait_for_lock_waiter(pg: &PgDatabase) {
    wait_until(
        "a transaction to wait on the gate",
        Duration::from_secs(10),
        || {
            pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted",
            ) == "1"
        },
    );
}
