//! The write-behind event processor: takes logged writes off the queue in
//! batches (up to `batch_max` records or whatever arrived within
//! `flush_interval`), coalesces them per key (records carry resulting rows,
//! so the write with the highest sequence wins), and applies each batch in
//! one database transaction that also advances this instance's checkpoint.
//!
//! The checkpoint is the highest sequence S such that every record at or
//! below S is applied. Appenders hand records over in whatever order their
//! WAL appends complete, so the processor tracks applied sequences and only
//! advances over a contiguous run. After a batch commits it invalidates the
//! cache entries of its keys (a fill that raced the pending write cannot
//! outlive it), then retires the keys from the overlay.
//!
//! A batch the database rejects for good (`Error::Rejected`) is applied
//! again at once, with its rejected rows recorded as dead letters in the
//! same transaction (`dead_letters`); their keys are parked, and later
//! writes of them are dead-lettered behind the first. The overlay retires
//! them as usual, so reads see the database's value.

pub mod backlog;
pub mod dead_letters;
pub mod low_water;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use backlog::Backlog;
pub use dead_letters::DeadLetters;

use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::error::Error;
use crate::keyspace::{Row, Version};
use crate::store::{Store, Whole};
use crate::wal::{Seq, Wal};
use crate::write::overlay::Overlay;

/// One logged write on its way to the database.
pub struct Item {
    pub seq: u64,
    /// The version its rows carry, held in the backlog until applied.
    pub version: Version,
    pub rows: Vec<(Bytes, Row)>,
    pub bytes: u64,
    /// A MULTI block or multi-key command: a barrier applied alone, whole
    /// or (if the database rejects it for good) dead-lettered whole.
    pub block: bool,
}

/// Batching limits: `[write_behind]` of the config.
#[derive(Debug, Clone, Copy)]
pub struct ProcessorOptions {
    pub batch_max: usize,
    pub flush_interval: Duration,
    pub db_timeout: Duration,
}

