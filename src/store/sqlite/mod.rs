//! The SQLite store: the embedded default, one database file.
//!
//! SQLite has one writer at a time, so `begin` takes the database-wide write
//! lock (`BEGIN IMMEDIATE`) instead of per-key locks: writers serialize, also
//! across processes sharing the file, and readers keep reading the last
//! committed state (WAL journal mode). Upserts carry the same version guard
//! as PostgreSQL's, in multi-row VALUES batches kept under SQLite's limit on
//! bound parameters. Write-behind batches (`apply`) take the same write
//! lock, so they serialize with write-through transactions.

mod dead;
mod write;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row as _, Sqlite, Transaction};

use super::errors::{self, one_line};
use super::rows;
use super::{
    BoxFuture, DeadLetter, KeyCounts, Locked, Record, Refused, ScanPage, Store, StoreOptions,
    StoreTxn,
};
use crate::error::{Backend, Error, Result, with_timeout};
use crate::keyspace::{Row, Version, now_millis};
use crate::store::{RowSource, Whole};

const BACKEND: Backend = "sqlite";

/// Keys per `IN (…)` lookup: far below the 32 766 bound parameters SQLite
/// allows, and few distinct statement texts for the statement cache.
const GET_CHUNK: usize = 500;

/// A pool of connections to one SQLite database file.
pub struct SqliteStore {
    pool: SqlitePool,
    timeout: Duration,
}

impl SqliteStore {
    /// Opens (with `mode=rwc`: creates) the database file, creating its
    /// directory if missing, and applies the embedded migrations.
    ///
    /// `synchronous = FULL`: in WAL mode, NORMAL may lose the last commits on
    /// power loss or an OS crash, and a write-through `+OK` promises the
    /// write is committed. FULL syncs the WAL at every commit.
    /// `busy_timeout = opts.timeout` bounds the wait for the write lock.
    /// A pooled connection within the acquire timeout, errors mapped.
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.pool
            .acquire()
            .await
            .map_err(|e| errors::sqlite(self.timeout, e))
    }

    pub async fn connect(opts: &StoreOptions) -> Result<SqliteStore> {
        let connect = SqliteConnectOptions::from_str(&opts.url)
            .map_err(|e| Error::Config(format!("database.url: {}", one_line(e))))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(opts.timeout)
            .foreign_keys(true);
        if on_disk(&opts.url)
            && let Some(dir) = connect.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable {
                backend: BACKEND,
                detail: one_line(format!("creating {}: {e}", dir.display())),
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.pool_size.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect);
        let pool = with_timeout(BACKEND, opts.acquire_timeout + opts.timeout, async {
            pool.await.map_err(|e| errors::sqlite(opts.timeout, e))
        })
        .await?;
        with_timeout(BACKEND, opts.timeout, async {
            sqlx::migrate!("migrations/sqlite")
                .run(&pool)
                .await
                .map_err(|e| errors::migrate(BACKEND, e, |e| errors::sqlite(opts.timeout, e)))
        })
        .await?;
        Ok(SqliteStore {
            pool,
            timeout: opts.timeout,
        })
    }

    /// A transaction holding the database's write lock from its first
    /// statement, so it cannot fail later for a lock another writer took.
    async fn begin_immediate(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| errors::sqlite(self.timeout, e))
    }

    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T> {
        let timeout = self.timeout;
        with_timeout(BACKEND, timeout, async move {
            fut.await.map_err(|e| errors::sqlite(timeout, e))
        })
        .await
    }
}

/// False for in-memory databases, which have no directory to create.
fn on_disk(url: &str) -> bool {
    !(url.contains(":memory:") || url.contains("mode=memory"))
}

impl RowSource for SqliteStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn get<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Vec<Row>>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut conn = self.conn().await?;
            read_rows(&mut conn, keys, timeout).await
        }))
    }
}

