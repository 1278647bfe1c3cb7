//! One group of writes in one database transaction.
//!
//! The group is the unit of failure, each write the unit of reply: a
//! handler error or a broken WATCH is that write's reply alone, while a
//! failed transaction fails every write of the group (nothing written), and
//! a lost COMMIT leaves every write's outcome unknown.

use std::collections::HashSet;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;

use super::{Committer, Pending};
use crate::cache::CacheTier;
use crate::error::{Error, Result, with_timeout};
use crate::keyspace::{Version, WorkingSet, now_millis};
use crate::resp::Frame;
use crate::stats::Stats;
use crate::write::{call_keys, run_handler, stamped};

impl<C: CacheTier> Committer<C> {
    /// Commits `group` and answers each of its writes. `body` is released
    /// once the group's reads and upsert are done, letting the next group
    /// start while this one commits.
    pub(super) async fn commit(&self, group: Vec<Pending>, body: Option<OwnedSemaphorePermit>) {
        let (group, late): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|p| p.queued.elapsed() < self.timeout);
        for p in late {
            let _ = p.reply.send(Err(Error::Timeout {
                backend: self.store.name(),
                after: self.timeout,
            }));
        }
        if group.is_empty() {
            return;
        }
        match self.transaction(&group, body).await {
            Ok(outcomes) => {
                for (p, outcome) in group.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(outcome));
                }
            }
            // The fault lies with one write's rows: alone, the others
            // succeed and only that write fails.
            Err(Error::Rejected { .. } | Error::Corruption { .. }) if group.len() > 1 => {
                for p in group {
                    Box::pin(self.commit(vec![p], None)).await;
                }
            }
            Err(e) => {
                for p in group {
                    let _ = p.reply.send(Err(e.shared()));
                }
            }
        }
    }

    /// The group's transaction: every key locked and read at once, each
    /// write in arrival order over one working set, one upsert, COMMIT,
    /// then the cache invalidated. Returns each write's outcome.
    async fn transaction(
        &self,
        group: &[Pending],
        body: Option<OwnedSemaphorePermit>,
    ) -> Result<Vec<Option<Vec<Frame>>>> {
        let keys = group_keys(group);
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
        let outcomes: Vec<_> = group.iter().map(|p| apply(p, &mut ws)).collect();
        if !ws.has_changes() {
            drop(body);
            txn.rollback().await;
            return Ok(outcomes);
        }
        let version = self.hlc.next_above(floor);
        let changed = stamped(&ws, version);
        let changed_keys: Vec<Bytes> = changed.iter().map(|(k, _)| k.clone()).collect();
        let (put, ()) = tokio::join!(
            with_timeout(backend, self.timeout, txn.put(&changed)),
            self.fence(&changed_keys)
        );
        drop(body);
        // COMMIT is bounded by the store, which reports a COMMIT left
        // unanswered as an unknown outcome; a timeout here would claim
        // that nothing was written.
        let committed = match put {
            Ok(()) => txn.commit().await,
            Err(e) => Err(e),
        };
        // Also after a failure: it lifts the fence, and after an unknown
        // outcome the rows may have changed.
        self.aside.invalidate(&changed_keys).await;
        committed?;
        Stats::add(&self.stats.db_commits, 1);
        Ok(outcomes)
    }
}

/// Every distinct key the group's writes name or watch, in first-seen order.
fn group_keys(group: &[Pending]) -> Vec<Bytes> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for p in group {
        for key in call_keys(&p.calls, &p.watched) {
            if seen.insert(key.clone()) {
                keys.push(key);
            }
        }
    }
    keys
}

/// Runs one write over the group's working set, as if it ran alone after
/// the writes before it: a watched key that changed since WATCH, expired,
/// or was changed by an earlier write of the group makes it change nothing.
fn apply(p: &Pending, ws: &mut WorkingSet) -> Option<Vec<Frame>> {
    if !p.watched.is_empty() {
        let changed: HashSet<&Bytes> = ws.changed().map(|(k, _)| k).collect();
        if p.watched
            .iter()
            .any(|w| changed.contains(&w.key) || w.broken(ws))
        {
            return None;
        }
    }
    Some(p.calls.iter().map(|c| run_handler(c, ws)).collect())
}
