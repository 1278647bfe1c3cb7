//! PostgreSQL dead letters: the batch that records rejected rows
//! (`dead_letters::upsert_or_dead_letter` over this backend's statements),
//! and the operator's list, retry and drop.

use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{Postgres, Row as _, Transaction};

use super::{BACKEND, write};
use crate::error::{Result, with_timeout};
use crate::keyspace::{Row, now_millis};
use crate::store::dead_letters::{self, DeadLetter, DrainTxn, Record, Refused, Stored, Whole};
use crate::store::{errors, rows};

/// An open transaction the dead-letter search runs in.
struct Drain<'t> {
    conn: &'t mut PgConnection,
    timeout: Duration,
}

impl DrainTxn for Drain<'_> {
    async fn upsert(&mut self, rows: &[(Bytes, Row)]) -> Result<()> {
        let timeout = self.timeout;
        with_timeout(
            BACKEND,
            timeout,
            write::upsert(&mut *self.conn, rows, timeout),
        )
        .await
    }

    async fn execute(&mut self, sql: &'static str) -> Result<()> {
        let timeout = self.timeout;
        with_timeout(BACKEND, timeout, async {
            sqlx::query(sql)
                .execute(&mut *self.conn)
                .await
                .map(drop)
                .map_err(|e| errors::postgres(timeout, e))
        })
        .await
    }

    async fn insert_dead_letter(
        &mut self,
        instance: &str,
        rec: &Record,
        error: &str,
        now_ms: i64,
    ) -> Result<()> {
        let timeout = self.timeout;
        let c = rows::to_columns(&rec.row);
        let seq = rows::seq_param(BACKEND, rec.seq)?;
        with_timeout(BACKEND, timeout, async {
            sqlx::query(
                "INSERT INTO spillway_dead_letters \
                     (instance, seq, key, kind, value, expire_at, version, error, failed_at) \
                 SELECT $1::text, $2::bigint, $3::bytea, $4::smallint, $5::bytea, $6::bigint, \
                        $7::bigint, $8::text, $9::bigint \
                 WHERE NOT EXISTS (SELECT 1 FROM spillway_dead_letters \
                                   WHERE instance = $1 AND seq = $2 AND key = $3)",
            )
            .bind(instance)
            .bind(seq)
            .bind(rec.key.as_ref())
            .bind(c.kind)
            .bind(c.value.as_deref())
            .bind(c.expire_at)
            .bind(c.version)
            .bind(error)
            .bind(now_ms)
            .execute(&mut *self.conn)
            .await
            .map(drop)
            .map_err(|e| errors::postgres(timeout, e))
        })
        .await
    }
}

async fn begin(pool: &PgPool, timeout: Duration) -> Result<Transaction<'static, Postgres>> {
    with_timeout(BACKEND, timeout, async {
        pool.begin().await.map_err(|e| errors::postgres(timeout, e))
    })
    .await
}

/// `Store::apply_with_dead_letters`. Each statement has the store's
/// timeout, not the whole transaction: the row-by-row search takes longer.
pub(super) async fn apply(
    pool: &PgPool,
    timeout: Duration,
    instance: &str,
    through: u64,
    rows: &[Record],
    parked: &[Record],
    whole: Whole,
) -> Result<Vec<Refused>> {
    let now = now_millis();
    let mut txn = begin(pool, timeout).await?;
    let mut drain = Drain {
        conn: &mut txn,
        timeout,
    };
    let refused =
        dead_letters::upsert_or_dead_letter(&mut drain, instance, rows, parked, whole, now).await?;
    with_timeout(
        BACKEND,
        timeout,
        write::advance_checkpoint(&mut *txn, instance, through, now, timeout),
    )
    .await?;
    write::commit(txn, timeout).await?;
    Ok(refused)
}

