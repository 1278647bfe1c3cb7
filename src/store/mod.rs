//! The system of record: one small trait, a PostgreSQL and a SQLite
//! implementation, and the schema both share (`migrations/`).
//!
//! Every key is one row of `spillway_kv`: its type, its value (a string, or a
//! hash encoded by `keyspace::codec`), its absolute expiry and its version.
//! Deleted keys stay as tombstones (kind 0) so an older write cannot
//! resurrect them. Rows are ordered by `key_hash` so SCAN can hand out a
//! plain integer cursor that stays valid while keys come and go.
//!
//! Write-behind batches land through `Store::apply`, which stores each
//! instance's checkpoint (its applied WAL high-water mark) in
//! `spillway_checkpoints`, in the transaction that writes the rows, and
//! beside it its low-water version (`set_low_water`), which bounds what the
//! sweeper may purge. Records
//! the database rejects for good become dead letters (`dead_letters`) in
//! that same transaction.

pub mod dead_letters;
pub(crate) mod errors;
pub mod postgres;
mod rows;
pub mod sqlite;

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::keyspace::{Row, Version};

pub use dead_letters::{DeadLetter, Record, Refused, Whole};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `Store::begin` hands back: the open transaction and the rows it locked.
pub type Locked = (Box<dyn StoreTxn>, Vec<Row>);

/// The row kinds stored in `spillway_kv.kind`.
pub mod kind {
    pub const TOMBSTONE: i16 = 0;
    pub const STRING: i16 = 1;
    pub const HASH: i16 = 2;
}

/// How to reach the database: `[database]` of the config.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `postgres://…` or `sqlite://path?mode=rwc`.
    pub url: String,
    pub pool_size: u32,
    /// Per statement; past it the call fails with `Error::Timeout`.
    pub timeout: std::time::Duration,
    /// Waiting for a pooled connection; past it the call fails fast.
    pub acquire_timeout: std::time::Duration,
}

/// One page of a SCAN over the database keyspace.
#[derive(Debug, Default)]
pub struct ScanPage {
    /// Where the next page starts; 0 when the scan is complete.
    pub cursor: u64,
    /// Live keys with their type name ("string" | "hash").
    pub keys: Vec<(Bytes, &'static str)>,
}

/// Counts for `DBSIZE` and INFO's keyspace section.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyCounts {
    pub keys: u64,
    pub expires: u64,
}

/// What the read path needs of the database: rows by key. Separate from
/// `Store` so that a reader can route some keys elsewhere (mapped
/// namespaces) without standing in for the whole store.
pub trait RowSource: Send + Sync + 'static {
    /// "postgres" or "sqlite": named in client errors.
    fn name(&self) -> &'static str;

    /// Current rows of `keys`, in order; absent keys as `Row::absent()`,
    /// tombstones as a row without entry but with their version.
    fn get<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Vec<Row>>>;

    /// How long a cache fill of `key` may live when something other than
    /// `cache.ttl` decides it (a mapped namespace's `ttl`).
    fn ttl_for(&self, _key: &[u8]) -> Option<std::time::Duration> {
        None
    }
}

/// The database behind the cache. Implementations bind every key and value
/// as a query parameter and enforce `database.timeout` on each call.
pub trait Store: RowSource {
    /// Starts a transaction holding exclusive locks on `keys` (also keys that
    /// do not exist yet) until commit or drop, and returns their rows in
    /// order. Locks are taken in a fixed order, so transactions do not
    /// deadlock; another spillway process sharing the database waits too.
    fn begin<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Locked>>;

