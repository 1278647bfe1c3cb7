//! The PostgreSQL store: `spillway_kv` behind a sqlx pool.
//!
//! Per-key exclusive locks are transaction-scoped advisory locks on
//! `key_hash`, so a key can be locked before its row exists and the locks go
//! away with the transaction, whatever ends it. Batches are written with one
//! `INSERT … SELECT FROM UNNEST(…) ON CONFLICT` whose version guard makes
//! every upsert idempotent and lets an older write lose to a newer row.
//! Write-behind batches (`apply`) take no advisory locks: that guard alone
//! orders them, and the instance's checkpoint commits with its rows.

mod dead;
mod txn;
pub(crate) mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, Row as _};

use super::errors::{self, one_line};
use super::rows;
use super::{
    BoxFuture, DeadLetter, KeyCounts, Locked, Record, Refused, ScanPage, Store, StoreOptions,
};
use crate::error::{Backend, Error, Result, with_timeout};
use crate::keyspace::{Row, Version, now_millis};
use crate::store::{RowSource, Whole};

const BACKEND: Backend = "postgres";

/// A pool of connections to the system of record.
pub struct PgStore {
    pool: PgPool,
    /// Connections kept between write transactions (`txn.rs`).
    writers: Arc<txn::Writers>,
    timeout: Duration,
}

impl PgStore {
    /// Opens the pool (failing within `acquire_timeout` when the server is
    /// unreachable) and applies the embedded migrations.
    ///
    /// Every connection runs with `statement_timeout = opts.timeout`, so a
    /// statement the client gave up on (including a wait for a key lock) is
    /// also abandoned by the server instead of holding a connection.
    pub async fn connect(opts: &StoreOptions) -> Result<PgStore> {
        let connect = opts
            .url
            .parse::<PgConnectOptions>()
            .map_err(|e| Error::Config(format!("database.url: {}", one_line(e))))?
            .application_name("spillway")
            .options([(
                "statement_timeout",
                format!("{}ms", opts.timeout.as_millis().max(1)),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.pool_size.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect);
        // sqlx bounds this by acquire_timeout already; the outer bound also
        // covers a server that accepts TCP and then never answers.
        let pool = with_timeout(BACKEND, opts.acquire_timeout + opts.timeout, async {
            pool.await.map_err(|e| errors::postgres(opts.timeout, e))
        })
        .await?;
        with_timeout(BACKEND, opts.timeout, async {
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .map_err(|e| errors::migrate(BACKEND, e, |e| errors::postgres(opts.timeout, e)))
        })
        .await?;
        Ok(PgStore {
            pool,
            writers: Arc::new(txn::Writers::new(opts.pool_size)),
            timeout: opts.timeout,
        })
    }

    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T> {
        let timeout = self.timeout;
        with_timeout(BACKEND, timeout, async move {
            fut.await.map_err(|e| errors::postgres(timeout, e))
        })
        .await
    }
}

impl RowSource for PgStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn get<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(with_timeout(BACKEND, self.timeout, async move {
            read_rows(&self.pool, keys, self.timeout).await
        }))
    }
}

impl Store for PgStore {
    fn postgres_pool(&self) -> Option<PgPool> {
        Some(self.pool.clone())
    }

    fn begin<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Locked>> {
        Box::pin(with_timeout(
            BACKEND,
            self.timeout,
            txn::begin(&self.pool, &self.writers, keys, self.timeout),
        ))
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
                let mut txn = self
                    .pool
                    .begin()
                    .await
                    .map_err(|e| errors::postgres(timeout, e))?;
                write::upsert(&mut *txn, rows, timeout).await?;
                write::advance_checkpoint(&mut *txn, instance, through, now_millis(), timeout)
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
        Box::pin(with_timeout(BACKEND, self.timeout, async move {
            write::read_checkpoint(&self.pool, instance, self.timeout).await
        }))
    }