fn decode(r: &PgRow, timeout: Duration) -> Result<DeadLetter> {
    let map = |e| errors::postgres(timeout, e);
    let kind: i16 = r.try_get("kind").map_err(map)?;
    Stored {
        id: r.try_get("id").map_err(map)?,
        seq: r.try_get("seq").map_err(map)?,
        key: r.try_get("key").map_err(map)?,
        kind: kind.into(),
        value: r.try_get("value").map_err(map)?,
        expire_at: r.try_get("expire_at").map_err(map)?,
        version: r.try_get("version").map_err(map)?,
        error: r.try_get("error").map_err(map)?,
        failed_at: r.try_get("failed_at").map_err(map)?,
    }
    .decode(BACKEND)
}

/// Up to `limit` dead letters of `instance`, oldest first.
pub(super) async fn list(
    pool: &PgPool,
    timeout: Duration,
    instance: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>> {
    with_timeout(BACKEND, timeout, async {
        let found = sqlx::query(
            "SELECT id, seq, key, kind, value, expire_at, version, error, failed_at \
             FROM spillway_dead_letters WHERE instance = $1 ORDER BY id LIMIT $2",
        )
        .bind(instance)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(|e| errors::postgres(timeout, e))?;
        found.iter().map(|r| decode(r, timeout)).collect()
    })
    .await
}

/// Every key of `instance` with dead letters, with their number.
pub(super) async fn keys(
    pool: &PgPool,
    timeout: Duration,
    instance: &str,
) -> Result<Vec<(Bytes, u64)>> {
    with_timeout(BACKEND, timeout, async {
        let found: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT key, count(*) FROM spillway_dead_letters WHERE instance = $1 GROUP BY key",
        )
        .bind(instance)
        .fetch_all(pool)
        .await
        .map_err(|e| errors::postgres(timeout, e))?;
        Ok(found
            .into_iter()
            .map(|(k, n)| (Bytes::from(k), u64::try_from(n).unwrap_or(0)))
            .collect())
    })
    .await
}

/// Applies the dead letters of `key` (the newest wins under the version
/// guard) and deletes them, in one transaction; their rows are locked
/// first, so a concurrent retry of the same key waits and then finds none.
pub(super) async fn retry(
    pool: &PgPool,
    timeout: Duration,
    instance: &str,
    key: &[u8],
) -> Result<u64> {
    let txn = with_timeout(BACKEND, timeout, async {
        let mut txn = pool
            .begin()
            .await
            .map_err(|e| errors::postgres(timeout, e))?;
        let found = sqlx::query(
            "SELECT id, seq, key, kind, value, expire_at, version, error, failed_at \
             FROM spillway_dead_letters WHERE instance = $1 AND key = $2 \
             ORDER BY seq FOR UPDATE",
        )
        .bind(instance)
        .bind(key)
        .fetch_all(&mut *txn)
        .await
        .map_err(|e| errors::postgres(timeout, e))?;
        let letters = found
            .iter()
            .map(|r| decode(r, timeout))
            .collect::<Result<Vec<_>>>()?;
        if letters.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(Bytes, Row)> = letters
            .iter()
            .map(|d| (d.key.clone(), d.row.clone()))
            .collect();
        write::upsert(&mut *txn, &rows, timeout).await?;
        let ids: Vec<i64> = letters.iter().map(|d| d.id).collect();
        sqlx::query("DELETE FROM spillway_dead_letters WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut *txn)
            .await
            .map_err(|e| errors::postgres(timeout, e))?;
        Ok(Some((txn, letters.len() as u64)))
    })
    .await?;
    let Some((txn, n)) = txn else { return Ok(0) };
    write::commit(txn, timeout).await?;
    Ok(n)
}

/// Deletes the dead letters of `key`.
pub(super) async fn drop_key(
    pool: &PgPool,
    timeout: Duration,
    instance: &str,
    key: &[u8],
) -> Result<u64> {
    with_timeout(BACKEND, timeout, async {
        let done =
            sqlx::query("DELETE FROM spillway_dead_letters WHERE instance = $1 AND key = $2")
                .bind(instance)
                .bind(key)
                .execute(pool)
                .await
                .map_err(|e| errors::postgres(timeout, e))?;
        Ok(done.rows_affected())
    })
    .await
}
