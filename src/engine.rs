//! The shared state every connection talks to: the store, the cache tier,
//! the write policy, health and statistics, and the background tasks that
//! keep them honest (heartbeats, cache recovery, the expiry sweeper).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::aside::{AsideOptions, CacheAside};
use crate::cache::{self, Cache, CacheOptions, CacheTier};
use crate::cmd::Exec;
use crate::config::{Config, Policy};
use crate::error::{Error, Result, with_timeout};
use crate::health::{BackendHealth, CacheHealth};
use crate::keyspace::{Hlc, Version, now_millis};
use crate::mapped::Mapped;
use crate::resp::Frame;
use crate::stats::Stats;
use crate::store::{self, Store, StoreOptions};
use crate::write::overlay::Overlay;
use crate::write::policy::{self, Writer};
use crate::write::through::WriteThrough;
use crate::write::{Call, Outcome, RunOutcome, Watched};

/// How often heartbeats probe each backend.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the sweeper looks for expired rows and old tombstones.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Rows the sweeper deletes per statement.
const SWEEP_BATCH: usize = 1000;

pub struct Engine {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub aside: Arc<CacheAside<Cache>>,
    pub stats: Arc<Stats>,
    pub db_health: Arc<BackendHealth>,
    /// Keys that address rows of existing tables, when configured.
    pub mapped: Option<Arc<Mapped>>,
    writer: Writer<Cache>,
    /// `write.policy = "read-only"` in force (switchable by reload).
    read_only: std::sync::atomic::AtomicBool,
    /// The config in force: `config` plus what reloads changed.
    live: std::sync::Mutex<Config>,
    /// The invalidation listener, until `spawn_background` runs it.
    listener: std::sync::Mutex<Option<sqlx::postgres::PgListener>>,
    started_ms: i64,
}

impl Engine {
    /// Connects the backends (migrations run here) and recovers the clock.
    pub async fn open(config: Config) -> Result<Arc<Engine>> {
        let store = store::connect(&StoreOptions {
            url: config.database.url.clone(),
            pool_size: config.database.pool_size,
            timeout: config.database.timeout,
            acquire_timeout: config.database.acquire_timeout,
        })
        .await?;
        let cache = cache::connect(
            &config.cache.backend,
            &CacheOptions {
                url: config.cache.url.clone(),
                key_prefix: config.cache.key_prefix.clone(),
                max_bytes: config.cache.max_bytes.0,
                timeout: config.cache.timeout,
                lease_ttl: config.database.timeout + config.cache.timeout,
            },
        )
        .await?;
        let mapped = match store.postgres_pool() {
            Some(pool) if !config.namespaces.is_empty() => Some(Arc::new(
                Mapped::open(&config.namespaces, pool, config.database.timeout).await?,
            )),
            _ => None,
        };
        // Reads of mapped keys go to their tables; everything else is unchanged.
        let read_store: Arc<dyn crate::store::RowSource> = match &mapped {
            Some(m) => Arc::new(crate::mapped::store::Routed {
                kv: store.clone(),
                mapped: m.clone(),
            }),
            None => store.clone(),
        };
        let hlc = Arc::new(Hlc::new());
        hlc.observe(
            with_timeout(store.name(), config.database.timeout, store.max_version()).await?,
        );
        let stats = Arc::new(Stats::default());
        let overlay = Arc::new(Overlay::default());
        let aside = CacheAside::new(
            cache,
            read_store,
            Arc::new(CacheHealth::default()),
            stats.clone(),
            AsideOptions {
                ttl: config.cache.ttl,
                negative_ttl: config.cache.negative_ttl,
                cache_timeout: config.cache.timeout,
                db_timeout: config.database.timeout,
            },
        );
        let db_health = Arc::new(BackendHealth::default());
        let aside = aside.with_db_health(db_health.clone());
        let behind = config.write.policy == Policy::WriteBehind;
        let aside = Arc::new(if behind {
            aside.with_overlay(overlay.clone())
        } else {
            aside
        });
        if !behind {
            policy::apply_leftover_wal(&config, store.clone(), aside.clone(), hlc.clone()).await?;
        }
        let writer = if behind {
            Writer::Behind(
                policy::open_behind(&config, store.clone(), aside.clone(), overlay, hlc).await?,
            )
        } else {
            Writer::Through(WriteThrough::new(
                store.clone(),
                aside.clone(),
                hlc,
                stats.clone(),
                config.database.timeout,
            ))
        };
        // LISTEN before the first client: no external write after this point
        // can go unnoticed.
        let listener = match &mapped {
            Some(m) => m.listen().await?,
            None => None,
        };
        let read_only = config.write.policy == Policy::ReadOnly;
        let live = std::sync::Mutex::new(config.clone());
        Ok(Arc::new(Engine {
            config,
            store,
            aside,
            stats,
            db_health,
            mapped,
            writer,
            listener: std::sync::Mutex::new(listener),
            read_only: std::sync::atomic::AtomicBool::new(read_only),
            live,
            started_ms: now_millis(),
        }))
    }

    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set_read_only(&self, on: bool) {
        self.read_only
            .store(on, std::sync::atomic::Ordering::Release);
    }

