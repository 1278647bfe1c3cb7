//! Write-through: a write is acknowledged only after it committed in the
//! database, and the cache then holds nothing for its keys (CONTRACT
//! invariant 1). Every write, blind or read-modify-write, and every MULTI
//! block runs the same way:
//!
//! 1. lock the keys in-process, then in the database (`Store::begin`);
//! 2. load the locked rows into a working set; check WATCHed versions;
//! 3. run the commands' pure handlers against it;
//! 4. stamp changed rows with versions above what was stored, upsert, commit;
//! 5. invalidate the cache (cancels racing fills' leases), then reply.

use std::sync::Arc;

use bytes::Bytes;

use super::locks::KeyLocks;
use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::error::{Result, with_timeout};
use crate::keyspace::{Hlc, Version, WorkingSet, now_millis};
use crate::resp::Frame;
use crate::stats::Stats;
use crate::store::Store;

use super::{Call, Watched};

pub struct WriteThrough<C> {
    store: Arc<dyn Store>,
    aside: Arc<CacheAside<C>>,
    hlc: Arc<Hlc>,
    locks: KeyLocks,
    stats: Arc<Stats>,
    timeout: std::time::Duration,
}

impl<C: CacheTier> WriteThrough<C> {
    pub fn new(
        store: Arc<dyn Store>,
        aside: Arc<CacheAside<C>>,
        hlc: Arc<Hlc>,
        stats: Arc<Stats>,
        timeout: std::time::Duration,
    ) -> Self {
        WriteThrough {
            store,
            aside,
            hlc,
            locks: KeyLocks::default(),
            stats,
            timeout,
        }
    }

    /// Runs `calls` as one atomic unit. `Ok(None)` when a watched key changed
    /// (EXEC's nil reply); nothing was written then.
    pub async fn execute(&self, calls: &[Call], watched: &[Watched]) -> Result<Option<Vec<Frame>>> {
        let keys = super::call_keys(calls, watched);
        let _local = self.locks.lock(&keys).await;
        let backend = self.store.name();
        let (mut txn, rows) = with_timeout(backend, self.timeout, self.store.begin(&keys)).await?;
        let mut ws = WorkingSet::new(now_millis());
        let mut floor = Version::ZERO;
        for (key, row) in keys.iter().zip(rows) {
            floor = floor.max(row.version);
            ws.load(key.clone(), row);
        }
        self.hlc.observe(floor);
        if watched.iter().any(|w| w.broken(&ws)) {
            return Ok(None);
        }
        let replies: Vec<Frame> = calls
            .iter()
            .map(|c| super::run_handler(c, &mut ws))
            .collect();
        if !ws.has_changes() {
            return Ok(Some(replies));
        }
        let version = self.hlc.next_above(floor);
        let changed = super::stamped(&ws, version);
        with_timeout(backend, self.timeout, txn.put(&changed)).await?;
        with_timeout(backend, self.timeout, txn.commit()).await?;
        Stats::add(&self.stats.db_commits, 1);
        let changed_keys: Vec<Bytes> = changed.into_iter().map(|(k, _)| k).collect();
        self.aside.invalidate(&changed_keys).await;
        Ok(Some(replies))
    }
}
