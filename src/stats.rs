//! Counters INFO reports. Relaxed atomics: they are statistics, not
//! synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub connected_clients: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    /// Key lookups of read commands that found a live key (Redis's meaning).
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    /// Lookups answered by the cache tier (positive or negative entries).
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_fills: AtomicU64,
    pub cache_fills_refused: AtomicU64,
    pub cache_errors: AtomicU64,
    pub db_reads: AtomicU64,
    pub db_commits: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