/// Everything the processor needs, owned by its task.
pub struct Processor<C> {
    pub rx: mpsc::UnboundedReceiver<Item>,
    pub store: Arc<dyn Store>,
    pub aside: Arc<CacheAside<C>>,
    pub overlay: Arc<Overlay>,
    pub wal: Arc<Wal>,
    pub backlog: Arc<Backlog>,
    pub dead_letters: Arc<DeadLetters>,
    pub instance: String,
    pub opts: ProcessorOptions,
    /// Highest sequence applied with everything below it.
    pub checkpoint: u64,
    /// A block that ended the previous batch: it starts the next one.
    pub held: Option<Item>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl<C: CacheTier> Processor<C> {
    /// Runs until `stop` is cancelled and the queue is empty, or until the
    /// sender side is gone.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut applied_ahead: BTreeSet<u64> = BTreeSet::new();
        loop {
            let Some(batch) = self.next_batch(&stop).await else {
                return;
            };
            let mut through = self.checkpoint;
            let mut ahead = applied_ahead.clone();
            ahead.extend(batch.iter().map(|i| i.seq));
            while ahead.remove(&(through + 1)) {
                through += 1;
            }
            let rows = coalesce(&batch);
            let whole = if batch.len() == 1 && batch[0].block {
                Whole::Block
            } else {
                Whole::Rows
            };
            if !self.apply_until_done(through, &rows, whole, &stop).await {
                tracing::warn!(
                    pending = self.backlog.pending(),
                    "shutdown deadline passed before the queue drained; the WAL replays the rest at the next start"
                );
                return;
            }
            applied_ahead = ahead;
            self.checkpoint = through;
            let keys: Vec<Bytes> = rows.iter().map(|(k, _, _)| k.clone()).collect();
            self.aside.invalidate(&keys).await;
            for (key, seq, _) in &rows {
                self.overlay.applied(key, *seq);
            }
            for item in &batch {
                self.backlog.release(item.version);
            }
            self.backlog.done(batch.iter().map(|i| i.bytes));
            self.backlog.set_checkpoint(through);
            // File writes, renames and fsyncs: off the async workers.
            let wal = self.wal.clone();
            match tokio::task::spawn_blocking(move || wal.checkpoint(Seq(through))).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot advance the WAL checkpoint; segments are kept")
                }
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint task failed"),
            }
        }
    }

    /// Waits for the first item, then gathers more until `batch_max` or
    /// `flush_interval`. `None`: stopped with nothing left to apply.
    /// A block (MULTI, multi-key command) is a barrier: it ends the batch
    /// before it and travels alone, so coalescing never crosses it.
    async fn next_batch(&mut self, stop: &CancellationToken) -> Option<Vec<Item>> {
        let first = match self.held.take() {
            Some(item) => item,
            None => tokio::select! {
                item = self.rx.recv() => item?,
                _ = stop.cancelled() => match self.rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => return None,
                },
            },
        };
        if first.block {
            return Some(vec![first]);
        }
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + self.opts.flush_interval;
        while batch.len() < self.opts.batch_max {
            let next = match self.rx.try_recv() {
                Ok(item) => item,
                Err(_) if stop.is_cancelled() => break,
                Err(_) => match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(item)) => item,
                    _ => break,
                },
            };
            if next.block {
                self.held = Some(next);
                break;
            }
            batch.push(next);
        }
        Some(batch)
    }

    /// Applies one batch, retrying transient failures with exponential
    /// backoff and jitter until it commits. A batch the database rejects
    /// for good is applied again at once with its rejected rows
    /// dead-lettered. Nothing acknowledged is dropped: false only when the
    /// shutdown deadline passed first (the WAL keeps it).
    async fn apply_until_done(
        &self,
        through: u64,
        rows: &[(Bytes, u64, Row)],
        whole: Whole,
        stop: &CancellationToken,
    ) -> bool {
        let mut sift = false;
        let mut backoff = BACKOFF_MIN;
        let mut last_log: Option<tokio::time::Instant> = None;
        loop {
            let result = self
                .dead_letters
                .apply(&*self.store, through, rows, sift, whole)
                .await;
            let e = match result {
                Ok(()) => {
                    // A commit is the best health check: serve misses again at once.
                    self.aside.db_health().record(true);
                    return true;
                }
                Err(Error::Rejected { .. }) if !sift => {
                    sift = true;
                    continue;
                }
                Err(e) => e,
            };
            self.backlog.retried();
            if last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                tracing::warn!(error = %e, rows = rows.len(), through, "write-behind batch not applied; retrying");
                last_log = Some(tokio::time::Instant::now());
            }
            let jitter =
                Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1));
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                // At shutdown, keep trying only as long as the drain deadline allows.
                _ = stop.cancelled(), if self.backlog.drain_expired() => return false,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// The last write of each key in the batch: `(key, seq, row)`.
fn coalesce(batch: &[Item]) -> Vec<(Bytes, u64, Row)> {
    let mut latest: HashMap<&Bytes, (u64, &Row)> = HashMap::new();
    for item in batch {
        for (key, row) in &item.rows {
            let newer = latest.get(key).is_none_or(|(seq, _)| *seq < item.seq);
            if newer {
                latest.insert(key, (item.seq, row));
            }
        }
    }
    latest
        .into_iter()
        .map(|(k, (seq, row))| (k.clone(), seq, row.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalescing_keeps_the_highest_sequence_per_key_whatever_the_arrival_order() {
        let row = |v| Row {
            entry: None,
            version: Version(v),
        };
        let k = Bytes::from_static(b"k");
        let j = Bytes::from_static(b"j");
        let batch = vec![
            Item {
                block: false,
                seq: 5,
                version: Version(50),
                rows: vec![(k.clone(), row(50))],
                bytes: 1,
            },
            Item {
                block: false,
                seq: 3,
                version: Version(31),
                rows: vec![(k.clone(), row(30)), (j.clone(), row(31))],
                bytes: 1,
            },
        ];
        let mut out = coalesce(&batch);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(out, vec![(j, 3, row(31)), (k, 5, row(50))]);
    }
}
