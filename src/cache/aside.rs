//! The cache-aside read path: hits from the cache tier; misses read the
//! database once per key however many readers wait (single-flight) and fill
//! the cache under a lease, so a fill racing a write never stores the older
//! value (CONTRACT invariant 5).
//!
//! Writers call `invalidate` after they commit: it deletes the cached
//! entries, cancels the leases, and detaches in-flight reads of those keys so
//! that every read that starts after the write sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::{CacheTier, Lease};
use crate::error::{Error, Result, with_timeout};
use crate::health::{BackendHealth, CacheHealth};
use crate::keyspace::{Row, WorkingSet};
use crate::stats::Stats;
use crate::store::RowSource;
use crate::write::overlay::Overlay;

type Outcome = Option<std::result::Result<Row, Arc<Error>>>;

/// One in-flight database read of a key that other readers may join.
struct Flight {
    done: watch::Sender<Outcome>,
}

/// Cache-aside reads and post-write invalidation over one cache tier.
pub struct CacheAside<C> {
    cache: C,
    store: Arc<dyn RowSource>,
    health: Arc<CacheHealth>,
    stats: Arc<Stats>,
    /// In-flight reads by key. Weak: only the leader owns its flight, so a
    /// cancelled leader drops the sender and its followers read alone.
    flights: Mutex<HashMap<Bytes, Weak<Flight>>>,
    /// Pending write-behind writes, consulted before anything else.
    overlay: Option<Arc<Overlay>>,
    /// The database heartbeat: misses fail fast while it says down.
    db_health: Arc<BackendHealth>,
    /// `cache.ttl` and `cache.negative_ttl` in ms; reloads change them.
    ttl_ms: AtomicU64,
    negative_ttl_ms: AtomicU64,
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
        store: Arc<dyn RowSource>,
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
            overlay: None,
            db_health: Arc::new(BackendHealth::default()),
            ttl_ms: AtomicU64::new(millis(opts.ttl)),
            negative_ttl_ms: AtomicU64::new(millis(opts.negative_ttl)),
            timeout: opts.cache_timeout,
            db_timeout: opts.db_timeout,
        }
    }

    /// Reads see pending write-behind writes before anything else.
    pub fn with_overlay(mut self, overlay: Arc<Overlay>) -> Self {
        self.overlay = Some(overlay);
        self
    }

    /// Misses fail fast, without waiting for a connection, while the
    /// database heartbeat says it is down.
    pub fn with_db_health(mut self, health: Arc<BackendHealth>) -> Self {
        self.db_health = health;
        self
    }

    /// The database heartbeat state this read path fails fast on.
    pub fn db_health(&self) -> &BackendHealth {
        &self.db_health
    }

    /// New fills take these TTLs (a reload changed them); entries already
    /// cached keep theirs.
    pub fn set_ttls(&self, ttl: Duration, negative_ttl: Duration) {
        self.ttl_ms.store(millis(ttl), Ordering::Relaxed);
        self.negative_ttl_ms
            .store(millis(negative_ttl), Ordering::Relaxed);
    }

    pub fn cache(&self) -> &C {
        &self.cache
    }

    pub fn health(&self) -> &CacheHealth {
        &self.health
    }

    /// Loads `keys` into a working set: pending writes first, then the
    /// cache, then the database for misses. Fails only when a miss cannot be
    /// read from the database.
    pub async fn read(&self, keys: &[&Bytes], now_ms: i64) -> Result<WorkingSet> {
        let unique = distinct(keys);
        let rows = self.rows(&unique).await?;
        let mut ws = WorkingSet::with_capacity(now_ms, unique.len());
        for (key, row) in unique.into_iter().zip(rows) {
            ws.load(key, row);
        }
        Ok(ws)
    }

    /// The current rows of distinct `keys`, in order, from the overlay of
    /// pending writes, the cache, or the database.
    pub async fn rows(&self, keys: &[Bytes]) -> Result<Vec<Row>> {
        let pending = match &self.overlay {
            Some(overlay) => keys.iter().map(|k| overlay.get(k)).collect(),
            None => Vec::new(),
        };
        if pending.iter().all(Option::is_none) {
            return self.cached_or_loaded(keys).await;
        }
        let mut rows = pending;
        let (at, rest): (Vec<usize>, Vec<Bytes>) = (0..keys.len())
            .filter(|&i| rows[i].is_none())
            .map(|i| (i, keys[i].clone()))
            .unzip();
        if !rest.is_empty() {
            for (i, row) in at.into_iter().zip(self.cached_or_loaded(&rest).await?) {
                rows[i] = Some(row);
            }
        }
        Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Rows of keys without pending writes: cache hits, then misses from
    /// the database. The tier bounds its own calls by the cache timeout
    /// (see [`CacheTier::get_many`]), so no timer is set up per read.
    async fn cached_or_loaded(&self, keys: &[Bytes]) -> Result<Vec<Row>> {
        let use_cache = self.health.usable();
        let cached = if use_cache {
            match self.cache.get_many(keys).await {
                Ok(rows) => rows,
                Err(e) => {
                    Stats::add(&self.stats.cache_errors, 1);
                    tracing::debug!(error = %e, "cache read failed; reading the database");
                    vec![None; keys.len()]
                }
            }
        } else {
            vec![None; keys.len()]
        };
        let hits = cached.iter().filter(|r| r.is_some()).count();
        Stats::add(&self.stats.cache_hits, hits as u64);
        if hits == keys.len() {
            return Ok(cached.into_iter().flatten().collect());
        }
        Stats::add(&self.stats.cache_misses, (keys.len() - hits) as u64);
        let (miss_at, misses): (Vec<usize>, Vec<Bytes>) = (0..keys.len())
            .filter(|&i| cached[i].is_none())
            .map(|i| (i, keys[i].clone()))
            .unzip();
        let mut rows = cached;
        for (i, row) in miss_at
            .into_iter()
            .zip(self.load_shared(&misses, use_cache).await?)
        {
            rows[i] = Some(row);
        }
        Ok(rows.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Misses: join the in-flight reads of keys someone already reads, and
    /// lead one batched read for the rest.
    async fn load_shared(&self, keys: &[Bytes], use_cache: bool) -> Result<Vec<Row>> {
        let mut led: Vec<(usize, Arc<Flight>)> = Vec::new();
        let mut joined: Vec<(usize, watch::Receiver<Outcome>)> = Vec::new();
        {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            for (i, key) in keys.iter().enumerate() {
                match flights.get(key).and_then(Weak::upgrade) {
                    Some(f) => joined.push((i, f.done.subscribe())),
                    None => {
                        let flight = Arc::new(Flight {
                            done: watch::channel(None).0,
                        });
                        flights.insert(key.clone(), Arc::downgrade(&flight));
                        led.push((i, flight));
                    }
                }
            }
        }
        let mut rows = vec![Row::absent(); keys.len()];
        if !led.is_empty() {
            let led_keys: Vec<Bytes> = led.iter().map(|(i, _)| keys[*i].clone()).collect();
            let result = self.load_and_fill(&led_keys, use_cache).await;
            for (n, (i, flight)) in led.iter().enumerate() {
                let outcome = match &result {
                    Ok(loaded) => Ok(loaded[n].clone()),
                    Err(e) => Err(Arc::new(e.shared())),
                };
                flight.done.send_replace(Some(outcome));
                self.detach(&keys[*i], flight);
            }
            for ((i, _), row) in led.iter().zip(result?) {
                rows[*i] = row;
            }
        }
        for (i, mut rx) in joined {
            let shared = match rx.wait_for(|o| o.is_some()).await {
                Ok(outcome) => outcome.as_ref().map(|r| match r {
                    Ok(row) => Ok(row.clone()),
                    Err(e) => Err(e.shared()),
                }),
                // The leader was cancelled (its client went away): read alone.
                Err(_) => None,
            };
            rows[i] = match shared {
                Some(result) => result?,
                None => self
                    .load_and_fill(std::slice::from_ref(&keys[i]), use_cache)
                    .await?
                    .remove(0),
            };
        }
        Ok(rows)
    }

    fn detach(&self, key: &Bytes, flight: &Arc<Flight>) {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if flights
            .get(key)
            .is_some_and(|f| std::ptr::eq(f.as_ptr(), Arc::as_ptr(flight)))
        {
            flights.remove(key);
        }
    }

    /// Takes leases (when the cache is usable), reads the database once for
    /// all `keys`, and fills each under its lease. Rows come back in order.
    async fn load_and_fill(&self, keys: &[Bytes], use_cache: bool) -> Result<Vec<Row>> {
        if !self.db_health.is_up() {
            return Err(Error::unavailable(
                self.store.name(),
                "marked down after failed health checks",
            ));
        }
        let leases = if use_cache {
            futures::future::join_all(keys.iter().map(|k| self.try_lease(k))).await
        } else {
            vec![None; keys.len()]
        };
        Stats::add(&self.stats.db_reads, 1);
        let read = with_timeout(self.store.name(), self.db_timeout, self.store.get(keys)).await;
        let rows = match read {
            Ok(rows) if rows.len() == keys.len() => rows,
            Ok(_) => Err(Error::unavailable(
                self.store.name(),
                "returned the wrong number of rows",
            ))?,
            Err(e) => {
                let give_back = keys
                    .iter()
                    .zip(&leases)
                    .filter_map(|(k, l)| Some(self.give_back(k, (*l)?)));
                futures::future::join_all(give_back).await;
                return Err(e);
            }
        };
        let fills = keys
            .iter()
            .zip(&leases)
            .zip(&rows)
            .filter_map(|((k, l), row)| Some(self.fill(k, (*l)?, row)));
        futures::future::join_all(fills).await;
        Ok(rows)
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
            let ttl = Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed));
            self.store.ttl_for(key).unwrap_or(ttl)
        } else {
            Duration::from_millis(self.negative_ttl_ms.load(Ordering::Relaxed))
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

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `keys` without repeats, in first-seen order.
fn distinct(keys: &[&Bytes]) -> Vec<Bytes> {
    let mut unique: Vec<Bytes> = Vec::with_capacity(keys.len());
    if keys.len() <= 32 {
        for k in keys {
            if !unique.iter().any(|u| u == *k) {
                unique.push((*k).clone());
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity_and_hasher(
            keys.len(),
            foldhash::fast::RandomState::default(),
        );
        for k in keys {
            if seen.insert(*k) {
                unique.push((*k).clone());
            }
        }
    }
    unique
}
