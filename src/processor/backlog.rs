//! What is logged but not yet applied: counts for INFO and the bounds of
//! CONTRACT invariant 6. A write waits here for room when the backlog is
//! full (`backpressure_wait`), and is refused with BUSY if none comes.
//!
//! It also holds the version of every write from the moment the write takes
//! it until the processor has applied it, so the instance can tell the
//! sweeper a version below which it will never write again (`low_water`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::keyspace::Version;

/// How far below the wall clock the low-water version stays: it covers a
/// version taken in the instant before it is held, and clock steps.
pub const LOW_WATER_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Backlog {
    pending: AtomicU64,
    pending_bytes: AtomicU64,
    retries: AtomicU64,
    checkpoint: AtomicU64,
    max_pending: u64,
    max_pending_bytes: u64,
    /// When each pending record was logged, oldest first (for the age INFO reports).
    logged_at: Mutex<VecDeque<Instant>>,
    room: Notify,
    drain_deadline: Mutex<Option<Instant>>,
    /// Versions of writes taken but not yet applied, with their counts.
    versions: Mutex<BTreeMap<u64, u32>>,
}

/// A held version, released when dropped unless `keep` hands it over to
/// the pending record (released by the processor once applied).
pub struct Held<'a> {
    backlog: &'a Backlog,
    version: Option<Version>,
}

impl Held<'_> {
    pub fn keep(mut self) {
        self.version = None;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(v) = self.version.take() {
            self.backlog.release(v);
        }
    }
}

/// Refusal of a write because the backlog stayed full.
pub const BUSY: &str = "BUSY spillway write-behind queue full, try again later";

impl Backlog {
    pub fn new(max_pending: u64, max_pending_bytes: u64, checkpoint: u64) -> Backlog {
        Backlog {
            pending: AtomicU64::new(0),
            pending_bytes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            checkpoint: AtomicU64::new(checkpoint),
            max_pending,
            max_pending_bytes,
            logged_at: Mutex::new(VecDeque::new()),
            room: Notify::new(),
            drain_deadline: Mutex::new(None),
            versions: Mutex::new(BTreeMap::new()),
        }
    }

    fn full(&self) -> bool {
        self.pending.load(Ordering::Acquire) >= self.max_pending
            || self.pending_bytes.load(Ordering::Acquire) >= self.max_pending_bytes
    }

    /// Waits up to `wait` for room for one more write; false: refuse it.
    pub async fn wait_for_room(&self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.room.notified();
            if !self.full() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return !self.full();
            }
        }
    }

    /// Completes at the next application of records (create it before
    /// checking the state it should wake you for).
    pub fn progress(&self) -> tokio::sync::futures::Notified<'_> {
        self.room.notified()
    }

    /// Returns once nothing logged is left unapplied.
    pub async fn wait_empty(&self) {
        loop {
            let notified = self.room.notified();
            if self.pending() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A record was logged (also at recovery).
    pub fn logged(&self, bytes: u64) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.pending_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.logged_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Instant::now());
    }

    /// Records were applied.
    pub fn done(&self, bytes: impl Iterator<Item = u64>) {
        let (mut n, mut total) = (0u64, 0u64);
        for b in bytes {
            n += 1;
            total += b;
        }
        self.pending.fetch_sub(n, Ordering::AcqRel);
        self.pending_bytes.fetch_sub(total, Ordering::AcqRel);
        let mut logged = self.logged_at.lock().unwrap_or_else(|p| p.into_inner());
        for _ in 0..n {
            logged.pop_front();
        }
        drop(logged);
        self.room.notify_waiters();
    }

    /// A write took `version` (also a record replayed at recovery): it is
    /// pending until `release`, or until the guard drops without `keep`.
    pub fn hold(&self, version: Version) -> Held<'_> {
        *self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(version.0)
            .or_insert(0) += 1;
        Held {
            backlog: self,
            version: Some(version),
        }
    }

    /// The write that held `version` was applied, or was never logged.
    pub fn release(&self, version: Version) {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = versions.get_mut(&version.0) {
            *n -= 1;
            if *n == 0 {
                versions.remove(&version.0);
            }
        }
    }

    /// A version at or below every version this instance has pending or may
    /// still issue: the lowest held one, and at most `LOW_WATER_MARGIN`
    /// below `now_ms` (versions issued later are at least the wall clock
    /// then, in milliseconds shifted left by 16).
    pub fn low_water(&self, now_ms: i64) -> Version {
        let margin = LOW_WATER_MARGIN.as_millis() as i64;
        let clock = ((now_ms - margin).max(0) as u64) << 16;
        let held = self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .next()
            .copied();
        Version(held.map_or(clock, |v| v.min(clock)))
    }

    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_checkpoint(&self, seq: u64) {
        self.checkpoint.store(seq, Ordering::Release);
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes.load(Ordering::Acquire)
    }

    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    pub fn checkpoint(&self) -> u64 {
        self.checkpoint.load(Ordering::Acquire)
    }

    /// Age of the oldest unapplied write: what a dead disk would lose now.
    pub fn oldest_pending(&self) -> Duration {
        let logged = self.logged_at.lock().unwrap_or_else(|p| p.into_inner());
        logged.front().map_or(Duration::ZERO, Instant::elapsed)
    }

    /// Shutdown: keep applying until `deadline`, then give up (the WAL keeps the rest).
    pub fn set_drain_deadline(&self, deadline: Instant) {
        *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }

    pub fn drain_expired(&self) -> bool {
        let deadline = *self
            .drain_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_backlog_refuses_after_the_wait_and_frees_room_when_applied() {
        let b = Backlog::new(2, 1 << 20, 0);
        b.logged(10);
        b.logged(10);
        assert!(!b.wait_for_room(Duration::from_millis(20)).await);
        b.done([10].into_iter());
        assert!(b.wait_for_room(Duration::from_millis(20)).await);
        assert_eq!((b.pending(), b.pending_bytes()), (1, 10));
    }

    #[test]
    fn the_low_water_version_stays_below_held_versions_and_the_clock_margin() {
        let b = Backlog::new(10, 1 << 20, 0);
        let now = 10_000_000;
        let clock = ((now - LOW_WATER_MARGIN.as_millis() as i64) as u64) << 16;
        assert_eq!(b.low_water(now), Version(clock));
        let old = Version(clock - 5);
        b.hold(old).keep();
        b.hold(old).keep();
        {
            let _dropped = b.hold(Version(clock - 9));
            assert_eq!(b.low_water(now), Version(clock - 9));
        }
        assert_eq!(b.low_water(now), old);
        b.release(old);
        assert_eq!(b.low_water(now), old, "held twice, released once");
        b.release(old);
        b.hold(Version(clock + 7)).keep();
        assert_eq!(
            b.low_water(now),
            Version(clock),
            "never above the clock margin"
        );
    }
}
