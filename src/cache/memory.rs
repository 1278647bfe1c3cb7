//! In-process cache tier: sharded maps of rows bounded by the bytes of
//! their keys and values, each entry with its own TTL, and fill leases
//! beside the entries of the same shard.
//!
//! Hashing is foldhash (seeded per process), several times cheaper than
//! SipHash for short keys. A read takes its shard's read lock for one map
//! lookup; nothing on the hit path allocates or writes shared memory beyond
//! the lock word and, the first time an entry is read after the CLOCK hand
//! passed it, its "recently used" bit. Eviction is CLOCK (second chance)
//! per shard: an entry read since the hand last passed survives one more
//! round; expired entries go first.
//!
//! A lease and its entry live under the same shard lock: `fill` checks the
//! lease and inserts, `invalidate` cancels the lease and removes the entry,
//! each under the write lock, so an invalidation cannot fall between a
//! fill's check and its insert (the stale-fill race). Locks are std locks
//! held only for map operations, never across an await.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use foldhash::fast::RandomState;
use indexmap::IndexMap;

use super::{CacheOptions, CacheTier, Lease, fill_ttl};
use crate::error::Result;
use crate::keyspace::{Row, now_millis};

/// Most shards: enough that concurrent readers and writers rarely share a
/// lock.
const MAX_SHARDS: usize = 64;

/// Least budget per shard: a small cache gets fewer shards rather than
/// shards too small for one ordinary entry.
const MIN_SHARD_BYTES: u64 = 64 * 1024;

/// Bytes charged per entry on top of key and value, for the maps' own
/// bookkeeping; keeps a flood of tiny entries from weighing nothing.
const ENTRY_OVERHEAD: usize = 64;

/// A cached row with its deadline and what it weighs against the bound.
struct Stored {
    row: Row,
    until: Instant,
    weight: u64,
    /// Read since the CLOCK hand last passed it.
    used: AtomicBool,
}

/// One outstanding lease: its token and when it lapses.
struct Slot {
    token: u64,
    until: Instant,
}

/// The entries and leases of the keys hashing to one shard.
#[derive(Default)]
struct Shard {
    entries: IndexMap<Bytes, Stored, RandomState>,
    leases: HashMap<Bytes, Slot, RandomState>,
    /// Sum of the entries' weights.
    bytes: u64,
    /// The CLOCK hand: the index eviction looks at next.
    hand: usize,
    /// Leases whose holder never came back are swept out at most once per
    /// lease ttl, so abandoned keys cannot grow the map forever.
    next_sweep: Option<Instant>,
}

impl Shard {
    /// True when `lease` is the live lease on `key`.
    fn holds(&self, key: &[u8], lease: Lease, now: Instant) -> bool {
        self.leases
            .get(key)
            .is_some_and(|s| s.token == lease.0 && s.until > now)
    }

    fn sweep_if_due(&mut self, now: Instant, every: Duration) {
        match self.next_sweep {
            Some(at) if at > now => {}
            _ => {
                self.leases.retain(|_, s| s.until > now);
                self.next_sweep = Some(now + every);
            }
        }
    }

