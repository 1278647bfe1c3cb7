//! External-write invalidation: one LISTEN connection on the trigger
//! channel. A notification drops the named rows' cache entries (or the
//! whole cache for an "all" notification); spillway's own writes are
//! recognised by their origin and skipped, since they invalidated already.
//!
//! Notifications sent while the connection is down are lost, so from the
//! moment it drops until it is back, reads of these namespaces bypass the
//! cache (`Mapped::is_stale`), and once it is back the cache is flushed
//! before they use it again: an entry filled before the drop may have
//! missed its invalidation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::Mapped;
use super::triggers::{self, CHANNEL};
use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::error::{Error, Result, with_timeout};
use crate::store::errors;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Notice {
    ns: String,
    origin: Option<String>,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

impl Mapped {
    /// Installs (or checks) every invalidating namespace's triggers, then
    /// starts listening. `Ok(None)`: no namespace invalidates.
    pub async fn listen(&self) -> Result<Option<PgListener>> {
        let watched: Vec<_> = self
            .namespaces
            .iter()
            .filter(|ns| ns.config.invalidate)
            .collect();
        if watched.is_empty() {
            return Ok(None);
        }
        for ns in watched {
            let config = &ns.config;
            if config.install_trigger {
                let sql = triggers::install_sql(config);
                with_timeout("postgres", self.timeout, async {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| {
                            Error::Config(format!(
                                "namespace {}: installing the invalidation triggers: {}",
                                config.name,
                                errors::one_line(e)
                            ))
                        })
                })
                .await?;
            } else {
                let found: i64 = with_timeout("postgres", self.timeout, async {
                    sqlx::query_scalar(triggers::CHECK_SQL)
                        .bind(triggers::table_for_check(config))
                        .bind(triggers::trigger_names(config))
                        .fetch_one(&self.pool)
                        .await
                        .map_err(|e| errors::postgres(self.timeout, e))
                })
                .await?;
                if found != 4 {
                    return Err(Error::Config(format!(
                        "namespace {}: invalidate = true needs spillway's triggers on {} \
                         (found {found} of 4 enabled); run the SQL that \
                         `spillway triggers --print` prints, or set install_trigger = true",
                        config.name, config.table
                    )));
                }
            }
        }
        let listener = self.connect_listener().await?;
        self.listening.store(true, Ordering::Release);
        Ok(Some(listener))
    }

    async fn connect_listener(&self) -> Result<PgListener> {
        with_timeout("postgres", self.timeout, async {
            let mut listener = PgListener::connect_with(&self.pool)
                .await
                .map_err(|e| errors::postgres(self.timeout, e))?;
            listener
                .listen(CHANNEL)
                .await
                .map_err(|e| errors::postgres(self.timeout, e))?;
            Ok(listener)
        })
        .await
    }

    /// The keys a notification names, or `None` for "everything".
    fn notice_keys(&self, payload: &str) -> Option<Vec<Bytes>> {
        let notice: Notice = match serde_json::from_str(payload) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable invalidation notice; flushing the cache");
                return None;
            }
        };
        if notice.origin.as_deref() == Some(self.origin.as_str()) {
            self.own_notices.fetch_add(1, Ordering::Relaxed);
            return Some(Vec::new());
        }
        self.notices.fetch_add(1, Ordering::Relaxed);
        let Some(ns) = self.namespaces.iter().find(|n| n.config.name == notice.ns) else {
            return Some(Vec::new());
        };
        if notice.all {
            return None;
        }
        Some(
            notice
                .ids
                .iter()
                .map(|id| ns.pattern.key(id.as_bytes()))
                .collect(),
        )
    }
}

/// Receives notifications until `stop`; reconnects after a drop and flushes
/// the cache before trusting it again.
pub async fn run<C: CacheTier>(
    mapped: Arc<Mapped>,
    aside: Arc<CacheAside<C>>,
    mut listener: PgListener,
    stop: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.try_recv() => r,
        };
        match received {
            Ok(Some(notice)) => match mapped.notice_keys(notice.payload()) {
                Some(keys) if keys.is_empty() => {}
                Some(keys) => aside.invalidate(&keys).await,
                None => {
                    if !flush(&*aside).await {
                        // Cached rows stay untrusted until the flush is done.
                        mapped.listening.store(false, Ordering::Release);
                        if !flush_until_done(&*aside, &stop).await {
                            return;
                        }
                        mapped.listening.store(true, Ordering::Release);
                    }
                }
            },
            Ok(None) | Err(_) => {
                mapped.listening.store(false, Ordering::Release);
                tracing::warn!(
                    "invalidation listener lost its connection; mapped reads bypass the cache"
                );
                let Some(back) = reconnect(&mapped, &*aside, &stop).await else {
                    return;
                };
                listener = back;
                mapped.reconnects.fetch_add(1, Ordering::Relaxed);
                mapped.listening.store(true, Ordering::Release);
                tracing::info!("invalidation listener is back; cache flushed");
            }
        }
    }
}

async fn reconnect<C: CacheTier>(
    mapped: &Mapped,
    aside: &CacheAside<C>,
    stop: &CancellationToken,
) -> Option<PgListener> {
    let mut backoff = BACKOFF_MIN;
    loop {
        // A pause first: a server that just closed the connection is
        // likely restarting.
        stop.run_until_cancelled(tokio::time::sleep(backoff))
            .await?;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if let Ok(listener) = mapped.connect_listener().await
            && flush(aside).await
        {
            return Some(listener);
        }
    }
}

/// Retries the flush with backoff; false when stopped first.
async fn flush_until_done<C: CacheTier>(aside: &CacheAside<C>, stop: &CancellationToken) -> bool {
    let mut backoff = BACKOFF_MIN;
    while !flush(aside).await {
        if stop
            .run_until_cancelled(tokio::time::sleep(backoff))
            .await
            .is_none()
        {
            return false;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    true
}

/// Drops every cached entry: what an "all" notice or a listener outage
/// needs, since entries cannot be told apart by namespace cheaply.
async fn flush<C: CacheTier>(aside: &CacheAside<C>) -> bool {
    match aside.cache().flush().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot flush the cache after a missed invalidation");
            false
        }
    }
}