    fn set_low_water<'a>(
        &'a self,
        instance: &'a str,
        version: Version,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(with_timeout(BACKEND, self.timeout, async move {
            write::raise_low_water(&self.pool, instance, version, now_millis(), self.timeout).await
        }))
    }

    fn low_water(&self) -> BoxFuture<'_, Result<Option<Version>>> {
        Box::pin(with_timeout(BACKEND, self.timeout, async move {
            write::read_low_water(&self.pool, self.timeout).await
        }))
    }

    fn scan(&self, cursor: u64, count: usize, now_ms: i64) -> BoxFuture<'_, Result<ScanPage>> {
        Box::pin(with_timeout(BACKEND, self.timeout, async move {
            scan_page(&self.pool, cursor, count, now_ms, self.timeout).await
        }))
    }

    fn count(&self, now_ms: i64) -> BoxFuture<'_, Result<KeyCounts>> {
        Box::pin(async move {
            let row = self
                .bounded(
                    sqlx::query(
                        "SELECT count(*), count(expire_at) FROM spillway_kv \
                         WHERE kind <> 0 AND (expire_at IS NULL OR expire_at > $1)",
                    )
                    .bind(now_ms)
                    .fetch_one(&self.pool),
                )
                .await?;
            let (keys, expires): (i64, i64) = (
                row.try_get(0)
                    .map_err(|e| errors::postgres(self.timeout, e))?,
                row.try_get(1)
                    .map_err(|e| errors::postgres(self.timeout, e))?,
            );
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
        // The condition is repeated outside the subquery: if a writer replaces
        // a selected row before the DELETE locks it, PostgreSQL re-checks the
        // outer condition against the new row and leaves it alone.
        Box::pin(async move {
            let done = self
                .bounded(
                    sqlx::query(
                        "DELETE FROM spillway_kv WHERE key IN ( \
                             SELECT key FROM spillway_kv \
                             WHERE (kind = 0 OR expire_at <= $1) AND version < $2 LIMIT $3) \
                         AND (kind = 0 OR expire_at <= $1) AND version < $2",
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
        Box::pin(async move {
            self.writers.close();
            self.pool.close().await;
        })
    }
}

/// The rows of `keys` in one statement, in the order asked for.
async fn read_rows<'e>(
    ex: impl PgExecutor<'e>,
    keys: &[Bytes],
    timeout: Duration,
) -> Result<Vec<Row>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    let found = sqlx::query(
        "SELECT key, kind, value, expire_at, version FROM spillway_kv WHERE key = ANY($1)",
    )
    .bind(params)
    .fetch_all(ex)
    .await
    .map_err(|e| errors::postgres(timeout, e))?;
    let mut by_key = HashMap::with_capacity(found.len());
    for r in &found {
        let key: Vec<u8> = r.try_get(0).map_err(|e| errors::postgres(timeout, e))?;
        by_key.insert(Bytes::from(key), decode_row(r, timeout)?);
    }
    Ok(rows::in_key_order(keys, by_key))
}

/// The row in columns 1 to 4 of `kind, value, expire_at, version` (after
/// the key), from a prepared statement or a simple query alike.
pub(super) fn decode_row(r: &PgRow, timeout: Duration) -> Result<Row> {
    let decode = |e| errors::postgres(timeout, e);
    let kind: i16 = r.try_get(1).map_err(decode)?;
    rows::from_columns(
        BACKEND,
        kind.into(),
        r.try_get(2).map_err(decode)?,
        r.try_get(3).map_err(decode)?,
        r.try_get(4).map_err(decode)?,
    )
}

/// A SCAN page: `count` live rows after `cursor` in (hash, key) order, plus
/// the rest of the last row's hash when the page is full, so that resuming
/// strictly after that hash cannot skip a key sharing it.
async fn scan_page(
    pool: &PgPool,
    cursor: u64,
    count: usize,
    now_ms: i64,
    timeout: Duration,
) -> Result<ScanPage> {
    let Ok(after) = i64::try_from(cursor) else {
        return Ok(ScanPage::default());
    };
    let limit = count.max(1);
    let decode = |e| errors::postgres(timeout, e);
    let page = sqlx::query(
        "SELECT key, key_hash, kind FROM spillway_kv \
         WHERE key_hash > $1 AND kind <> 0 AND (expire_at IS NULL OR expire_at > $2) \
         ORDER BY key_hash, key LIMIT $3",
    )
    .bind(after)
    .bind(now_ms)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(decode)?;
    let full = page.len() >= limit;
    let mut out = ScanPage::default();
    let mut last = None;
    for r in &page {
        let key: Vec<u8> = r.try_get(0).map_err(decode)?;
        let hash: i64 = r.try_get(1).map_err(decode)?;
        let kind: i16 = r.try_get(2).map_err(decode)?;
        out.keys
            .push((Bytes::from(key), rows::type_name(BACKEND, kind.into())?));
        last = Some(hash);
    }
    let (Some(hash), true) = (last, full) else {
        return Ok(out);
    };
    let last_key = out.keys.last().map(|(k, _)| k.to_vec()).unwrap_or_default();
    let rest = sqlx::query(
        "SELECT key, kind FROM spillway_kv \
         WHERE key_hash = $1 AND key > $2 AND kind <> 0 AND (expire_at IS NULL OR expire_at > $3) \
         ORDER BY key",
    )
    .bind(hash)
    .bind(last_key)
    .bind(now_ms)
    .fetch_all(pool)
    .await
    .map_err(decode)?;
    for r in &rest {
        let key: Vec<u8> = r.try_get(0).map_err(decode)?;
        let kind: i16 = r.try_get(1).map_err(decode)?;
        out.keys
            .push((Bytes::from(key), rows::type_name(BACKEND, kind.into())?));
    }
    out.cursor = rows::cursor(BACKEND, hash)?;
    Ok(out)
}
