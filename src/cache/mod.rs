//! The cache tier: an in-process cache or a (shared) Redis, behind one
//! trait whose calls take batches, so a pipeline of reads from one or many
//! clients can become one round trip.
//!
//! Fills go through leases (memcached's answer to the stale-fill race): a
//! miss takes a lease on the key, every write or invalidation cancels it,
//! and a fill is stored only while its lease still stands. A reader that read
//! the database before a write committed therefore cannot store the old
//! value after the writer's invalidation.
//!
//! [`Cache`] picks the backend at start ([`connect`]) and dispatches to it
//! with a `match`, so the hit path pays no boxing or dynamic call.

pub mod aside;
pub mod memory;
pub mod pipeline;
pub mod redis;
pub mod reply;

use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::keyspace::Row;

pub use self::memory::MemoryCache;
pub use self::redis::RedisCache;

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

    /// Cached rows of `keys`, in order (exactly one per key); `None` for
    /// misses (including keys under someone's lease and undecodable
    /// entries). The hit path calls this without a timer of its own: the
    /// tier fails the call within about `timeout` itself.
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

/// How long a fill of `row` may live: `ttl`, cut short by the key's own
/// expiry (`expire_at`, ms since the epoch) so a cached copy never outlives
/// the key. `None` when nothing is left (zero ttl, key already expired):
/// such a value is not stored. Never below 1 ms otherwise, because Redis
/// rejects `PX 0`.
pub fn fill_ttl(row: &Row, ttl: Duration, now_ms: i64) -> Option<Duration> {
    if ttl.is_zero() {
        return None;
    }
    let ttl = ttl.max(Duration::from_millis(1));
    match row.entry.as_ref().and_then(|e| e.expire_at) {
        None => Some(ttl),
        Some(at) if at <= now_ms => None,
        Some(at) => {
            let left = Duration::from_millis(at.saturating_sub(now_ms).unsigned_abs());
            Some(ttl.min(left))
        }
    }
}

/// The configured cache tier. An enum rather than a trait object so every
/// call is a direct, inlinable call into the backend.
pub enum Cache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

/// Builds the tier named by `backend` (`"memory"` or `"redis"`).
///
/// The Redis backend connects lazily and reconnects by itself: spillway must
/// start and serve from the database while Redis is down, so an unreachable
/// Redis is not an error here; calls fail with `Unavailable`/`Timeout` until
/// it answers again. Only an unknown backend or a malformed URL fail.
pub async fn connect(backend: &str, opts: &CacheOptions) -> Result<Cache> {
    match backend {
        "memory" => Ok(Cache::Memory(MemoryCache::new(opts))),
        "redis" => Ok(Cache::Redis(RedisCache::connect(opts).await?)),
        other => Err(Error::Config(format!(
            "cache.backend must be \"memory\" or \"redis\", not {other:?}"
        ))),
    }
}

/// Forwards one call to whichever backend is configured.
macro_rules! dispatch {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            Cache::Memory($c) => $call,
            Cache::Redis($c) => $call,
        }
    };
}

impl CacheTier for Cache {
    fn name(&self) -> &'static str {
        dispatch!(self, c => c.name())
    }

    async fn get_many(&self, keys: &[Bytes]) -> Result<Vec<Option<Row>>> {
        dispatch!(self, c => c.get_many(keys).await)
    }

    async fn lease(&self, key: &Bytes) -> Result<Option<Lease>> {
        dispatch!(self, c => c.lease(key).await)
    }

    async fn fill(&self, key: &Bytes, lease: Lease, row: &Row, ttl: Duration) -> Result<bool> {
        dispatch!(self, c => c.fill(key, lease, row, ttl).await)
    }

    async fn release(&self, key: &Bytes, lease: Lease) -> Result<()> {
        dispatch!(self, c => c.release(key, lease).await)
    }

    async fn invalidate(&self, keys: &[Bytes]) -> Result<()> {
        dispatch!(self, c => c.invalidate(keys).await)
    }

    async fn flush(&self) -> Result<()> {
        dispatch!(self, c => c.flush().await)
    }

    async fn ping(&self) -> Result<()> {
        dispatch!(self, c => c.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, Value};

    fn row_expiring(at: Option<i64>) -> Row {
        Row {
            entry: Some(Entry {
                value: Value::Str(Bytes::from_static(b"v")),
                expire_at: at,
            }),
            ..Row::default()
        }
    }

    #[test]
    fn fill_ttl_is_cut_by_key_expiry_and_never_zero() {
        let s = Duration::from_secs(1);
        assert_eq!(fill_ttl(&Row::absent(), s, 0), Some(s));
        assert_eq!(fill_ttl(&Row::absent(), Duration::ZERO, 0), None);
        assert_eq!(
            fill_ttl(&Row::absent(), Duration::from_micros(10), 0),
            Some(Duration::from_millis(1))
        );
        assert_eq!(fill_ttl(&row_expiring(None), s, 5), Some(s));
        assert_eq!(
            fill_ttl(&row_expiring(Some(1_250)), s, 1_000),
            Some(Duration::from_millis(250))
        );
        assert_eq!(fill_ttl(&row_expiring(Some(5_000)), s, 1_000), Some(s));
        assert_eq!(fill_ttl(&row_expiring(Some(1_000)), s, 1_000), None);
        assert_eq!(fill_ttl(&row_expiring(Some(10)), s, 1_000), None);
    }
}
