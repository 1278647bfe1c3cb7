//! Dead letters on the processor's side: which keys are parked, and the
//! batch apply that records rejected rows instead of retrying them forever.
//!
//! A key is parked from the moment a record of it is dead-lettered until an
//! operator retries or drops its dead letters (`SPILLWAY DEADLETTER RETRY |
//! DROP`). While it is parked, every later write of the key is recorded as
//! a dead letter too, behind the first, instead of being applied: the
//! database keeps the key's last good value, the dead letters keep the
//! key's writes in order, and the rest of the queue flows. The parked set
//! lives in memory and is rebuilt at start from `spillway_dead_letters`.
//!
//! One lock covers the set and every transaction that reads or changes it
//! (a batch attempt, a retry, a drop), so an operator command never races a
//! batch that is parking a write of the same key.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::error::{Result, with_timeout};
use crate::keyspace::Row;
use crate::store::Whole;
use crate::store::{DeadLetter, Record, Store};

#[derive(Debug)]
pub struct DeadLetters {
    instance: String,
    timeout: Duration,
    /// Keys with dead letters; their later writes are parked behind them.
    parked: Mutex<HashSet<Bytes>>,
    /// Dead letters of this instance in the database.
    count: AtomicU64,
}

impl DeadLetters {
    /// The parked keys of `instance`, read from the database at start.
    pub async fn load(store: &dyn Store, instance: &str, timeout: Duration) -> Result<DeadLetters> {
        let keys = with_timeout(store.name(), timeout, store.dead_letter_keys(instance)).await?;
        let count = keys.iter().map(|(_, n)| n).sum();
        if count > 0 {
            tracing::warn!(
                dead_letters = count,
                keys = keys.len(),
                "write-behind dead letters found; writes of their keys stay parked until SPILLWAY DEADLETTER RETRY or DROP"
            );
        }
        Ok(DeadLetters {
            instance: instance.to_string(),
            timeout,
            parked: Mutex::new(keys.into_iter().map(|(k, _)| k).collect()),
            count: AtomicU64::new(count),
        })
    }

    /// Dead letters of this instance in the database (INFO `wb_dead_letters`).
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Applies one coalesced batch (`(key, seq, row)`) and raises the
    /// checkpoint to `through`, in one transaction. Rows of parked keys are
    /// dead-lettered instead of applied. With `sift` (the plain batch was
    /// rejected), rows the database rejects are dead-lettered and their keys
    /// parked; without it, and with nothing parked, this is `Store::apply`.
    pub async fn apply(
        &self,
        store: &dyn Store,
        through: u64,
        rows: &[(Bytes, u64, Row)],
        sift: bool,
        whole: Whole,
    ) -> Result<()> {
        let mut parked = self.parked.lock().await;
        let record = |(key, seq, row): &(Bytes, u64, Row)| Record {
            seq: *seq,
            key: key.clone(),
            row: row.clone(),
        };
        let (mut held, mut free): (Vec<Record>, Vec<Record>) = rows
            .iter()
            .map(record)
            .partition(|r| parked.contains(&r.key));
        if whole == Whole::Block && !held.is_empty() {
            // A block is parked whole behind the dead letter of any of its keys.
            held.append(&mut free);
        }
        if held.is_empty() && !sift {
            let batch: Vec<(Bytes, Row)> = free.into_iter().map(|r| (r.key, r.row)).collect();
            let apply = store.apply(&self.instance, through, &batch);
            return with_timeout(store.name(), self.timeout, apply).await;
        }
        // Bounded per statement inside: the row-by-row search takes longer.
        let refused = store
            .apply_with_dead_letters(&self.instance, through, &free, &held, whole)
            .await?;
        for r in &refused {
            tracing::warn!(
                key = %String::from_utf8_lossy(&r.key),
                seq = r.seq,
                error = %r.error,
                "write-behind record rejected for good: kept as a dead letter; later writes of the key are parked behind it"
            );
            parked.insert(r.key.clone());
        }
        if !held.is_empty() {
            tracing::info!(
                records = held.len(),
                "writes of keys with dead letters parked as dead letters"
            );
        }
        self.count
            .fetch_add((refused.len() + held.len()) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Up to `limit` dead letters of this instance, oldest first.
    pub async fn list(&self, store: &dyn Store, limit: usize) -> Result<Vec<DeadLetter>> {
        with_timeout(
            store.name(),
            self.timeout,
            store.dead_letters(&self.instance, limit),
        )
        .await
    }

    /// Re-applies the dead letters of `key` and unparks it; returns how
    /// many there were. When the database still rejects them, nothing
    /// changes and the key stays parked.
    pub async fn retry(&self, store: &dyn Store, key: &[u8]) -> Result<u64> {
        let mut parked = self.parked.lock().await;
        let n = store.retry_dead_letters(&self.instance, key).await?;
        parked.remove(key);
        self.forget(n);
        Ok(n)
    }

    /// Deletes the dead letters of `key` and unparks it; returns how many went.
    pub async fn drop_key(&self, store: &dyn Store, key: &[u8]) -> Result<u64> {
        let mut parked = self.parked.lock().await;
        let drop = store.drop_dead_letters(&self.instance, key);
        let n = with_timeout(store.name(), self.timeout, drop).await?;
        parked.remove(key);
        self.forget(n);
        Ok(n)
    }

    fn forget(&self, n: u64) {
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
    }
}
