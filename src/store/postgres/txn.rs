//! Write transactions (`Store::begin`) on connections kept for writers.
//!
//! sqlx pings a pooled connection when the pool hands it out and again when
//! it comes back: two extra round trips around every transaction, which is
//! what a write-through commit pays per group. So a committed (or rolled
//! back) transaction leaves its connection in a small idle list of writer
//! connections instead, and the next transaction starts on it without a
//! ping. A connection that died meanwhile (the server restarted) fails its
//! first statement; nothing can have been committed then, so the
//! transaction is started again once on a fresh pooled connection, which
//! the pool pings, reconnecting as needed.
//!
//! A transaction that ends any other way (an error, a timeout, a drop)
//! closes its connection: the server rolls back and releases the locks,
//! and no connection in an unknown state is ever used again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row as _};

use super::{BACKEND, decode_row, write};
use crate::error::{Error, Result, with_timeout};
use crate::keyspace::Row;
use crate::store::errors;
use crate::store::{BoxFuture, Locked, StoreTxn, key_hash, rows};

/// Idle writer connections kept: enough for the groups a write-through
/// committer runs at once; more go back to the pool.
const MAX_IDLE: usize = 4;

/// At most this share of the pool is kept idle for writers, so reads always
/// find connections (a pool of fewer than 4 keeps none).
const POOL_SHARE: u32 = 4;

/// Connections between two write transactions.
pub(super) struct Writers {
    /// How many idle connections are kept.
    keep: usize,
    /// `closed` once the store is closing: connections go back to the pool
    /// then, which closes them.
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    conns: Vec<PoolConnection<Postgres>>,
    closed: bool,
}

impl Writers {
    pub(super) fn new(pool_size: u32) -> Writers {
        Writers {
            keep: MAX_IDLE.min((pool_size / POOL_SHARE) as usize),
            idle: Mutex::default(),
        }
    }

    fn take(&self) -> Option<PoolConnection<Postgres>> {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .pop()
    }

    fn keep(&self, conn: PoolConnection<Postgres>) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if !idle.closed && idle.conns.len() < self.keep {
            idle.conns.push(conn);
        }
    }

    /// Gives every idle connection back to the pool and keeps none from
    /// now on, so that closing the pool does not wait for them for ever.
    pub(super) fn close(&self) {
        let conns = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.closed = true;
            std::mem::take(&mut idle.conns)
        };
        drop(conns);
    }
}

impl Drop for Writers {
    fn drop(&mut self) {
        // Going back to the pool needs a runtime to spawn on; without one
        // (a store dropped after its runtime), the connections just close.
        if tokio::runtime::Handle::try_current().is_err() {
            let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
            for conn in idle.conns.drain(..) {
                drop(conn.detach());
            }
        }
    }
}

/// Starts a transaction holding the advisory locks of `keys` and reads
/// their rows; see the module comment for which connection it runs on.
pub(super) async fn begin(
    pool: &PgPool,
    writers: &Arc<Writers>,
    keys: &[Bytes],
    timeout: Duration,
) -> Result<Locked> {
    if let Some(conn) = writers.take() {
        match start(conn, writers.clone(), keys, timeout).await {
            Err(Started::Lost(_)) => {}
            other => return other.map_err(Started::into_error),
        }
    }
    let conn = pool
        .acquire()
        .await
        .map_err(|e| errors::postgres(timeout, e))?;
    start(conn, writers.clone(), keys, timeout)
        .await
        .map_err(Started::into_error)
}

/// Why a transaction did not start: `Lost` when the connection broke, so a
/// fresh one may succeed.
enum Started {
    Lost(Error),
    Failed(Error),
}

impl Started {
    fn into_error(self) -> Error {
        match self {
            Started::Lost(e) | Started::Failed(e) => e,
        }
    }
}

async fn start(
    conn: PoolConnection<Postgres>,
    writers: Arc<Writers>,
    keys: &[Bytes],
    timeout: Duration,
) -> Result<Locked, Started> {
    let mut txn = WriterTxn {
        conn: Some(conn),
        writers,
        timeout,
    };
    let conn = txn.conn_mut().map_err(Started::Failed)?;
    let found = match sqlx::raw_sql(AssertSqlSafe(begin_lock_read(keys)))
        .fetch_all(&mut **conn)
        .await
    {
        Ok(found) => found,
        Err(e) if errors::postgres_connection_lost(&e) => {
            return Err(Started::Lost(errors::postgres(timeout, e)));
        }
        Err(e) => return Err(Started::Failed(errors::postgres(timeout, e))),
    };
    let rows = locked_rows(keys, &found, timeout).map_err(Started::Failed)?;
    let txn: Box<dyn StoreTxn> = Box::new(txn);
    Ok((txn, rows))
}