impl Store for SqliteStore {
    fn begin<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Locked>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let mut txn = self.begin_immediate().await?;
            let rows = read_rows(&mut txn, keys, timeout).await?;
            let txn: Box<dyn StoreTxn> = Box::new(SqliteTxn { txn, timeout });
            Ok((txn, rows))
        }))
    }

    fn apply<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [(Bytes, Row)],
    ) -> BoxFuture<'a, Result<()>> {
        let timeout = self.timeout;
        Box::pin(async move {
            // COMMIT has its own bound, so a lost answer stays CommitUnknown.
            let txn = with_timeout(BACKEND, timeout, async move {
                let mut txn = self.begin_immediate().await?;
                write::put_rows(&mut txn, rows, timeout).await?;
                write::advance_checkpoint(&mut txn, instance, through, now_millis(), timeout)
                    .await?;
                Ok(txn)
            })
            .await?;
            write::commit(txn, timeout).await
        })
    }

    fn apply_with_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [Record],
        parked: &'a [Record],
        whole: Whole,
    ) -> BoxFuture<'a, Result<Vec<Refused>>> {
        Box::pin(dead::apply(
            &self.pool,
            self.timeout,
            instance,
            through,
            rows,
            parked,
            whole,
        ))
    }

    fn dead_letters<'a>(
        &'a self,
        instance: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>>> {
        Box::pin(dead::list(&self.pool, self.timeout, instance, limit))
    }

    fn dead_letter_keys<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(Bytes, u64)>>> {
        Box::pin(dead::keys(&self.pool, self.timeout, instance))
    }

    fn retry_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(dead::retry(&self.pool, self.timeout, instance, key))
    }

    fn drop_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(dead::drop_key(&self.pool, self.timeout, instance, key))
    }

    fn checkpoint<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let mut conn = self.conn().await?;
            write::read_checkpoint(&mut conn, instance, timeout).await
        }))
    }

    fn set_low_water<'a>(
        &'a self,
        instance: &'a str,
        version: Version,
    ) -> BoxFuture<'a, Result<()>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let mut conn = self.conn().await?;
            write::raise_low_water(&mut conn, instance, version, now_millis(), timeout).await
        }))
    }

    fn low_water(&self) -> BoxFuture<'_, Result<Option<Version>>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let mut conn = self.conn().await?;
            write::read_low_water(&mut conn, timeout).await
        }))
    }

    fn scan(&self, cursor: u64, count: usize, now_ms: i64) -> BoxFuture<'_, Result<ScanPage>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            let mut conn = self.conn().await?;
            scan_page(&mut conn, cursor, count, now_ms, timeout).await
        }))
    }

    fn count(&self, now_ms: i64) -> BoxFuture<'_, Result<KeyCounts>> {
        Box::pin(async move {
            let row = self
                .bounded(
                    sqlx::query(
                        "SELECT count(*), count(expire_at) FROM spillway_kv \
                         WHERE kind <> 0 AND (expire_at IS NULL OR expire_at > ?)",
                    )
                    .bind(now_ms)
                    .fetch_one(&self.pool),
                )
                .await?;
            let decode = |e| errors::sqlite(self.timeout, e);
            let keys: i64 = row.try_get(0).map_err(decode)?;
            let expires: i64 = row.try_get(1).map_err(decode)?;
            Ok(KeyCounts {
                keys: u64::try_from(keys).unwrap_or(0),
                expires: u64::try_from(expires).unwrap_or(0),
            })
        })
    }

    fn max_version(&self) -> BoxFuture<'_, Result<Version>> {
        Box::pin(async move {
            let max: Option<i64> = self
                .bounded(
                    sqlx::query_scalar("SELECT max(version) FROM spillway_kv")
                        .fetch_one(&self.pool),
                )
                .await?;
            Ok(max.map_or(Version::ZERO, Version::from_i64))
        })
    }

    fn sweep(
        &self,
        now_ms: i64,
        tombstones_before: Version,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let done = self
                .bounded(
                    sqlx::query(
                        "DELETE FROM spillway_kv WHERE key IN ( \
                             SELECT key FROM spillway_kv \
                             WHERE (kind = 0 OR expire_at <= ?) AND version < ? LIMIT ?)",
                    )
                    .bind(now_ms)
                    .bind(tombstones_before.as_i64())
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .execute(&self.pool),
                )
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.bounded(sqlx::query("SELECT 1").execute(&self.pool))
                .await
                .map(drop)
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }
}

