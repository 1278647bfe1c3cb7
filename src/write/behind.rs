//! Write-behind: a write is acknowledged once it is in the WAL (fsynced
//! under `fsync = "always"`) and in the overlay of pending writes; the event
//! processor applies it to the database later (CONTRACT invariant 2).
//!
//! 1. lock the keys in-process (per-key order: one writer of a key at a time);
//! 2. load their rows: pending writes first, then cache, then database.
//!    Blind writes (SET, SETEX, PSETEX, MSET) skip the cache and database:
//!    their effect does not depend on the current value. If the database is
//!    needed and down, DEL/UNLINK go on with unknown keys taken as absent;
//!    other writes fail, unlogged;
//! 3. run the handlers; stamp changed rows with a new version;
//! 4. wait for room in the backlog (or refuse with BUSY);
//! 5. append one WAL record with the resulting rows (a MULTI block is one
//!    record); a failed append fails the write and logs nothing;
//! 6. add the rows to the overlay, invalidate the cache, queue them for the
//!    processor, reply. The invalidation is what keeps a crash between the
//!    processor's commit and its own invalidation from leaving an older
//!    cached value over the database's newer row (see ARCHITECTURE.md).
//!
//! A pipeline's run of plain writes goes through `run` instead, as one unit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::key_queues::KeyQueues;
use super::{Call, Outcome, Watched, call_keys, is_blind, record};
use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::error::{Error, Result};
use crate::keyspace::{Hlc, Version, WorkingSet, now_millis};
use crate::processor::{Backlog, Item, backlog::BUSY};
use crate::resp::Frame;
use crate::wal::Wal;
use crate::write::overlay::Overlay;

pub struct WriteBehind<C> {
    pub aside: Arc<CacheAside<C>>,
    pub hlc: Arc<Hlc>,
    pub wal: Arc<Wal>,
    pub overlay: Arc<Overlay>,
    pub backlog: Arc<Backlog>,
    pub queue: mpsc::UnboundedSender<Item>,
    pub backpressure_wait: Duration,
    pub locks: KeyQueues,
}

/// Why a write-behind write was refused before anything was logged.
#[derive(Debug)]
pub enum Refusal {
    Busy,
    Backend(Error),
}

impl<C: CacheTier> WriteBehind<C> {
    /// Runs `calls` as one unit. `Ok(None)`: a watched key changed.
    pub async fn execute(&self, calls: &[Call], watched: &[Watched]) -> Result<Outcome, Refusal> {
        let keys = call_keys(calls, watched);
        let _local = self.locks.lock(&keys).await;
        let mut ws = WorkingSet::new(now_millis());
        let blind = watched.is_empty() && calls.iter().all(is_blind);
        // A blind write other than DEL (whose reply counts keys) does not
        // depend on what the keys hold: no cache or database read at all.
        let needs_current = !blind
            || calls
                .iter()
                .any(|c| matches!(c.spec.name, "del" | "unlink"));
        let blind_unknown = if !needs_current {
            self.load_pending_only(&keys, &mut ws);
            false
        } else {
            match self.aside.rows(&keys).await {
                Ok(rows) => {
                    for (key, row) in keys.iter().zip(rows) {
                        ws.load(key.clone(), row);
                    }
                    false
                }
                Err(e) if blind => {
                    tracing::debug!(error = %e, "database unreachable; logging a blind write");
                    self.load_pending_only(&keys, &mut ws);
                    true
                }
                Err(e) => return Err(Refusal::Backend(e)),
            }
        };
        if watched.iter().any(|w| w.broken(&ws)) {
            return Ok(Outcome::default());
        }
        let mut replies = Vec::with_capacity(calls.len());
        for call in calls {
            replies.push(super::run_handler(call, &mut ws));
            if blind_unknown && matches!(call.spec.name, "del" | "unlink") {
                for key in call.spec.keys(&call.argv) {
                    ws.force_delete(key);
                }
            }
        }
        if !ws.has_changes() {
            return Ok(Outcome {
                replies: Some(replies),
                seq: None,
            });
        }
        let floor = keys
            .iter()
            .map(|k| ws.loaded_version(k))
            .max()
            .unwrap_or(Version::ZERO);
        let version = self.hlc.next_above(floor);
        // Held at once: the instance's low-water version stays below it
        // until the processor has applied it (or it is refused).
        let held = self.backlog.hold(version);
        let rows = super::stamped(&ws, version);
        if !self.backlog.wait_for_room(self.backpressure_wait).await {
            return Err(Refusal::Busy);
        }
        let payload = record::encode(&rows);
        let bytes = payload.len() as u64;
        let seq = self
            .wal
            .append(version.0, payload)
            .await
            .map_err(Refusal::Backend)?;
        self.overlay.insert(seq.0, &rows);
        self.backlog.logged(bytes);
        held.keep();
        // Before the processor can commit (see `run.rs`).
        let changed: Vec<Bytes> = rows.iter().map(|(k, _)| k.clone()).collect();
        self.aside.invalidate(&changed).await;
        // The processor only stops after the write path at shutdown; a send
        // error cannot lose the write: it is in the WAL and replayed.
        let block = rows.len() > 1;
        let _ = self.queue.send(Item {
            seq: seq.0,
            version,
            rows,
            bytes,
            block,
        });
        Ok(Outcome {
            replies: Some(replies),
            seq: Some(seq.0),
        })
    }
}

impl<C> WriteBehind<C> {
    /// Loads only what the overlay knows; other keys are taken as absent.
    fn load_pending_only(&self, keys: &[Bytes], ws: &mut WorkingSet) {
        for key in keys {
            ws.load(key.clone(), self.overlay.get(key).unwrap_or_default());
        }
    }
}

impl Refusal {
    pub fn into_frame(self) -> Frame {
        match self {
            Refusal::Busy => Frame::Error(BUSY.into()),
            Refusal::Backend(e) => Frame::err(e),
        }
    }
}