    /// The policy whose writer this process runs (read-only runs the
    /// write-through writer, refusing writes before they reach it).
    pub fn base_policy(&self) -> Policy {
        match self.config.write.policy {
            Policy::WriteBehind => Policy::WriteBehind,
            _ => Policy::WriteThrough,
        }
    }

    pub(crate) fn live_config(&self) -> Config {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_live_config(&self, config: Config) {
        *self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    /// Runs one read command through the cache-aside path.
    pub async fn read(&self, call: &Call) -> Frame {
        self.read_many(std::slice::from_ref(call))
            .await
            .pop()
            .unwrap_or_else(|| Frame::err("no reply"))
    }

    /// Runs consecutive read commands (a pipeline's run of reads) over one
    /// load of all their keys, as one MGET would: one round trip to the
    /// cache tier, misses read together, handlers in order.
    pub async fn read_many(&self, calls: &[Call]) -> Vec<Frame> {
        if let Some(m) = &self.mapped
            && calls.iter().any(|c| m.check_read(c).is_err())
        {
            let mut replies = Vec::with_capacity(calls.len());
            for call in calls {
                replies.push(match m.check_read(call) {
                    Err(refused) => refused,
                    Ok(()) => Box::pin(self.read_many(std::slice::from_ref(call)))
                        .await
                        .remove(0),
                });
            }
            return replies;
        }
        let keys: Vec<&Bytes> = calls
            .iter()
            .flat_map(|c| c.spec.key_iter(&c.argv))
            .collect();
        let mut ws = match self.load_for_read(&keys).await {
            Ok(ws) => ws,
            // One miss failed (database down): each read alone, so hits
            // and pending writes are still served and only misses fail.
            Err(_) if calls.len() > 1 => {
                let mut replies = Vec::with_capacity(calls.len());
                for call in calls {
                    replies.push(
                        Box::pin(self.read_many(std::slice::from_ref(call)))
                            .await
                            .remove(0),
                    );
                }
                return replies;
            }
            Err(e) => return vec![Frame::err(e); calls.len()],
        };
        let hits = keys.iter().filter(|k| ws.get(k).is_some()).count() as u64;
        Stats::add(&self.stats.keyspace_hits, hits);
        Stats::add(&self.stats.keyspace_misses, keys.len() as u64 - hits);
        calls
            .iter()
            .map(|call| match (call.spec.exec, &self.mapped) {
                // GET of a row: the row as a JSON object.
                (Exec::Read(_), Some(m))
                    if call.spec.name == "get" && m.is_mapped(&call.argv[1]) =>
                {
                    m.render(&call.argv[1], ws.get(&call.argv[1]))
                }
                (Exec::Read(handler), _) => handler(&call.argv, &mut ws),
                _ => Frame::err("internal: not a read command"),
            })
            .collect()
    }

    /// The rows a run of reads needs, through the cache-aside path; rows of
    /// mapped namespaces whose invalidation listener is down come straight
    /// from their tables, since cached ones may have missed a notice.
    async fn load_for_read(&self, keys: &[&Bytes]) -> Result<crate::keyspace::WorkingSet> {
        let Some(m) = self
            .mapped
            .as_ref()
            .filter(|m| keys.iter().any(|k| m.is_stale(k)))
        else {
            return self.aside.read(keys, now_millis()).await;
        };
        let (stale, fresh): (Vec<&Bytes>, Vec<&Bytes>) = keys.iter().partition(|k| m.is_stale(k));
        let mut ws = self.aside.read(&fresh, now_millis()).await?;
        let stale: Vec<Bytes> = stale.into_iter().cloned().collect();
        let rows = with_timeout(
            self.store.name(),
            self.config.database.timeout,
            m.rows(&stale),
        )
        .await?;
        for (key, row) in stale.into_iter().zip(rows) {
            ws.load(key, row);
        }
        Ok(ws)
    }

    /// Runs writes (and the reads of a MULTI block) under the write policy.
    /// `Ok(None)`: a watched key changed and nothing was written. `Err`: the
    /// error reply; nothing was written (unless it says the outcome is unknown).
    pub async fn write(
        &self,
        calls: &[Call],
        watched: &[Watched],
    ) -> std::result::Result<Outcome, Frame> {
        if self.is_read_only() && calls.iter().any(|c| c.spec.is_write()) {
            let replies = Some(vec![read_only_error(); calls.len()]);
            return Ok(Outcome { replies, seq: None });
        }
        if matches!(self.writer, Writer::Through(_)) && !self.db_health.is_up() {
            return Err(Frame::err(Error::unavailable(
                self.store.name(),
                "marked down after failed health checks",
            )));
        }
        if let Some(m) = &self.mapped
            && m.touches(calls)
        {
            let reply = self.write_mapped(m, calls, watched).await?;
            return Ok(Outcome {
                replies: Some(vec![reply]),
                seq: None,
            });
        }
        self.writer.execute(calls, watched).await
    }

    /// A write naming mapped keys: SQL on their tables, then the cache
    /// entries are dropped. A command cannot mix mapped and plain keys
    /// (their writes could not fail or succeed together), and MULTI blocks
    /// and WATCH cannot involve mapped keys.
    async fn write_mapped(
        &self,
        m: &Mapped,
        calls: &[Call],
        watched: &[Watched],
    ) -> std::result::Result<Frame, Frame> {
        let refused = || Frame::err("MULTI/EXEC and WATCH cannot include mapped keys");
        let [call] = calls else {
            return Err(refused());
        };
        if !watched.is_empty() || !call.spec.is_write() {
            return Err(refused());
        }
        m.check_write(call)?;
        let keys: Vec<Bytes> = call.spec.keys(&call.argv).into_iter().cloned().collect();
        if !keys.iter().all(|k| m.is_mapped(k)) {
            return Err(Frame::err(format!(
                "{} cannot mix mapped and plain keys in one command",
                call.spec.name.to_ascii_uppercase()
            )));
        }
        let reply = m.write(call).await;
        self.aside.invalidate(&keys).await;
        Ok(reply)
    }

    /// Runs a pipeline's run of consecutive plain writes (outside MULTI,
    /// already checked by the dispatcher's rules). Under write-behind the
    /// run is one unit sharing one WAL request and one wait for durability;
    /// otherwise the writes go one by one, as each alone would.
    pub async fn write_run(&self, calls: &[Call]) -> RunOutcome {
        // Mapped keys are SQL on their tables: they go one by one below.
        if let Some(b) = self.writer.behind()
            && !self.mapped.as_ref().is_some_and(|m| m.touches(calls))
        {
            return b.writer.execute_run(calls).await;
        }
        let mut out = RunOutcome {
            replies: Vec::with_capacity(calls.len()),
            seqs: Vec::new(),
        };
        for call in calls {
            let reply = match self.write(std::slice::from_ref(call), &[]).await {
                Ok(outcome) => {
                    out.seqs.extend(outcome.seq);
                    match outcome.replies {
                        Some(mut replies) => {
                            replies.pop().unwrap_or_else(|| Frame::err("no reply"))
                        }
                        None => Frame::NullArray,
                    }
                }
                Err(reply) => reply,
            };
            out.replies.push(reply);
        }
        out
    }

    /// The write-behind state, for INFO.
    pub fn behind(&self) -> Option<&policy::Behind<Cache>> {
        self.writer.behind()
    }

    /// Live keys and keys with an expiry, from the database (DBSIZE, INFO).
    /// Includes this instance's pending write-behind writes.
    pub async fn key_counts(&self) -> Result<crate::store::KeyCounts> {
        let (timeout, now) = (self.config.database.timeout, now_millis());
        let mut counts = with_timeout(self.store.name(), timeout, self.store.count(now)).await?;
        if let Some(b) = self.behind() {
            let pending = b.writer.overlay.snapshot();
            if !pending.is_empty() {
                let keys: Vec<Bytes> = pending.iter().map(|(k, _)| k.clone()).collect();
                let stored =
                    with_timeout(self.store.name(), timeout, self.store.get(&keys)).await?;
                Overlay::adjust_counts(&pending, &stored, &mut counts, now);
            }
        }
        Ok(counts)
    }

    /// One SCAN page of the keyspace: the database's rows, corrected by
    /// this instance's pending write-behind writes.
    pub async fn scan(&self, cursor: u64, count: usize) -> Result<crate::store::ScanPage> {
        let now = now_millis();
        let scan = self.store.scan(cursor, count, now);
        let mut page = with_timeout(self.store.name(), self.config.database.timeout, scan).await?;
        if let Some(b) = self.behind() {
            b.writer.overlay.merge_page(cursor, &mut page, now);
        }
        Ok(page)
    }

    /// What WATCH remembers about a key: its version and expiry now.
    pub async fn watch(&self, key: &Bytes) -> Result<Watched> {
        let ws = self.aside.read(&[key], now_millis()).await?;
        Ok(Watched {
            key: key.clone(),
            version: ws.loaded_version(key),
            expire_at: ws.get(key).and_then(|e| e.expire_at),
        })
    }

    /// Starts heartbeats, cache recovery and the sweeper; they stop with `shutdown`.
    pub fn spawn_background(self: &Arc<Self>, tracker: &TaskTracker, shutdown: CancellationToken) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let (Some(m), Some(listener)) = (&self.mapped, listener) {
            let run = crate::mapped::listen::run(
                m.clone(),
                self.aside.clone(),
                listener,
                shutdown.clone(),
            );
            tracker.spawn(run);
        }
        let engine = self.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                engine.heartbeat().await;
            }
        });
        let engine = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
                engine.sweep().await;
            }
        });
    }

    async fn heartbeat(&self) {
        let db = with_timeout(
            self.store.name(),
            self.config.database.timeout,
            self.store.ping(),
        )
        .await;
        if self.db_health.record(db.is_ok()) {
            match &db {
                Ok(()) => tracing::info!(backend = self.store.name(), "database is up again"),
                Err(e) => {
                    tracing::warn!(backend = self.store.name(), error = %e, "database marked down")
                }
            }
        }
        let cache = self.aside.cache();
        let ping = with_timeout(cache.name(), self.config.cache.timeout, cache.ping()).await;
        let health = self.aside.health();
        if health.heartbeat().record(ping.is_ok()) {
            match &ping {
                Ok(()) => tracing::info!(backend = cache.name(), "cache tier is up again"),
                Err(e) => {
                    tracing::warn!(backend = cache.name(), error = %e, "cache tier marked down")
                }
            }
        }
        if ping.is_ok() && health.is_distrusted() && self.aside.recover().await {
            tracing::info!(
                backend = cache.name(),
                "cache tier trusted again after invalidating keys written while it was unusable"
            );
        }
    }

    /// Purges tombstones and expired rows whose version is below both the
    /// time horizon (`database.tombstone_retention` ago) and the lowest
    /// low-water version reported by the write-behind instances, so no
    /// instance can still hold a write older than what goes. Without any
    /// checkpoint row (write-through only) the time horizon alone bounds
    /// it: write-through writes take their version above the stored one
    /// under a lock, and hold nothing back. If the low-water version cannot
    /// be read, nothing is purged this round.
    async fn sweep(&self) {
        let retention = self.config.database.tombstone_retention;
        let horizon =
            now_millis().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let mut before = Version((horizon.max(0) as u64) << 16);
        let timeout = self.config.database.timeout;
        match with_timeout(self.store.name(), timeout, self.store.low_water()).await {
            Ok(Some(low)) => before = before.min(low),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the low-water version; not sweeping");
                return;
            }
        }
        loop {
            let swept = with_timeout(
                self.store.name(),
                self.config.database.timeout,
                self.store.sweep(now_millis(), before, SWEEP_BATCH),
            )
            .await;
            match swept {
                Ok(n) if n as usize >= SWEEP_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "sweep failed; will retry");
                    break;
                }
            }
        }
    }

    /// Shutdown, after the connections are done: drain the write-behind
    /// queue until `deadline`, sync the WAL, close backend connections.
    pub async fn close(&self, deadline: std::time::Instant) {
        self.writer.close(deadline).await;
        self.store.close().await;
    }
}

/// The reply to a write under `policy = "read-only"`.
pub fn read_only_error() -> Frame {
    Frame::Error("READONLY You can't write against a read only spillway".into())
}
