//! Backend health: heartbeats mark a backend down after repeated failures so
//! requests fail fast instead of hanging, and up again when it answers.
//!
//! The cache tier has one more duty. While it is down (or an invalidation
//! failed), write-through writes still commit but cannot delete the cached
//! copies of what they wrote; those keys are remembered as *dirty*, and the
//! cache is only trusted again after every dirty key has been invalidated.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bytes::Bytes;

/// Consecutive heartbeat failures before a backend is marked down.
pub const FAILURES_TO_MARK_DOWN: u32 = 3;

/// Past this many dirty keys the whole cache tier is flushed on recovery
/// instead of remembering every key.
pub const MAX_DIRTY_KEYS: usize = 100_000;

/// Up/down state of one backend as seen by its heartbeat.
#[derive(Debug)]
pub struct BackendHealth {
    up: AtomicBool,
    failures: AtomicU32,
}

impl Default for BackendHealth {
    fn default() -> Self {
        BackendHealth {
            up: AtomicBool::new(true),
            failures: AtomicU32::new(0),
        }
    }
}

impl BackendHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records a heartbeat result; returns true when the state changed.
    pub fn record(&self, ok: bool) -> bool {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            !self.up.swap(true, Ordering::AcqRel)
        } else {
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            n >= FAILURES_TO_MARK_DOWN && self.up.swap(false, Ordering::AcqRel)
        }
    }
}

/// What the cache needs before it may serve hits again.
#[derive(Debug, Default)]
struct Dirty {
    keys: HashSet<Bytes>,
    /// Too many keys to remember: flush the whole tier on recovery.
    overflow: bool,
}

/// The cache tier's trust state. `trusted` is only ever set under the dirty
/// lock and only when nothing is dirty, so a writer that records a dirty key
/// either does so before recovery's final check or sees the cache trusted.
#[derive(Debug, Default)]
pub struct CacheHealth {
    beat: BackendHealth,
    distrusted: AtomicBool,
    dirty: Mutex<Dirty>,
}

/// What recovery must do before the cache is trusted again.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    Nothing,
    Invalidate(Vec<Bytes>),
    FlushAll,
}

impl CacheHealth {
    /// True when hits may be served and fills stored.
    pub fn usable(&self) -> bool {
        self.beat.is_up() && !self.distrusted.load(Ordering::Acquire)
    }

    pub fn heartbeat(&self) -> &BackendHealth {
        &self.beat
    }

    /// A write could not invalidate `keys` (or the cache was unusable):
    /// stop serving hits until they are invalidated.
    pub fn mark_dirty<'a>(&self, keys: impl IntoIterator<Item = &'a Bytes>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if !dirty.overflow {
            dirty.keys.extend(keys.into_iter().cloned());
            if dirty.keys.len() > MAX_DIRTY_KEYS {
                dirty.keys = HashSet::new();
                dirty.overflow = true;
            }
        }
        self.distrusted.store(true, Ordering::Release);
    }

    /// Whether a writer must record its keys as dirty instead of trying the
    /// cache (decided under the lock recovery uses).
    pub fn record_if_unusable<'a>(&self, keys: impl IntoIterator<Item = &'a Bytes>) -> bool {
        if self.usable() {
            return false;
        }
        self.mark_dirty(keys);
        true
    }

    /// Takes what recovery must clean; `Nothing` when the cache is clean.
    pub fn take_recovery(&self) -> Recovery {
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if dirty.overflow {
            dirty.overflow = false;
            Recovery::FlushAll
        } else if dirty.keys.is_empty() {
            Recovery::Nothing
        } else {
            Recovery::Invalidate(dirty.keys.drain().collect())
        }
    }

    /// Gives work back after a failed recovery attempt.
    pub fn restore(&self, recovery: Recovery) {
        match recovery {
            Recovery::Nothing => {}
            Recovery::FlushAll => {
                let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
                dirty.overflow = true;
                dirty.keys.clear();
            }
            Recovery::Invalidate(keys) => self.mark_dirty(keys.iter()),
        }
    }

    /// Trusts the cache again if nothing became dirty meanwhile.
    pub fn trust_if_clean(&self) -> bool {
        let dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        if dirty.keys.is_empty() && !dirty.overflow {
            self.distrusted.store(false, Ordering::Release);
            true
        } else {
            false
        }
    }

    pub fn is_distrusted(&self) -> bool {
        self.distrusted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_goes_down_after_repeated_failures_and_up_on_success() {
        let h = BackendHealth::default();
        assert!(!h.record(false) && !h.record(false));
        assert!(h.record(false));
        assert!(!h.is_up());
        assert!(h.record(true));
        assert!(h.is_up());
    }

    #[test]
    fn dirty_keys_block_hits_until_recovered() {
        let c = CacheHealth::default();
        assert!(c.usable());
        let k = Bytes::from_static(b"k");
        c.mark_dirty([&k]);
        assert!(!c.usable());
        let r = c.take_recovery();
        assert_eq!(r, Recovery::Invalidate(vec![k.clone()]));
        // a write lands while recovery runs: the cache stays distrusted
        c.mark_dirty([&k]);
        assert!(!c.trust_if_clean());
        assert_eq!(c.take_recovery(), Recovery::Invalidate(vec![k]));
        assert!(c.trust_if_clean());
        assert!(c.usable());
    }
}
