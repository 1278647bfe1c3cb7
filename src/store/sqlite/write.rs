//! SQLite writes: the batch upsert both `StoreTxn::put` and `Store::apply`
//! use, the checkpoint row (and its low-water version), and COMMIT with its outcome.

use std::time::Duration;

use bytes::Bytes;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use super::{BACKEND, params};
use crate::error::{Error, Result};
use crate::keyspace::{Row, Version};
use crate::store::errors::{self, one_line};
use crate::store::{key_hash, rows};

/// Rows per upsert statement (six parameters each).
const PUT_CHUNK: usize = 1000;

/// Writes each key's last row in `rows`, only over an older stored version,
/// in as many statements as SQLite's parameter limit needs.
pub(super) async fn put_rows(
    conn: &mut SqliteConnection,
    rows: &[(Bytes, Row)],
    timeout: Duration,
) -> Result<()> {
    let batch = rows::last_per_key(rows);
    for chunk in batch.chunks(PUT_CHUNK) {
        upsert(conn, chunk, timeout).await?;
    }
    Ok(())
}

/// One multi-row upsert of distinct keys, each only over an older version.
async fn upsert(
    conn: &mut SqliteConnection,
    batch: &[&(Bytes, Row)],
    timeout: Duration,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let tuple = format!("({})", params(6));
    let values = vec![tuple.as_str(); batch.len()].join(",");
    // Only placeholders are formatted into the text; keys and values are bound.
    let sql = format!(
        "INSERT INTO spillway_kv (key, key_hash, kind, value, expire_at, version) VALUES {values} \
         ON CONFLICT (key) DO UPDATE SET key_hash = excluded.key_hash, kind = excluded.kind, \
             value = excluded.value, expire_at = excluded.expire_at, version = excluded.version \
         WHERE spillway_kv.version < excluded.version"
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (key, row) in batch {
        let c = rows::to_columns(row);
        query = query
            .bind(key.as_ref())
            .bind(key_hash(key))
            .bind(c.kind)
            .bind(c.value.as_deref())
            .bind(c.expire_at)
            .bind(c.version);
    }
    query
        .execute(conn)
        .await
        .map_err(|e| errors::sqlite(timeout, e))?;
    Ok(())
}

/// Raises `instance`'s checkpoint to `through`, creating the row if needed;
/// a lower `through` (a replayed batch) leaves the stored one in place.
pub(super) async fn advance_checkpoint(
    conn: &mut SqliteConnection,
    instance: &str,
    through: u64,
    now_ms: i64,
    timeout: Duration,
) -> Result<()> {
    // Two-argument max() is SQLite's GREATEST.
    sqlx::query(
        "INSERT INTO spillway_checkpoints (instance, seq, updated_at) VALUES (?, ?, ?) \
         ON CONFLICT (instance) DO UPDATE \
         SET seq = max(spillway_checkpoints.seq, excluded.seq), \
             updated_at = excluded.updated_at",
    )
    .bind(instance)
    .bind(rows::seq_param(BACKEND, through)?)
    .bind(now_ms)
    .execute(conn)
    .await
    .map_err(|e| errors::sqlite(timeout, e))?;
    Ok(())
}

/// Raises `instance`'s low-water version to `version`, creating its row
/// (with checkpoint 0: nothing applied yet) if needed; a lower `version`
/// leaves the stored one in place. SQLite's max() of a NULL is NULL, hence
/// the coalesce.
pub(super) async fn raise_low_water(
    conn: &mut SqliteConnection,
    instance: &str,
    version: Version,
    now_ms: i64,
    timeout: Duration,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO spillway_checkpoints (instance, seq, updated_at, low_version) \
         VALUES (?, 0, ?, ?) \
         ON CONFLICT (instance) DO UPDATE \
         SET low_version = max(coalesce(spillway_checkpoints.low_version, excluded.low_version), \
                               excluded.low_version)",
    )
    .bind(instance)
    .bind(now_ms)
    .bind(version.as_i64())
    .execute(conn)
    .await
    .map_err(|e| errors::sqlite(timeout, e))?;
    Ok(())
}

/// The lowest low-water version over every instance with a checkpoint row
/// (an unreported one counts as 0); `None` when there is no row at all.
pub(super) async fn read_low_water(
    conn: &mut SqliteConnection,
    timeout: Duration,
) -> Result<Option<Version>> {
    let low: Option<i64> =
        sqlx::query_scalar("SELECT min(coalesce(low_version, 0)) FROM spillway_checkpoints")
            .fetch_one(conn)
            .await
            .map_err(|e| errors::sqlite(timeout, e))?;
    Ok(low.map(Version::from_i64))
}

/// `instance`'s stored checkpoint, `None` before its first batch.
pub(super) async fn read_checkpoint(
    conn: &mut SqliteConnection,
    instance: &str,
    timeout: Duration,
) -> Result<Option<u64>> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM spillway_checkpoints WHERE instance = ?")
            .bind(instance)
            .fetch_optional(conn)
            .await
            .map_err(|e| errors::sqlite(timeout, e))?;
    seq.map(|s| rows::seq_column(BACKEND, s)).transpose()
}

/// Commits within `timeout`; a worker thread that died with COMMIT in
/// flight, or no answer in time, is `Error::CommitUnknown`.
pub(super) async fn commit(txn: Transaction<'static, Sqlite>, timeout: Duration) -> Result<()> {
    match tokio::time::timeout(timeout, txn.commit()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e @ sqlx::Error::WorkerCrashed)) => Err(Error::CommitUnknown {
            backend: BACKEND,
            detail: one_line(e),
        }),
        Ok(Err(e)) => Err(errors::sqlite(timeout, e)),
        // The worker thread may still complete the COMMIT.
        Err(_) => Err(errors::commit_timed_out(BACKEND, timeout)),
    }
}
