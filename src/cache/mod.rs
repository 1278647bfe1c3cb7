//! The cache tier: an in-process cache or a (shared) Redis, behind one
//! trait whose calls take batches, so a pipeline of reads from one or many
//! clients can become one round trip.
//!
//! Fills go through leases (memcached's answer to the stale-fill race): a
//! miss takes a lease on the key, every write or invalidation cancels it,
//! and a fill is stored only while its lease still stands. A reader that read
//! the database before a write committed therefore cannot store the old
//! value after the writer's invalidation.

pub mod aside;
pub mod memory;
pub mod redis;

use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::keyspace::Row;

/// Proof of a miss, handed back to `fill`. Random per lease, so leases from
/// several spillway instances sharing one Redis never match each other's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease(pub u64);

/// How to build the cache tier: `[cache]` of the config.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// `redis://…` for the Redis backend; unused by the memory backend.
    pub url: Option<String>,
    /// Namespace in a shared Redis: every cache key starts with it.
    pub key_prefix: String,
    /// Memory backend bound (approximate bytes of keys and values).
    pub max_bytes: u64,
    /// Per operation; past it the call fails with `Error::Timeout`.
    pub timeout: Duration,
    /// How long a lease stands if its holder never fills (crashed reader).
    pub lease_ttl: Duration,
}

/// A cache tier. Rows carry their version and expiry; a cached negative
/// entry is a row without entry ("known absent").
pub trait CacheTier: Send + Sync + 'static {
    /// "memory" or "redis": named in logs and errors.
    fn name(&self) -> &'static str;

    /// Cached rows of `keys`, in order; `None` for misses (including keys
    /// under someone's lease and undecodable entries).
    fn get_many(&self, keys: &[Bytes]) -> impl Future<Output = Result<Vec<Option<Row>>>> + Send;

    /// Takes the fill lease on a missed key; `None` when another reader
    /// holds one (that reader fills; this one answers without filling).
    fn lease(&self, key: &Bytes) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// Stores `row` for `ttl` if `lease` still stands; true when stored.
    /// A stored row replaces the lease.
    fn fill(
        &self,
        key: &Bytes,
        lease: Lease,
        row: &Row,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Gives a lease back without filling (e.g. negative caching disabled).
    fn release(&self, key: &Bytes, lease: Lease) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the entries of `keys` and cancels their leases.
    fn invalidate(&self, keys: &[Bytes]) -> impl Future<Output = Result<()>> + Send;

    /// Deletes everything this tier holds for spillway (only under
    /// `key_prefix` in a shared Redis).
    fn flush(&self) -> impl Future<Output = Result<()>> + Send;

    /// A cheap round trip for the health heartbeat.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
}
