//! The cache side of a group's commit: a fence of the writer's own leases
//! over every key it changes, put up before COMMIT and taken down by the
//! invalidation after it.
//!
//! Between COMMIT and that invalidation the database already holds the new
//! rows. Without the fence the cache could still hold an old row then (or
//! receive one from a fill that read the database just before), so one
//! client could read the new row (a miss, read from the database) and then
//! the old one (a hit). WATCH followed by GET is such a pair: WATCH takes
//! the new version, GET returns the old value, and a compare-and-set loop
//! writes an update computed from a value it never watched.

use bytes::Bytes;

use super::Committer;
use crate::cache::CacheTier;
use crate::error::with_timeout;

/// Rounds of "delete, then lease" for keys whose lease another reader
/// took in between; past them the invalidation after COMMIT still runs.
const FENCE_ATTEMPTS: usize = 3;

impl<C: CacheTier> Committer<C> {
    /// Before COMMIT: puts the writer's own lease on every key in `keys`,
    /// deleting a cached row or another reader's lease first where there is
    /// one, so the cache holds no row of them until the invalidation after
    /// COMMIT, and no fill can land meanwhile.
    ///
    /// Best effort: when the cache fails, the invalidation after COMMIT
    /// records the keys dirty and the cache serves no hits until they are
    /// invalidated.
    pub(super) async fn fence(&self, keys: &[Bytes]) {
        if !self.aside.health().usable() {
            return;
        }
        let cache = self.aside.cache();
        let mut left: Vec<Bytes> = keys.to_vec();
        for _ in 0..FENCE_ATTEMPTS {
            let lease = |k| with_timeout(cache.name(), self.timeout, cache.lease(k));
            let leases = futures::future::join_all(left.iter().map(lease)).await;
            let mut taken_by_others = Vec::new();
            for (key, lease) in left.into_iter().zip(leases) {
                match lease {
                    Ok(Some(_)) => {}
                    Ok(None) => taken_by_others.push(key),
                    Err(_) => return,
                }
            }
            if taken_by_others.is_empty() {
                return;
            }
            let cleared = cache.invalidate(&taken_by_others);
            if with_timeout(cache.name(), self.timeout, cleared)
                .await
                .is_err()
            {
                return;
            }
            left = taken_by_others;
        }
    }
}