    /// Applies one write-behind batch of `instance`: upserts `rows` and
    /// raises the instance's checkpoint to `through`, in one transaction, so
    /// the database never holds a checkpoint without the rows it covers, nor
    /// (after a crash) rows whose checkpoint was lost.
    ///
    /// Keys are not locked: each row is written only over an older stored
    /// version, so a replayed batch changes nothing and an older write loses
    /// to a newer row, whoever wrote it. The checkpoint never moves back.
    /// `rows` may be empty (the checkpoint alone advances). On error nothing
    /// is written, except for `Error::CommitUnknown`; a failing row fails
    /// the whole batch (`Error::Rejected` when retrying cannot help).
    fn apply<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [(Bytes, Row)],
    ) -> BoxFuture<'a, Result<()>>;

    /// As `apply`, for a batch that may hold records the database rejects
    /// for good. One transaction records `parked` (later writes of keys
    /// that have a dead letter) as dead letters, upserts `rows`, records
    /// each row the database rejects (`Error::Rejected`) as a dead letter
    /// with its error instead, and raises the checkpoint to `through`.
    /// Returns the rejected rows. On error nothing is written, as `apply`.
    /// With `Whole::Block` the rows are one MULTI block (or multi-key
    /// command): if the database rejects any of them, all are dead-lettered.
    fn apply_with_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [Record],
        parked: &'a [Record],
        whole: Whole,
    ) -> BoxFuture<'a, Result<Vec<Refused>>>;

    /// Up to `limit` dead letters of `instance`, oldest first.
    fn dead_letters<'a>(
        &'a self,
        instance: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>>>;

    /// Every key of `instance` with dead letters, and how many it has.
    fn dead_letter_keys<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(Bytes, u64)>>>;

    /// Re-applies the dead letters of `key` in sequence order (the newest
    /// wins, and only over an older stored version) and deletes them, in
    /// one transaction; returns how many there were. When the database
    /// still rejects them it fails with `Error::Rejected` and nothing changes.
    fn retry_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>>;

    /// Deletes the dead letters of `key`; returns how many went.
    fn drop_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>>;

    /// The checkpoint `apply` stored for `instance`; `None` before its first
    /// batch. Read at start to know which WAL records are already applied.
    fn checkpoint<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<Option<u64>>>;

    /// Raises `instance`'s low-water version to `version` (creating its
    /// checkpoint row, with checkpoint 0, if it has none): a promise that
    /// every write the instance has pending or may still issue has a version
    /// at or above it. The stored value never goes down: a lower `version`
    /// (a report computed before a later one but landing after it) changes
    /// nothing. That is safe because every report is a bound on all writes
    /// pending at the time it is computed and on all writes issued later,
    /// whose versions only grow; a later report can only be higher.
    fn set_low_water<'a>(
        &'a self,
        instance: &'a str,
        version: Version,
    ) -> BoxFuture<'a, Result<()>>;

    /// The lowest low-water version over every instance with a checkpoint
    /// row; a row that never had one reported counts as `Version::ZERO`, so
    /// it keeps every tombstone until its instance reports. `None` when no
    /// instance has a checkpoint row (write-through only deployments).
    fn low_water(&self) -> BoxFuture<'_, Result<Option<Version>>>;

    /// Live keys with `key_hash > cursor`, about `count` of them, in hash order.
    fn scan(&self, cursor: u64, count: usize, now_ms: i64) -> BoxFuture<'_, Result<ScanPage>>;

    fn count(&self, now_ms: i64) -> BoxFuture<'_, Result<KeyCounts>>;

    /// The highest version stored, so versions issued after a restart are above it.
    fn max_version(&self) -> BoxFuture<'_, Result<Version>>;

    /// Deletes up to `limit` rows that are tombstones or expired and whose
    /// version is below `tombstones_before`; returns how many went.
    ///
    /// Expired rows wait for the same bound as tombstones: until every
    /// instance has applied its writes below that version, an older write
    /// could still arrive, and only the stored row's version makes it lose.
    /// The caller takes the bound at or below `low_water`.
    fn sweep(
        &self,
        now_ms: i64,
        tombstones_before: Version,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64>>;

    /// A cheap round trip for the health heartbeat.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Closes the pool at shutdown.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// The PostgreSQL pool, shared with mapped namespaces' statements.
    fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        None
    }
}

/// An open write transaction from `Store::begin`. Dropping it rolls back.
pub trait StoreTxn: Send {
    /// Writes each row (entry `None` = tombstone) with its version.
    fn put<'a>(&'a mut self, rows: &'a [(Bytes, Row)]) -> BoxFuture<'a, Result<()>>;

    /// Commits; a connection lost during COMMIT is `Error::CommitUnknown`.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<()>>;

    /// Ends the transaction without writing. Dropping it does the same, but
    /// may cost the store its connection; this lets it keep the connection.
    fn rollback(self: Box<Self>) -> BoxFuture<'static, ()> {
        drop(self);
        Box::pin(async {})
    }
}

/// Connects to the database named by `opts.url` (`postgres://`,
/// `postgresql://` or `sqlite:`) and brings its schema up to date with the
/// migrations embedded in the binary.
pub async fn connect(opts: &StoreOptions) -> Result<Arc<dyn Store>> {
    let url = opts.url.trim_start();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(opts).await?))
    } else if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(opts).await?))
    } else {
        // The URL itself is not echoed: it may carry a password.
        Err(Error::Config(
            "database.url must start with postgres://, postgresql:// or sqlite:".into(),
        ))
    }
}

/// A stable, positive 63-bit hash of a key (FNV-1a), never 0.
///
/// Stored with every row: SCAN's cursor and Postgres's per-key advisory
/// locks both use it, so it must never change between releases.
pub fn key_hash(key: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let h = (h & (i64::MAX as u64)) as i64;
    if h == 0 { 1 } else { h }
}

#[cfg(test)]
mod tests {
    use super::key_hash;

    #[test]
    fn key_hash_is_stable_and_positive() {
        assert_eq!(key_hash(b""), 0x4bf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c_u64 as i64 & i64::MAX);
        for k in [&b"x"[..], b"user:1", b"\0\xff"] {
            assert!(key_hash(k) > 0);
        }
    }
}