/// One round trip: `BEGIN`, the transaction-scoped advisory lock of every
/// key's hash, then the rows of those hashes, read once the locks are held
/// (each statement of a simple query takes its own snapshot). Only the
/// hashes, integers computed here, are formatted into the text; keys and
/// values never are.
///
/// Deadlock freedom: every transaction takes its locks in ascending hash
/// order (sorted and deduplicated here, and `ORDER BY h` in the statement:
/// PostgreSQL evaluates a volatile output expression not referenced by ORDER
/// BY after sorting, per the SELECT reference), and takes no other locks it
/// could wait on while holding them. Two keys sharing a hash share a lock,
/// which only makes locking coarser.
fn begin_lock_read(keys: &[Bytes]) -> String {
    let mut hashes: Vec<i64> = keys.iter().map(|k| key_hash(k)).collect();
    hashes.sort_unstable();
    hashes.dedup();
    if hashes.is_empty() {
        return "BEGIN".into();
    }
    let list: Vec<String> = hashes.iter().map(i64::to_string).collect();
    let list = list.join(",");
    format!(
        "BEGIN; \
         SELECT pg_advisory_xact_lock(h) FROM unnest('{{{list}}}'::bigint[]) AS t(h) ORDER BY h; \
         SELECT key, kind, value, expire_at, version FROM spillway_kv \
         WHERE key_hash = ANY('{{{list}}}'::bigint[])"
    )
}

/// The rows of `keys` among what `begin_lock_read` returned: the lock
/// statement's one-column rows are skipped, and so are rows of other keys
/// sharing a hash with one of `keys`.
fn locked_rows(keys: &[Bytes], found: &[PgRow], timeout: Duration) -> Result<Vec<Row>> {
    let wanted: HashSet<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    let mut by_key = HashMap::with_capacity(keys.len());
    for r in found.iter().filter(|r| r.len() == 5) {
        let key: Vec<u8> = r.try_get(0).map_err(|e| errors::postgres(timeout, e))?;
        if wanted.contains(key.as_slice()) {
            by_key.insert(Bytes::from(key), decode_row(r, timeout)?);
        }
    }
    Ok(rows::in_key_order(keys, by_key))
}

/// An open transaction on a writer connection, holding its keys' locks.
struct WriterTxn {
    /// `None` once the transaction ended.
    conn: Option<PoolConnection<Postgres>>,
    writers: Arc<Writers>,
    timeout: Duration,
}

impl WriterTxn {
    fn conn_mut(&mut self) -> Result<&mut PoolConnection<Postgres>> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::unavailable(BACKEND, "transaction already ended"))
    }

    /// Sends `sql` (COMMIT or ROLLBACK) and, when it succeeded, keeps the
    /// connection for the next transaction. On an error, or if this future
    /// is dropped midway, the connection closes with `self`.
    async fn finish(mut self: Box<Self>, sql: &'static str) -> Result<(), sqlx::Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        sqlx::raw_sql(sql).execute(&mut **conn).await?;
        if let Some(conn) = self.conn.take() {
            self.writers.keep(conn);
        }
        Ok(())
    }
}

impl Drop for WriterTxn {
    fn drop(&mut self) {
        // Not committed or rolled back: the state is unknown, so the
        // connection closes and the server rolls back.
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

impl StoreTxn for WriterTxn {
    fn put<'a>(&'a mut self, rows: &'a [(Bytes, Row)]) -> BoxFuture<'a, Result<()>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let conn = self.conn_mut()?;
            write::upsert(&mut **conn, rows, timeout).await
        }))
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let timeout = self.timeout;
        Box::pin(async move { write::commit_with(timeout, self.finish("COMMIT")).await })
    }

    fn rollback(self: Box<Self>) -> BoxFuture<'static, ()> {
        let timeout = self.timeout;
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, self.finish("ROLLBACK")).await;
        })
    }
}
