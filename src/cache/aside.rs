//! The cache-aside read path: hits from the cache tier; misses read the
//! database once per key however many readers wait (single-flight) and fill
//! the cache under a lease, so a fill racing a write never stores the older
//! value (CONTRACT invariant 5).
//!
//! Writers call `invalidate` after they commit: it deletes the cached
//! entries, cancels the leases, and detaches in-flight reads of those keys so
//! that every read that starts after the write sees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{CacheTier, Lease};
use crate::error::{Error, Result, with_timeout};
use crate::health::CacheHealth;
use crate::keyspace::{Row, WorkingSet};
use crate::stats::Stats;
use crate::store::Store;

type Outcome = Option<std::result::Result<Row, Arc<Error>>>;

/// One in-flight database read of a key that other readers may join.
struct Flight {
    done: watch::Sender<Outcome>,
}

/// Cache-aside reads and post-write invalidation over one cache tier.
pub struct CacheAside<C> {
    cache: C,
    store: Arc<dyn Store>,
    health: Arc<CacheHealth>,
    stats: Arc<Stats>,
    flights: Mutex<HashMap<Bytes, Arc<Flight>>>,
    ttl: Duration,
    negative_ttl: Duration,
    timeout: Duration,
    db_timeout: Duration,
}

/// TTLs and timeouts of the read path.
#[derive(Debug, Clone, Copy)]
pub struct AsideOptions {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub cache_timeout: Duration,
    pub db_timeout: Duration,
}

impl<C: CacheTier> CacheAside<C> {
    pub fn new(
        cache: C,
        store: Arc<dyn Store>,
        health: Arc<CacheHealth>,
        stats: Arc<Stats>,
        opts: AsideOptions,
    ) -> Self {
        CacheAside {
            cache,
            store,
            health,
            stats,
            flights: Mutex::new(HashMap::new()),
            ttl: opts.ttl,
            negative_ttl: opts.negative_ttl,
            timeout: opts.cache_timeout,
            db_timeout: opts.db_timeout,
        }
    }

    pub fn cache(&self) -> &C {
        &self.cache
    }

    pub fn health(&self) -> &CacheHealth {
        &self.health
    }