/// An open `BEGIN IMMEDIATE` transaction: the database's write lock.
struct SqliteTxn {
    txn: Transaction<'static, Sqlite>,
    timeout: Duration,
}

impl StoreTxn for SqliteTxn {
    fn put<'a>(&'a mut self, rows: &'a [(Bytes, Row)]) -> BoxFuture<'a, Result<()>> {
        let timeout = self.timeout;
        Box::pin(with_timeout(BACKEND, timeout, async move {
            write::put_rows(&mut self.txn, rows, timeout).await
        }))
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>> {
        let SqliteTxn { txn, timeout } = *self;
        Box::pin(write::commit(txn, timeout))
    }
}

/// `?, ?, …` for `n` parameters.
fn params(n: usize) -> String {
    let mut s = "?,".repeat(n);
    s.pop();
    s
}

/// The rows of `keys`, one `IN (…)` statement per chunk, in the order asked for.
async fn read_rows(
    conn: &mut SqliteConnection,
    keys: &[Bytes],
    timeout: Duration,
) -> Result<Vec<Row>> {
    let decode = |e| errors::sqlite(timeout, e);
    let mut by_key = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(GET_CHUNK) {
        // Only placeholders are formatted into the text; keys are bound.
        let sql = format!(
            "SELECT key, kind, value, expire_at, version FROM spillway_kv WHERE key IN ({})",
            params(chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for key in chunk {
            query = query.bind(key.as_ref());
        }
        for r in query.fetch_all(&mut *conn).await.map_err(decode)? {
            let key: Vec<u8> = r.try_get(0).map_err(decode)?;
            let row = rows::from_columns(
                BACKEND,
                r.try_get(1).map_err(decode)?,
                r.try_get(2).map_err(decode)?,
                r.try_get(3).map_err(decode)?,
                r.try_get(4).map_err(decode)?,
            )?;
            by_key.insert(Bytes::from(key), row);
        }
    }
    Ok(rows::in_key_order(keys, by_key))
}

/// A SCAN page; see the PostgreSQL store for why the last hash is completed.
async fn scan_page(
    conn: &mut SqliteConnection,
    cursor: u64,
    count: usize,
    now_ms: i64,
    timeout: Duration,
) -> Result<ScanPage> {
    let Ok(after) = i64::try_from(cursor) else {
        return Ok(ScanPage::default());
    };
    let limit = count.max(1);
    let decode = |e| errors::sqlite(timeout, e);
    let page = sqlx::query(
        "SELECT key, key_hash, kind FROM spillway_kv \
         WHERE key_hash > ? AND kind <> 0 AND (expire_at IS NULL OR expire_at > ?) \
         ORDER BY key_hash, key LIMIT ?",
    )
    .bind(after)
    .bind(now_ms)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await
    .map_err(decode)?;
    let full = page.len() >= limit;
    let mut out = ScanPage::default();
    let mut last = None;
    for r in &page {
        let key: Vec<u8> = r.try_get(0).map_err(decode)?;
        last = Some(r.try_get::<i64, _>(1).map_err(decode)?);
        out.keys.push((
            Bytes::from(key),
            rows::type_name(BACKEND, r.try_get(2).map_err(decode)?)?,
        ));
    }
    let (Some(hash), true) = (last, full) else {
        return Ok(out);
    };
    let last_key = out.keys.last().map(|(k, _)| k.clone()).unwrap_or_default();
    let rest = sqlx::query(
        "SELECT key, kind FROM spillway_kv \
         WHERE key_hash = ? AND key > ? AND kind <> 0 AND (expire_at IS NULL OR expire_at > ?) \
         ORDER BY key",
    )
    .bind(hash)
    .bind(last_key.as_ref())
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(decode)?;
    for r in &rest {
        let key: Vec<u8> = r.try_get(0).map_err(decode)?;
        out.keys.push((
            Bytes::from(key),
            rows::type_name(BACKEND, r.try_get(1).map_err(decode)?)?,
        ));
    }
    out.cursor = rows::cursor(BACKEND, hash)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_memory_urls() {
        assert_eq!(params(3), "?,?,?");
        assert!(!on_disk("sqlite::memory:"));
        assert!(on_disk("sqlite://data/spillway.db?mode=rwc"));
    }
}