    /// Stores an entry, then evicts until the shard is within `budget`.
    fn insert(&mut self, key: Bytes, stored: Stored, budget: u64, now: Instant) {
        self.bytes += stored.weight;
        if let Some(old) = self.entries.insert(key, stored) {
            self.bytes -= old.weight;
        }
        while self.bytes > budget && !self.entries.is_empty() {
            self.evict_one(now);
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.swap_remove(key) {
            self.bytes -= old.weight;
        }
    }

    /// Second chance: clears the used bit of entries read since the last
    /// pass and evicts the first one that is expired or was not read.
    fn evict_one(&mut self, now: Instant) {
        loop {
            if self.hand >= self.entries.len() {
                self.hand = 0;
            }
            let Some((_, entry)) = self.entries.get_index(self.hand) else {
                return;
            };
            if entry.until <= now || !entry.used.swap(false, Ordering::Relaxed) {
                if let Some((_, old)) = self.entries.swap_remove_index(self.hand) {
                    self.bytes -= old.weight;
                }
                return;
            }
            self.hand += 1;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.leases.clear();
        self.bytes = 0;
        self.hand = 0;
    }
}

/// The in-process tier. Meant for one spillway instance (the embedded
/// default): other instances cannot invalidate it.
pub struct MemoryCache {
    shards: Box<[RwLock<Shard>]>,
    /// Bytes each shard may hold.
    budget: u64,
    hasher: RandomState,
    lease_ttl: Duration,
}

impl MemoryCache {
    /// A cache holding about `opts.max_bytes` of keys and values.
    pub fn new(opts: &CacheOptions) -> MemoryCache {
        let wanted = (opts.max_bytes / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS as u64) as usize;
        // A power of two, so picking a shard is a mask.
        let count = if wanted.is_power_of_two() {
            wanted
        } else {
            wanted.next_power_of_two() / 2
        };
        MemoryCache {
            shards: (0..count).map(|_| RwLock::default()).collect(),
            budget: opts.max_bytes / count as u64,
            hasher: RandomState::default(),
            lease_ttl: opts.lease_ttl.max(Duration::from_millis(1)),
        }
    }

    fn index(&self, key: &[u8]) -> usize {
        // The high bits: the maps inside a shard use the low ones.
        (self.hasher.hash_one(key) >> 40) as usize & (self.shards.len() - 1)
    }

    // A panic elsewhere while holding a lock leaves the maps usable: at
    // worst a lease stands until it lapses.
    fn read(&self, key: &[u8]) -> RwLockReadGuard<'_, Shard> {
        self.shards[self.index(key)]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &[u8]) -> RwLockWriteGuard<'_, Shard> {
        self.shards[self.index(key)]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get_sync(&self, keys: &[Bytes]) -> Vec<Option<Row>> {
        let now = Instant::now();
        keys.iter()
            .map(|k| {
                let shard = self.read(k);
                let entry = shard.entries.get(&k[..]).filter(|e| e.until > now)?;
                // Only the first read after a pass writes the bit.
                if !entry.used.load(Ordering::Relaxed) {
                    entry.used.store(true, Ordering::Relaxed);
                }
                Some(entry.row.clone())
            })
            .collect()
    }

    fn lease_sync(&self, key: &Bytes) -> Option<Lease> {
        let now = Instant::now();
        let mut shard = self.write(key);
        shard.sweep_if_due(now, self.lease_ttl);
        if shard.leases.get(&key[..]).is_some_and(|s| s.until > now) {
            return None;
        }
        let token = rand::random::<u64>();
        let slot = Slot {
            token,
            until: now + self.lease_ttl,
        };
        // An owned copy: the caller's key may be a slice of a large request
        // buffer that must not stay pinned by the cache.
        shard.leases.insert(Bytes::copy_from_slice(key), slot);
        Some(Lease(token))
    }

    fn fill_sync(&self, key: &Bytes, lease: Lease, row: &Row, ttl: Duration) -> bool {
        let ttl = fill_ttl(row, ttl, now_millis());
        let weight = weight(key, row);
        let now = Instant::now();
        let mut shard = self.write(key);
        if !shard.holds(key, lease, now) {
            return false;
        }
        shard.leases.remove(&key[..]);
        let Some(ttl) = ttl else {
            return false;
        };
        // An entry larger than a whole shard is not kept.
        if weight > self.budget {
            return false;
        }
        let stored = Stored {
            row: row.clone(),
            until: now + ttl,
            weight,
            // Unread until read: a burst of one-off fills cannot push out
            // the entries that are read.
            used: AtomicBool::new(false),
        };
        // Inserted under the lock that checked the lease, so no
        // invalidation can slip between the check and the insert.
        shard.insert(Bytes::copy_from_slice(key), stored, self.budget, now);
        true
    }

    fn release_sync(&self, key: &Bytes, lease: Lease) {
        let mut shard = self.write(key);
        if shard
            .leases
            .get(&key[..])
            .is_some_and(|s| s.token == lease.0)
        {
            shard.leases.remove(&key[..]);
        }
    }

    fn invalidate_sync(&self, keys: &[Bytes]) {
        for key in keys {
            let mut shard = self.write(key);
            shard.leases.remove(&key[..]);
            shard.remove(key);
        }
    }

    fn flush_sync(&self) {
        for shard in self.shards.iter() {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Bytes held, for tests of the bound.
    #[cfg(test)]
    fn weighted_size(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }
}

/// What an entry charges against `max_bytes`.
fn weight(key: &Bytes, row: &Row) -> u64 {
    let value = row.entry.as_ref().map_or(0, |e| e.value.weight());
    (key.len() + value + ENTRY_OVERHEAD) as u64
}

impl CacheTier for MemoryCache {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn get_many(&self, keys: &[Bytes]) -> Result<Vec<Option<Row>>> {
        Ok(self.get_sync(keys))
    }

    async fn lease(&self, key: &Bytes) -> Result<Option<Lease>> {
        Ok(self.lease_sync(key))
    }

    async fn fill(&self, key: &Bytes, lease: Lease, row: &Row, ttl: Duration) -> Result<bool> {
        Ok(self.fill_sync(key, lease, row, ttl))
    }

    async fn release(&self, key: &Bytes, lease: Lease) -> Result<()> {
        self.release_sync(key, lease);
        Ok(())
    }

    async fn invalidate(&self, keys: &[Bytes]) -> Result<()> {
        self.invalidate_sync(keys);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        self.flush_sync();
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, Value, Version};

    fn opts(max_bytes: u64, lease_ttl: Duration) -> CacheOptions {
        CacheOptions {
            url: None,
            key_prefix: String::new(),
            max_bytes,
            timeout: Duration::from_millis(500),
            lease_ttl,
        }
    }

    fn cache() -> MemoryCache {
        MemoryCache::new(&opts(1 << 20, Duration::from_secs(10)))
    }

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn row(value: &[u8], version: u64) -> Row {
        Row {
            entry: Some(Entry::new(Value::Str(Bytes::copy_from_slice(value)))),
            version: Version(version),
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Polls `probe` until it holds, failing after a generous deadline.
    async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !probe().await {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn miss_then_fill_then_hit() {
        let c = cache();
        let (a, b) = (key("a"), key("b"));
        assert_eq!(
            c.get_many(&[a.clone(), b.clone()]).await.unwrap(),
            vec![None, None]
        );
        let lease = c.lease(&a).await.unwrap().expect("lease on a miss");
        assert!(c.fill(&a, lease, &row(b"1", 7), LONG).await.unwrap());
        let got = c.get_many(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!(got, vec![Some(row(b"1", 7)), None]);

        // A negative entry is a hit too.
        let lease = c.lease(&b).await.unwrap().expect("lease");
        assert!(c.fill(&b, lease, &Row::absent(), LONG).await.unwrap());
        assert_eq!(c.get_many(&[b]).await.unwrap(), vec![Some(Row::absent())]);
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let c = cache();
        let (short, long) = (key("short"), key("long"));
        let l = c.lease(&short).await.unwrap().expect("lease");
        assert!(
            c.fill(&short, l, &row(b"s", 1), Duration::from_millis(30))
                .await
                .unwrap()
        );
        let l = c.lease(&long).await.unwrap().expect("lease");
        assert!(c.fill(&long, l, &row(b"l", 1), LONG).await.unwrap());
        eventually("the short entry expires", async || {
            c.get_many(std::slice::from_ref(&short)).await.unwrap()[0].is_none()
        })
        .await;
        assert!(c.get_many(&[long]).await.unwrap()[0].is_some());
    }

    #[tokio::test]
    async fn a_key_expiring_sooner_than_the_ttl_shortens_the_entry() {
        let c = cache();
        let k = key("k");
        let mut r = row(b"v", 1);
        r.entry.as_mut().unwrap().expire_at = Some(now_millis() + 30);
        let l = c.lease(&k).await.unwrap().expect("lease");
        assert!(c.fill(&k, l, &r, LONG).await.unwrap());
        eventually("the entry expires with its key", async || {
            c.get_many(std::slice::from_ref(&k)).await.unwrap()[0].is_none()
        })
        .await;
    }

    #[tokio::test]
    async fn nothing_left_to_live_is_not_stored_and_drops_the_lease() {
        let c = cache();
        let k = key("k");
        let l = c.lease(&k).await.unwrap().expect("lease");
        assert!(!c.fill(&k, l, &row(b"v", 1), Duration::ZERO).await.unwrap());
        let mut expired = row(b"v", 1);
        expired.entry.as_mut().unwrap().expire_at = Some(now_millis() - 1);
        let l = c.lease(&k).await.unwrap().expect("the lease was dropped");
        assert!(!c.fill(&k, l, &expired, LONG).await.unwrap());
        assert_eq!(
            c.get_many(std::slice::from_ref(&k)).await.unwrap(),
            vec![None]
        );
        assert!(c.lease(&k).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn the_byte_bound_evicts() {
        let max = 20_000;
        let c = MemoryCache::new(&opts(max, Duration::from_secs(10)));
        let value = vec![b'x'; 1_000];
        let keys: Vec<Bytes> = (0..100).map(|i| key(&format!("key{i}"))).collect();
        for k in &keys {
            let l = c.lease(k).await.unwrap().expect("lease");
            c.fill(k, l, &row(&value, 1), LONG).await.unwrap();
        }
        assert!(c.weighted_size() <= max, "{}", c.weighted_size());
        let hits = c.get_many(&keys).await.unwrap().iter().flatten().count();
        assert!(
            hits > 0 && hits <= 20,
            "{hits} entries of 1 KB in a 20 KB cache"
        );
    }

    #[tokio::test]
    async fn eviction_spares_entries_read_since_the_hand_passed() {
        let c = MemoryCache::new(&opts(20_000, Duration::from_secs(10)));
        let value = vec![b'x'; 1_000];
        let hot = key("hot");
        let l = c.lease(&hot).await.unwrap().expect("lease");
        assert!(c.fill(&hot, l, &row(&value, 1), LONG).await.unwrap());
        for i in 0..200 {
            let k = key(&format!("cold{i}"));
            let l = c.lease(&k).await.unwrap().expect("lease");
            c.fill(&k, l, &row(&value, 1), LONG).await.unwrap();
            let hit = c.get_many(std::slice::from_ref(&hot)).await.unwrap();
            assert!(
                hit[0].is_some(),
                "the hot entry was evicted after {i} fills"
            );
        }
        assert!(c.weighted_size() <= 20_000);
    }

    #[tokio::test]
    async fn an_invalidation_defeats_a_fill_holding_an_older_read() {
        let c = cache();
        let k = key("k");
        // Reader misses and reads version 1 from the database...
        let l = c.lease(&k).await.unwrap().expect("lease");
        // ...a writer commits version 2 and invalidates...
        c.invalidate(std::slice::from_ref(&k)).await.unwrap();
        // ...and the reader's late fill must not store version 1.
        assert!(!c.fill(&k, l, &row(b"old", 1), LONG).await.unwrap());
        assert_eq!(c.get_many(&[k]).await.unwrap(), vec![None]);
    }

    #[tokio::test]
    async fn invalidate_removes_entries() {
        let c = cache();
        let k = key("k");
        let l = c.lease(&k).await.unwrap().expect("lease");
        assert!(c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());
        c.invalidate(std::slice::from_ref(&k)).await.unwrap();
        assert_eq!(c.get_many(&[k]).await.unwrap(), vec![None]);
    }

    #[tokio::test]
    async fn one_lease_per_key_at_a_time() {
        let c = cache();
        let (k, other) = (key("k"), key("other"));
        let first = c.lease(&k).await.unwrap().expect("lease");
        assert_eq!(c.lease(&k).await.unwrap(), None);
        assert!(c.lease(&other).await.unwrap().is_some());
        // A lease is used up by its fill; the next miss may lease again.
        assert!(c.fill(&k, first, &row(b"v", 1), LONG).await.unwrap());
        assert!(!c.fill(&k, first, &row(b"v", 1), LONG).await.unwrap());
        assert!(c.lease(&k).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_abandoned_lease_lapses() {
        let c = MemoryCache::new(&opts(1 << 20, Duration::from_millis(30)));
        let k = key("k");
        let stale = c.lease(&k).await.unwrap().expect("lease");
        let mut next = None;
        eventually("the lease lapses", async || {
            next = c.lease(&k).await.unwrap();
            next.is_some()
        })
        .await;
        assert!(!c.fill(&k, stale, &row(b"old", 1), LONG).await.unwrap());
        let next = next.expect("second lease");
        assert!(c.fill(&k, next, &row(b"new", 2), LONG).await.unwrap());
        assert_eq!(c.get_many(&[k]).await.unwrap(), vec![Some(row(b"new", 2))]);
    }

    #[tokio::test]
    async fn release_gives_back_only_its_own_lease() {
        let c = cache();
        let k = key("k");
        let l = c.lease(&k).await.unwrap().expect("lease");
        c.release(&k, Lease(l.0.wrapping_add(1))).await.unwrap();
        assert_eq!(
            c.lease(&k).await.unwrap(),
            None,
            "a foreign token released it"
        );
        c.release(&k, l).await.unwrap();
        assert!(!c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());
        assert!(c.lease(&k).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn flush_drops_entries_and_leases() {
        let c = cache();
        let (a, b) = (key("a"), key("b"));
        let l = c.lease(&a).await.unwrap().expect("lease");
        assert!(c.fill(&a, l, &row(b"v", 1), LONG).await.unwrap());
        let pending = c.lease(&b).await.unwrap().expect("lease");
        c.flush().await.unwrap();
        assert_eq!(
            c.get_many(std::slice::from_ref(&a)).await.unwrap(),
            vec![None]
        );
        assert!(!c.fill(&b, pending, &row(b"v", 1), LONG).await.unwrap());
    }

    #[tokio::test]
    async fn abandoned_leases_are_swept() {
        let c = MemoryCache::new(&opts(1 << 20, Duration::from_millis(1)));
        for i in 0..1_000 {
            c.lease(&key(&format!("k{i}"))).await.unwrap();
        }
        let k = key("last");
        eventually("old leases are swept", async || {
            c.lease(&k).await.unwrap();
            c.read(&k).leases.len() <= 2
        })
        .await;
    }

    /// Readers fill from a "database" while a writer bumps it and
    /// invalidates. Once the writer's invalidation of version v is done,
    /// no reader may find an entry older than v.
    #[test]
    fn racing_fills_never_leave_an_older_version() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let c = cache();
        let k = key("k");
        let db = AtomicU64::new(0);
        let floor = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while !done.load(Ordering::Acquire) {
                        let least = floor.load(Ordering::Acquire);
                        if let Some(hit) = c.get_sync(std::slice::from_ref(&k))[0].take() {
                            assert!(hit.version.0 >= least, "stale {:?} < {least}", hit.version);
                            continue;
                        }
                        let Some(l) = c.lease_sync(&k) else { continue };
                        let read = db.load(Ordering::Acquire);
                        std::thread::yield_now();
                        c.fill_sync(&k, l, &row(b"v", read), LONG);
                    }
                });
            }
            for _ in 0..2_000 {
                let v = db.fetch_add(1, Ordering::AcqRel) + 1;
                c.invalidate_sync(std::slice::from_ref(&k));
                floor.store(v, Ordering::Release);
                std::thread::yield_now();
            }
            done.store(true, Ordering::Release);
        });
    }
}