    /// Loads `keys` into a working set: cache first, then the database for
    /// misses. Fails only when a miss cannot be read from the database.
    pub async fn read(&self, keys: &[&Bytes], now_ms: i64) -> Result<WorkingSet> {
        let mut ws = WorkingSet::new(now_ms);
        let mut unique: Vec<Bytes> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.iter().any(|u| u == *k) {
                unique.push((*k).clone());
            }
        }
        let use_cache = self.health.usable();
        let cached = if use_cache {
            match with_timeout(
                self.cache.name(),
                self.timeout,
                self.cache.get_many(&unique),
            )
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    Stats::add(&self.stats.cache_errors, 1);
                    tracing::debug!(error = %e, "cache read failed; reading the database");
                    vec![None; unique.len()]
                }
            }
        } else {
            vec![None; unique.len()]
        };
        let mut misses = Vec::new();
        for (key, row) in unique.into_iter().zip(cached) {
            match row {
                Some(row) => {
                    Stats::add(&self.stats.cache_hits, 1);
                    ws.load(key, row);
                }
                None => misses.push(key),
            }
        }
        if misses.is_empty() {
            return Ok(ws);
        }
        Stats::add(&self.stats.cache_misses, misses.len() as u64);
        let loads = misses.iter().map(|k| self.load_shared(k, use_cache));
        let rows = futures::future::join_all(loads).await;
        for (key, row) in misses.into_iter().zip(rows) {
            ws.load(key, row?);
        }
        Ok(ws)
    }

    /// A miss: join the key's in-flight read, or lead a new one.
    async fn load_shared(&self, key: &Bytes, use_cache: bool) -> Result<Row> {
        let joined = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            match flights.get(key) {
                Some(f) => Err(f.done.subscribe()),
                None => {
                    let (tx, _) = watch::channel(None);
                    let flight = Arc::new(Flight { done: tx });
                    flights.insert(key.clone(), flight.clone());
                    Ok(flight)
                }
            }
        };
        match joined {
            Ok(flight) => {
                let result = self.load_and_fill(key, use_cache).await;
                let shared = match &result {
                    Ok(row) => Ok(row.clone()),
                    Err(e) => Err(Arc::new(e.shared())),
                };
                flight.done.send_replace(Some(shared));
                self.detach(key, &flight);
                result
            }
            Err(mut rx) => {
                let shared = match rx.wait_for(|o| o.is_some()).await {
                    Ok(outcome) => outcome.as_ref().map(|r| match r {
                        Ok(row) => Ok(row.clone()),
                        Err(e) => Err(e.shared()),
                    }),
                    // The leader was cancelled (its client went away).
                    Err(_) => None,
                };
                match shared {
                    Some(result) => result,
                    None => self.load_and_fill(key, use_cache).await,
                }
            }
        }
    }

    fn detach(&self, key: &Bytes, flight: &Arc<Flight>) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }

    /// Takes a lease (when the cache is usable), reads the database and
    /// fills under the lease.
    async fn load_and_fill(&self, key: &Bytes, use_cache: bool) -> Result<Row> {
        let lease = if use_cache {
            self.try_lease(key).await
        } else {
            None
        };
        Stats::add(&self.stats.db_reads, 1);
        let row = with_timeout(
            self.store.name(),
            self.db_timeout,
            self.store.get(std::slice::from_ref(key)),
        )
        .await
        .map(|mut rows| rows.pop().unwrap_or_default());
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                if let Some(lease) = lease {
                    self.give_back(key, lease).await;
                }
                return Err(e);
            }
        };
        if let Some(lease) = lease {
            self.fill(key, lease, &row).await;
        }
        Ok(row)
    }

    async fn try_lease(&self, key: &Bytes) -> Option<Lease> {
        match with_timeout(self.cache.name(), self.timeout, self.cache.lease(key)).await {
            Ok(lease) => lease,
            Err(e) => {
                Stats::add(&self.stats.cache_errors, 1);
                tracing::debug!(error = %e, "cache lease failed");
                None
            }
        }
    }

    async fn fill(&self, key: &Bytes, lease: Lease, row: &Row) {
        let configured = if row.entry.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        let Some(ttl) = super::fill_ttl(row, configured, crate::keyspace::now_millis()) else {
            self.give_back(key, lease).await;
            return;
        };
        match with_timeout(
            self.cache.name(),
            self.timeout,
            self.cache.fill(key, lease, row, ttl),
        )
        .await
        {
            Ok(true) => Stats::add(&self.stats.cache_fills, 1),
            Ok(false) => Stats::add(&self.stats.cache_fills_refused, 1),
            Err(e) => {
                Stats::add(&self.stats.cache_errors, 1);
                tracing::debug!(error = %e, "cache fill failed");
            }
        }
    }

    async fn give_back(&self, key: &Bytes, lease: Lease) {
        if with_timeout(
            self.cache.name(),
            self.timeout,
            self.cache.release(key, lease),
        )
        .await
        .is_err()
        {
            Stats::add(&self.stats.cache_errors, 1);
        }
    }

    /// After a committed write: drop cached copies and leases of `keys` and
    /// detach in-flight reads, so later reads see the write. If the cache
    /// cannot be reached the keys are recorded dirty and the cache serves no
    /// hits until they are invalidated.
    pub async fn invalidate(&self, keys: &[Bytes]) {
        {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            for k in keys {
                flights.remove(k);
            }
        }
        if self.health.record_if_unusable(keys) {
            return;
        }
        if let Err(e) =
            with_timeout(self.cache.name(), self.timeout, self.cache.invalidate(keys)).await
        {
            Stats::add(&self.stats.cache_errors, 1);
            tracing::warn!(error = %e, keys = keys.len(), "cache invalidation failed; cache hits paused until recovered");
            self.health.mark_dirty(keys);
        }
    }

    /// One recovery attempt: invalidate what became dirty while the cache
    /// was unusable, then trust it again. Called by the heartbeat.
    pub async fn recover(&self) -> bool {
        use crate::health::Recovery;
        let work = self.health.take_recovery();
        let result = match &work {
            Recovery::Nothing => Ok(()),
            Recovery::Invalidate(keys) => {
                with_timeout(self.cache.name(), self.timeout, self.cache.invalidate(keys)).await
            }
            Recovery::FlushAll => self.cache.flush().await,
        };
        match result {
            Ok(()) => self.health.trust_if_clean(),
            Err(e) => {
                tracing::debug!(error = %e, "cache recovery failed; will retry");
                self.health.restore(work);
                false
            }
        }
    }
}
