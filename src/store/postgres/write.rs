//! PostgreSQL writes: the batch upsert both `StoreTxn::put` and
//! `Store::apply` use, the checkpoint row (and its low-water version), and COMMIT with its outcome.

use std::time::Duration;

use bytes::Bytes;
use sqlx::{PgExecutor, Postgres, Transaction};

use super::BACKEND;
use crate::error::{Error, Result};
use crate::keyspace::{Row, Version};
use crate::store::errors::{self, one_line};
use crate::store::{key_hash, rows};

/// One batch upsert; each key's last row in `rows` is the one written, and
/// only over an older stored version.
///
/// Rows go in key order. Write-behind batches take no advisory locks, so two
/// instances may upsert overlapping keys at once; taking the row locks in
/// one order means they queue instead of deadlocking.
pub(super) async fn upsert<'e>(
    ex: impl PgExecutor<'e>,
    rows: &[(Bytes, Row)],
    timeout: Duration,
) -> Result<()> {
    let mut batch = rows::last_per_key(rows);
    if batch.is_empty() {
        return Ok(());
    }
    batch.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let n = batch.len();
    let (mut keys, mut hashes, mut kinds) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut values, mut expires, mut versions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (key, row) in batch {
        let c = rows::to_columns(row);
        keys.push(key.as_ref());
        hashes.push(key_hash(key));
        kinds.push(c.kind);
        values.push(c.value.map(|v| v.to_vec()));
        expires.push(c.expire_at);
        versions.push(c.version);
    }
    sqlx::query(
        "INSERT INTO spillway_kv (key, key_hash, kind, value, expire_at, version) \
         SELECT * FROM UNNEST($1::bytea[], $2::bigint[], $3::smallint[], $4::bytea[], \
                              $5::bigint[], $6::bigint[]) \
         ON CONFLICT (key) DO UPDATE SET key_hash = EXCLUDED.key_hash, kind = EXCLUDED.kind, \
             value = EXCLUDED.value, expire_at = EXCLUDED.expire_at, version = EXCLUDED.version \
         WHERE spillway_kv.version < EXCLUDED.version",
    )
    .bind(keys)
    .bind(hashes)
    .bind(kinds)
    .bind(values)
    .bind(expires)
    .bind(versions)
    .execute(ex)
    .await
    .map_err(|e| errors::postgres(timeout, e))?;
    Ok(())
}

/// Raises `instance`'s checkpoint to `through`, creating the row if needed;
/// a lower `through` (a replayed batch) leaves the stored one in place.
pub(super) async fn advance_checkpoint<'e>(
    ex: impl PgExecutor<'e>,
    instance: &str,
    through: u64,
    now_ms: i64,
    timeout: Duration,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO spillway_checkpoints (instance, seq, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (instance) DO UPDATE \
         SET seq = GREATEST(spillway_checkpoints.seq, EXCLUDED.seq), \
             updated_at = EXCLUDED.updated_at",
    )
    .bind(instance)
    .bind(rows::seq_param(BACKEND, through)?)
    .bind(now_ms)
    .execute(ex)
    .await
    .map_err(|e| errors::postgres(timeout, e))?;
    Ok(())
}

/// Raises `instance`'s low-water version to `version`, creating its row
/// (with checkpoint 0: nothing applied yet) if needed; a lower `version`
/// leaves the stored one in place. GREATEST ignores a NULL operand.
pub(super) async fn raise_low_water<'e>(
    ex: impl PgExecutor<'e>,
    instance: &str,
    version: Version,
    now_ms: i64,
    timeout: Duration,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO spillway_checkpoints (instance, seq, updated_at, low_version) \
         VALUES ($1, 0, $2, $3) \
         ON CONFLICT (instance) DO UPDATE \
         SET low_version = GREATEST(spillway_checkpoints.low_version, EXCLUDED.low_version)",
    )
    .bind(instance)
    .bind(now_ms)
    .bind(version.as_i64())
    .execute(ex)
    .await
    .map_err(|e| errors::postgres(timeout, e))?;
    Ok(())
}

/// The lowest low-water version over every instance with a checkpoint row
/// (an unreported one counts as 0); `None` when there is no row at all.
pub(super) async fn read_low_water<'e>(
    ex: impl PgExecutor<'e>,
    timeout: Duration,
) -> Result<Option<Version>> {
    let low: Option<i64> =
        sqlx::query_scalar("SELECT min(coalesce(low_version, 0)) FROM spillway_checkpoints")
            .fetch_one(ex)
            .await
            .map_err(|e| errors::postgres(timeout, e))?;
    Ok(low.map(Version::from_i64))
}

/// `instance`'s stored checkpoint, `None` before its first batch.
pub(super) async fn read_checkpoint<'e>(
    ex: impl PgExecutor<'e>,
    instance: &str,
    timeout: Duration,
) -> Result<Option<u64>> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM spillway_checkpoints WHERE instance = $1")
            .bind(instance)
            .fetch_optional(ex)
            .await
            .map_err(|e| errors::postgres(timeout, e))?;
    seq.map(|s| rows::seq_column(BACKEND, s)).transpose()
}

/// Commits within `timeout`. A connection lost during COMMIT, or no answer
/// in time, is `Error::CommitUnknown`: the server may have committed.
pub(crate) async fn commit(txn: Transaction<'static, Postgres>, timeout: Duration) -> Result<()> {
    commit_with(timeout, txn.commit()).await
}

/// As `commit`, for any way of sending the COMMIT.
pub(super) async fn commit_with(
    timeout: Duration,
    commit: impl Future<Output = std::result::Result<(), sqlx::Error>>,
) -> Result<()> {
    match tokio::time::timeout(timeout, commit).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if errors::postgres_connection_lost(&e) => Err(Error::CommitUnknown {
            backend: BACKEND,
            detail: one_line(e),
        }),
        Ok(Err(e)) => Err(errors::postgres(timeout, e)),
        Err(_) => Err(errors::commit_timed_out(BACKEND, timeout)),
    }
}
